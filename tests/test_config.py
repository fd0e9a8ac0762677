"""Thread count, instruction-set selection and show_config."""

import os
import re
import subprocess
import sys

import numpy as np
import pytest

import fastconv
from fastconv import _config, _core

PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(fastconv.__file__)))


@pytest.fixture
def restore_threads():
    before = fastconv.get_num_threads()
    yield
    fastconv.set_num_threads(before)


def run_python(code, **env_vars):
    """Run `code` in a fresh interpreter that imports this same fastconv."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("FASTCONV_ISA", "FASTCONV_NUM_THREADS")}
    env["PYTHONPATH"] = PACKAGE_ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env.update(env_vars)
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=120, cwd=PACKAGE_ROOT)


# ---------------------------------------------------------------- threads

def usable(n):
    """The threads a setting of n gives: n, or 1 in a build without OpenMP,
    which runs one thread whatever is asked."""
    return n if _core.openmp_enabled() else 1


@pytest.mark.parametrize("n", [1, 2, 3, 7])
def test_set_get_num_threads_round_trip(n, restore_threads):
    fastconv.set_num_threads(n)
    assert fastconv.get_num_threads() == usable(n)


def test_default_thread_count_is_positive():
    assert isinstance(fastconv.get_num_threads(), int)
    assert fastconv.get_num_threads() >= 1


@pytest.mark.parametrize("bad", [0, -1, -8])
def test_set_num_threads_rejects_non_positive(bad, restore_threads):
    fastconv.set_num_threads(2)
    with pytest.raises(ValueError, match=str(bad)):
        fastconv.set_num_threads(bad)
    assert fastconv.get_num_threads() == usable(2)  # unchanged by the failed call


@pytest.mark.parametrize("bad", [1.5, "2", True])
def test_set_num_threads_rejects_non_integers(bad, restore_threads):
    with pytest.raises(TypeError):
        fastconv.set_num_threads(bad)


def test_results_do_not_depend_on_thread_count_beyond_rounding(restore_threads):
    # The same problem at 1 and 2 threads: identical for ops with no
    # cross-thread reduction, within rounding for the conv gradients.
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 8, 20, 20))
    w = rng.standard_normal((16, 8, 3, 3))
    dy = rng.standard_normal((4, 16, 20, 20))
    out = {}
    for n in (1, 2):
        fastconv.set_num_threads(n)
        out[n] = (fastconv.conv2d(x, w, padding=1), fastconv.max_pool2d(x, 2),
                  *fastconv.conv2d_backward(dy, x, w, padding=1))
    for a, b in zip(out[1], out[2]):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(out[1][1], out[2][1])


def test_num_threads_environment_variable():
    code = "import fastconv; print(fastconv.get_num_threads())"
    for n in ("1", "3"):
        r = run_python(code, FASTCONV_NUM_THREADS=n)
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == str(usable(int(n)))


def test_set_num_threads_beats_environment_variable():
    code = "import fastconv; fastconv.set_num_threads(2); print(fastconv.get_num_threads())"
    r = run_python(code, FASTCONV_NUM_THREADS="1")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str(usable(2))


# ------------------------------------------------------ instruction sets

def test_available_isas():
    isas = _config.available_isas()
    assert "generic" in isas  # the portable path runs everywhere
    assert set(isas) <= {"generic", "avx2", "avx512", "neon"}
    assert _config.get_isa() in isas


@pytest.mark.parametrize("name", _config.available_isas())
def test_using_isa_switches_and_restores(name):
    before = _config.get_isa()
    with _config.using_isa(name):
        assert _config.get_isa() == name
    assert _config.get_isa() == before


def test_using_isa_restores_after_an_exception():
    before = _config.get_isa()
    with pytest.raises(KeyError):
        with _config.using_isa("generic"):
            raise KeyError("boom")
    assert _config.get_isa() == before


def test_set_isa_rejects_unknown_name():
    before = _config.get_isa()
    with pytest.raises(ValueError, match="bogus"):
        _config.set_isa("bogus")
    assert _config.get_isa() == before


@pytest.mark.parametrize("name", _config.available_isas())
def test_fastconv_isa_environment_variable(name):
    r = run_python("from fastconv import _config; print(_config.get_isa())", FASTCONV_ISA=name)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == name


def test_fastconv_isa_generic_computes_correctly():
    code = ("import numpy as np, fastconv\n"
            "x = np.arange(16.0).reshape(1, 1, 4, 4); w = np.ones((1, 1, 3, 3))\n"
            "print(fastconv.conv2d(x, w, padding=1)[0, 0, 1, 1], fastconv._config.get_isa())")
    r = run_python(code, FASTCONV_ISA="generic")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["45.0", "generic"]


def test_fastconv_isa_bogus_is_a_clear_error():
    r = run_python("import fastconv", FASTCONV_ISA="bogus")
    assert r.returncode != 0
    last = r.stderr.strip().splitlines()[-1]
    assert "FASTCONV_ISA" in last and "bogus" in last, r.stderr
    assert "generic" in last  # names a valid choice


# ------------------------------------------------------------ show_config

def _show(capsys):
    returned = fastconv.show_config()
    printed = capsys.readouterr().out
    return printed + (returned if isinstance(returned, str) else "")


def test_show_config_mentions_isa_and_openmp(capsys):
    text = _show(capsys)
    assert _config.get_isa() in text
    assert fastconv.__version__ in text
    line = next((ln for ln in text.splitlines() if re.search("openmp", ln, re.I)), None)
    assert line is not None, text
    assert re.search(r"enabled|disabled|not available|sequential|yes|no", line, re.I), line


def test_show_config_follows_the_active_isa(capsys):
    texts = {}
    for name in _config.available_isas():
        with _config.using_isa(name):
            texts[name] = _show(capsys)
        assert re.search(rf"\b{name}\b", texts[name])
    # Switching the path changes what is reported.
    assert len(set(texts.values())) == len(texts)


def test_show_config_names_the_narrow_lane_tiles(capsys):
    for name in _config.available_isas():
        with _config.using_isa(name):
            text = _show(capsys)
            info = _config.config_info()
        for dt in ("float32", "float64"):
            assert info[f"kernel_{dt}"] in text
            assert info[f"kernel_{dt}_narrow"] in text
        # only AVX-512 has tiles of its own for the lanes path
        has_narrow = info["kernel_float32_narrow"] != info["kernel_float32"]
        assert has_narrow == (name == "avx512")
        assert ("batch lanes also" in text) == has_narrow


def test_show_config_reports_thread_count(capsys, restore_threads):
    fastconv.set_num_threads(3)
    text = _show(capsys)
    assert re.search(rf"thread\D*\b{usable(3)}\b", text, re.I), text
