"""Build of fastconv's extension: the C core under src/ and its Cython binding.

OpenMP is used when the compiler accepts it (set FASTCONV_NO_OPENMP=1 to build
sequentially; FASTCONV_REQUIRE_OPENMP=1 makes a compiler without it an error,
as the wheel builds want).  The OpenMP probe links with the search paths of
$LDFLAGS, so a runtime outside the default paths (Homebrew's libomp on macOS)
is found.  No host-specific flags: the SIMD kernels carry their own target
attributes and are chosen at run time.  FASTCONV_EXTRA_CFLAGS and
FASTCONV_EXTRA_LDFLAGS add flags (e.g. sanitizers for testing builds).
"""
import glob
import os
import shlex
import sys
import tempfile

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

OPENMP_PROBE = r"""
#include <omp.h>
int main(void) {
    int n = 0;
    #pragma omp parallel reduction(+:n)
    n += 1;
    return omp_get_max_threads() > 0 && n > 0 ? 0 : 1;
}
"""


def openmp_flags(compiler):
    """(compile, link) flags that make OpenMP work with this compiler, or None."""
    if os.environ.get("FASTCONV_NO_OPENMP"):
        return None
    # distutils links executables with $CC alone, without $LDFLAGS (which it
    # gives only to the shared-library link): pass on the search paths.
    env_ldflags = [f for f in shlex.split(os.environ.get("LDFLAGS", ""))
                   if f.startswith(("-L", "-l", "-Wl,"))]
    if compiler.compiler_type == "msvc":
        candidates = [(["/openmp"], [])]
    elif sys.platform == "darwin":
        candidates = [(["-Xpreprocessor", "-fopenmp"], ["-lomp"]), (["-fopenmp"], ["-fopenmp"])]
    else:
        candidates = [(["-fopenmp"], ["-fopenmp"])]
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "probe.c")
        with open(src, "w") as f:
            f.write(OPENMP_PROBE)
        for cflags, ldflags in candidates:
            try:
                objs = compiler.compile([src], output_dir=tmp, extra_postargs=cflags)
                compiler.link_executable(objs, os.path.join(tmp, "probe"),
                                         extra_preargs=env_ldflags, extra_postargs=ldflags)
            except Exception:
                continue
            return cflags, ldflags
    return None


def accepted_flags(compiler, flags):
    """The subset of ``flags`` this compiler accepts without complaint."""
    ok = []
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "flag.c")
        with open(src, "w") as f:
            f.write("int main(void) { return 0; }\n")
        for flag in flags:
            try:
                compiler.compile([src], output_dir=tmp, extra_postargs=[flag, "-Werror"])
            except Exception:
                continue
            ok.append(flag)
    return ok


class BuildExt(build_ext):
    def build_extensions(self):
        omp = openmp_flags(self.compiler)
        if omp is None and os.environ.get("FASTCONV_REQUIRE_OPENMP") and \
                not os.environ.get("FASTCONV_NO_OPENMP"):
            raise RuntimeError("fastconv: FASTCONV_REQUIRE_OPENMP is set but this compiler "
                               "does not build an OpenMP program (see openmp_flags in setup.py)")
        if omp is None:
            print("fastconv: OpenMP not available, building the sequential core")
        else:
            print("fastconv: building with OpenMP (%s)" % " ".join(omp[0]))
        is_msvc = self.compiler.compiler_type == "msvc"
        cflags = ["/O2"] if is_msvc else ["-O3", "-fno-math-errno", "-Wno-unknown-pragmas"]
        # Packing copies runs of a few dozen elements: inline vector loops beat
        # memcpy calls there, so GCC must not turn the loops into calls.
        if not is_msvc:
            cflags += accepted_flags(self.compiler, ["-fno-tree-loop-distribute-patterns"])
        cflags += shlex.split(os.environ.get("FASTCONV_EXTRA_CFLAGS", ""))
        ldflags = shlex.split(os.environ.get("FASTCONV_EXTRA_LDFLAGS", ""))
        for ext in self.extensions:
            ext.extra_compile_args = cflags + (omp[0] if omp else [])
            ext.extra_link_args = ldflags + (omp[1] if omp else [])
        super().build_extensions()


def extensions():
    from Cython.Build import cythonize

    # src/_core.c is Cython's output for src/_core.pyx, not a core source
    core = [f for f in sorted(glob.glob("src/*.c")) if os.path.basename(f) != "_core.c"]
    sources = ["src/_core.pyx"] + core + sorted(glob.glob("src/kernels/*.c"))
    # templates and headers: a change to any of them rebuilds the extension
    depends = sorted(glob.glob("src/*.h") + glob.glob("src/*.inc") + glob.glob("src/kernels/*.inc"))
    ext = Extension("fastconv._core", sources=sources, depends=depends, include_dirs=["src"])
    return cythonize([ext], compiler_directives={"language_level": 3}, quiet=True)


setup(ext_modules=extensions(), cmdclass={"build_ext": BuildExt})
