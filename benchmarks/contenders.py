"""The contenders: fastconv, PyTorch and the NumPy im2col baseline.

Imports each library, makes an entry's data and, per task, a zero-argument
callable per contender that performs exactly the task's op, and compares the
contenders' results."""

import math
import os
import sys

import numpy as np

if __package__:
    from . import im2col_numpy as npconv
else:
    import im2col_numpy as npconv

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

CONTENDERS = ("fastconv", "torch", "numpy")


# ------------------------------------------------------------------ imports

def _has_inplace_build():
    pkg = os.path.join(ROOT, "fastconv")
    return os.path.isdir(pkg) and any(
        name.startswith("_core") and name.endswith((".so", ".pyd"))
        for name in os.listdir(pkg))


def import_fastconv():
    """The fastconv to measure: the source tree's in-place build when there is
    one (the code being worked on), else the installed package."""
    saved = list(sys.path)
    if _has_inplace_build():
        sys.path.insert(0, ROOT)
    else:
        # An unbuilt source tree on the path (python -m from the checkout)
        # would hide the installed package.
        sys.path[:] = [p for p in sys.path
                       if os.path.abspath(p or os.curdir) != ROOT]
    try:
        import fastconv
        return fastconv, None
    except ImportError as exc:
        return None, str(exc).splitlines()[0]
    finally:
        sys.path[:] = saved


def import_torch():
    try:
        import torch
        import torch.nn.functional  # noqa: F401
        return torch, None
    except ImportError as exc:
        return None, str(exc)


def import_threadpoolctl():
    try:
        import threadpoolctl
        return threadpoolctl.ThreadpoolController()
    except Exception:  # not installed, or a library it cannot introspect
        return None


# --------------------------------------------------------------- the ops

def _pair(v):
    return tuple(v)


