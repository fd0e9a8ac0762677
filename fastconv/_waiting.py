"""How the OpenMP threads of fastconv's calls wait for each other.

A thread that reaches the end of a parallel region first spins, by
default, until the rest of the team arrives.  When another process holds
one of the cores, a thread of the team may be queued behind it: the threads
that spin then keep their cores busy doing nothing while the late one waits
for a core, and a call can take tens of times as long as on one thread.
Passive waiting (the threads sleep and the late one can run on a freed
core) removes that collapse, for a few microseconds of wake-up per region
on an idle machine (docs/robustness.md has the figures).

The OpenMP runtime reads its wait policy once, when it is loaded, so it is
chosen here, just before the compiled core loads it:

- ``FASTCONV_WAIT_POLICY=passive`` (the default): ``OMP_WAIT_POLICY=PASSIVE``
  for the runtime fastconv loads, unless the user set ``OMP_WAIT_POLICY`` or
  ``GOMP_SPINCOUNT`` (theirs wins).  The variable is removed again after the
  load, so child processes and runtimes loaded later do not inherit it.
- ``FASTCONV_WAIT_POLICY=openmp``: the runtime's own default (spinning).

An OpenMP runtime that the process loaded before fastconv (the same
library, shared) keeps the policy it started with.
"""

from __future__ import annotations

import os
from typing import Callable, Dict, Optional, Set, TypeVar

_T = TypeVar("_T")

#: What happened at import: "passive", "user" (OMP_WAIT_POLICY or
#: GOMP_SPINCOUNT was set), "openmp" (FASTCONV_WAIT_POLICY=openmp) or
#: "preloaded" (an OpenMP runtime was loaded before fastconv).
state: Dict[str, str] = {"policy": "unknown"}


def _runtimes() -> Optional[Set[str]]:
    """The OpenMP runtime libraries mapped into this process (Linux; None
    where that cannot be told)."""
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    return {line.split()[-1] for line in lines
            if any(name in line for name in ("libgomp", "libomp", "libiomp"))}


def load(import_core: Callable[[], _T]) -> _T:
    """Run ``import_core`` (which loads the OpenMP runtime) with the wait
    policy chosen as the module docstring says."""
    choice = os.environ.get("FASTCONV_WAIT_POLICY", "passive").strip().lower() or "passive"
    if choice not in ("passive", "openmp"):
        raise ValueError(f"FASTCONV_WAIT_POLICY={choice!r}: use 'passive' (the default) or "
                         f"'openmp' (the OpenMP runtime's own policy)")
    if choice == "openmp":
        state["policy"] = "openmp"
        return import_core()
    if "OMP_WAIT_POLICY" in os.environ or "GOMP_SPINCOUNT" in os.environ:
        state["policy"] = "user"
        return import_core()
    before = _runtimes()
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    try:
        core = import_core()
    finally:
        del os.environ["OMP_WAIT_POLICY"]
    after = _runtimes()
    # the core's runtime read the setting if it was loaded just now
    fresh = before is None or after is None or bool(after - before) or not after
    state["policy"] = "passive" if fresh else "preloaded"
    return core


def describe() -> str:
    """One line for show_config."""
    policy = state["policy"]
    if policy == "passive":
        return "passive (threads sleep while they wait; FASTCONV_WAIT_POLICY)"
    if policy == "user":
        env = {k: os.environ.get(k) for k in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")
               if os.environ.get(k) is not None}
        return "the user's " + ", ".join(f"{k}={v}" for k, v in env.items())
    if policy == "openmp":
        return "the OpenMP runtime's default (FASTCONV_WAIT_POLICY=openmp)"
    if policy == "preloaded":
        return "the OpenMP runtime's, loaded before fastconv"
    return policy
