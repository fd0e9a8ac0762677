"""The geometry the functional ops hand to the C core, and the layer named by
an error raised during a layer's call."""

import numpy as np
import pytest

import fastconv
import fastconv.modules as nn
from fastconv._shapes import ConvGeometry, PoolGeometry, conv_geometry, pool_geometry


def test_geometry_fields_follow_the_c_structs():
    # src/_core.pyx unpacks the tuples positionally into fc_conv_geom and
    # fc_pool_geom (src/fc_core.h).
    assert ConvGeometry._fields == ("N", "C", "H", "W", "K", "FH", "FW", "SH", "SW",
                                    "PH", "PW", "H2", "W2", "DH", "DW", "G")
    assert PoolGeometry._fields == ("N", "C", "H", "W", "KH", "KW", "SH", "SW",
                                    "PH", "PW", "H2", "W2")


def test_conv_geometry():
    g = conv_geometry((2, 3, 9, 8), (4, 3, 3, 2), (2, 1), 1, strict=False, where="t")
    assert isinstance(g, tuple)
    assert g == (2, 3, 9, 8, 4, 3, 2, 2, 1, 1, 1, 5, 9, 1, 1, 1)
    assert g.out_shape == (2, 4, 5, 9)
    assert conv_geometry((2, 3, 10, 8), (4, 3, 3, 2), (2, 1), 1, strict=False,
                         where="t").H2 == 5
    with pytest.raises(fastconv.ShapeError, match=r"^t: height .* = 5\.5 is not an integer"):
        conv_geometry((2, 3, 10, 8), (4, 3, 3, 2), (2, 1), 1, strict=True, where="t")


def test_pool_geometry():
    g = pool_geometry((1, 2, 7, 7), 3, 2, 1, strict=True, where="t")
    assert g == (1, 2, 7, 7, 3, 3, 2, 2, 1, 1, 4, 4)
    assert g.out_shape == (1, 2, 4, 4)
    assert pool_geometry((1, 2, 6, 4), (2, 1), None, 0, strict=True, where="t")[6:8] == (2, 1)


_LONG_DOUBLE = pytest.mark.skipif(np.dtype(np.longdouble).itemsize <= 8,
                                  reason="long double is float64 here")


@pytest.mark.parametrize("layer, x, exc, start", [
    (nn.Conv2d(1, 1, 3, stride=2), np.zeros((1, 1, 8, 8)), fastconv.ShapeError,
     "Conv2d(1, 1, kernel_size=3, stride=2): height"),
    (nn.MaxPool2d(3, stride=2), np.zeros((1, 1, 8, 8)), fastconv.ShapeError,
     "MaxPool2d(kernel_size=3, stride=2): height"),
    (nn.AvgPool2d(2), np.zeros((1, 1, 0, 4)), ValueError,
     "AvgPool2d(kernel_size=2): x has height 0"),
    pytest.param(nn.MaxPool2d(2), np.zeros((1, 1, 4, 4), np.longdouble), TypeError,
                 "MaxPool2d(kernel_size=2): x has dtype", marks=_LONG_DOUBLE),
    pytest.param(nn.ReLU(), np.zeros(3, np.longdouble), TypeError,
                 "ReLU(): x has dtype", marks=_LONG_DOUBLE),
])
def test_errors_during_a_layers_call_name_the_layer(layer, x, exc, start):
    with pytest.raises(exc) as info:
        layer(x)
    assert str(info.value).startswith(start)
    with pytest.raises(exc) as info:
        nn.Sequential(layer)(x)
    assert str(info.value).startswith("Sequential[0] " + start)
