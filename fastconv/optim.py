"""Optimisers that update a model's ``params`` in place from its ``grads``.

``params_owner`` is anything with ``params`` and ``grads`` dicts of the same
names: a :class:`~fastconv.Sequential` or a single layer.  The dicts are read
again at every ``step()``, so parameters replaced through a layer's setter are
picked up.  The update rules are those of ``torch.optim.SGD`` and
``torch.optim.Adam`` (L2 weight decay added to the gradient, no AMSGrad).
State is kept per parameter name in the parameter's dtype.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Dict, Iterator, Optional, Sequence, Tuple

import numpy as np
from numpy.typing import NDArray

from ._typing import ParamsOwner

__all__ = ["SGD", "Adam"]


def _real(value: object, what: str, where: str, *, low: float = 0.0,
          high: Optional[float] = None, high_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{where}: {what} must be a real number, got {value!r}")
    value = float(value)
    if not math.isfinite(value) or value < low:
        raise ValueError(f"{where}: {what} must be a finite number >= {low:g}, "
                         f"got {value!r}")
    if high is not None and (value > high or (high_open and value == high)):
        bound = f"< {high:g}" if high_open else f"<= {high:g}"
        raise ValueError(f"{where}: {what} must be {bound}, got {value!r}")
    return value


class _Optimizer:
    _name = "Optimizer"

    def __init__(self, params_owner: ParamsOwner) -> None:
        if not (hasattr(params_owner, "params") and hasattr(params_owner, "grads")):
            raise TypeError(f"{self._name}: expected a model with params and grads "
                            f"(e.g. a Sequential), got {type(params_owner).__name__}")
        self.owner = params_owner
        self.state: Dict[str, Any] = {}
        self.steps = 0

    def _pairs(self) -> Iterator[Tuple[str, NDArray[Any], NDArray[Any]]]:
        params = self.owner.params
        grads = self.owner.grads
        for name, p in params.items():
            g = grads.get(name)
            if g is None:
                raise RuntimeError(f"{self._name}: no gradient for {name!r}; run "
                                   f"backward before step()")
            if g.shape != p.shape:
                raise ValueError(f"{self._name}: gradient {name!r} has shape "
                                 f"{g.shape}, parameter has {p.shape}")
            if not p.flags.writeable:
                raise ValueError(f"{self._name}: parameter {name!r} is read-only")
            yield name, p, np.asarray(g, dtype=p.dtype)

    def zero_grad(self) -> None:
        """The model's ``zero_grad()``: every gradient set to zeros.

        >>> import numpy as np, fastconv
        >>> layer = fastconv.Linear(2, 1)
        >>> y = layer(np.ones((1, 2)))
        >>> _ = layer.backward(np.ones_like(y))
        >>> opt = fastconv.SGD(layer, lr=0.1)
        >>> opt.zero_grad(); layer.grads["bias"].tolist()
        [0.0]
        """
        self.owner.zero_grad()

    def step(self) -> None:
        """One update of every parameter in place from its gradient, by the
        optimiser's rule (see the class).  RuntimeError when a parameter has
        no gradient; ValueError when a gradient's shape is not its
        parameter's.

        >>> import numpy as np, fastconv
        >>> layer = fastconv.Linear(2, 1, dtype=np.float64)
        >>> layer.weight = [[1.0, 1.0]]
        >>> opt = fastconv.SGD(layer, lr=0.5)
        >>> y = layer(np.ones((1, 2)))
        >>> _ = layer.backward(np.ones_like(y))
        >>> opt.step(); layer.weight.tolist(), layer.bias.tolist(), opt.steps
        ([[0.5, 0.5]], [-0.5], 1)
        """
        self.steps += 1
        for name, p, g in self._pairs():
            self._update(name, p, g)

    def _update(self, name: str, p: NDArray[Any],
                g: NDArray[Any]) -> None:  # pragma: no cover - subclasses override
        raise NotImplementedError


class SGD(_Optimizer):
    """Stochastic gradient descent with optional momentum and weight decay.

    As torch.optim.SGD (dampening 0)::

        g = grad + weight_decay * p
        v = g                        (first step)
        v = momentum * v + g         (later steps)
        g = g + momentum * v if nesterov else v
        p -= lr * g

    ``params_owner``: a model or layer (anything with ``params``, ``grads``
    and ``zero_grad()``); the state (momentum buffers) has each parameter's
    shape and dtype.

    >>> import numpy as np, fastconv
    >>> layer = fastconv.Linear(2, 1, dtype=np.float64)
    >>> layer.weight = [[1.0, 1.0]]
    >>> opt = fastconv.SGD(layer, lr=0.1, momentum=0.9)
    >>> opt
    SGD(lr=0.1, momentum=0.9, weight_decay=0)
    >>> for _ in range(2):
    ...     y = layer(np.ones((1, 2))); _ = layer.backward(np.ones_like(y)); opt.step()
    >>> np.round(layer.weight, 6).tolist()   # steps of 0.1, then 0.1 * (0.9 + 1)
    [[0.71, 0.71]]
    """

    _name = "SGD"

    def __init__(self, params_owner: ParamsOwner, lr: float, momentum: float = 0.0,
                 weight_decay: float = 0.0, *, nesterov: bool = False) -> None:
        super().__init__(params_owner)
        self.lr = _real(lr, "lr", "SGD")
        self.momentum = _real(momentum, "momentum", "SGD")
        self.weight_decay = _real(weight_decay, "weight_decay", "SGD")
        self.nesterov = bool(nesterov)
        if self.nesterov and self.momentum == 0:
            raise ValueError("SGD: nesterov=True needs momentum > 0")

    def __repr__(self) -> str:
        return (f"SGD(lr={self.lr:g}, momentum={self.momentum:g}, "
                f"weight_decay={self.weight_decay:g}"
                f"{', nesterov=True' if self.nesterov else ''})")

    def _update(self, name: str, p: NDArray[Any], g: NDArray[Any]) -> None:
        if self.weight_decay:
            g = g + p.dtype.type(self.weight_decay) * p
        if self.momentum:
            buf = self.state.get(name)
            if buf is None:
                buf = self.state[name] = g.copy()
            else:
                buf *= p.dtype.type(self.momentum)
                buf += g
            g = g + p.dtype.type(self.momentum) * buf if self.nesterov else buf
        p -= p.dtype.type(self.lr) * g


class Adam(_Optimizer):
    """Adam (Kingma & Ba) with bias correction, as torch.optim.Adam::

        g = grad + weight_decay * p
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        p -= lr / (1 - b1**t) * m / (sqrt(v) / sqrt(1 - b2**t) + eps)

    ``params_owner``: a model or layer (anything with ``params``, ``grads``
    and ``zero_grad()``); the moments m and v have each parameter's shape and
    dtype.

    >>> import numpy as np, fastconv
    >>> layer = fastconv.Linear(2, 1, dtype=np.float64)
    >>> layer.weight = [[1.0, -1.0]]
    >>> opt = fastconv.Adam(layer, lr=0.01)
    >>> y = layer(np.ones((1, 2))); _ = layer.backward(np.ones_like(y)); opt.step()
    >>> np.round(layer.weight, 6).tolist()   # the first step moves each by about lr
    [[0.99, -1.01]]
    """

    _name = "Adam"

    def __init__(self, params_owner: ParamsOwner, lr: float = 1e-3,
                 betas: Sequence[float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0) -> None:
        super().__init__(params_owner)
        self.lr = _real(lr, "lr", "Adam")
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"Adam: betas must be a pair (beta1, beta2), got "
                             f"{betas!r}")
        self.betas = (_real(betas[0], "betas[0]", "Adam", high=1.0, high_open=True),
                      _real(betas[1], "betas[1]", "Adam", high=1.0, high_open=True))
        self.eps = _real(eps, "eps", "Adam")
        self.weight_decay = _real(weight_decay, "weight_decay", "Adam")

    def __repr__(self) -> str:
        return (f"Adam(lr={self.lr:g}, betas=({self.betas[0]:g}, {self.betas[1]:g}), "
                f"eps={self.eps:g}, weight_decay={self.weight_decay:g})")

    def _update(self, name: str, p: NDArray[Any], g: NDArray[Any]) -> None:
        b1, b2 = self.betas
        t = self.steps
        st = self.state.get(name)
        if st is None:
            st = self.state[name] = {"m": np.zeros_like(p), "v": np.zeros_like(p)}
        if self.weight_decay:
            g = g + p.dtype.type(self.weight_decay) * p
        m, v = st["m"], st["v"]
        m *= p.dtype.type(b1)
        m += p.dtype.type(1 - b1) * g
        v *= p.dtype.type(b2)
        v += p.dtype.type(1 - b2) * (g * g)
        step_size = self.lr / (1 - b1 ** t)
        denom = np.sqrt(v)
        denom /= p.dtype.type(math.sqrt(1 - b2 ** t))
        denom += p.dtype.type(self.eps)
        p -= p.dtype.type(step_size) * (m / denom)
