"""fastconv: fast CPU 2-D convolution and pooling for NumPy.

C kernels (SIMD microkernels chosen at run time, OpenMP threads) for
convolution (strided, zero-padded, 1x1), max and average pooling, linear
layers and ReLU, forward and backward, in float32 and float64, under a
functional API and CONV / POOL / FC / RELU modules that check the output-size
formula ``(W - F + 2P)/S + 1``.
"""

from ._version import __version__

from . import _waiting


def _import_core() -> object:
    from . import _core
    return _core


try:
    _waiting.load(_import_core)
    from . import _core  # noqa: F401
except ImportError as _exc:  # pragma: no cover - depends on the install
    raise ImportError(
        "fastconv's compiled extension (fastconv._core) is not built or could not be "
        f"loaded ({_exc}). Install fastconv with `pip install .` from its source tree, or "
        "for development run `python setup.py build_ext --inplace` in the source tree "
        "(needs a C compiler, Cython >= 3 and NumPy)."
    ) from None

from . import _config, _threadpool
from ._config import get_num_threads, set_num_threads, show_config
from ._plan import (Plan, PlanCacheInfo, algorithms, export_wisdom, forget_wisdom,
                    get_planning, import_wisdom, plan, plan_cache_clear, plan_cache_info,
                    set_planning)
from ._shapes import ShapeError
from .functional import (avg_pool2d, avg_pool2d_backward, conv2d, conv2d_backward,
                         conv_transpose2d, conv_transpose2d_backward,
                         linear, linear_backward, max_pool2d, max_pool2d_backward,
                         output_size, relu, relu_backward)
from ._one_d import (avg_pool1d, avg_pool1d_backward, conv1d, conv1d_backward, max_pool1d,
                     max_pool1d_backward)
from ._pooling import (adaptive_avg_pool2d, adaptive_avg_pool2d_backward, adaptive_max_pool2d,
                       adaptive_max_pool2d_backward, lp_pool2d, lp_pool2d_backward,
                       max_unpool2d)
from .losses import multiclass_hinge, softmax_cross_entropy
from .modules import (AdaptiveAvgPool2d, AdaptiveMaxPool2d, AvgPool2d, Conv2d,
                      ConvTranspose2d, Flatten, Linear, LPPool2d, MaxPool2d, ReLU, Sequential)
from .optim import SGD, Adam

_config._apply_env_caches()
_config._apply_env_isa()
_threadpool.register()   # threadpoolctl sees fastconv's threads, when installed

__all__ = [
    "__version__", "ShapeError", "output_size",
    "conv2d", "conv2d_backward", "conv_transpose2d", "conv_transpose2d_backward",
    "max_pool2d", "max_pool2d_backward",
    "conv1d", "conv1d_backward", "max_pool1d", "max_pool1d_backward", "avg_pool1d",
    "avg_pool1d_backward",
    "avg_pool2d", "avg_pool2d_backward", "lp_pool2d", "lp_pool2d_backward",
    "adaptive_avg_pool2d", "adaptive_avg_pool2d_backward", "adaptive_max_pool2d",
    "adaptive_max_pool2d_backward", "max_unpool2d", "linear", "linear_backward",
    "relu", "relu_backward",
    "Conv2d", "ConvTranspose2d", "MaxPool2d", "AvgPool2d", "LPPool2d", "AdaptiveAvgPool2d",
    "AdaptiveMaxPool2d", "Linear", "ReLU", "Flatten", "Sequential",
    "softmax_cross_entropy", "multiclass_hinge", "SGD", "Adam",
    "set_num_threads", "get_num_threads", "show_config",
    "algorithms", "plan", "Plan", "set_planning", "get_planning", "export_wisdom",
    "import_wisdom", "forget_wisdom", "plan_cache_info", "plan_cache_clear", "PlanCacheInfo",
]
