"""Concurrency: fastconv releases the GIL inside its kernels, so Python
threads call it at the same time.  Many threads working on shared read-only
inputs must get exactly the results of serial calls, while another thread
keeps changing the thread count (or the instruction set); threadpoolctl's
OpenMP limit is honoured.
"""

import threading

import numpy as np
import pytest

import fastconv
from conftest import ISAS, assert_close, randn
from fastconv import _config

F = fastconv
THREAD_COUNTS = (1, 2, 3)
WORKERS = 6
ROUNDS = 8


def read_only(a):
    a.flags.writeable = False
    return a


def make_ops(dtype):
    """Every op on inputs shared by all workers; shapes large enough for the
    kernels to use several OpenMP threads (and cheap enough to repeat)."""
    # About 2e7 flops per GEMM op and 2**16 elements per pooling call: above
    # the core's thresholds for using more than one thread.
    x = read_only(randn((4, 16, 24, 24), dtype, "cc x"))
    w = read_only(randn((32, 16, 3, 3), dtype, "cc w"))
    b = read_only(randn((32,), dtype, "cc b"))
    dy = read_only(randn((4, 32, 24, 24), dtype, "cc dy"))
    dy2 = read_only(randn((4, 32, 12, 12), dtype, "cc dy2"))
    xp = read_only(randn((4, 16, 32, 32), dtype, "cc xp"))
    dyp = read_only(randn((4, 16, 16, 16), dtype, "cc dyp"))
    xl = read_only(randn((96, 400), dtype, "cc xl"))
    wl = read_only(randn((300, 400), dtype, "cc wl"))
    dyl = read_only(randn((96, 300), dtype, "cc dyl"))
    inputs = [x, w, b, dy, dy2, xp, dyp, xl, wl, dyl]
    ops = {
        "conv2d": lambda: [F.conv2d(x, w, b, 1, 1, activation="relu")],
        "conv2d_backward": lambda: list(F.conv2d_backward(dy, x, w, 1, 1)),
        "conv2d_backward s2": lambda: list(F.conv2d_backward(dy2, x, w, 2, 1, need_dx=True)),
        "max_pool2d": lambda: [F.max_pool2d(xp, 2)],
        "max_pool2d_backward": lambda: [F.max_pool2d_backward(dyp, xp, 2)],
        "avg_pool2d": lambda: [F.avg_pool2d(xp, 3, 2, 1, strict=False)],
        "avg_pool2d_backward": lambda: [F.avg_pool2d_backward(dyp, xp.shape, 2)],
        "linear": lambda: [F.linear(xl, wl, None, activation="relu")],
        "linear_backward": lambda: list(F.linear_backward(dyl, xl, wl)),
    }
    return ops, inputs


def key(results):
    """A hashable fingerprint of the exact bits of a list of arrays."""
    return tuple(r.tobytes() for r in results)


@pytest.fixture
def restore_threads():
    before = fastconv.get_num_threads()
    yield
    fastconv.set_num_threads(before)


def run_workers(ops, check, changer):
    """WORKERS threads run every op ROUNDS times in their own order while
    `changer(stop)` runs in one more thread; returns the failures seen."""
    errors = []
    stop = threading.Event()
    start = threading.Barrier(WORKERS + 1)

    def worker(i):
        rng = np.random.default_rng(i)
        names = list(ops)
        try:
            start.wait()
            for _ in range(ROUNDS):
                for name in rng.permutation(names):
                    problem = check(name, ops[name]())
                    if problem:
                        errors.append(problem)
        except Exception as exc:  # noqa: BLE001 -- reported below
            errors.append(f"worker {i}: {type(exc).__name__}: {exc}")

    def change():
        start.wait()
        changer(stop)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(WORKERS)]
    threads.append(threading.Thread(target=change))
    for t in threads:
        t.start()
    for t in threads[:-1]:
        t.join(timeout=300)
    stop.set()
    threads[-1].join(timeout=60)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    return errors


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_threads_match_serial_results(dtype, isa, restore_threads):
    ops, inputs = make_ops(dtype)
    saved = [a.copy() for a in inputs]
    # Serial results at every thread count the changer will pick: a call made
    # while the count changes uses one of them, so its bits must match one.
    allowed = {name: set() for name in ops}
    for n in THREAD_COUNTS:
        fastconv.set_num_threads(n)
        for name, call in ops.items():
            allowed[name].add(key(call()))

    # Premise: the weight gradient's bits show the thread count, so calls
    # really ran at the counts the changer set (a sequential build runs one
    # thread at every setting, and has one result).
    if fastconv._core.openmp_enabled():
        assert len(allowed["conv2d_backward"]) > 1, "enlarge the shapes of make_ops"
    else:
        assert len(allowed["conv2d_backward"]) == 1

    def check(name, results):
        if key(results) not in allowed[name]:
            return f"{name}: result differs from every serial result"
        return None

    def changer(stop):
        i = 0
        while not stop.is_set():
            fastconv.set_num_threads(THREAD_COUNTS[i % len(THREAD_COUNTS)])
            i += 1
            stop.wait(0.001)

    errors = run_workers(ops, check, changer)
    assert not errors, f"{len(errors)} problems, first: {errors[:3]}"
    for a, s in zip(inputs, saved):
        np.testing.assert_array_equal(a, s)


