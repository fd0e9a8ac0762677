#!/usr/bin/env bash
# fastconv on AArch64 without ARM hardware: cross-compiles the C tests with
# Debian's aarch64-linux-gnu-gcc and runs them under qemu-user.
#
#   tools/check-aarch64.sh [--keep] [--out DIR]
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
#                  against plain C references
#   conv openmp    the same with -fopenmp, at 1 and 3 threads (static libgomp;
#                  a dynamic build run with qemu -L when static linking fails)
#   conv native    the same driver built for this machine with cc (OpenMP when
#                  the compiler has it): every x86 path, as a sanity check of
#                  the driver and the core
#
# Prints "N passed, 0 failed" last when every part passed; exits 1 when one
# failed.  Exits 0 with a SKIP line when the cross compiler or qemu-aarch64
# is missing and cannot be installed (as root, it runs
# `apt-get install -y qemu-user gcc-aarch64-linux-gnu` first).
# Nothing here measures speed: timings under qemu mean nothing.
#
# Environment: CROSS_CC (aarch64-linux-gnu-gcc), QEMU (qemu-aarch64),
# AARCH64_SYSROOT (/usr/aarch64-linux-gnu), CC (cc, for the native part).
set -u
cd "$(dirname "$0")/.."
keep=0
out=""
while [ $# -gt 0 ]; do
    case "$1" in
    --keep) keep=1 ;;
    --out) out=$2; shift ;;
    -h|--help) sed -n '2,29p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "usage: $0 [--keep] [--out DIR]" >&2; exit 2 ;;
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
    drive "conv seq" "$log" "core without OpenMP (qemu)" "$qemu" "$out/conv_seq"
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
            "$qemu" "$out/conv_omp" --threads 3
    elif "$cross" $drv_flags -fopenmp -o "$out/conv_omp" tests/c/conv_driver.c \
            "$out"/obj-omp/*.o -lm >>"$log" 2>&1; then
        drive "conv openmp" "$log" "core with OpenMP, 1 and 3 threads (qemu -L $sysroot)" \
            "$qemu" -L "$sysroot" "$out/conv_omp" --threads 3
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
        drive "conv native" "$log" "$(uname -m) with ${omp:-no OpenMP}" "$out/conv_native"
    else
        result "conv native" 1 "build failed"
        show_log "$log"
    fi
else
    echo "skip  conv native  no native compiler ($native_cc)"
fi

echo "== $((SECONDS - t_all)) s in all; nothing here measures speed (qemu)"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
