"""The plan: one list of algorithms, one planner, and what they tell users.

fastconv.algorithms() is the C core's list; fastconv.plan(...) decides
before anything computes, and what it says is what a call then runs: the
same algorithm, the same threads, and exactly the workspace the run
allocates.
"""

import os
import re

import numpy as np
import pytest

import fastconv
from fastconv import _core, _plan
from conftest import ConvCase, assert_close, conv_oracle_backward

HERE = os.path.dirname(os.path.abspath(__file__))

# (x, w, stride, padding): one or more shapes per algorithm the planner
# picks unforced, on the instruction sets that have it
SHAPES = [
    ((2, 64, 28, 28), (128, 64, 3, 3), 2, 1),
    ((2, 64, 14, 14), (128, 64, 1, 1), 1, 0),
    ((1, 256, 7, 7), (512, 256, 3, 3), 1, 1),
    ((1, 512, 7, 7), (256, 512, 1, 1), 1, 0),
    ((2, 64, 56, 56), (64, 64, 3, 3), 1, 1),
    ((16, 64, 13, 13), (64, 64, 3, 3), 1, 1),
    ((2, 3, 64, 64), (16, 3, 7, 7), 2, 3),
    ((2, 1, 28, 28), (6, 1, 3, 3), 1, 0),
    ((2, 32, 32, 32), (32, 32, 1, 1), 1, 0),
    ((4, 32, 20, 20), (48, 32, 3, 3), 1, 1),
]


def test_algorithms_is_the_core_list():
    names = fastconv.algorithms()
    assert isinstance(names, tuple) and len(names) == len(set(names))
    assert names == tuple(n for n, _, _ in _core.algorithms())
    for name in ("gemm", "gemm_t", "direct", "lanes", "kvec", "dot", "dot1x1", "phased",
                 "col2im"):
        assert name in names
    assert all(_plan.algorithm_doc(n) for n in names)


