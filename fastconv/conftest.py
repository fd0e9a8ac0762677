"""pytest's settings for the docstring examples of fastconv's modules.

    pytest --doctest-modules fastconv          # the source tree, built in place
    pytest --doctest-modules --pyargs fastconv # the installed package

``--doctest-modules`` imports every module of the package, and the bridges
to other frameworks (``fastconv.torch``, ``fastconv.jax``, ``fastconv.dask``)
need theirs, which fastconv itself does not: a bridge whose framework is not
installed is left out.
"""

import importlib.util

_BRIDGES = {"torch.py": "torch", "jax.py": "jax", "dask.py": "dask"}

collect_ignore = [module for module, framework in _BRIDGES.items()
                  if importlib.util.find_spec(framework) is None]
