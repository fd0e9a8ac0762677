#!/usr/bin/env bash
# fastconv on AArch64 without ARM hardware: cross-compiles the C tests with
# Debian's aarch64-linux-gnu-gcc and runs them under qemu-user.
#
#   tools/check-aarch64.sh [--python] [--keep] [--out DIR]
#
# Parts (one summary line each):
#   ukr            benchmarks/ukr/ukr_bench.c with the generic and NEON kernels,
#                  `test`: every kernel against a scalar reference, every edge
#                  tile (m x n), depth and flag; built with -DUKR_GUARD_PAGES so
#                  a read or write past any panel or C buffer faults (ASan does
#                  not run under qemu-user)
#   conv seq       tests/c/conv_driver.c linked with the whole core (src/*.c
#                  but Cython's src/_core.c, src/kernels/*.c), no OpenMP: every
#                  conv op and algorithm and pooling, generic and NEON paths,
#                  against plain C references; --batch-bits: batches give the
#                  same bits whole and image by image
#   conv openmp    the same with -fopenmp, at 1 and 3 threads (static libgomp;
#                  a dynamic build run with qemu -L when static linking fails)
#   conv native    the same driver built for this machine with cc (OpenMP when
#                  the compiler has it): every x86 path, as a sanity check of
#                  the driver and the core
#   python         (--python only) the pytest suite under an AArch64 CPython
#                  3.11: Debian's arm64 packages (python3.11, libc, libgomp
#                  and the libraries the standard library loads) unpacked into
#                  a private root with apt-get download and dpkg -x, nothing
#                  installed on the host; numpy, pytest, hypothesis and
#                  threadpoolctl as aarch64 wheels (pip --target); the
#                  extension cross-built from Cython's C output with OpenMP.
#                  The suite runs through a wrapper that starts that Python
#                  under qemu, so the tests' subprocesses run it too, with
#                  CC=aarch64-linux-gnu-gcc for the pooling harness; the
#                  sanitized microkernel test is left out (no ASan under
#                  qemu-user: the ukr part above covers the kernels), and so
#                  is the address-space-limit test (qemu-user ignores the
#                  guest's RLIMIT_AS).  Needs
#                  root once (dpkg --add-architecture arm64, apt-get update),
#                  and the network for the packages; they are kept in
#                  $FASTCONV_AARCH64_CACHE (~/.cache/fastconv-aarch64).
#                  Takes long: see the README.
#
# Prints "N passed, 0 failed" last when every part passed; exits 1 when one
# failed.  Exits 0 with a SKIP line when the cross compiler or qemu-aarch64
# is missing and cannot be installed (as root, it runs
# `apt-get install -y qemu-user gcc-aarch64-linux-gnu` first).
# Nothing here measures speed: timings under qemu mean nothing.
#
# Environment: CROSS_CC (aarch64-linux-gnu-gcc), QEMU (qemu-aarch64),
# AARCH64_SYSROOT (/usr/aarch64-linux-gnu), CC (cc, for the native part),
# FASTCONV_AARCH64_CACHE, AARCH64_PYTEST_ARGS (what --python runs: tests).
set -u
cd "$(dirname "$0")/.."
python_part=0
keep=0
out=""
while [ $# -gt 0 ]; do
    case "$1" in
    --python) python_part=1 ;;
    --keep) keep=1 ;;
    --out) out=$2; shift ;;
    -h|--help) sed -n '2,51p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "usage: $0 [--python] [--keep] [--out DIR]" >&2; exit 2 ;;
    esac
    shift
done

cross=${CROSS_CC:-aarch64-linux-gnu-gcc}
qemu=${QEMU:-qemu-aarch64}
sysroot=${AARCH64_SYSROOT:-/usr/aarch64-linux-gnu}
native_cc=${CC:-cc}

have_tools() { command -v "$cross" >/dev/null 2>&1 && command -v "$qemu" >/dev/null 2>&1; }

if ! have_tools; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "== installing qemu-user and gcc-aarch64-linux-gnu (apt-get)"
        (apt-get update -q && DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -q qemu-user gcc-aarch64-linux-gnu) >/tmp/check-aarch64-apt.log 2>&1 ||
            echo "   apt-get failed: see /tmp/check-aarch64-apt.log"
    fi