class Contenders:
    """Builds, for one task and its data, a zero-argument callable per
    contender that performs exactly that op."""

    def __init__(self, fastconv, torch):
        self.fc = fastconv
        self.torch = torch

    # --- data
    @staticmethod
    def make_data(task, seed):
        layer, op, dtype = task.layer, task.op, np.dtype(task.dtype)
        rng = np.random.default_rng(seed)
        n = layer.batch(task.dtype)
        h2, w2 = layer.out_hw
        d = {}
        if layer.kind == "conv":
            d["x"] = rng.standard_normal((n, layer.C, layer.H, layer.W), dtype=dtype)
            cg = layer.C // layer.groups
            fan_in = cg * layer.FH * layer.FW
            wshape = ((layer.C, layer.K // layer.groups, layer.FH, layer.FW) if layer.transposed
                      else (layer.K, cg, layer.FH, layer.FW))
            d["w"] = rng.standard_normal(wshape, dtype=dtype) * dtype.type(1 / math.sqrt(fan_in))
            d["b"] = rng.standard_normal(layer.K, dtype=dtype)
            if op != "fwd":
                d["dy"] = rng.standard_normal((n, layer.K, h2, w2), dtype=dtype)
        else:
            d["x"] = rng.standard_normal((n, layer.C, layer.H, layer.W), dtype=dtype)
            if op == "pool_bwd":
                d["dy"] = rng.standard_normal((n, layer.C, h2, w2), dtype=dtype)
        return d

    # --- fastconv
    def fastconv_fn(self, task, d):
        fc, layer, op = self.fc, task.layer, task.op
        if layer.kind == "conv" and layer.transposed:
            s, p = _pair(layer.stride), _pair(layer.padding)
            x, w, b = d["x"], d["w"], d["b"]
            if op == "fwd":
                return lambda: fc.conv_transpose2d(x, w, b, s, p)
            if op == "bwd_data":      # the input gradient is a convolution of dy
                return lambda: fc.conv2d(d["dy"], w, None, s, p)
            return lambda: fc.conv_transpose2d_backward(d["dy"], x, w, s, p, need_dx=False)[1:]
        if layer.kind == "conv":
            s, p = _pair(layer.stride), _pair(layer.padding)
            x, w, b, G = d["x"], d["w"], d["b"], layer.groups
            D = layer.dilation
            if op == "fwd":
                return lambda: fc.conv2d(x, w, b, s, p, strict=layer.strict, groups=G,
                                         dilation=D)
            if op == "bwd_weight":
                return lambda: fc.conv2d_backward(d["dy"], x, w, s, p, need_dx=False,
                                                  groups=G, dilation=D)[1:]
            # The public conv2d_backward always computes dw and db; the data
            # gradient alone is timed through the binding, with the output
            # allocated on every call as the public API does.
            core, dy = fc._core, d["dy"]
            n = x.shape[0]
            h2, w2 = layer.out_hw
            geom = (n, layer.C, layer.H, layer.W, layer.K, layer.FH, layer.FW,
                    s[0], s[1], p[0], p[1], h2, w2, D[0], D[1], G)
            nt = fc.get_num_threads
            dyf, wf = dy.reshape(-1), w.reshape(-1)

            def bwd_data():
                dx = np.empty(x.shape, x.dtype)
                core.conv2d_bwd_data(geom, dyf, wf, dx.reshape(-1), nt())
                return dx
            return bwd_data
        k, s, p = _pair(layer.kernel), _pair(layer.stride), _pair(layer.padding)
        x = d["x"]
        if layer.mode == "max":
            if op == "pool_fwd":
                return lambda: fc.max_pool2d(x, k, s, p, strict=layer.strict)
            # The backward fastconv.MaxPool2d runs: from the indices its
            # forward records when windows overlap (recorded here, outside
            # the timing, as for PyTorch below), from x when they do not.
            idx = None
            if k[0] > s[0] or k[1] > s[1]:
                _, idx = fc.max_pool2d(x, k, s, p, strict=layer.strict, return_indices=True)
            return lambda: fc.max_pool2d_backward(d["dy"], x, k, s, p, strict=layer.strict,
                                                  indices=idx)
        cip = layer.count_include_pad
        if op == "pool_fwd":
            return lambda: fc.avg_pool2d(x, k, s, p, count_include_pad=cip,
                                         strict=layer.strict)
        return lambda: fc.avg_pool2d_backward(d["dy"], x.shape, k, s, p,
                                              count_include_pad=cip, strict=layer.strict)

    # --- torch
    def torch_fn(self, task, d):
        torch, layer, op = self.torch, task.layer, task.op
        F = torch.nn.functional
        aten = torch.ops.aten
        t = {key: torch.from_numpy(v) for key, v in d.items()}
        x = t["x"]
        if layer.kind == "conv":
            s, p = list(layer.stride), list(layer.padding)
            w, b, G, D = t["w"], t["b"], layer.groups, list(layer.dilation)
            if op == "fwd":
                if layer.transposed:
                    return lambda: F.conv_transpose2d(x, w, b, s, p)
                return lambda: F.conv2d(x, w, b, s, p, D, G)
            # What autograd runs for conv2d's backward, asked for the same
            # outputs as the fastconv call: dx alone, or dw and db together.
            mask = [True, False, False] if op == "bwd_data" else [False, True, True]
            dy = t["dy"]
            return lambda: aten.convolution_backward(dy, x, w, [layer.K], s, p, D,
                                                     layer.transposed, [0, 0], G, mask)
        k, s, p = list(layer.kernel), list(layer.stride), list(layer.padding)
        if layer.mode == "max":
            if op == "pool_fwd":
                return lambda: F.max_pool2d(x, k, s, p)
            # PyTorch's backward reads the indices its forward recorded, so
            # they are computed here, outside the timing: PyTorch is timed on
            # its cheapest path for each direction.
            _, idx = aten.max_pool2d_with_indices(x, k, s, p, [1, 1], False)
            dy = t["dy"]
            return lambda: aten.max_pool2d_with_indices_backward(dy, x, k, s, p, [1, 1],
                                                                 False, idx)
        cip = layer.count_include_pad
        if op == "pool_fwd":
            return lambda: F.avg_pool2d(x, k, s, p, False, cip)
        dy = t["dy"]
        return lambda: aten.avg_pool2d_backward(dy, x, k, s, p, False, cip, None)

    # --- numpy
    @staticmethod
    def numpy_fn(task, d):
        layer, op = task.layer, task.op
        x = d["x"]
        if layer.kind == "conv" and (layer.transposed or layer.dilation != (1, 1)):
            return None      # the im2col baseline has neither
        if layer.kind == "conv":
            s, p = _pair(layer.stride), _pair(layer.padding)
            w, b = d["w"], d["b"]
            if layer.groups > 1:
                return _numpy_grouped(layer, op, d, s, p)
            if op == "fwd":
                return lambda: npconv.conv2d(x, w, b, s, p)
            if op == "bwd_data":
                return lambda: npconv.conv2d_backward_data(d["dy"], w, x.shape, s, p)
            return lambda: npconv.conv2d_backward_weight(d["dy"], x, w.shape, s, p)
        k, s, p = _pair(layer.kernel), _pair(layer.stride), _pair(layer.padding)
        if layer.mode == "max":
            if op == "pool_fwd":
                return lambda: npconv.max_pool2d(x, k, s, p)
            return lambda: npconv.max_pool2d_backward(d["dy"], x, k, s, p)
        cip = layer.count_include_pad
        if op == "pool_fwd":
            return lambda: npconv.avg_pool2d(x, k, s, p, cip)
        return lambda: npconv.avg_pool2d_backward(d["dy"], x.shape, k, s, p, cip)


def _numpy_grouped(layer, op, d, s, p):
    """The im2col baseline run group by group, the results joined."""
    x, w, b = d["x"], d["w"], d["b"]
    G, cg, kg = layer.groups, layer.C // layer.groups, layer.K // layer.groups
    xs = [x[:, i * cg:(i + 1) * cg] for i in range(G)]
    ws = [w[i * kg:(i + 1) * kg] for i in range(G)]
    if op == "fwd":
        return lambda: np.concatenate([npconv.conv2d(xs[i], ws[i], b[i * kg:(i + 1) * kg], s, p)
                                       for i in range(G)], axis=1)
    dys = [d["dy"][:, i * kg:(i + 1) * kg] for i in range(G)]
    if op == "bwd_data":
        return lambda: np.concatenate([npconv.conv2d_backward_data(dys[i], ws[i], xs[i].shape,
                                                                   s, p)
                                       for i in range(G)], axis=1)

    def bwd_weight():
        parts = [npconv.conv2d_backward_weight(dys[i], xs[i], ws[i].shape, s, p)
                 for i in range(G)]
        return (np.concatenate([q[0] for q in parts]), np.concatenate([q[1] for q in parts]))
    return bwd_weight


def _primary(result):
    """The array a contender's result is checked on (dx, dw or y)."""
    if isinstance(result, (tuple, list)):
        result = result[0] if result[0] is not None else result[1]
    if hasattr(result, "numpy"):
        result = result.numpy()
    return np.asarray(result)


def compare(a, b, dtype):
    """Largest difference relative to the largest magnitude: a sanity check
    that everyone computes the same thing, not a precision test."""
    a, b = _primary(a), _primary(b)
    if a.shape != b.shape:
        return float("inf")
    scale = float(np.max(np.abs(b))) if b.size else 0.0
    diff = float(np.max(np.abs(a.astype(np.float64) - b))) if b.size else 0.0
    return diff / scale if scale > 0 else diff


CHECK_TOL = {"float32": 1e-3, "float64": 1e-9}


# ------------------------------------------------------------- the plans

PLAN_FIELDS = ("algorithm", "kernel", "threads", "workspace_bytes", "reason")


def plan_ops(task):
    """The planner's ops behind a task. A backward entry names both
    gradients' (the data gradient's first), whichever of the two it times."""
    layer = task.layer
    if layer.kind == "conv" and layer.transposed:
        # the transposed convolution is the data gradient of a convolution
        # whose input it computes; its input gradient is that convolution
        if task.op == "fwd":
            return ("conv2d_backward_data",)
        return ("conv2d", "conv2d_backward_weight")
    if layer.kind == "conv":
        if task.op == "fwd":
            return ("conv2d",)
        return ("conv2d_backward_data", "conv2d_backward_weight")
    if task.op == "fwd":
        return (f"{layer.mode}_pool2d",)
    return (f"{layer.mode}_pool2d_backward",)


def plan_of(fastconv, task, threads):
    """fastconv's plan for a task at ``threads`` threads, asked before the
    task is timed: {planner op: Plan} in the order of plan_ops(task)."""
    layer = task.layer
    x_shape = (layer.batch(task.dtype), layer.C, layer.H, layer.W)
    args = {"dtype": task.dtype, "stride": tuple(layer.stride),
            "padding": tuple(layer.padding), "threads": threads}
    if layer.kind == "conv" and layer.transposed:
        h2, w2 = layer.out_hw
        conv_x = (layer.batch(task.dtype), layer.K, h2, w2)   # the equivalent convolution
        w_shape = (layer.C, layer.K // layer.groups, layer.FH, layer.FW)
        return {op: fastconv.plan(op, conv_x, w_shape, groups=layer.groups, **args)
                for op in plan_ops(task)}
    if layer.kind == "conv":
        w_shape = (layer.K, layer.C // layer.groups, layer.FH, layer.FW)
        return {op: fastconv.plan(op, x_shape, w_shape, groups=layer.groups,
                                  dilation=layer.dilation, **args,
                                  **({"strict": layer.strict} if op == "conv2d" else {}))
                for op in plan_ops(task)}
    return {op: fastconv.plan(op, x_shape, kernel_size=tuple(layer.kernel),
                              strict=layer.strict, **args)
            for op in plan_ops(task)}


def plan_record(plan):
    """A Plan as JSON: its fields, None where it has none."""
    out = {}
    for field in PLAN_FIELDS:
        v = getattr(plan, field, None)
        if v is not None:
            v = int(v) if field in ("threads", "workspace_bytes") else str(v)
        out[field] = v
    return out