@pytest.mark.skipif(len(ISAS) < 2, reason="only one instruction set available")
def test_switching_the_instruction_set_while_threads_run(restore_threads):
    # Each call reads the kernel table once at its start, so a call that
    # overlaps a switch runs wholly on one path: its result is one of the
    # per-path serial results (conv weight gradients aside, bit for bit).
    ops, _ = make_ops(np.float64)
    fastconv.set_num_threads(2)
    allowed = {name: [] for name in ops}
    for name_isa in ISAS:
        with _config.using_isa(name_isa):
            for name, call in ops.items():
                allowed[name].append(call())
    lock = threading.Lock()

    def check(name, results):
        for candidate in allowed[name]:
            if key(candidate) == key(results):
                return None
        # A path switch between the sub-calls of one backward op (dx, then
        # dw) mixes two paths; each part must still be one path's result
        # within rounding.
        for i, r in enumerate(results):
            for candidate in allowed[name]:
                c = candidate[i].astype(np.float64)
                try:
                    assert_close(r, c, np.abs(c).max() * np.ones_like(c) * 4, np.float64, 4096)
                    break
                except AssertionError:
                    continue
            else:
                return f"{name}: output {i} matches no instruction-set path"
        return None

    def changer(stop):
        i = 0
        while not stop.is_set():
            with lock:
                _config.set_isa(ISAS[i % len(ISAS)])
            i += 1
            stop.wait(0.001)

    before = _config.get_isa()
    try:
        errors = run_workers(ops, check, changer)
    finally:
        _config.set_isa(before)
    assert not errors, f"{len(errors)} problems, first: {errors[:3]}"


def test_threadpoolctl_openmp_limit_is_honoured(monkeypatch, restore_threads):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    if not _config.config_info()["openmp"]:
        pytest.skip("sequential build: there is no OpenMP pool to limit")
    monkeypatch.delenv("FASTCONV_NUM_THREADS", raising=False)
    fastconv.set_num_threads(None)
    x = randn((4, 16, 20, 20), np.float64, "tpc x")
    w = randn((24, 16, 3, 3), np.float64, "tpc w")
    dy = randn((4, 24, 20, 20), np.float64, "tpc dy")
    with threadpoolctl.threadpool_limits(limits=2, user_api="openmp"):
        assert fastconv.get_num_threads() == 2
        dw_two = F.conv2d_backward(dy, x, w, 1, 1)[1]
    fastconv.set_num_threads(1)
    dw_serial = F.conv2d_backward(dy, x, w, 1, 1)[1]
    fastconv.set_num_threads(None)
    with threadpoolctl.threadpool_limits(limits=1, user_api="openmp"):
        assert fastconv.get_num_threads() == 1
        dw_limited = F.conv2d_backward(dy, x, w, 1, 1)[1]
    # The weight gradient's bits depend on how many threads split the sum,
    # so equal bits show the call ran on one thread.
    np.testing.assert_array_equal(dw_limited, dw_serial)
    if not np.array_equal(dw_two, dw_serial):
        assert not np.array_equal(dw_limited, dw_two)
    # set_num_threads still wins over the OpenMP setting.
    fastconv.set_num_threads(2)
    with threadpoolctl.threadpool_limits(limits=1, user_api="openmp"):
        assert fastconv.get_num_threads() == 2
    # Outside the block the OpenMP default is back.
    fastconv.set_num_threads(None)
    assert fastconv.get_num_threads() == max(1, fastconv._core.omp_max_threads())