fi
if ! have_tools; then
    echo "SKIP: $cross or $qemu not installed and not installable here" \
         "(apt-get install qemu-user gcc-aarch64-linux-gnu); nothing checked"
    exit 0
fi

if [ -z "$out" ]; then
    out=$(mktemp -d "${TMPDIR:-/tmp}/fastconv-aarch64.XXXXXX")
    [ "$keep" = 1 ] || trap 'rm -rf "$out"' EXIT
else
    mkdir -p "$out"
fi
echo "== fastconv on AArch64 under $("$qemu" --version | head -n 1)"
echo "   cross compiler: $("$cross" --version | head -n 1); build in $out"

passed=0
failed=0
t_all=$SECONDS

# result NAME OK DETAIL: one line per part
result() {
    if [ "$2" = 0 ]; then
        passed=$((passed + 1))
        printf 'PASS  %-12s %s [%ds]\n' "$1" "$3" $((SECONDS - t_part))
    else
        failed=$((failed + 1))
        printf 'FAIL  %-12s %s [%ds]\n' "$1" "$3" $((SECONDS - t_part))
    fi
}

# show_log FILE: the end of a log, indented, after a failure
show_log() { tail -n 40 "$1" | sed 's/^/      /'; }

core_srcs=$(ls src/*.c | grep -v '^src/_core\.c$')
kernel_srcs=$(ls src/kernels/*.c)
# the core as setup.py compiles it (no host flags); the driver with warnings
core_flags="-O2 -fno-math-errno -fno-tree-loop-distribute-patterns -Wno-unknown-pragmas"
drv_flags="-O2 -Wall -Wextra -Isrc"

# build_core CC OBJDIR EXTRA: compile the core's sources into OBJDIR
build_core() {
    local cc=$1 dir=$2 extra=$3 f
    mkdir -p "$dir"
    for f in $core_srcs $kernel_srcs; do
        # shellcheck disable=SC2086
        "$cc" $core_flags $extra -c "$f" -o "$dir/$(basename "$f" .c).o" || return 1
    done
}

# ------------------------------------------------------------------ ukr
t_part=$SECONDS
log=$out/ukr.log
# shellcheck disable=SC2086
if ! "$cross" -O2 -static -Wall -Wextra -DUKR_GUARD_PAGES -o "$out/ukr_bench" \
        benchmarks/ukr/ukr_bench.c $kernel_srcs -lm >"$log" 2>&1; then
    result ukr 1 "build failed"
    show_log "$log"
elif ! "$qemu" "$out/ukr_bench" test >>"$log" 2>&1; then
    fault=$(grep -E '^FAULT' "$log" | head -n 1)
    result ukr 1 "test failed: $(grep -cE '^FAIL' "$log") failing cases${fault:+; $fault}"
    grep -E '^(FAIL|FAULT)' "$log" | head -n 10 | sed 's/^/      /'
    show_log "$log"
else
    neon=$(grep -E '^neon ' "$log" | grep -oE '[0-9]+ cases, [0-9]+ failed')
    gen=$(grep -E '^generic ' "$log" | grep -oE '[0-9]+ cases, [0-9]+ failed')
    if [ -n "$neon" ] && [ -n "$gen" ] && tail -n 1 "$log" | grep -qE '^[0-9]+ cases, 0 failed$'; then
        result ukr 0 "microkernels (qemu): neon $neon; generic $gen"
    else
        result ukr 1 "the harness did not test both kernel sets"
        show_log "$log"
    fi
fi

# drive NAME LOG CMD...: runs the conv driver, checks its last line
drive() {
    local name=$1 log=$2 what=$3
    shift 3
    if "$@" >>"$log" 2>&1 && tail -n 1 "$log" | grep -qE '^conv_driver: [0-9]+ checks, 0 failed$'; then
        local isas
        isas=$(grep -E '^[a-z0-9]+ +[0-9]+ checks, 0 failed$' "$log" | awk '{print $1}' | paste -sd, -)
        result "$name" 0 "$what: $(tail -n 1 "$log" | sed 's/^conv_driver: //') ($isas)"
    else
        result "$name" 1 "$what: see below"
        grep -E '^(FAIL|conv_driver)' "$log" | head -n 20 | sed 's/^/      /'
        show_log "$log"
    fi
}

# ------------------------------------------------------ conv, sequential
t_part=$SECONDS
log=$out/conv-seq.log
if build_core "$cross" "$out/obj-seq" "" >"$log" 2>&1 &&
    "$cross" $drv_flags -static -o "$out/conv_seq" tests/c/conv_driver.c "$out"/obj-seq/*.o \
        -lm >>"$log" 2>&1; then
    drive "conv seq" "$log" "core without OpenMP (qemu)" "$qemu" "$out/conv_seq" --batch-bits
else
    result "conv seq" 1 "build failed"
    show_log "$log"
fi

# ---------------------------------------------------------- conv, OpenMP
t_part=$SECONDS
log=$out/conv-omp.log
if build_core "$cross" "$out/obj-omp" "-fopenmp" >"$log" 2>&1; then
    # static libgomp warns that dlopen needs the build's glibc at run time:
    # this program never dlopens
    if "$cross" $drv_flags -fopenmp -static -o "$out/conv_omp" tests/c/conv_driver.c \
            "$out"/obj-omp/*.o -lm >>"$log" 2>&1; then
        drive "conv openmp" "$log" "core with OpenMP, 1 and 3 threads (qemu, static)" \
            "$qemu" "$out/conv_omp" --threads 3 --batch-bits
    elif "$cross" $drv_flags -fopenmp -o "$out/conv_omp" tests/c/conv_driver.c \
            "$out"/obj-omp/*.o -lm >>"$log" 2>&1; then
        drive "conv openmp" "$log" "core with OpenMP, 1 and 3 threads (qemu -L $sysroot)" \
            "$qemu" -L "$sysroot" "$out/conv_omp" --threads 3 --batch-bits
    else
        result "conv openmp" 1 "link failed"
        show_log "$log"
    fi
else
    result "conv openmp" 1 "build failed"
    show_log "$log"
fi

# ---------------------------------------------------------- conv, native
t_part=$SECONDS
log=$out/conv-native.log
if command -v "$native_cc" >/dev/null 2>&1; then
    omp="-fopenmp"
    echo 'int main(void){return 0;}' >"$out/probe.c"
    "$native_cc" -fopenmp -o "$out/probe" "$out/probe.c" >/dev/null 2>&1 || omp=""
    if build_core "$native_cc" "$out/obj-native" "$omp" >"$log" 2>&1 &&
        "$native_cc" $drv_flags $omp -o "$out/conv_native" tests/c/conv_driver.c \
            "$out"/obj-native/*.o -lm >>"$log" 2>&1; then
        drive "conv native" "$log" "$(uname -m) with ${omp:-no OpenMP}" "$out/conv_native" \
            --threads 3 --batch-bits
    else
        result "conv native" 1 "build failed"
        show_log "$log"
    fi
else
    echo "skip  conv native  no native compiler ($native_cc)"
fi

# ---------------------------------------------------------------- python

# The arm64 packages of an AArch64 CPython 3.11 and of what its standard
# library loads (Debian bookworm names).
py_debs="libc6 libgcc-s1 libstdc++6 libgomp1 zlib1g libexpat1 libffi8 libbz2-1.0 liblzma5
libuuid1 libsqlite3-0 libssl3 libncursesw6 libtinfo6 libreadline8 libcrypt1 libnsl2 libtirpc3
libgssapi-krb5-2 libkrb5-3 libk5crypto3 libkrb5support0 libcom-err2 libkeyutils1 libdb5.3
libgdbm6 libpython3.11-minimal libpython3.11-stdlib python3.11-minimal libpython3.11-dev
libpython3.11"
py_wheels="numpy pytest hypothesis threadpoolctl"

# python_setup CACHE: the private root, the wheels and a host venv with
# Cython under CACHE; reused when already there
python_setup() {
    local cache=$1 p
    if [ ! -x "$cache/root/usr/bin/python3.11" ]; then
        if ! dpkg --print-foreign-architectures 2>/dev/null | grep -qx arm64; then
            [ "$(id -u)" = 0 ] || { echo "arm64 packages not configured: run as root once"; return 1; }
            dpkg --add-architecture arm64 || return 1
        fi
        if ! apt-cache show python3.11-minimal:arm64 >/dev/null 2>&1; then
            apt-get update -q || return 1
        fi
        rm -rf "$cache/debs" "$cache/root"
        mkdir -p "$cache/debs" "$cache/root"
        for p in $py_debs; do
            (cd "$cache/debs" && apt-get download -q "$p:arm64") || return 1
        done
        (cd "$cache/debs" && apt-get download -q media-types) || return 1
        for p in "$cache"/debs/*.deb; do
            dpkg -x "$p" "$cache/root" || return 1
        done
    fi
    if [ ! -x "$cache/hostvenv/bin/cython" ]; then
        python3 -m venv "$cache/hostvenv" && "$cache/hostvenv/bin/pip" install -q Cython || return 1
    fi
    if [ ! -d "$cache/site/numpy" ]; then
        # shellcheck disable=SC2086
        "$cache/hostvenv/bin/pip" install -q --target "$cache/site" --platform manylinux2014_aarch64 \
            --python-version 3.11 --implementation cp --abi cp311 --only-binary=:all: $py_wheels ||
            return 1
    fi
    # sys.executable is this wrapper (-0 sets argv[0]), so the tests'
    # subprocesses start the same emulated Python
    mkdir -p "$cache/bin"
    cat >"$cache/bin/python3" <<WRAP
#!/bin/sh
exec "$(command -v "$qemu")" -L "$cache/root" -0 "\$0" "$cache/root/usr/bin/python3.11" "\$@"
WRAP
    chmod +x "$cache/bin/python3"
}

# python_build TREE CACHE: a copy of the source tree with the extension
# cross-built for AArch64
python_build() {
    local tree=$1 cache=$2
    mkdir -p "$tree"
    tar --exclude=./build --exclude=./.git --exclude='*.so' --exclude='*.egg-info' \
        --exclude=__pycache__ --exclude=.pytest_cache --exclude=.hypothesis -cf - . |
        tar -xf - -C "$tree" || return 1
    "$cache/hostvenv/bin/cython" -3 src/_core.pyx -o "$tree/_core.c" || return 1
    # shellcheck disable=SC2086
    "$cross" -O3 -fno-math-errno -fno-tree-loop-distribute-patterns -Wno-unknown-pragmas \
        -fPIC -shared -fopenmp -Isrc -I"$cache/root/usr/include/python3.11" \
        -I"$cache/root/usr/include" -o "$tree/fastconv/_core.cpython-311-aarch64-linux-gnu.so" \
        "$tree/_core.c" $core_srcs $kernel_srcs -lm
}

if [ "$python_part" = 1 ]; then
    t_part=$SECONDS
    log=$out/python.log
    cache=${FASTCONV_AARCH64_CACHE:-${HOME:-/tmp}/.cache/fastconv-aarch64}
    mkdir -p "$cache"
    cache=$(cd "$cache" && pwd)
    if ! grep -qE '^ISAS = \(.*"neon"' fastconv/_config.py; then
        result python 1 "fastconv/_config.py: ISAS lacks \"neon\", the active set on AArch64"
    elif ! python_setup "$cache" >"$log" 2>&1; then
        result python 1 "could not set up the AArch64 Python (see below)"
        show_log "$log"
    elif ! python_build "$out/tree" "$cache" >>"$log" 2>&1; then
        result python 1 "could not build the extension for AArch64"
        show_log "$log"
    else
        (cd "$out/tree" && CC=$cross PYTHONPATH="$out/tree:$cache/site" \
            "$cache/bin/python3" -m pytest -q -p no:cacheprovider \
            --deselect tests/test_harnesses.py::test_ukr_microkernels_under_sanitizers \
            --deselect tests/test_large.py::test_workspace_allocation_failure_raises_memory_error \
            ${AARCH64_PYTEST_ARGS:-tests}) \
            >>"$log" 2>&1
        rc=$?
        summary=$(tail -n 1 "$log" | sed 's/=//g; s/^ *//; s/ *$//')
        if [ "$rc" = 0 ]; then
            result python 0 "pytest under qemu (AArch64 CPython 3.11): $summary"
        else
            result python 1 "pytest under qemu: $summary"
            grep -E '^(FAILED|ERROR)' "$log" | head -n 20 | sed 's/^/      /'
        fi
    fi
fi

echo "== $((SECONDS - t_all)) s in all; nothing here measures speed (qemu)"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