def test_readme_table_lists_every_algorithm():
    # the README's table of algorithms is the list, row for row, in order
    with open(os.path.join(HERE, "..", "README.md"), encoding="utf-8") as f:
        readme = f.read()
    section = readme.split("## How a convolution is computed", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([a-z0-9_]+)` \|", section, flags=re.M)
    assert tuple(rows) == fastconv.algorithms()


@pytest.mark.parametrize("xs, ws, s, p", SHAPES, ids=str)
def test_plan_is_what_runs(xs, ws, s, p, dtype, isa, threads):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(xs).astype(dtype)
    w = rng.standard_normal(ws).astype(dtype)
    y = fastconv.conv2d(x, w, None, s, p, strict=False)
    ran = _plan.last_run("conv2d")
    used = _core.last_workspace_bytes()
    pl = fastconv.plan("conv2d", xs, ws, dtype=dtype, stride=s, padding=p, strict=False)
    assert (pl.algorithm, pl.kernel, pl.threads) == (ran["algorithm"], ran["kernel"],
                                                     ran["threads"])
    assert pl.workspace_bytes == used
    assert 1 <= pl.threads <= fastconv.get_num_threads()
    dy = rng.standard_normal(y.shape).astype(dtype)
    fastconv.conv2d_backward(dy, x, w, s, p)
    used = _core.last_workspace_bytes()   # the data gradient runs last
    for op in ("conv2d_backward_data", "conv2d_backward_weight"):
        pl = fastconv.plan(op, xs, ws, dtype=dtype, stride=s, padding=p)
        assert pl.algorithm == _plan.last_run(op)["algorithm"], op
        assert pl.threads == _plan.last_run(op)["threads"], op
    assert pl.algorithm in fastconv.algorithms()
    pd = fastconv.plan("conv2d_backward_data", xs, ws, dtype=dtype, stride=s, padding=p)
    assert pd.workspace_bytes == used


def test_plan_repr_and_reason():
    pl = fastconv.plan("conv2d", (8, 64, 56, 56), (64, 64, 3, 3), dtype="float32", padding=1,
                       threads=1)
    assert isinstance(pl, fastconv.Plan)
    assert pl.threads == 1 and pl.algorithm in fastconv.algorithms()
    assert pl.reason.startswith(pl.algorithm + ":") and "\n" not in pl.reason
    text = repr(pl)
    assert "algorithm=" in text and pl.algorithm in text and "workspace=" in text


def test_plan_of_linear_and_pooling():
    pl = fastconv.plan("linear", (64, 1024), (10, 1024), dtype="float64")
    assert pl.algorithm == "gemm" and pl.kernel.startswith("dgemm")
    assert fastconv.plan("linear_backward", (64, 1024), (10, 1024), dtype="float32").threads >= 1
    pl = fastconv.plan("max_pool2d", (8, 64, 56, 56), dtype="float32", kernel_size=2,
                       stride=None)
    assert pl.algorithm == "pool_rows"
    pl = fastconv.plan("avg_pool2d", (8, 64, 7, 7), dtype="float32", kernel_size=7,
                       stride=None)
    assert pl.algorithm == "pool_global"


def test_forcing_an_algorithm_that_cannot_serve_says_why():
    with pytest.raises(ValueError, match="direct: serves stride 1"):
        fastconv.plan("conv2d", (2, 8, 16, 16), (8, 8, 3, 3), dtype="float32", stride=2,
                      padding=1, algorithm="direct", strict=False)
    with pytest.raises(ValueError, match="col2im serves the others"):
        fastconv.plan("conv2d_backward_data", (2, 8, 16, 16), (8, 8, 3, 3), dtype="float32",
                      stride=2, padding=1, algorithm="gemm")
    with pytest.raises(ValueError, match="dot1x1: serves 1x1"):
        fastconv.plan("conv2d_backward_weight", (2, 8, 16, 16), (8, 8, 3, 3),
                      dtype="float32", algorithm="dot1x1")
    x = np.ones((2, 8, 16, 16), np.float32)
    w = np.ones((8, 8, 3, 3), np.float32)
    with pytest.raises(ValueError, match="direct: serves stride 1"):
        fastconv.conv2d(x, w, stride=2, padding=1, strict=False, algorithm="direct")
    # both gradients are planned before either computes
    dy = np.ones((2, 8, 8, 8), np.float32)
    with pytest.raises(ValueError, match="col2im serves the others"):
        fastconv.conv2d_backward(dy, x, w, 2, 1, algorithm=("gemm", "gemm"))


def test_plan_rejects_bad_requests():
    with pytest.raises(ValueError, match="unknown op 'conv3d'"):
        fastconv.plan("conv3d", (1, 1, 4, 4), (1, 1, 3, 3), dtype="float32")
    with pytest.raises(TypeError, match="dtype must be float32 or float64"):
        fastconv.plan("conv2d", (1, 1, 4, 4), (1, 1, 3, 3), dtype="int32")
    with pytest.raises(ValueError, match="needs w_shape"):
        fastconv.plan("conv2d", (1, 1, 4, 4), dtype="float32")
    with pytest.raises(TypeError, match="unexpected argument"):
        fastconv.plan("conv2d", (1, 1, 4, 4), (1, 1, 3, 3), dtype="float32", bogus=2)
    with pytest.raises(TypeError, match="needs kernel_size"):
        fastconv.plan("max_pool2d", (1, 1, 4, 4), dtype="float32")
    with pytest.raises(fastconv.ShapeError):
        fastconv.plan("conv2d", (1, 1, 4, 4), (1, 1, 5, 5), dtype="float32")


def test_threads_never_exceed_what_runs():
    # a sequential build runs one thread whatever is asked, and says so
    before = fastconv.get_num_threads()
    try:
        fastconv.set_num_threads(3)
        want = 3 if _core.openmp_enabled() else 1
        assert fastconv.get_num_threads() == want
        pl = fastconv.plan("conv2d", (8, 64, 56, 56), (64, 64, 3, 3), dtype="float32",
                           padding=1)
        assert pl.threads <= want
    finally:
        fastconv.set_num_threads(before)


# The shapes of a report of wrong gradients on a build without OpenMP at
# more than one thread: each gradient at 1 to 3 threads against the oracle.
@pytest.mark.parametrize("case", [ConvCase(4, 32, 20, 20, 48, 3, 3, 1, 1, 1, 1),
                                  ConvCase(1, 64, 56, 56, 64, 3, 3, 1, 1, 1, 1)], ids=str)
def test_gradients_right_at_every_thread_count(case, dtype):
    x, w, _, dy = case.inputs(dtype)
    (rdx, rdw, rdb), (sdx, sdw, sdb) = conv_oracle_backward(case, dtype)
    before = fastconv.get_num_threads()
    try:
        for n in (1, 2, 3):
            fastconv.set_num_threads(n)
            dx, dw, db = fastconv.conv2d_backward(dy, x, w, case.stride, case.padding)
            assert_close(dw, rdw, sdw, dtype, case.len_dw, f"dw at {n} threads")
            assert_close(db, rdb, sdb, dtype, case.len_dw, f"db at {n} threads")
            assert_close(dx, rdx, sdx, dtype, case.len_dx, f"dx at {n} threads")
    finally:
        fastconv.set_num_threads(before)


def test_plan_explains_every_entry_of_the_quick_benchmark():
    # the suite asks the planner before timing each entry; every entry gets a
    # plan, and for convolutions it is what the timed call then runs
    import sys
    sys.path.insert(0, os.path.join(HERE, "..", "benchmarks"))
    try:
        import contenders
        import suite
    finally:
        sys.path.pop(0)
    tasks = suite.quick_tasks()
    assert tasks
    for task in tasks:
        plans = contenders.plan_of(fastconv, task, 1)
        assert list(plans) == list(contenders.plan_ops(task)), task
        for op, pl in plans.items():
            assert pl.algorithm in fastconv.algorithms(), (task, op)
            assert pl.threads == 1 and pl.reason, (task, op)
