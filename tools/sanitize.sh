#!/usr/bin/env bash
# Build fastconv with AddressSanitizer + UndefinedBehaviorSanitizer and run the
# test suite against that build.
#
#   tools/sanitize.sh                      # whole suite, every ISA path
#   tools/sanitize.sh tests/test_conv.py -k avx2 -x     # any pytest arguments
#   FASTCONV_ISA=generic tools/sanitize.sh            # one path only
#
# The build happens in a scratch copy of the tree (build/sanitize by default,
# or $FASTCONV_SANITIZE_DIR), so the normal in-place build is left alone and
# the tests import the instrumented extension.  Needs gcc (or clang) with the
# sanitizer runtimes, Cython, numpy and pytest.
#
# The Python interpreter itself is not instrumented, so the ASan runtime is
# preloaded, leak detection is off (the interpreter keeps memory until exit
# on purpose) and huge allocations return NULL (so the MemoryError paths run
# as they would in production instead of ASan aborting).  UBSan keeps going
# after a report so that one run lists every finding; ASan stops at the first
# memory error.  Exit status: 0 only when pytest passed and neither sanitizer
# wrote a report.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
work=${FASTCONV_SANITIZE_DIR:-$root/build/sanitize}
cc=${CC:-gcc}
# The interpreter itself, not a wrapper script (pyenv shims are shell scripts).
python=$("${PYTHON:-python3}" -c 'import sys; print(sys.executable)')

libasan=$("$cc" -print-file-name=libasan.so)
if [ ! -e "$libasan" ]; then
    echo "sanitize.sh: $cc has no libasan.so (install the compiler's sanitizer runtime)" >&2
    exit 2
fi

echo "== copying the tree to $work"
rm -rf "$work"
mkdir -p "$work"
# Everything the tests may look at (examples, benchmarks), minus build products.
( cd "$root" && tar -cf - --exclude=./build --exclude=./.git --exclude='*.so' \
      --exclude=__pycache__ --exclude=.pytest_cache --exclude=.hypothesis \
      --exclude=./src/_core.c --exclude='./.venv*' . ) | ( cd "$work" && tar -xf - )
logs="$work/sanitizer-logs"
mkdir -p "$logs"

# -fno-wrapv undoes the -fwrapv that CPython's own CFLAGS add, which would
# otherwise hide signed overflow from UBSan.  -O1 keeps stack traces readable
# while still compiling the SIMD kernels the way the release build does
# (their target attributes do not depend on the optimisation level).
san="-fsanitize=address,undefined -fno-sanitize-recover=address"
export FASTCONV_EXTRA_CFLAGS="$san -fno-omit-frame-pointer -fno-wrapv -g -O1"
export FASTCONV_EXTRA_LDFLAGS="$san"

echo "== building with: $FASTCONV_EXTRA_CFLAGS"
( cd "$work" && CC="$cc" "$python" setup.py build_ext --inplace -q ) > "$logs/build.log" 2>&1 || {
    cat "$logs/build.log" >&2
    exit 2
}

so=$(ls "$work"/fastconv/_core*.so)
if ! ldd "$so" | grep -q libasan; then
    echo "sanitize.sh: $so is not linked against libasan; the flags did not reach the build" >&2
    exit 2
fi

export LD_PRELOAD="$libasan${LD_PRELOAD:+:$LD_PRELOAD}"
export ASAN_OPTIONS="detect_leaks=0:allocator_may_return_null=1:abort_on_error=0:halt_on_error=1:print_summary=1:log_path=$logs/asan"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=0:print_summary=1:log_path=$logs/ubsan"
# Tests that cannot work under ASan (address-space limits, for one) look at this.
export FASTCONV_SANITIZER=asan
# Without it, ASan often cannot unwind through the interpreter's frames.
export ASAN_SYMBOLIZER_PATH=${ASAN_SYMBOLIZER_PATH:-$(command -v llvm-symbolizer || true)}

echo "== running pytest under ASan + UBSan (logs: $logs)"
set +e
( cd "$work" && "$python" -m pytest -q -p no:cacheprovider "${@:-tests}" )
status=$?
set -e

reports=$(find "$logs" -name 'asan.*' -o -name 'ubsan.*' | sort)
nasan=$(cat /dev/null $(find "$logs" -name 'asan.*') | grep -c '^==[0-9]*==ERROR: AddressSanitizer' || true)
nubsan=$(cat /dev/null $(find "$logs" -name 'ubsan.*') | grep -c 'runtime error:' || true)
echo "== sanitizer summary: AddressSanitizer errors: $nasan, UndefinedBehaviorSanitizer reports: $nubsan, pytest exit status: $status"
if [ -n "$reports" ]; then
    echo "== reports:"
    for f in $reports; do
        echo "--- $f"
        head -n 60 "$f"
    done
    exit 1
fi
exit "$status"
