"""The OpenMP wait policy fastconv asks for at import: passive unless the
user chose, never left in the environment, reported by show_config, and a
bad FASTCONV_WAIT_POLICY refused."""

import os

import fastconv
from fastconv import _waiting
from conftest import run_python

SHOW = ("import os, fastconv; from fastconv import _waiting; "
        "print(_waiting.state['policy']); print('OMP_WAIT_POLICY' in os.environ); "
        "fastconv.show_config()")


def test_passive_by_default_and_not_left_in_the_environment():
    r = run_python(
        "import os\n"
        "for k in ('OMP_WAIT_POLICY', 'GOMP_SPINCOUNT', 'FASTCONV_WAIT_POLICY'):\n"
        "    os.environ.pop(k, None)\n"
        "import fastconv\n"
        "from fastconv import _waiting\n"
        "print(_waiting.state['policy'], 'OMP_WAIT_POLICY' in os.environ)\n"
        "fastconv.show_config()\n")
    assert r.returncode == 0, r.stderr
    first = r.stdout.splitlines()[0].split()
    # 'preloaded' only if an OpenMP runtime was in the process before fastconv
    assert first[0] in ("passive", "preloaded") and first[1] == "False"
    assert "waiting threads : " in r.stdout


def test_the_users_setting_wins():
    r = run_python(SHOW, OMP_WAIT_POLICY="active")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "user" and lines[1] == "True"
    assert "the user's OMP_WAIT_POLICY=active" in r.stdout
    r = run_python(SHOW, FASTCONV_WAIT_POLICY="openmp")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0] == "openmp"
    assert "FASTCONV_WAIT_POLICY=openmp" in r.stdout


def test_a_bad_setting_is_refused_at_import():
    r = run_python("import fastconv", FASTCONV_WAIT_POLICY="spin")
    assert r.returncode != 0
    assert "FASTCONV_WAIT_POLICY='spin'" in r.stderr and "'passive'" in r.stderr


def test_this_process_reports_a_policy():
    assert _waiting.state["policy"] in ("passive", "user", "openmp", "preloaded")
    assert fastconv._config.config_info()["wait_policy"] == _waiting.describe()
    assert os.environ.get("OMP_WAIT_POLICY") != "PASSIVE" or \
        _waiting.state["policy"] == "user"
