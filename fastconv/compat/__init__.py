"""Drop-in replacements for the layer functions of existing NumPy code.

Submodules:

``fastconv.compat.cs231n``
    The conv / pool / affine / ReLU layer functions, their layer_utils
    sandwiches and the two losses of Stanford CS231n's assignments, with the
    same names, signatures and return values, computed by fastconv's kernels::

        from fastconv.compat.cs231n import *

The submodules are imported on demand so that ``import fastconv`` does not pay
for them.
"""

from types import ModuleType

__all__ = ["cs231n"]


def __getattr__(name: str) -> ModuleType:
    # Lazy so that `fastconv.compat.cs231n` works after `import fastconv.compat`
    # without every program importing every compatibility layer.
    if name == "cs231n":
        import importlib
        return importlib.import_module(".cs231n", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
