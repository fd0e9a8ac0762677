#!/usr/bin/env bash
# Build fastconv with sanitizers and run tests against that build.
#
#   tools/sanitize.sh                          # ASan + UBSan, whole suite, every ISA path
#   tools/sanitize.sh tests/test_conv.py -k avx2 -x         # any pytest arguments
#   FASTCONV_ISA=generic tools/sanitize.sh                # one path only
#   FASTCONV_SANITIZE=thread tools/sanitize.sh            # ThreadSanitizer (see below)
#
# The build happens in a scratch copy of the tree (build/sanitize-address or
# build/sanitize-thread, or $FASTCONV_SANITIZE_DIR), so the normal in-place
# build is left alone and the tests import the instrumented extension.
# Needs gcc with its sanitizer runtimes, Cython, numpy and pytest.
#
# address (default): AddressSanitizer + UndefinedBehaviorSanitizer.  The
#   interpreter is not instrumented, so the ASan runtime is preloaded (with
#   libstdc++, which ASan's C++-exception interceptor needs when an extension
#   such as matplotlib throws), leak detection is off (the interpreter keeps
#   memory until exit on purpose) and huge allocations return NULL, so the
#   MemoryError paths run as they would in production.  UBSan keeps going
#   after a report so one run lists every finding; ASan stops at the first
#   memory error.
#
# thread: ThreadSanitizer.  GCC's libgomp is not instrumented, so its
#   barriers are invisible to TSan and every parallel region looks racy.  The
#   run therefore swaps in LLVM's OpenMP runtime (libomp, which implements
#   libgomp's ABI) together with its Archer tool, which tells TSan about
#   OpenMP synchronisation:  apt-get install libomp-dev  (or libomp-14-dev).
#   Default tests: the concurrency and determinism tests, which run every op
#   on several OpenMP threads from several Python threads at once.
#
# Exit status: 0 only when pytest passed and the sanitizers reported nothing.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
mode=${FASTCONV_SANITIZE:-address}
work=${FASTCONV_SANITIZE_DIR:-$root/build/sanitize-$mode}
cc=${CC:-gcc}
# The interpreter itself, not a wrapper script (pyenv shims are shell scripts).
python=$("${PYTHON:-python3}" -c 'import sys; print(sys.executable)')
libstdcxx=$("$cc" -print-file-name=libstdc++.so)

case "$mode" in
address)
    runtime=$("$cc" -print-file-name=libasan.so)
    # -fno-wrapv undoes the -fwrapv of CPython's own CFLAGS, which would hide
    # signed overflow from UBSan.
    san="-fsanitize=address,undefined -fno-sanitize-recover=address"
    extra="-fno-wrapv"
    ;;
thread)
    runtime=$("$cc" -print-file-name=libtsan.so)
    san="-fsanitize=thread"
    extra=""
    libomp=$(ls /usr/lib/llvm-*/lib/libomp.so 2>/dev/null | sort -V | tail -n 1 || true)
    archer=${libomp:+$(dirname "$libomp")/libarcher.so}
    if [ -z "$libomp" ] || [ ! -e "$archer" ]; then
        echo "sanitize.sh: thread mode needs LLVM's libomp and libarcher" \
             "(apt-get install libomp-dev); without them every OpenMP region is" \
             "reported as a race" >&2
        exit 2
    fi
    if [ $# -eq 0 ]; then
        set -- tests/test_concurrency.py tests/test_determinism.py
    fi
    ;;
*)
    echo "sanitize.sh: FASTCONV_SANITIZE must be address or thread, got '$mode'" >&2
    exit 2
    ;;
esac
if [ ! -e "$runtime" ]; then
    echo "sanitize.sh: $cc has no $(basename "$runtime") (install its sanitizer runtime)" >&2
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

# -O1 keeps stack traces readable while compiling the SIMD kernels the way the
# release build does (their target attributes do not depend on -O).
export FASTCONV_EXTRA_CFLAGS="$san $extra -fno-omit-frame-pointer -g -O1"
export FASTCONV_EXTRA_LDFLAGS="$san"

echo "== building ($mode) with: $FASTCONV_EXTRA_CFLAGS"
( cd "$work" && CC="$cc" "$python" setup.py build_ext --inplace -q ) > "$logs/build.log" 2>&1 || {
    cat "$logs/build.log" >&2
    exit 2
}
so=$(ls "$work"/fastconv/_core*.so)
if ! ldd "$so" | grep -q "$(basename "$runtime" .so)"; then
    echo "sanitize.sh: $so is not linked against $(basename "$runtime"); the flags did not" \
         "reach the build" >&2
    exit 2
fi

export FASTCONV_SANITIZER=$mode     # tests that cannot work under a sanitizer look at this
if [ "$mode" = address ]; then
    export LD_PRELOAD="$runtime:$libstdcxx${LD_PRELOAD:+:$LD_PRELOAD}"
    export ASAN_OPTIONS="detect_leaks=0:allocator_may_return_null=1:halt_on_error=1:print_summary=1:log_path=$logs/asan"
    export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=0:print_summary=1:log_path=$logs/ubsan"
else
    export LD_PRELOAD="$runtime:$libomp:$libstdcxx${LD_PRELOAD:+:$LD_PRELOAD}"
    export OMP_TOOL_LIBRARIES="$archer"
    export TSAN_OPTIONS="halt_on_error=0:exitcode=0:print_summary=1:suppressions=$root/tools/tsan.supp:log_path=$logs/tsan"
fi

echo "== running pytest under the $mode sanitizer (logs: $logs)"
set +e
( cd "$work" && "$python" -m pytest -q -p no:cacheprovider "${@:-tests}" )
status=$?
set -e

# With allocator_may_return_null=1, ASan logs a warning for every allocation
# it refuses (the tests of impossible allocations make some): not a finding.
pattern='ERROR: AddressSanitizer|AddressSanitizer: CHECK failed|runtime error:|WARNING: ThreadSanitizer'
count() { cat /dev/null $(find "$logs" -name "$1.*") | grep -E -c "$2" || true; }
if [ "$mode" = address ]; then
    nasan=$(count asan 'ERROR: AddressSanitizer|AddressSanitizer: CHECK failed')
    nubsan=$(count ubsan 'runtime error:')
    echo "== sanitizer summary: AddressSanitizer errors: $nasan," \
         "UndefinedBehaviorSanitizer reports: $nubsan, pytest exit status: $status"
    found=$((nasan + nubsan))
else
    ntsan=$(count tsan 'WARNING: ThreadSanitizer')
    echo "== sanitizer summary: ThreadSanitizer reports: $ntsan, pytest exit status: $status"
    found=$ntsan
fi
if [ "$found" -gt 0 ]; then
    echo "== reports:"
    for f in $(grep -E -l "$pattern" $(find "$logs" -name 'asan.*' -o -name 'ubsan.*' -o -name 'tsan.*')); do
        echo "--- $f"
        head -n 80 "$f"
    done
    exit 1
fi
exit "$status"
