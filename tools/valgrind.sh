#!/usr/bin/env bash
# Run a representative subset of the test suite under valgrind memcheck.
#
#   tools/valgrind.sh                  # the default subset below
#   tools/valgrind.sh tests/test_pool.py -k "float32 and t2"   # any pytest arguments
#
# fastconv is built (release flags, with -g from CPython's CFLAGS) in a scratch
# copy of the tree, build/valgrind by default or $FASTCONV_VALGRIND_DIR, so
# the tests import exactly that build.  PYTHONMALLOC=malloc sends every
# Python allocation through malloc, where memcheck can see it; what the
# interpreter and its libraries do on purpose is listed in
# tools/valgrind-python.supp.  Leaks are not checked here (the interpreter
# keeps memory until exit); tests/test_leaks.py covers leaks.
#
# valgrind's virtual CPU has no AVX-512, so fastconv's detection picks AVX2
# and the `isa` fixture runs the generic and AVX2 paths; the AVX-512 path is
# covered by tools/sanitize.sh and the guard-page tests.
#
# Exit status: 0 only when pytest passed and memcheck reported no error.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
work=${FASTCONV_VALGRIND_DIR:-$root/build/valgrind}
# The interpreter itself, not a wrapper script (pyenv shims are shell scripts).
python=$("${PYTHON:-python3}" -c 'import sys; print(sys.executable)')

command -v valgrind > /dev/null || {
    echo "valgrind.sh: valgrind is not installed (apt-get install valgrind)" >&2
    exit 2
}

echo "== copying the tree to $work"
rm -rf "$work"
mkdir -p "$work"
( cd "$root" && tar -cf - --exclude=./build --exclude=./.git --exclude='*.so' \
      --exclude=__pycache__ --exclude=.pytest_cache --exclude=.hypothesis \
      --exclude=./src/_core.c --exclude='./.venv*' . ) | ( cd "$work" && tar -xf - )

echo "== building"
( cd "$work" && "$python" setup.py build_ext --inplace -q ) > "$work/build.log" 2>&1 || {
    cat "$work/build.log" >&2
    exit 2
}

if [ $# -eq 0 ]; then
    # Every op, forward and backward, both dtypes, edge tiles, views, empty
    # and non-finite inputs, guard pages, random geometry (fewer hypothesis
    # examples than usual: valgrind is ~50x slower), on two OpenMP threads.
    # About 15 minutes on 2 cores.
    export FASTCONV_HYPOTHESIS_EXAMPLES=${FASTCONV_HYPOTHESIS_EXAMPLES:-40}
    set -- tests/test_hostile_inputs.py tests/test_properties.py tests/test_conv.py \
        tests/test_pool.py tests/test_linear_relu.py \
        -k "hostile or properties or (t2 and float32 and not pool) or (pool and t2 and float64)"
fi

log="$work/valgrind.log"
echo "== valgrind memcheck: pytest $* (log: $log)"
set +e
( cd "$work" && PYTHONMALLOC=malloc FASTCONV_NUM_THREADS=2 valgrind --tool=memcheck \
      --error-exitcode=99 --leak-check=no --track-origins=yes --num-callers=30 \
      --suppressions="$root/tools/valgrind-python.supp" --log-file="$log" \
      "$python" -m pytest -q -p no:cacheprovider "$@" )
status=$?
set -e

# Forked children (subprocess) print their own copy of the totals; the
# interpreter's pid is the one on the log's first line.
pid=$(head -n 1 "$log" | sed 's/^==\([0-9]*\)==.*/\1/')
summary=$(grep "^==$pid== ERROR SUMMARY" "$log" | tail -n 1 || true)
echo "== valgrind: ${summary#==*== }   (pytest/valgrind exit status: $status)"
if [ "$status" -eq 99 ]; then
    echo "== first reports:"
    grep -v '^==[0-9]*== *$' "$log" | sed -n '/^==[0-9]*== [A-Z][a-z].*\(Invalid\|uninitialised\|Mismatched\|overlap\|Syscall\)/,+25p' | head -n 120
fi
exit "$status"
