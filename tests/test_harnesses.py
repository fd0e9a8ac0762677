"""The kernel-level harnesses of benchmarks/ build, run and pass.

- benchmarks/ukr: the GEMM microkernels' edge-shape test (`ukr_bench_asan
  test`), built by benchmarks/ukr/build.sh with AddressSanitizer and UBSan.
- benchmarks/pool/harness.py check: the pooling kernels against NumPy over
  the fixed and a few random shapes, every instruction set the CPU runs.

Each test reads the harness's report and checks that it counted checks that
ran and none that failed, besides its exit code. A missing C compiler, or
for the sanitized build a missing sanitizer runtime, skips the test.

Time: the sanitized build dominates (a minute or more on a 2-core machine,
most of it compiling the AVX-512 kernels with UBSan); the runs take seconds.
"""

import os
import platform
import re
import shlex
import shutil
import subprocess
import sys

import pytest

from fastconv import _config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "benchmarks")
SANITIZE = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all"]
POOL_CASES = 5      # random shapes, on top of the harness's fixed ones
# The kernel sets the microkernel harness tests by default: its list for
# this machine's architecture (benchmarks/ukr/ukr_bench.c, main).
UKR_SETS = ({"generic", "neon"} if platform.machine().lower() in ("aarch64", "arm64")
            else {"generic", "avx2", "avx512"})


def _compiler(default):
    """The compiler a harness will call (its $CC, else ``default``) as an
    argument list, or skip the test when it is not installed."""
    argv = shlex.split(os.environ.get("CC") or default)
    if not argv or shutil.which(argv[0]) is None:
        pytest.skip(f"no C compiler: {argv[0] if argv else '$CC'} not found")
    return argv


def _require_sanitizers(cc, tmp_path):
    """Skip unless a program built with the harness's sanitizer flags links
    and runs here (the runtimes are packaged apart from the compiler, and
    some sandboxes cannot map ASan's shadow memory)."""
    src = tmp_path / "probe.c"
    src.write_text("#include <stdlib.h>\n"
                   "int main(void)\n{\n"
                   "    volatile int *p = malloc(4 * sizeof *p);\n"
                   "    p[3] = 1;\n"
                   "    int r = p[3] - 1;\n"
                   "    free((void *)p);\n"
                   "    return r;\n}\n")
    exe = tmp_path / "probe"
    built = subprocess.run(cc + SANITIZE + ["-o", str(exe), str(src)],
                           capture_output=True, text=True, timeout=300)
    if built.returncode != 0:
        pytest.skip("sanitizer runtime not available: " +
                    (built.stderr.strip().splitlines() or ["the probe did not link"])[-1])
    ran = subprocess.run([str(exe)], capture_output=True, text=True, timeout=60)
    if ran.returncode != 0:
        pytest.skip("sanitized programs do not run here: " +
                    (ran.stderr.strip().splitlines() or [f"exit {ran.returncode}"])[0])


def _output(proc):
    return f"exit {proc.returncode}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"


def test_ukr_microkernels_under_sanitizers(tmp_path):
    cc = _compiler("cc")
    _require_sanitizers(cc, tmp_path)
    out = tmp_path / "ukr"
    build = subprocess.run(["sh", os.path.join(BENCH, "ukr", "build.sh"), str(out)],
                           capture_output=True, text=True, timeout=1800)
    assert build.returncode == 0, _output(build)
    run = subprocess.run([str(out / "ukr_bench_asan"), "test"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=900)
    # exit 1: a case failed; anything else (ASan, UBSan) is a crash
    assert run.returncode == 0, _output(run)
    lines = run.stdout.splitlines()

    # one line per instruction set tested: "<isa> <sgemm> <dgemm> N cases, F failed"
    per_isa = {}
    for line in lines:
        m = re.match(r"(generic|avx2|avx512|neon)\s+\S+\s+\S+\s+(\d+) cases, (\d+) failed$",
                     line)
        if m:
            per_isa[m.group(1)] = (int(m.group(2)), int(m.group(3)))
    skipped = {m.group(1) for m in (re.match(r"(\w+)\s+not available", line) for line in lines)
               if m}
    assert "generic" in per_isa, _output(run)
    assert set(per_isa) | skipped == UKR_SETS, _output(run)
    # every kernel set fastconv dispatches to here was tested
    assert set(_config.available_isas()) <= set(per_isa), _output(run)
    for isa, (cases, failed) in per_isa.items():
        assert cases > 0 and failed == 0, f"{isa}: {cases} cases, {failed} failed"

    m = re.fullmatch(r"(\d+) cases, (\d+) failed", lines[-1] if lines else "")
    assert m, _output(run)
    total, failed = int(m.group(1)), int(m.group(2))
    assert failed == 0 and total == sum(c for c, _ in per_isa.values()) > 0


def test_pool_harness_check(tmp_path):
    _compiler("gcc")
    env = dict(os.environ, TMPDIR=str(tmp_path))    # its shared library goes there
    proc = subprocess.run([sys.executable, os.path.join(BENCH, "pool", "harness.py"),
                           "check", "--cases", str(POOL_CASES)],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=900)
    assert proc.returncode == 0, _output(proc)
    lines = proc.stdout.splitlines()
    per_isa = {}
    for line in lines:
        m = re.fullmatch(r"(generic|avx2|avx512|neon): (\d+) checks passed", line)
        if m:
            per_isa[m.group(1)] = int(m.group(2))
    assert "generic" in per_isa, _output(proc)
    # every kernel set fastconv dispatches to here was checked
    assert set(_config.available_isas()) <= set(per_isa), _output(proc)
    # at least one check per shape asked for (each shape is several)
    assert all(n >= POOL_CASES for n in per_isa.values()), per_isa
    m = re.fullmatch(r"total (\d+) checks passed; instruction sets agree bitwise",
                     lines[-1] if lines else "")
    assert m, _output(proc)
    assert int(m.group(1)) == sum(per_isa.values())
