"""The cache sizes the blocking derives from: detection, the
FASTCONV_CACHE_SIZES override and its errors, the derived block sizes, and
every algorithm still right under blockings far from this machine's."""

import json

import numpy as np
import pytest

import fastconv
from fastconv import _config, _core
from conftest import run_python


def test_detected_sizes_are_plausible():
    c = _core.cache_sizes()
    assert c["source"] in ("sysfs", "cpuid", "default", "FASTCONV_CACHE_SIZES")
    assert 1024 <= c["l1d"] <= c["l2"] <= c["l3"]
    assert c["l2_sharing"] >= 1 and c["l3_sharing"] >= 1
    info = _config.config_info()
    assert info["caches"] == c
    mr, nr, kc, mc, nc = info["blocking_float32"]
    assert mc % mr == 0 and nc % nr == 0 and 1 <= kc <= 256


def _expected(caches, mr, nr, dsize):
    """The rule of fc_fit_blocking, as docs/tuning.md states it."""
    kc = max(64, min(256, caches["l1d"] // (nr * dsize)))
    mc = caches["l2"] // 2 // (kc * dsize)
    nc = min(4 << 20, caches["l3"] // caches["l3_sharing"]) // (kc * dsize)
    return (mr, nr, kc, max(mr, mc // mr * mr), max(nr, nc // nr * nr))


@pytest.mark.parametrize("setting", ["l1d=8K,l2=64K,l3=256K", "l1d=48k, l2=2M, l3=96MiB",
                                     "l1d=16K,l2=128K"])
def test_override_sets_the_blocking(setting):
    code = (
        "import json, fastconv\n"
        "from fastconv import _core\n"
        "out = {'caches': _core.cache_sizes(), 'b': {}}\n"
        "for isa in fastconv._config.available_isas():\n"
        "    with fastconv._config.using_isa(isa):\n"
        "        out['b'][isa] = [_core.gemm_blocking(d, n) for d in (4, 8) for n in (0, 1)]\n"
        "print(json.dumps(out))\n")
    r = run_python(code, FASTCONV_CACHE_SIZES=setting)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    c = out["caches"]
    assert c["source"] == "FASTCONV_CACHE_SIZES"
    sizes = dict(part.strip().split("=") for part in setting.split(","))
    units = {"k": 1 << 10, "m": 1 << 20, "mib": 1 << 20}
    want = {k: int(v.rstrip("kKmMiB")) * units[v.lstrip("0123456789").lower()]
            for k, v in sizes.items()}
    assert c["l1d"] == want["l1d"] and c["l2"] == want["l2"]
    assert c["l3"] == want.get("l3", want["l2"])
    for isa, blockings in out["b"].items():
        for (mr, nr, *_), dsize, got in zip(blockings, (4, 4, 8, 8), blockings):
            assert tuple(got) == _expected(c, mr, nr, dsize), (isa, setting)


@pytest.mark.parametrize("setting, message", [
    ("l1d=32K", "give at least l1d and l2"),
    ("l1d=32K,l2=1M,l4=8M", "expected entries such as"),
    ("l1d=32X,l2=1M", "expected entries such as"),
    ("l1d=512,l2=1M", "implausible cache sizes"),
    ("l1d=64K,l2=32K", "implausible cache sizes"),
])
def test_bad_override_is_refused_at_import(setting, message):
    r = run_python("import fastconv", FASTCONV_CACHE_SIZES=setting)
    assert r.returncode != 0
    assert "FASTCONV_CACHE_SIZES" in r.stderr and message in r.stderr


def test_every_algorithm_is_right_under_other_blockings():
    # Tiny caches make KC, MC and NC and the algorithms' row bands small, so
    # blocks and bands break where they never do here; huge ones merge them.
    code = r"""
import numpy as np, fastconv, sys
sys.path.insert(0, TESTS)
import reference as ref
rng = np.random.default_rng(5)
bad, checked = [], set()
for dtype in (np.float32, np.float64):
    for (N, C, H, W, K, F, S, P) in [(2, 70, 13, 11, 40, 3, 1, 1), (3, 300, 6, 7, 9, 1, 1, 0),
                                     (1, 5, 41, 37, 130, 3, 2, 1), (16, 32, 7, 7, 64, 3, 1, 1)]:
        x = rng.standard_normal((N, C, H, W)).astype(dtype)
        w = rng.standard_normal((K, C, F, F)).astype(dtype)
        b = rng.standard_normal(K).astype(dtype)
        y64 = ref.conv2d(x, w, b, S, P)
        dy = rng.standard_normal(y64.shape).astype(dtype)
        dx64, dw64, db64 = ref.conv2d_backward(dy, x, w, S, P)
        tol = 2e-4 if dtype == np.float32 else 1e-10
        def check(name, got, want):
            err = float(np.max(np.abs(got - want)) / (np.max(np.abs(want)) + 1))
            checked.add(name)
            if err > tol:
                bad.append((name, dtype.__name__, (N, C, H, W, K, F, S, P), err))
        for alg in fastconv.algorithms():
            try:
                check("fwd " + alg, fastconv.conv2d(x, w, b, S, P, algorithm=alg), y64)
            except ValueError:
                pass
            try:
                check("data " + alg, fastconv.conv2d_backward(dy, x, w, S, P,
                                                              algorithm=(alg, None))[0], dx64)
            except ValueError:
                pass
            try:
                check("weight " + alg, fastconv.conv2d_backward(dy, x, w, S, P,
                                                                algorithm=(None, alg))[1], dw64)
            except ValueError:
                pass
print(bad)
print(sorted(checked))
"""
    import os
    tests = os.path.dirname(os.path.abspath(__file__))
    for setting in ("l1d=4K,l2=16K,l3=64K", "l1d=256K,l2=64M,l3=1024M"):
        r = run_python(code.replace("TESTS", repr(tests)), FASTCONV_CACHE_SIZES=setting)
        assert r.returncode == 0, r.stderr
        bad, checked = r.stdout.strip().split("\n")
        assert bad == "[]", (setting, bad)
        required = ["fwd gemm", "fwd gemm_t", "fwd direct", "fwd kvec", "data col2im",
                    "data phased", "data gemm", "weight gemm", "weight kvec"]
        if "l2=64M" not in setting:   # with huge caches lanes' tiles outgrow its budget
            required.append("fwd lanes")
        for name in required:
            assert name in checked, (name, checked)
