"""The plan cache: a convolution planned before reuses its plan, runs the same
bits as an uncached call, and is forgotten whenever anything the planner reads
changes."""

import os
import tempfile
import threading

import numpy as np
import pytest

import fastconv
from fastconv import _config, _core, _plan

import reference as ref
from conftest import assert_close

# Shapes whose planner choices differ: lanes (many small images), direct,
# the GEMM, a strided and a grouped one.
SHAPES = [
    ((64, 64, 7, 7), (64, 64, 3, 3), 1, 1, 1),
    ((1, 1, 65, 65), (1, 1, 3, 3), 1, 0, 1),
    ((1, 3, 8, 8), (4, 3, 3, 3), 1, 1, 1),
    ((2, 6, 13, 11), (8, 6, 3, 5), 2, 1, 1),
    ((2, 8, 9, 9), (8, 4, 3, 3), 1, 1, 2),
]


def _data(x_shape, w_shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(x_shape).astype(dtype),
            rng.standard_normal(w_shape).astype(dtype))


@pytest.fixture(autouse=True)
def _empty_cache():
    fastconv.plan_cache_clear()
    yield
    fastconv.plan_cache_clear()


def test_a_second_call_of_a_shape_hits():
    x, w = _data((1, 3, 8, 8), (4, 3, 3, 3), np.float32)
    assert fastconv.plan_cache_info() == (0, 0, fastconv.plan_cache_info().maxsize, 0)
    fastconv.conv2d(x, w, padding=1)
    assert fastconv.plan_cache_info()[:2] == (0, 1)
    for _ in range(3):
        fastconv.conv2d(x, w, padding=1)
    info = fastconv.plan_cache_info()
    assert (info.hits, info.misses, info.currsize) == (3, 1, 1)
    # another shape, another dtype, a forced algorithm: each a plan of its own
    fastconv.conv2d(x[:, :, :7], w, padding=1)
    fastconv.conv2d(x.astype(np.float64), w.astype(np.float64), padding=1)
    fastconv.conv2d(x, w, padding=1, algorithm="gemm")
    assert fastconv.plan_cache_info()[:2] == (3, 4)
    # the backward ops plan too, the data and the weight gradient each once
    dy = np.ones((1, 4, 8, 8), np.float32)
    fastconv.conv2d_backward(dy, x, w, padding=1)
    fastconv.conv2d_backward(dy, x, w, padding=1)
    assert fastconv.plan_cache_info()[:2] == (5, 6)


def test_plan_uses_the_cache_and_gives_the_same_plan():
    args = dict(dtype=np.float32, padding=1, threads=1)
    first = fastconv.plan("conv2d", (64, 64, 7, 7), (64, 64, 3, 3), **args)
    again = fastconv.plan("conv2d", (64, 64, 7, 7), (64, 64, 3, 3), **args)
    assert first == again
    assert fastconv.plan_cache_info()[:2] == (1, 1)
    # a thread count is part of the key: no clearing needed to see another
    two = fastconv.plan("conv2d", (64, 64, 7, 7), (64, 64, 3, 3), dtype=np.float32,
                        padding=1, threads=2)
    assert fastconv.plan_cache_info()[:2] == (1, 2)
    assert two.algorithm == first.algorithm


@pytest.mark.parametrize("x_shape, w_shape, stride, padding, groups", SHAPES)
def test_cached_calls_compute_the_same_bits(isa, dtype, x_shape, w_shape, stride, padding,
                                            groups):
    x, w = _data(x_shape, w_shape, dtype)
    b = np.linspace(-1, 1, w_shape[0]).astype(dtype)
    kw = dict(stride=stride, padding=padding, groups=groups)

    def run():
        y = fastconv.conv2d(x, w, b, **kw)
        ran = dict(_plan.last_run("conv2d"))
        dy = np.cos(np.arange(y.size, dtype=dtype)).reshape(y.shape)
        grads = fastconv.conv2d_backward(dy, x, w, **kw)
        return y, grads, ran

    fastconv.plan_cache_clear()
    y0, g0, ran0 = run()                        # planned
    assert fastconv.plan_cache_info().hits == 0
    y1, g1, ran1 = run()                        # every plan from the cache
    info = fastconv.plan_cache_info()
    assert info.hits == info.misses == 3
    assert ran1 == ran0
    np.testing.assert_array_equal(y1, y0)
    for a, c in zip(g1, g0):
        np.testing.assert_array_equal(a, c)
    # and the cached call is right, not merely repeatable
    want, scale = _oracle(x, w, b, stride, padding, groups)
    assert_close(y1, want, scale, dtype, np.prod(w_shape[1:]), "cached conv2d")


def _oracle(x, w, b, stride, padding, groups):
    """The reference convolution, and of absolute values, group by group."""
    cg, kg = x.shape[1] // groups, w.shape[0] // groups
    parts = [[ref.conv2d(f(x[:, g * cg:(g + 1) * cg]), f(w[g * kg:(g + 1) * kg]),
                         f(b[g * kg:(g + 1) * kg]), stride, padding) for g in range(groups)]
             for f in (lambda a: a, np.abs)]
    return np.concatenate(parts[0], axis=1), np.concatenate(parts[1], axis=1)


