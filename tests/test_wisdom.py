"""Measured planning and wisdom files.

set_planning("measure") makes the first call of a convolution on a shape
time its candidates and keep the fastest; the decisions can be saved and
loaded.  Whatever was chosen, results match the oracle, and a given choice
gives the same bits every time.
"""

import json
import warnings

import numpy as np
import pytest

import fastconv
from fastconv import _plan
from conftest import ConvCase, assert_close, conv_oracle_backward, conv_oracle_forward

CASE = ConvCase(4, 16, 12, 12, 24, 3, 3, 1, 1, 1, 1)


@pytest.fixture
def measure():
    fastconv.forget_wisdom()
    fastconv.set_planning("measure")
    yield
    fastconv.set_planning("estimate")
    fastconv.forget_wisdom()


def test_planning_modes():
    assert fastconv.get_planning() == "estimate"
    with pytest.raises(ValueError, match="estimate, measure"):
        fastconv.set_planning("exhaustive")


def test_measured_plans_are_right_and_remembered(measure, dtype):
    x, w, b, dy = CASE.inputs(dtype)
    y = fastconv.conv2d(x, w, b, CASE.stride, CASE.padding)
    ran = _plan.last_run("conv2d")
    assert ran["reason"].startswith("measured: ")
    expected, scale = conv_oracle_forward(CASE, dtype)
    assert_close(y, expected, scale, dtype, CASE.len_fwd, "conv2d measured")
    dx, dw, db = fastconv.conv2d_backward(dy, x, w, CASE.stride, CASE.padding)
    (rdx, rdw, rdb), (sdx, sdw, sdb) = conv_oracle_backward(CASE, dtype)
    assert_close(dx, rdx, sdx, dtype, CASE.len_dx, "dx measured")
    assert_close(dw, rdw, sdw, dtype, CASE.len_dw, "dw measured")
    # three decisions, and the next calls reuse them with the same bits
    assert len(_plan._wisdom) == 3
    np.testing.assert_array_equal(fastconv.conv2d(x, w, b, CASE.stride, CASE.padding), y)
    assert _plan.last_run("conv2d")["algorithm"] == ran["algorithm"]
    again = fastconv.conv2d_backward(dy, x, w, CASE.stride, CASE.padding)
    for a, e in zip(again, (dx, dw, db)):
        np.testing.assert_array_equal(a, e)
    # plan() reports the measured decision
    pl = fastconv.plan("conv2d", x.shape, w.shape, dtype=dtype, padding=1)
    assert pl.algorithm == ran["algorithm"] and pl.reason.startswith("measured: ")
    # a forced algorithm is not overridden by wisdom
    fastconv.conv2d(x, w, b, CASE.stride, CASE.padding, algorithm="gemm")
    assert _plan.last_run("conv2d")["algorithm"] == "gemm"


def test_estimate_ignores_wisdom(measure):
    x, w, b, _ = CASE.inputs(np.float32)
    fastconv.conv2d(x, w, b, 1, 1)
    fastconv.set_planning("estimate")
    fastconv.conv2d(x, w, b, 1, 1)
    assert not _plan.last_run("conv2d")["reason"].startswith("measured")


def test_wisdom_round_trip(measure, tmp_path):
    x, w, b, _ = CASE.inputs(np.float32)
    fastconv.conv2d(x, w, b, 1, 1)
    chosen = _plan.last_run("conv2d")["algorithm"]
    path = tmp_path / "wisdom.json"
    assert fastconv.export_wisdom(path) == 1
    doc = json.loads(path.read_text())
    assert doc["format"] == "fastconv-wisdom" and doc["version"] == 1
    assert doc["entries"][0]["algorithm"] == chosen
    fastconv.forget_wisdom()
    assert fastconv.import_wisdom(path) == 1
    fastconv.conv2d(x, w, b, 1, 1)
    assert _plan.last_run("conv2d")["algorithm"] == chosen


def test_wisdom_from_elsewhere_is_ignored_with_a_warning(measure, tmp_path):
    x, w, b, _ = CASE.inputs(np.float32)
    fastconv.conv2d(x, w, b, 1, 1)
    path = tmp_path / "wisdom.json"
    fastconv.export_wisdom(path)
    doc = json.loads(path.read_text())
    doc["signature"]["cpu"] = "some other CPU"
    path.write_text(json.dumps(doc))
    fastconv.forget_wisdom()
    with pytest.warns(RuntimeWarning, match="another CPU"):
        assert fastconv.import_wisdom(path) == 0
    assert _plan._wisdom == {}


@pytest.mark.parametrize("text", ["{not json", '{"format": "something else"}',
                                  '[1, 2]', None])
def test_corrupt_wisdom_raises_and_changes_nothing(measure, tmp_path, text):
    x, w, b, _ = CASE.inputs(np.float32)
    fastconv.conv2d(x, w, b, 1, 1)
    before = dict(_plan._wisdom)
    path = tmp_path / "wisdom.json"
    if text is None:   # a good file with one bad entry
        fastconv.export_wisdom(path)
        doc = json.loads(path.read_text())
        doc["entries"].append(dict(doc["entries"][0], algorithm="fft"))
        text = json.dumps(doc)
    path.write_text(text)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match="import_wisdom"):
            fastconv.import_wisdom(path)
    assert _plan._wisdom == before
