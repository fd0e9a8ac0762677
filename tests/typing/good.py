"""Correct uses of fastconv's public API: ``mypy --strict`` must accept every
line, and the file runs (tests/test_typing.py does both)."""

from __future__ import annotations

import io
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
from numpy.typing import NDArray

import fastconv
import fastconv.compat.cs231n as cs
from fastconv import functional as F
from fastconv import modules

Floats = NDArray[np.floating[Any]]

x = np.ones((2, 3, 8, 8), np.float32)
w = np.ones((4, 3, 3, 3), np.float32)
b = np.zeros(4, np.float32)

# ------------------------------------------------------------- functional
y: Floats = fastconv.conv2d(x, w, b, stride=1, padding=1)
y2 = fastconv.conv2d(x.tolist(), w, None, (2, 1), (1, 0), strict=False, activation="relu")
y3 = fastconv.conv2d(x, w, stride=np.int64(1), padding=np.int32(1), algorithm="gemm")
shape: Tuple[int, ...] = y.shape + y2.shape + y3.shape

dx, dw, db = fastconv.conv2d_backward(y, x, w, padding=1)
dx_shape: Tuple[int, ...] = dx.shape          # need_dx=True: dx is an array
none, dw, db = fastconv.conv2d_backward(y, x, w, 1, 1, need_dx=False,
                                        algorithm=("col2im", None))
assert none is None
maybe_dx, _, _ = fastconv.conv2d_backward(y, x, w, padding=1, need_dx=bool(len(shape)),
                                          algorithm="gemm")
if maybe_dx is not None:
    dx = maybe_dx

p: Floats = fastconv.max_pool2d(x, 2)
p, idx = fastconv.max_pool2d(x, (2, 2), None, 0, return_indices=True)
idx64: NDArray[np.int64] = idx
either = fastconv.max_pool2d(x, 2, return_indices=bool(len(shape)))
dpool: Floats = fastconv.max_pool2d_backward(p, x, 2, indices=idx)
dpool = fastconv.max_pool2d_backward(p, x, 2, 2, 0, strict=True)
a: Floats = fastconv.avg_pool2d(x, 2, count_include_pad=False)
da: Floats = fastconv.avg_pool2d_backward(a, x.shape, 2)
da = fastconv.avg_pool2d_backward(a, [2, 3, 8, 8], (2, 2), stride=2, padding=0)
da = fastconv.avg_pool2d_backward(a, np.array(x.shape), 2)

x2 = np.ones((2, 5))
w2 = np.ones((3, 5))
lin: Floats = fastconv.linear(x2, w2, np.zeros(3), activation="relu")
ldx, ldw, ldb = fastconv.linear_backward(lin, x2, w2)
r: Floats = fastconv.relu([[-1.0, 2.0]])
dr: Floats = fastconv.relu_backward([[1.0, 1.0]], [[-1.0, 2.0]])
n: int = fastconv.output_size(32, 5, 1, 2) + F.output_size(7, 3, strict=False)

# ---------------------------------------------------- configuration, plans
fastconv.set_num_threads(1)
threads: int = fastconv.get_num_threads()
fastconv.set_num_threads(None)
names: Tuple[str, ...] = fastconv.algorithms()
plan: fastconv.Plan = fastconv.plan("conv2d", (2, 3, 8, 8), (4, 3, 3, 3), dtype=np.float32,
                                   padding=1, threads=1, algorithm=None, strict=True)
pool_plan = fastconv.plan("max_pool2d", [2, 3, 8, 8], dtype="float64", stride=None,
                          kernel_size=2)
words: str = plan.algorithm + plan.kernel + plan.reason + pool_plan.op
nbytes: int = plan.workspace_bytes + plan.threads
out = io.StringIO()
fastconv.show_config()

# ----------------------------------------------------------------- layers
conv = fastconv.Conv2d(3, 4, 3, padding=1, dtype=np.float64, seed=0)
model = fastconv.Sequential(
    conv, fastconv.ReLU(), fastconv.MaxPool2d(2, strict=True),
    fastconv.AvgPool2d(kernel_size=(1, 1), count_include_pad=True), fastconv.Flatten(),
    fastconv.Linear(4 * 4 * 4, 10, bias=False, seed=1),
)
scores: NDArray[Any] = model(x)
scores = model.forward(x)
loss, dscores = fastconv.softmax_cross_entropy(scores, np.array([1, 2]))
hinge, dhinge = fastconv.multiclass_hinge(scores, [0, 9], margin=0.5)
total: float = loss + hinge
back: Optional[NDArray[Any]] = model.backward(dscores)
model.backward(dscores, need_dx=False)
weight: Floats = conv.weight
conv.weight = np.zeros_like(conv.weight)
conv.bias = [0.0, 0.0, 0.0, 0.0]
bias: Optional[Floats] = conv.bias
params: Dict[str, Floats] = model.params
grads: Dict[str, Floats] = model.grads
count: int = conv.num_params + model.mult_adds((3, 8, 8))
first: modules.Module = model[0]
some: List[modules.Module] = model[1:3]
layers = [layer for layer in model] + [model[len(model) - 1]]
summary: modules.Summary = model.summary((3, 8, 8), file=out)
summary = model.summary([3, 8, 8], file=False)
rows_total: int = summary.total_params + summary.total_mult_adds + len(summary.rows)
out_shape: Tuple[int, ...] = model.output_shape((3, 8, 8))

opt = fastconv.SGD(model, lr=0.1, momentum=0.9, nesterov=True)
opt.zero_grad()
model.backward(dscores)
opt.step()
adam = fastconv.Adam(conv, lr=1e-3, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.0)
conv.forward(x)
conv.backward(np.ones((2, 4, 8, 8)))
adam.step()

# ----------------------------------------------------------------- cs231n
xc = np.random.default_rng(0).standard_normal((2, 3, 8, 8))
wc = np.ones((4, 3, 3, 3))
bc = np.zeros(4)
conv_param = {"stride": 1, "pad": 1}
pool_param = {"pool_height": 2, "pool_width": 2, "stride": 2}
cout, ccache = cs.conv_forward_fast(xc, wc, bc, conv_param)
cdx, cdw, cdb = cs.conv_backward_fast(cout, ccache)
cdx, cdw, cdb = cs.conv_backward_naive(cout, ccache)
pout, pcache = cs.max_pool_forward_fast(cout, pool_param)
pdx: Floats = cs.max_pool_backward_fast(pout, pcache)
sout, scache = cs.conv_relu_pool_forward(xc, wc, bc, conv_param, pool_param)
sdx, sdw, sdb = cs.conv_relu_pool_backward(sout, scache)
rout, rcache = cs.conv_relu_forward(xc, wc, bc, conv_param)
rdx, rdw, rdb = cs.conv_relu_backward(rout, rcache)
aout, acache = cs.affine_forward(xc, np.ones((3 * 8 * 8, 5)), np.zeros(5))
adx, adw, adb = cs.affine_backward(aout, acache)
arout, arcache = cs.affine_relu_forward(xc, np.ones((3 * 8 * 8, 5)), np.zeros(5))
ardx, ardw, ardb = cs.affine_relu_backward(arout, arcache)
relu_out, relu_cache = cs.relu_forward(xc)
relu_dx: Floats = cs.relu_backward(relu_out, relu_cache)
closs, cdscores = cs.softmax_loss(aout, np.array([0, 4]))
sloss, sdscores = cs.svm_loss(aout, np.array([0, 4]))
mean_loss: float = float(closs + sloss)
