"""fastconv's thread pool as threadpoolctl sees it.

threadpoolctl finds thread pools by the shared libraries a process has
loaded, and lets a package describe its own with a ``LibController``
subclass passed to ``threadpoolctl.register``.  fastconv's is its compiled
extension, ``fastconv/_core*.so`` (``.pyd`` on Windows); the controller reads
and sets the count through :func:`fastconv.get_num_threads` and
:func:`fastconv.set_num_threads`, so that::

    threadpoolctl.threadpool_info()          # lists user_api "fastconv"
    with threadpoolctl.threadpool_limits(1):                        # every pool
        ...
    with threadpoolctl.threadpool_limits(2, user_api="fastconv"):   # fastconv's alone
        ...

limit fastconv's calls, and leave its setting as it was on exit.

``import fastconv`` registers the controller when threadpoolctl can be
imported (it adds about 2 ms to fastconv's 150); :func:`register` does it
by hand, for a threadpoolctl installed after fastconv was imported.
threadpoolctl 3.5 and later have ``register``; with an older one nothing is
registered.
"""

from __future__ import annotations

import os
import threading
from typing import Any, List, Optional, Tuple

from . import _config, _core
from ._version import __version__

__all__ = ["register"]

USER_API = "fastconv"

_lock = threading.Lock()
_registered = False

# What the limits that this controller set replaced, innermost last:
# (fastconv's setting before, the count set, get_num_threads() before).
# threadpoolctl caches its controllers and shows every attribute of one in
# threadpool_info(), so the record lives here rather than on the instance.
_limits: List[Tuple[Optional[int], int, int]] = []


def _set_num_threads(n: int) -> None:
    """Limit fastconv to ``n`` threads for threadpoolctl, or undo the limit.

    threadpoolctl leaves a ``threadpool_limits`` block by setting every pool
    back to the count it reported on entry.  fastconv's count may be a
    default that follows OpenMP (``set_num_threads(None)``) or
    FASTCONV_NUM_THREADS; setting that number explicitly would pin it, so a
    limit that this controller set is undone by restoring the setting it
    replaced, and a count that fastconv already runs at by default is left to
    that default.  (A block that limits OpenMP alone and is left while OpenMP
    is still limited may find fastconv's default below the count it reported,
    and sets that count: the same number, from then on pinned.)

    >>> import fastconv, fastconv._threadpool as tp
    >>> before = fastconv.get_num_threads()
    >>> tp._set_num_threads(1); fastconv.get_num_threads()
    1
    >>> tp._set_num_threads(before); fastconv.get_num_threads() == before
    True
    """
    with _lock:
        setting = _config._num_threads
        if _limits and setting == _limits[-1][1] and n == _limits[-1][2]:
            _config.set_num_threads(_limits.pop()[0])
            return
        if setting == n:
            return
        current = _config._requested_threads()
        if setting is None and n == current:
            return
        _limits.append((setting, n, current))
        _config.set_num_threads(n)


def _controller_class(LibController: Any) -> Any:
    """A threadpoolctl controller class for fastconv's extension, derived
    from threadpoolctl's ``LibController`` (passed in: threadpoolctl is
    imported only when registering)."""
    core_path = os.path.realpath(_core.__file__)

    class FastconvController(LibController):  # type: ignore[misc]
        """fastconv's OpenMP thread count, as threadpoolctl controls it."""

        user_api = USER_API
        internal_api = "fastconv"
        # Cython names the module's file after it: _core.cpython-311-x86_64-linux-gnu.so,
        # _core.cp311-win_amd64.pyd (threadpoolctl compares lower-cased names).
        filename_prefixes = ("_core",)

        def get_version(self) -> str:
            # Other packages have a _core extension too: threadpoolctl skips a
            # library whose controller raises OSError while it is built.
            if os.path.realpath(self.filepath) != core_path:
                raise OSError(f"{self.filepath} is not fastconv's extension")
            return __version__

        def set_additional_attributes(self) -> None:
            self.openmp = bool(_core.openmp_enabled())

        def get_num_threads(self) -> int:
            # the setting, which a block's exit restores (a sequential build
            # runs one thread whatever it is)
            return _config._requested_threads()

        def set_num_threads(self, num_threads: int) -> None:
            _set_num_threads(num_threads)

    return FastconvController


def register() -> bool:
    """Register fastconv's controller with threadpoolctl; True when it is
    registered (now or before), False when threadpoolctl is missing or too
    old (< 3.5) to take one.

    >>> import fastconv._threadpool
    >>> fastconv._threadpool.register() in (True, False)
    True
    """
    global _registered
    with _lock:
        if _registered:
            return True
        try:
            import threadpoolctl
        except ImportError:
            return False
        base = getattr(threadpoolctl, "LibController", None)
        add = getattr(threadpoolctl, "register", None)
        if base is None or add is None:
            return False
        add(_controller_class(base))
        _registered = True
        return True