def test_weights_are_checked_on_every_call(isa):
    # The plan for finite weights is lanes; weights holding inf must not run
    # it even though that plan is in the cache.
    x = np.ones((64, 64, 7, 7), np.float32)
    w = np.zeros((64, 64, 3, 3), np.float32)
    w[:, :, 1, 1] = 1.0
    fastconv.conv2d(x, w, None, 1, 1)
    if _plan.last_run("conv2d")["algorithm"] != "lanes":
        pytest.skip("the planner does not choose lanes for this shape on this path")
    y_finite = fastconv.conv2d(x, w, None, 1, 1)
    assert _plan.last_run("conv2d")["algorithm"] == "lanes"
    bad = w.copy()
    bad[:, :, 0, 0] = np.inf
    for _ in range(2):                          # planned, then from the cache
        y = fastconv.conv2d(x, bad, None, 1, 1)
        assert _plan.last_run("conv2d")["algorithm"] != "lanes"
        assert np.all(np.isnan(y[:, :, 0, 0]))
    np.testing.assert_array_equal(fastconv.conv2d(x, w, None, 1, 1), y_finite)
    assert _plan.last_run("conv2d")["algorithm"] == "lanes"


def test_a_forced_algorithm_that_cannot_serve_raises_every_time():
    x, w = _data((1, 2, 9, 9), (3, 2, 3, 3), np.float32)
    for _ in range(2):
        with pytest.raises(ValueError, match="direct: serves stride 1"):
            fastconv.conv2d(x, w, stride=2, algorithm="direct")
    assert fastconv.plan_cache_info().currsize == 0


def _warm():
    x, w = _data((1, 3, 8, 8), (4, 3, 3, 3), np.float32)
    fastconv.conv2d(x, w, padding=1)
    assert fastconv.plan_cache_info().currsize == 1


def test_set_num_threads_empties_the_cache():
    before = _config._num_threads
    _warm()
    try:
        fastconv.set_num_threads(1)
        assert fastconv.plan_cache_info().currsize == 0
    finally:
        fastconv.set_num_threads(before)


def test_set_planning_and_wisdom_empty_the_cache():
    _warm()
    fastconv.set_planning("estimate")
    assert fastconv.plan_cache_info().currsize == 0
    _warm()
    fastconv.forget_wisdom()
    assert fastconv.plan_cache_info().currsize == 0
    path = os.path.join(tempfile.mkdtemp(), "wisdom.json")
    fastconv.export_wisdom(path)
    _warm()
    fastconv.import_wisdom(path)
    assert fastconv.plan_cache_info().currsize == 0


def test_switching_the_instruction_set_empties_the_cache():
    isas = _config.available_isas()
    _warm()
    with _config.using_isa(isas[0]):
        assert fastconv.plan_cache_info().currsize == 0
        _warm()
    assert fastconv.plan_cache_info().currsize == 0


def test_plans_of_one_instruction_set_are_not_taken_for_another():
    isas = _config.available_isas()
    if len(isas) < 2:
        pytest.skip("one instruction set on this machine")
    geom = (1, 3, 8, 8, 4, 3, 3, 1, 1, 1, 1, 8, 8)
    kernels = {}
    for name in isas:
        with _config.using_isa(name):
            kernels[name] = _core.plan_conv(_core.OP_CONV_FWD, geom, 4, 1, -1)["kernel"]
            assert _core.plan_conv(_core.OP_CONV_FWD, geom, 4, 1, -1)["kernel"] == \
                kernels[name]
    assert len(set(kernels.values())) == len(isas)


def test_set_cache_sizes_empties_the_cache():
    c = _core.cache_sizes()
    _warm()
    try:
        _core.set_cache_sizes(c["l1d"], c["l2"], c["l3"])
        assert fastconv.plan_cache_info().currsize == 0
        with pytest.raises(ValueError):
            _core.set_cache_sizes(10, 1, 1)
    finally:
        if c["source"] != "FASTCONV_CACHE_SIZES":
            _core.set_cache_sizes(0, 0, 0)     # back to the detected sizes


def test_the_cache_is_bounded_and_least_recently_used_goes_first():
    maxsize = fastconv.plan_cache_info().maxsize

    def geom(i):
        return (1, 1, 8 + i, 8, 1, 1, 1, 1, 1, 0, 0, 8 + i, 8)

    for i in range(maxsize):
        _core.plan_conv(_core.OP_CONV_FWD, geom(i), 4, 1, -1)
    _core.plan_conv(_core.OP_CONV_FWD, geom(0), 4, 1, -1)       # 0 is now the newest
    _core.plan_conv(_core.OP_CONV_FWD, geom(maxsize), 4, 1, -1)  # evicts 1
    info = fastconv.plan_cache_info()
    assert (info.hits, info.misses, info.currsize) == (1, maxsize + 1, maxsize)
    _core.plan_conv(_core.OP_CONV_FWD, geom(0), 4, 1, -1)
    assert fastconv.plan_cache_info().hits == 2
    _core.plan_conv(_core.OP_CONV_FWD, geom(1), 4, 1, -1)
    assert fastconv.plan_cache_info().misses == maxsize + 2


def test_two_threads_share_the_cache_safely():
    cases = []
    for i, (xs, ws, s, p, g) in enumerate(SHAPES[1:]):
        x, w = _data(xs, ws, np.float32, seed=i)
        cases.append((x, w, dict(stride=s, padding=p, groups=g)))
    want = [fastconv.conv2d(x, w, **kw) for x, w, kw in cases]
    fastconv.plan_cache_clear()
    errors = []
    rounds = 40

    def work(order):
        try:
            for _ in range(rounds):
                for i in order:
                    x, w, kw = cases[i]
                    np.testing.assert_array_equal(fastconv.conv2d(x, w, **kw), want[i])
        except Exception as exc:   # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(order,))
               for order in (range(len(cases)), range(len(cases) - 1, -1, -1))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]
    info = fastconv.plan_cache_info()
    assert info.hits + info.misses == 2 * rounds * len(cases)
    # both threads may plan a shape before either has stored it, no more
    assert len(cases) <= info.misses <= 2 * len(cases)
    assert info.currsize == len(cases)
