"""threadpoolctl sees fastconv's thread pool: threadpool_info() lists it and
threadpool_limits() limits it, leaving fastconv's setting as it was."""

import os

import numpy as np
import pytest

import fastconv
from fastconv import _config, _core, _plan, _threadpool

from conftest import run_python

threadpoolctl = pytest.importorskip("threadpoolctl")
if not hasattr(threadpoolctl, "register"):   # pragma: no cover - threadpoolctl < 3.5
    pytest.skip("threadpoolctl has no register() before 3.5", allow_module_level=True)

X = np.ones((1, 4, 32, 32))
W = np.ones((8, 4, 3, 3))


@pytest.fixture(autouse=True)
def default_threads():
    before = _config._num_threads
    _config.set_num_threads(None)
    _threadpool._limits.clear()   # what other tests' threadpool_limits may have left
    yield
    _config.set_num_threads(before)
    assert not _threadpool._limits, "a limit was left behind"


def _fastconv_info():
    found = [i for i in threadpoolctl.threadpool_info() if i["user_api"] == "fastconv"]
    assert len(found) == 1, found
    return found[0]


def _threads_run():
    fastconv.conv2d(X, W)
    return _plan.last_run("conv2d")["threads"]


def test_info_lists_fastconv():
    info = _fastconv_info()
    assert info["internal_api"] == "fastconv"
    assert info["prefix"] == "_core"
    assert info["filepath"] == os.path.realpath(_core.__file__)
    assert os.path.basename(info["filepath"]).startswith("_core")
    assert info["version"] == fastconv.__version__
    # the setting, which a block's exit restores; a build without OpenMP
    # runs one thread whatever it is
    assert info["num_threads"] == _config._requested_threads() >= fastconv.get_num_threads()
    assert info["openmp"] == _core.openmp_enabled()
    fastconv.set_num_threads(1)
    assert _fastconv_info()["num_threads"] == 1


def test_register_is_idempotent():
    assert _threadpool.register() is True
    assert _threadpool.register() is True
    _fastconv_info()   # still listed once


@pytest.mark.parametrize("how", [dict(limits=1), dict(limits=1, user_api="fastconv"),
                                 dict(limits={"fastconv": 1}), dict(limits={"_core": 1})],
                         ids=["all", "user_api", "dict user_api", "dict prefix"])
def test_limits_apply_and_are_undone(how):
    before = fastconv.get_num_threads()
    with threadpoolctl.threadpool_limits(**how):
        assert fastconv.get_num_threads() == 1
        assert _fastconv_info()["num_threads"] == 1
        assert _threads_run() == 1
    assert _config._num_threads is None   # back to following its default
    assert fastconv.get_num_threads() == before


def test_fastconv_alone_leaves_openmp():
    openmp = [i["num_threads"] for i in threadpoolctl.threadpool_info()
              if i["user_api"] == "openmp"]
    with threadpoolctl.threadpool_limits(1, user_api="fastconv"):
        assert fastconv.get_num_threads() == 1
        assert [i["num_threads"] for i in threadpoolctl.threadpool_info()
                if i["user_api"] == "openmp"] == openmp


def test_an_explicit_setting_is_restored():
    fastconv.set_num_threads(3)
    with threadpoolctl.threadpool_limits(1):
        assert fastconv.get_num_threads() == 1
    assert _config._num_threads == 3


def test_the_environment_setting_is_kept(monkeypatch):
    monkeypatch.setenv("FASTCONV_NUM_THREADS", "2")
    before = fastconv.get_num_threads()
    with threadpoolctl.threadpool_limits(1, user_api="fastconv"):
        assert fastconv.get_num_threads() == 1
    assert _config._num_threads is None
    assert fastconv.get_num_threads() == before
    assert _config.config_info()["num_threads_source"] == "FASTCONV_NUM_THREADS"


def test_restoring_other_pools_leaves_fastconv_alone():
    fastconv.set_num_threads(2)
    with threadpoolctl.threadpool_limits(1, user_api="openmp"):
        pass
    assert _config._num_threads == 2
    _config.set_num_threads(None)
    with threadpoolctl.threadpool_limits(1, user_api="blas"):
        pass
    assert _config._num_threads is None


def test_nested_limits():
    fastconv.set_num_threads(4)
    with threadpoolctl.threadpool_limits(2, user_api="fastconv"):
        assert _config._num_threads == 2
        with threadpoolctl.threadpool_limits(1):
            assert fastconv.get_num_threads() == 1
        assert _config._num_threads == 2
        with threadpoolctl.threadpool_limits(2, user_api="fastconv"):
            assert _config._num_threads == 2
        assert _config._num_threads == 2
    assert _config._num_threads == 4


def test_controller_limit_and_wrap():
    controller = threadpoolctl.ThreadpoolController()
    selected = controller.select(user_api="fastconv")
    assert len(selected.lib_controllers) == 1
    with controller.limit(limits=1, user_api="fastconv"):
        assert fastconv.get_num_threads() == 1

    @controller.wrap(limits=1, user_api="fastconv")
    def run():
        return _threads_run()
    assert run() == 1
    assert _config._num_threads is None


def test_another_packages_core_extension_is_not_fastconv():
    # Another extension module loaded in this process stands in for a
    # _core*.so of another package: the controller refuses it.
    other = os.path.realpath(np._core._multiarray_umath.__file__)
    cls = next(c for c in threadpoolctl._ALL_CONTROLLERS if c.user_api == "fastconv")
    with pytest.raises(OSError, match="not fastconv's extension"):
        cls(filepath=other, prefix="_core", parent=None)


def test_registered_on_import_in_a_fresh_process():
    code = ("import sys, fastconv\n"
            "assert 'threadpoolctl' in sys.modules\n"
            "import threadpoolctl\n"
            "info = [i for i in threadpoolctl.threadpool_info() if i['user_api'] == 'fastconv']\n"
            "assert len(info) == 1, info\n"
            "with threadpoolctl.threadpool_limits(1):\n"
            "    assert fastconv.get_num_threads() == 1\n"
            "print('ok')\n")
    r = run_python(code)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


def test_import_without_threadpoolctl():
    code = ("import sys\n"
            "sys.modules['threadpoolctl'] = None   # as if it were not installed\n"
            "import fastconv, fastconv._threadpool as t\n"
            "assert t.register() is False\n"
            "print('ok')\n")
    r = run_python(code)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr
