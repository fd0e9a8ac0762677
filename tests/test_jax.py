"""fastconv.jax against JAX's own convolution and pooling
(jax.lax.conv_general_dilated, jax.lax.reduce_window): outputs and
gradients, under jit, grad and vmap, in float32 and float64."""

import numpy as np
import pytest

jax = pytest.importorskip("jax")
jnp = jax.numpy
lax = jax.lax

import fastconv  # noqa: E402
import fastconv.jax as fj  # noqa: E402

from conftest import run_python, seed_of  # noqa: E402

NCHW = ("NCHW", "OIHW", "NCHW")


def _x64(on):
    # jax.enable_x64 is the context manager of recent JAX; older releases
    # had it as jax.experimental.enable_x64.
    switch = getattr(jax, "enable_x64", None)
    if switch is None:  # pragma: no cover - older JAX
        from jax.experimental import enable_x64 as switch
    return switch(on)


@pytest.fixture(params=[np.float32, np.float64], ids=["float32", "float64"])
def dtype(request):
    dt = np.dtype(request.param)
    with _x64(dt == np.float64):
        yield dt


def rand(shape, dtype, *key):
    rng = np.random.default_rng(seed_of(shape, *key))
    return jnp.asarray(rng.standard_normal(shape).astype(dtype))


def close(actual, expected, dtype, what="result"):
    """Equal up to rounding: errors scaled by the largest magnitude, per dtype."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, what
    assert actual.dtype == dtype, f"{what}: dtype {actual.dtype}"
    rtol = 2e-5 if dtype == np.float32 else 1e-12
    scale = max(float(np.abs(expected).max()), 1.0)
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * scale, err_msg=what)


def grads(f, args, dtype, key):
    """Gradients of sum(f(*args) * R) for a fixed random R, for every argument."""
    out = jax.eval_shape(f, *args)
    r = rand(out.shape, dtype, "cotangent", key)
    return jax.grad(lambda *a: jnp.sum(f(*a) * r), argnums=tuple(range(len(args))))(*args)


def check(ours, theirs, args, dtype, key):
    """Outputs (plain and under jit) and gradients of ours against theirs."""
    close(ours(*args), theirs(*args), dtype, "forward")
    close(jax.jit(ours)(*args), theirs(*args), dtype, "forward under jit")
    for i, (g, h) in enumerate(zip(jax.jit(lambda *a: grads(ours, a, dtype, key))(*args),
                                   grads(theirs, args, dtype, key))):
        close(g, h, dtype, f"gradient of argument {i}")


# -------------------------------------------------------------- references

def ref_conv2d(x, w, b, stride, padding, relu=False, dilation=1, groups=1):
    s, d = fastconv._validate.pair(stride, "s"), fastconv._validate.pair(dilation, "d")
    if isinstance(padding, str):
        pads = padding.upper()
    elif isinstance(padding, tuple) and isinstance(padding[0], tuple):
        pads = list(padding)
    else:
        p = fastconv._validate.pair(padding, "p")
        pads = [(p[0], p[0]), (p[1], p[1])]
    y = lax.conv_general_dilated(x, w, s, pads, rhs_dilation=d, dimension_numbers=NCHW,
                                 feature_group_count=groups,
                                 precision=lax.Precision.HIGHEST)
    if b is not None:
        y = y + b[None, :, None, None]
    return jax.nn.relu(y) if relu else y


def ref_conv_transpose2d(x, w, b, stride, padding, output_padding, groups=1, dilation=1):
    s = fastconv._validate.pair(stride, "s")
    p = fastconv._validate.pair(padding, "p")
    op = fastconv._validate.pair(output_padding, "op")
    d = fastconv._validate.pair(dilation, "d")
    cin, cg, fh, fw = w.shape
    # (C_in, C_out/G, F, F) -> OIHW with O = C_out, I = C_in/G, per group,
    # turned by 180 degrees
    k = w.reshape(groups, cin // groups, cg, fh, fw).transpose(0, 2, 1, 3, 4)
    k = jnp.flip(k.reshape(groups * cg, cin // groups, fh, fw), (2, 3))
    eh, ew = d[0] * (fh - 1), d[1] * (fw - 1)
    y = lax.conv_general_dilated(x, k, (1, 1),
                                 [(eh - p[0], eh - p[0] + op[0]),
                                  (ew - p[1], ew - p[1] + op[1])],
                                 lhs_dilation=s, rhs_dilation=d, dimension_numbers=NCHW,
                                 feature_group_count=groups,
                                 precision=lax.Precision.HIGHEST)
    return y if b is None else y + b[None, :, None, None]


def ref_pool(x, kernel, stride, padding, kind, count_include_pad=True, strict=True):
    k = fastconv._validate.pair(kernel, "k")
    s = k if stride is None else fastconv._validate.pair(stride, "s")
    p = fastconv._validate.pair(padding, "p")
    dims, strides = (1, 1) + k, (1, 1) + s
    pads = ((0, 0), (0, 0), (p[0], p[0]), (p[1], p[1]))
    if kind == "max":
        return lax.reduce_window(x, -jnp.inf, lax.max, dims, strides, pads)
    total = lax.reduce_window(x, 0.0, lax.add, dims, strides, pads)
    if count_include_pad:
        return total / (k[0] * k[1])
    count = lax.reduce_window(jnp.ones_like(x), 0.0, lax.add, dims, strides, pads)
    return total / count


# -------------------------------------------------------------- convolution

CONV_CASES = [  # x shape, w shape, stride, padding, bias
    ((2, 3, 9, 9), (4, 3, 3, 3), 1, 1, True),
    ((2, 3, 9, 9), (4, 3, 3, 3), 2, 1, False),
    ((1, 5, 11, 8), (6, 5, 4, 2), (3, 2), (1, 0), True),
    ((3, 16, 7, 7), (8, 16, 1, 1), 1, 0, True),
]

# x shape, w shape, stride, padding, dilation, groups
CONV_OPTION_CASES = [
    ((2, 4, 10, 9), (6, 2, 3, 3), 1, 2, 2, 2),
    ((1, 6, 9, 11), (6, 1, 3, 3), 2, 1, 1, 6),            # depthwise
    ((2, 3, 8, 8), (4, 3, 4, 3), 1, "same", (1, 2), 1),
    ((1, 3, 9, 7), (5, 3, 3, 2), 1, "valid", 1, 1),
    ((2, 4, 7, 8), (4, 2, 3, 3), (2, 1), ((1, 0), (2, 1)), 1, 2),
]


@pytest.mark.parametrize("case", CONV_OPTION_CASES, ids=str)
def test_conv2d_dilation_groups_and_padding_forms(case, dtype):
    xs, ws, stride, padding, dilation, groups = case
    x, w, b = rand(xs, dtype, "x", case), rand(ws, dtype, "w", case), \
        rand(ws[:1], dtype, "b", case)
    check(lambda x, w, b: fj.conv2d(x, w, b, stride, padding, dilation, groups, strict=False),
          lambda x, w, b: ref_conv2d(x, w, b, stride, padding, dilation=dilation,
                                     groups=groups), (x, w, b), dtype, case)


@pytest.mark.parametrize("case", CONV_CASES, ids=str)
def test_conv2d(case, dtype):
    xs, ws, stride, padding, bias = case
    x, w = rand(xs, dtype, "x", case), rand(ws, dtype, "w", case)
    if bias:
        b = rand(ws[:1], dtype, "b", case)
        check(lambda x, w, b: fj.conv2d(x, w, b, stride, padding),
              lambda x, w, b: ref_conv2d(x, w, b, stride, padding), (x, w, b), dtype, case)
    else:
        check(lambda x, w: fj.conv2d(x, w, stride=stride, padding=padding),
              lambda x, w: ref_conv2d(x, w, None, stride, padding), (x, w), dtype, case)


def test_conv2d_fused_relu(dtype):
    x, w, b = rand((2, 3, 8, 8), dtype, "x"), rand((5, 3, 3, 3), dtype, "w"), \
        rand((5,), dtype, "b")
    check(lambda x, w, b: fj.conv2d(x, w, b, padding=1, activation="relu"),
          lambda x, w, b: ref_conv2d(x, w, b, 1, 1, relu=True), (x, w, b), dtype, "relu")


def test_conv2d_floors_with_strict_false(dtype):
    x, w = rand((1, 2, 8, 8), dtype, "x"), rand((3, 2, 3, 3), dtype, "w")
    with pytest.raises(fastconv.ShapeError, match="fastconv.jax.conv2d: height"):
        fj.conv2d(x, w, stride=2)
    check(lambda x, w: fj.conv2d(x, w, stride=2, strict=False),
          lambda x, w: ref_conv2d(x, w, None, 2, 0), (x, w), dtype, "floor")


TRANSPOSE_CASES = [  # x shape, w shape, stride, padding, output_padding, bias
    ((2, 3, 5, 5), (3, 4, 3, 3), 2, 1, 1, True),
    ((1, 2, 4, 6), (2, 3, 4, 3), (3, 1), (1, 0), (2, 0), False),
    ((2, 4, 6, 6), (4, 2, 1, 1), 1, 0, 0, True),
    ((1, 3, 3, 4), (3, 5, 5, 5), 2, 2, 0, True),
]


@pytest.mark.parametrize("case", TRANSPOSE_CASES, ids=str)
def test_conv_transpose2d(case, dtype):
    xs, ws, stride, padding, output_padding, bias = case
    x, w = rand(xs, dtype, "x", case), rand(ws, dtype, "w", case)
    b = rand(ws[1:2], dtype, "b", case) if bias else None
    if bias:
        check(lambda x, w, b: fj.conv_transpose2d(x, w, b, stride, padding, output_padding),
              lambda x, w, b: ref_conv_transpose2d(x, w, b, stride, padding, output_padding),
              (x, w, b), dtype, case)
    else:
        check(lambda x, w: fj.conv_transpose2d(x, w, None, stride, padding, output_padding),
              lambda x, w: ref_conv_transpose2d(x, w, None, stride, padding, output_padding),
              (x, w), dtype, case)


# x shape, w shape, stride, padding, output_padding, groups, dilation
TRANSPOSE_OPTION_CASES = [
    ((2, 4, 5, 5), (4, 3, 3, 3), 2, 1, 1, 2, 1),
    ((1, 3, 4, 6), (3, 2, 3, 2), 1, 1, 0, 1, (2, 3)),
    ((1, 6, 5, 4), (6, 1, 3, 3), 2, 0, 1, 6, 2),
]


@pytest.mark.parametrize("case", TRANSPOSE_OPTION_CASES, ids=str)
def test_conv_transpose2d_groups_and_dilation(case, dtype):
    xs, ws, stride, padding, op, groups, dilation = case
    x, w = rand(xs, dtype, "x", case), rand(ws, dtype, "w", case)
    b = rand((ws[1] * groups,), dtype, "b", case)
    check(lambda x, w, b: fj.conv_transpose2d(x, w, b, stride, padding, op, groups, dilation),
          lambda x, w, b: ref_conv_transpose2d(x, w, b, stride, padding, op, groups, dilation),
          (x, w, b), dtype, case)


def test_conv_transpose2d_is_the_input_gradient_of_conv2d(dtype):
    x, w = rand((2, 3, 9, 9), dtype, "x"), rand((4, 3, 3, 3), dtype, "w")
    y, vjp = jax.vjp(lambda x: fj.conv2d(x, w, stride=2, padding=1), x)
    dy = rand(y.shape, dtype, "dy")
    close(fj.conv_transpose2d(dy, w, stride=2, padding=1), vjp(dy)[0], dtype)


def test_conv_transpose2d_output_size_checks():
    x, w = jnp.ones((1, 2, 4, 4)), jnp.ones((2, 3, 3, 3))
    assert fj.conv_transpose2d(x, w, stride=2, output_padding=1).shape == (1, 3, 10, 10)
    with pytest.raises(ValueError, match=r"output_padding \(2, 2\) must be smaller than the "
                                         r"stride"):
        fj.conv_transpose2d(x, w, stride=2, output_padding=2)
    with pytest.raises(ValueError, match="x has 2 channels .* w has 3"):
        fj.conv_transpose2d(x, jnp.ones((3, 3, 3, 3)))
    with pytest.raises(fastconv.ShapeError, match=r"it must be at least 1"):
        fj.conv_transpose2d(jnp.ones((1, 2, 1, 1)), w, padding=2)


# ------------------------------------------------------------------ pooling

POOL_CASES = [  # x shape, kernel, stride, padding
    ((2, 3, 8, 8), 2, None, 0),
    ((2, 3, 9, 9), 3, 2, 1),
    ((1, 4, 7, 10), (3, 2), (2, 2), (1, 1)),
    ((1, 2, 6, 6), 3, 1, 1),
]


@pytest.mark.parametrize("case", POOL_CASES, ids=str)
def test_max_pool2d(case, dtype):
    xs, k, s, p = case
    x = rand(xs, dtype, "x", case)
    check(lambda x: fj.max_pool2d(x, k, s, p), lambda x: ref_pool(x, k, s, p, "max"),
          (x,), dtype, case)


@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("case", POOL_CASES, ids=str)
def test_avg_pool2d(case, count_include_pad, dtype):
    xs, k, s, p = case
    x = rand(xs, dtype, "x", case)
    check(lambda x: fj.avg_pool2d(x, k, s, p, count_include_pad=count_include_pad),
          lambda x: ref_pool(x, k, s, p, "avg", count_include_pad), (x,), dtype, case)


def _ceil_extra(n, k, s, p, d):
    """Rows ceil_mode adds past the end (PyTorch's rule: the last window must
    start inside the input or the left padding)."""
    span = d * (k - 1) + 1
    out = -(-(n + 2 * p - span) // s) + 1
    if (out - 1) * s >= n + p:
        out -= 1
    return max(0, (out - 1) * s + span - (n + 2 * p)), out


def ref_max_pool_options(x, k, s, p, d, ceil_mode):
    """The maximum over taps taken as strided slices of the padded input
    (reduce_window has no gradient with window dilation)."""
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = (fastconv._validate.pair(v, "v")
                                              for v in (k, s, p, d))
    eh, oh = _ceil_extra(x.shape[2], kh, sh, ph, dh)
    ew, ow = _ceil_extra(x.shape[3], kw, sw, pw, dw)
    if not ceil_mode:
        eh, ew = 0, 0
        oh = (x.shape[2] + 2 * ph - dh * (kh - 1) - 1) // sh + 1
        ow = (x.shape[3] + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    xp = jnp.pad(x, ((0, 0), (0, 0), (ph, ph + eh), (pw, pw + ew)), constant_values=-jnp.inf)
    taps = [xp[:, :, i * dh:i * dh + (oh - 1) * sh + 1:sh, j * dw:j * dw + (ow - 1) * sw + 1:sw]
            for i in range(kh) for j in range(kw)]
    return jnp.max(jnp.stack(taps), axis=0)


# x shape, kernel, stride, padding, dilation, ceil_mode
MAX_OPTION_CASES = [
    ((2, 3, 11, 10), 3, 2, 1, 2, False),
    ((1, 2, 10, 9), 2, 2, 0, 1, True),
    ((2, 2, 12, 13), (3, 2), (2, 3), (1, 1), (1, 2), True),
]


@pytest.mark.parametrize("case", MAX_OPTION_CASES, ids=str)
def test_max_pool2d_dilation_and_ceil_mode(case, dtype):
    xs, k, s, p, d, cm = case
    x = rand(xs, dtype, "x", case)
    check(lambda x: fj.max_pool2d(x, k, s, p, d, cm, strict=False),
          lambda x: ref_max_pool_options(x, k, s, p, d, cm), (x,), dtype, case)


def test_avg_pool2d_divisor_override_and_ceil_mode(dtype):
    x = rand((2, 3, 9, 10), dtype, "avg options")

    def ref_sum(x, k, s):
        return lax.reduce_window(x, 0.0, lax.add, (1, 1, k, k), (1, 1, s, s),
                                 ((0, 0), (0, 0), (0, 0), (0, 0)))
    check(lambda x: fj.avg_pool2d(x, 3, 3, divisor_override=5, strict=False),
          lambda x: ref_sum(x, 3, 3) / 5, (x,), dtype, "divisor_override")
    # ceil_mode with count_include_pad=False: a window clipped at the end is
    # divided by the inputs it covers
    eh, ow = _ceil_extra(10, 3, 2, 0, 1)
    assert ow == 5 and eh == 1

    def ref_ceil(x):
        pads = ((0, 0), (0, 0), (0, 0), (0, 1))
        total = lax.reduce_window(x, 0.0, lax.add, (1, 1, 3, 3), (1, 1, 2, 2), pads)
        count = lax.reduce_window(jnp.ones_like(x), 0.0, lax.add, (1, 1, 3, 3), (1, 1, 2, 2),
                                  pads)
        return total / count
    check(lambda x: fj.avg_pool2d(x, 3, 2, ceil_mode=True, count_include_pad=False),
          ref_ceil, (x,), dtype, "ceil_mode")


@pytest.mark.parametrize("norm_type", [2, 1.5, 3])
def test_lp_pool2d(norm_type, dtype):
    x = jnp.abs(rand((2, 3, 8, 9), dtype, "lp", norm_type)) + 0.1

    def ref(x):
        t = lax.reduce_window(x ** norm_type, 0.0, lax.add, (1, 1, 2, 3), (1, 1, 2, 3),
                              ((0, 0),) * 4)
        return t ** (1.0 / norm_type)
    check(lambda x: fj.lp_pool2d(x, norm_type, (2, 3)), ref, (x,), dtype, norm_type)
    # ceil_mode as the NumPy API (which follows PyTorch for clipped windows)
    close(fj.lp_pool2d(x, norm_type, 3, 2, ceil_mode=True),
          fastconv.lp_pool2d(np.asarray(x), norm_type, 3, 2, ceil_mode=True), dtype)


def test_max_pool2d_gradient_goes_to_the_first_maximum():
    x = jnp.array([[[[1.0, 3.0], [3.0, 0.0]]]])
    g = jax.grad(lambda x: fj.max_pool2d(x, 2).sum())(x)
    assert g[0, 0].tolist() == [[0.0, 1.0], [0.0, 0.0]]


# ------------------------------------------------------------------- linear

@pytest.mark.parametrize("xs", [(5, 6), (3, 2, 2, 3)], ids=str)
def test_linear(xs, dtype):
    x, w, b = rand(xs, dtype, "x"), rand((7, 12 if len(xs) > 2 else 6), dtype, "w"), \
        rand((7,), dtype, "b")

    def ref(x, w, b, relu=False):
        y = jnp.dot(x.reshape(x.shape[0], -1), w.T, precision=lax.Precision.HIGHEST) + b
        return jax.nn.relu(y) if relu else y
    check(fj.linear, ref, (x, w, b), dtype, xs)
    check(lambda x, w: fj.linear(x, w, activation="relu"),
          lambda x, w: ref(x, w, 0, relu=True), (x, w), dtype, xs)


# --------------------------------------------------------------------- vmap

def test_vmap_over_the_activations(dtype):
    xs = rand((3, 2, 3, 8, 8), dtype, "xs")
    w, b = rand((4, 3, 3, 3), dtype, "w"), rand((4,), dtype, "b")
    f = jax.vmap(lambda x: fj.conv2d(x, w, b, padding=1))
    close(f(xs), jax.vmap(lambda x: ref_conv2d(x, w, b, 1, 1))(xs), dtype)
    close(jax.jit(jax.vmap(lambda x: fj.max_pool2d(x, 2)))(xs),
          jax.vmap(lambda x: ref_pool(x, 2, None, 0, "max"))(xs), dtype)
    # vmap along another axis than the first
    close(jax.vmap(lambda x: fj.avg_pool2d(x, 2), in_axes=2, out_axes=2)(
              jnp.moveaxis(xs, 0, 2)),
          jnp.moveaxis(jax.vmap(lambda x: ref_pool(x, 2, None, 0, "avg"))(xs), 0, 2), dtype)


def test_vmap_over_the_weights(dtype):
    x = rand((2, 3, 8, 8), dtype, "x")
    ws, bs = rand((3, 4, 3, 3, 3), dtype, "ws"), rand((3, 4), dtype, "bs")
    close(jax.vmap(lambda w, b: fj.conv2d(x, w, b, stride=2, padding=1, strict=False))(ws, bs),
          jax.vmap(lambda w, b: ref_conv2d(x, w, b, 2, 1))(ws, bs), dtype)
    wt = rand((3, 3, 2, 3, 3), dtype, "wt")
    close(jax.vmap(lambda w: fj.conv_transpose2d(x, w, stride=2))(wt),
          jax.vmap(lambda w: ref_conv_transpose2d(x, w, None, 2, 0, 0))(wt), dtype)


def test_nested_vmap_and_per_example_gradients(dtype):
    xs = rand((2, 3, 1, 3, 6, 6), dtype, "xs")
    w = rand((4, 3, 3, 3), dtype, "w")
    ours = jax.vmap(jax.vmap(lambda x: fj.conv2d(x, w, padding=1)))
    theirs = jax.vmap(jax.vmap(lambda x: ref_conv2d(x, w, None, 1, 1)))
    close(ours(xs), theirs(xs), dtype)

    # one weight gradient per example: vmap over grad
    def per_example(conv):
        return jax.jit(jax.vmap(jax.grad(lambda w, x: jnp.sum(conv(x, w) ** 2)),
                                in_axes=(None, 0)))
    x = xs[0, :, :]
    close(per_example(lambda x, w: fj.conv2d(x, w, padding=1))(w, x),
          per_example(lambda x, w: ref_conv2d(x, w, None, 1, 1))(w, x), dtype)


def test_grad_of_a_network_under_jit(dtype):
    x = rand((4, 3, 8, 8), dtype, "x")
    params = (rand((6, 3, 3, 3), dtype, "w1"), rand((6,), dtype, "b1"),
              rand((5, 6 * 4 * 4), dtype, "w2"))

    def net(conv, pool, lin):
        def loss(params, x):
            w1, b1, w2 = params
            h = pool(jax.nn.relu(conv(x, w1, b1)))
            return jnp.sum(jnp.tanh(lin(h, w2)))
        return jax.jit(jax.value_and_grad(loss))
    ours = net(lambda x, w, b: fj.conv2d(x, w, b, padding=1),
               lambda h: fj.max_pool2d(h, 2), fj.linear)
    theirs = net(lambda x, w, b: ref_conv2d(x, w, b, 1, 1),
                 lambda h: ref_pool(h, 2, None, 0, "max"),
                 lambda h, w: jnp.dot(h.reshape(h.shape[0], -1), w.T,
                                      precision=lax.Precision.HIGHEST))
    (v1, g1), (v2, g2) = ours(params, x), theirs(params, x)
    close(v1, v2, dtype)
    for a, b in zip(g1, g2):
        close(a, b, dtype)


# ---------------------------------------------------------- what it refuses

def test_errors_raise_while_tracing():
    x, w = jnp.ones((1, 3, 8, 8)), jnp.ones((4, 2, 3, 3))
    with pytest.raises(ValueError, match="fastconv.jax.conv2d: x has 3 channels"):
        jax.jit(fj.conv2d)(x, w)
    with pytest.raises(TypeError, match="promote to int32; fastconv computes in float32 or "
                                        "float64"):
        fj.max_pool2d(jnp.ones((1, 1, 4, 4), jnp.int32), 2)
    with pytest.raises(ValueError, match="fastconv.jax.max_pool2d: padding"):
        fj.max_pool2d(x, 2, padding=2)
    with pytest.raises(ValueError, match="activation must be None or 'relu'"):
        fj.linear(jnp.ones((2, 3)), jnp.ones((4, 3)), activation="tanh")


def test_fastconv_does_not_import_jax():
    r = run_python("import sys, fastconv\n"
                   "assert 'jax' not in sys.modules and 'fastconv.jax' not in sys.modules\n"
                   "import fastconv.jax\n"
                   "assert 'jax' in sys.modules\n"
                   "print('ok')\n")
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr
