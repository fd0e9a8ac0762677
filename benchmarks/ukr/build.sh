#!/bin/sh
# Builds the microkernel harness twice, with the kernel files compiled the way
# setup.py compiles them (no -m flags; the kernels carry target attributes):
#   ukr_bench       optimised, for `bench` and `block`
#   ukr_bench_asan  AddressSanitizer + UBSan, for `test` (panels and C are
#                   allocated to the exact byte, so any over-read is reported)
# Usage: sh benchmarks/ukr/build.sh [outdir]   (default: build/ukr)
set -e
here=$(cd "$(dirname "$0")" && pwd)
src="$here/../../src"
out=${1:-"$here/../../build/ukr"}
cc=${CC:-cc}
mkdir -p "$out"
files="$here/ukr_bench.c $src/kernels/fc_ukr_generic.c $src/kernels/fc_ukr_avx2.c $src/kernels/fc_ukr_avx512.c $src/kernels/fc_ukr_neon.c"
$cc -O3 -fPIC -Wall -Wextra -o "$out/ukr_bench" $files -lm
$cc -O2 -g -fPIC -Wall -Wextra -fsanitize=address,undefined -fno-sanitize-recover=all \
    -fno-omit-frame-pointer -o "$out/ukr_bench_asan" $files -lm
echo "built $out/ukr_bench and $out/ukr_bench_asan"
