"""fastconv's types: ``mypy --strict`` passes on the package, accepts correct
use of its API (tests/typing/good.py) and rejects wrong use
(tests/typing/bad.py, one error on each line marked ``# E: <code>`` and none
elsewhere); the stub of the compiled module matches the module.

Skipped when mypy is not installed.  mypy checks the source tree's package
(it runs in the source root); its cache lives in a temporary directory.
"""

import os
import re
import subprocess
import sys

import pytest

pytest.importorskip("mypy", reason="mypy is not installed")

import fastconv  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SNIPPETS = os.path.join("tests", "typing")
# The directory holding the fastconv package that the tests import: the
# source tree after an in-place build, site-packages after an install.
IMPORTED_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(fastconv.__file__)))

ERROR = re.compile(r"^(?P<path>[^:]+):(?P<line>\d+): error: (?P<text>.*?)(?:  \[(?P<code>[\w-]+)\])?$")
MARK = re.compile(r"#\s*E:\s*(?P<code>[\w-]+)\s*$")


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    # One cache for the module's runs: the package is analysed once.
    return str(tmp_path_factory.mktemp("mypy-cache"))


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if k not in ("MYPYPATH", "PYTHONPATH")}
    env.update(extra)
    return env


def run_mypy(cache_dir, *args):
    cmd = [sys.executable, "-m", "mypy", "--strict", "--cache-dir", cache_dir,
           "--show-error-codes", "--no-pretty", "--no-color-output", "--hide-error-context",
           *args]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=_env(),
                          timeout=300)
    if proc.returncode not in (0, 1):   # 2: mypy itself failed (bad arguments, a crash)
        pytest.fail(f"mypy failed to run ({proc.returncode}):\n{proc.stdout}{proc.stderr}")
    return proc


def errors(output):
    """(path, line, code, text) of each error mypy reported."""
    found = []
    for line in output.splitlines():
        m = ERROR.match(line)
        if m:
            found.append((os.path.normpath(m["path"]), int(m["line"]), m["code"], m["text"]))
    return found


def test_package_passes_mypy_strict(cache_dir):
    proc = run_mypy(cache_dir, "-p", "fastconv")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_correct_use_is_accepted(cache_dir):
    proc = run_mypy(cache_dir, os.path.join(SNIPPETS, "good.py"))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_correct_use_runs():
    # The uses mypy accepts are correct at run time too.
    proc = subprocess.run([sys.executable, os.path.join(SNIPPETS, "good.py")], cwd=ROOT,
                          capture_output=True, text=True, timeout=300,
                          env=_env(PYTHONPATH=IMPORTED_ROOT))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_wrong_use_is_rejected_line_by_line(cache_dir):
    path = os.path.join(SNIPPETS, "bad.py")
    with open(os.path.join(ROOT, path)) as f:
        expected = {}
        for number, line in enumerate(f, 1):
            m = MARK.search(line)
            if m:
                expected[number] = m["code"]
    assert len(expected) >= 20, "bad.py lost its marked lines"

    proc = run_mypy(cache_dir, path)
    found = errors(proc.stdout)
    elsewhere = [e for e in found if e[0] != os.path.normpath(path)]
    assert not elsewhere, f"errors outside bad.py:\n{proc.stdout}"
    reported = {}
    for _, number, code, text in found:
        reported.setdefault(number, []).append((code, text))

    missing = {n: c for n, c in expected.items() if n not in reported}
    unmarked = {n: r for n, r in reported.items() if n not in expected}
    wrong_code = {n: (expected[n], reported[n]) for n in expected
                  if n in reported and expected[n] not in {c for c, _ in reported[n]}}
    assert not missing, f"no error on the marked lines {missing}:\n{proc.stdout}"
    assert not unmarked, f"errors on unmarked lines {unmarked}"
    assert not wrong_code, f"marked lines with another error code: {wrong_code}"


def test_stub_matches_compiled_module(tmp_path):
    # stubtest imports fastconv._core and compares it with _core.pyi: every
    # name, argument and default of the module is in the stub, and nothing
    # else.  The stub checked is the one beside the imported module: the
    # source tree's after an in-place build, the installed one (found through
    # py.typed) after an install.  It runs in an empty directory, where mypy
    # finds no other module by accident.
    allow = tmp_path / "allowlist.txt"
    allow.write_text("fastconv._core.__test__\n")   # Cython's doctest dict
    env = _env()
    if os.path.samefile(IMPORTED_ROOT, ROOT):
        env.update(MYPYPATH=ROOT, PYTHONPATH=ROOT)
    proc = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "fastconv._core", "--allowlist", str(allow)],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
