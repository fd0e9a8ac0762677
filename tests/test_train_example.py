"""A shortened run of examples/train_digits.py, so the example cannot rot."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("sklearn")

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "train_digits.py"


@pytest.fixture(scope="module")
def example():
    spec = importlib.util.spec_from_file_location("train_digits", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_short_run_learns_and_saves_picture(example, tmp_path, capsys):
    out = tmp_path / "pictures" / "digits.png"
    result = example.main(["--epochs", "3", "--seed", "0", "--quiet", "--out", str(out)])
    # Chance is 10%; three epochs already get far beyond it.
    assert result["test_accuracy"] > 0.8
    hist = result["history"]
    assert len(hist["epoch_loss"]) == 3
    assert hist["epoch_loss"][-1] < hist["epoch_loss"][0] < np.log(10) * 1.5
    text = capsys.readouterr().out
    assert text.startswith("test accuracy ")
    assert "epoch" not in text  # --quiet prints the result line only
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert result["out"] is None
    else:
        assert Path(result["out"]) == out
        assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_verbose_output_and_reproducibility(example, capsys):
    a = example.main(["--epochs", "1", "--seed", "5", "--no-plot"])
    text = capsys.readouterr().out
    assert "Conv2d(1, 16, kernel_size=3, padding=1)" in text   # the summary
    assert "total" in text
    assert "epoch  1/1 [" in text and "loss" in text and "acc" in text
    assert a["out"] is None
    b = example.main(["--epochs", "1", "--seed", "5", "--no-plot", "--quiet"])
    capsys.readouterr()
    # Same seed, same split, initialisation and batches: the same losses.
    np.testing.assert_allclose(a["history"]["batch_loss"], b["history"]["batch_loss"],
                               rtol=1e-6)
    assert a["test_accuracy"] == pytest.approx(b["test_accuracy"], abs=1 / 450)


def test_bad_arguments_exit(example):
    with pytest.raises(SystemExit):
        example.main(["--epochs", "0"])
