"""pytest's settings for the examples in fastconv's docstrings, which
``pytest --doctest-modules fastconv`` (the source tree) and ``pytest
--doctest-modules --pyargs fastconv`` (an installed package) run.

A module that bridges to an optional framework imports it at the top; where
that framework is not installed, the module is left out of the collection
instead of failing it.
"""

from __future__ import annotations

import importlib.util
from typing import Dict, List

# module file in this package -> the framework it needs
OPTIONAL_FRAMEWORKS: Dict[str, str] = {
    "jax.py": "jax",
    "dask.py": "dask",
    "torch.py": "torch",
}


def _missing(framework: str) -> bool:
    try:
        return importlib.util.find_spec(framework) is None
    except (ImportError, ValueError):
        return True


collect_ignore: List[str] = [name for name, framework in OPTIONAL_FRAMEWORKS.items()
                             if _missing(framework)]
