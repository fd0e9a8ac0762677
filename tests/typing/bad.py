"""Wrong uses of fastconv's public API: ``mypy --strict`` must report an error
on each line marked ``# E: <code>``, with that error code, and nowhere else
(tests/test_typing.py checks both).  Not meant to run."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

import fastconv
import fastconv.compat.cs231n as cs

x = np.ones((2, 3, 8, 8), np.float32)
w = np.ones((4, 3, 3, 3), np.float32)

# functional: argument types
fastconv.conv2d(x, w, stride="2")  # E: arg-type
fastconv.conv2d(x, w, padding=1.5)  # E: arg-type
fastconv.conv2d(x, w, stride=(1, 1, 1))  # E: arg-type
fastconv.conv2d(x, w, activation="tanh")  # E: arg-type
fastconv.conv2d(x, w, algorithm=3)  # E: arg-type
fastconv.conv2d(x, w, strict="no")  # E: arg-type
fastconv.conv2d_backward(x, x, w, algorithm=["gemm", "gemm"])  # E: call-overload
fastconv.max_pool2d(x, "2")  # E: call-overload
fastconv.max_pool2d(x, 2, return_indices=1)  # E: call-overload
fastconv.max_pool2d_backward(x, x, 2, indices=[0, 1])  # E: arg-type
fastconv.avg_pool2d(x, 2, count_include_pad="no")  # E: arg-type
fastconv.avg_pool2d_backward(x, "2388", 2)  # E: arg-type
fastconv.linear(x, w, activation=True)  # E: arg-type
fastconv.relu_backward(x)  # E: call-arg
fastconv.output_size(32, 5, 1.5)  # E: arg-type

# functional: what comes back
n: int = fastconv.conv2d(x, w)  # E: assignment
idx: NDArray[np.int64] = fastconv.max_pool2d(x, 2)  # E: assignment
y: NDArray[np.floating[Any]] = fastconv.max_pool2d(x, 2, return_indices=True)  # E: assignment
fastconv.conv2d_backward(x, x, w, need_dx=False)[0].shape  # E: attr-defined
s: str = fastconv.output_size(32, 5)  # E: assignment
t: tuple[int, int] = fastconv.linear_backward(x, x, w)  # E: assignment

# configuration and plans
fastconv.set_num_threads("4")  # E: arg-type
threads: str = fastconv.get_num_threads()  # E: assignment
fastconv.plan("conv2d", (1, 3, 8, 8), (4, 3, 3, 3), dtype="float32", thread=1)  # E: call-arg
fastconv.plan("conv2d", (1, 3, 8, 8), (4, 3, 3, 3), dtype="float32", threads="1")  # E: arg-type
fastconv.plan("conv2d", "1388", dtype="float32")  # E: arg-type
fastconv.plan("max_pool2d", (1, 3, 8, 8))  # E: call-arg
workspace: str = fastconv.plan("linear", (1, 4), (2, 4), dtype="float32").workspace_bytes  # E: assignment

# layers
fastconv.Conv2d(3, 8, "3")  # E: arg-type
fastconv.Conv2d(3.0, 8, 3)  # E: arg-type
fastconv.Conv2d(3, 8, 3, seed="0")  # E: arg-type
fastconv.MaxPool2d(2, strict="yes")  # E: arg-type
fastconv.Linear(10, 2, bias=None)  # E: arg-type
fastconv.Sequential([fastconv.ReLU()])  # E: arg-type
model = fastconv.Sequential(fastconv.Flatten(), fastconv.Linear(3 * 8 * 8, 2))
model.params = {}  # E: misc
out: int = model(x)  # E: assignment
model.summary((3, 8, 8), file=True)  # E: arg-type
model[0].weight  # E: attr-defined
model["0"]  # E: call-overload
layer_params: dict[str, int] = model.params  # E: assignment
bias: NDArray[np.floating[Any]] = fastconv.Linear(2, 2).bias  # E: assignment

# losses and optimisers
loss: str = fastconv.softmax_cross_entropy(x, [0, 1])[0]  # E: assignment
fastconv.multiclass_hinge(x, [0, 1], margin="1")  # E: arg-type
fastconv.SGD(model, lr="0.1")  # E: arg-type
fastconv.SGD(object(), lr=0.1)  # E: arg-type
fastconv.Adam(model).step(1)  # E: call-arg

# the CS231n layer functions
cs.conv_forward_fast(x, w, np.zeros(4), {"stride": "1", "pad": 0})  # E: dict-item
pool_out, pool_cache = cs.max_pool_forward_fast(x, {"pool_height": 2, "pool_width": 2, "stride": 2})
cs.conv_backward_fast(pool_out, pool_cache)  # E: arg-type
dx: NDArray[np.floating[Any]] = cs.conv_backward_naive(x, (x, w, w, {"stride": 1, "pad": 0}))  # E: assignment
