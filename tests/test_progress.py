"""The progress bar shared by the benchmark suite and the training example
(benchmarks/progress.py): plain lines when the output is not a terminal,
tqdm's bar only on a terminal."""

import importlib.util
import io
from pathlib import Path

import pytest

PROGRESS = Path(__file__).resolve().parent.parent / "benchmarks" / "progress.py"


@pytest.fixture(scope="module")
def progress():
    spec = importlib.util.spec_from_file_location("fastconv_progress_under_test", PROGRESS)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def test_plain_lines_each_tenth_and_none_redrawn(progress):
    out = io.StringIO()
    bar = progress.Progress(45, "benchmark", stream=out)
    for done in range(45):
        bar.update(done, f"entry {done}")
    bar.update(45, "done")
    bar.close()
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    # one line as the run starts, one per tenth passed, the last one once
    assert len(lines) == 11
    assert lines[0].startswith("benchmark [ 0/45]") and lines[0].endswith("entry 0")
    assert lines[-1].startswith("benchmark [45/45]") and lines[-1].endswith("done")
    assert all("left)" in line for line in lines[1:-1])


def test_every_none_writes_only_the_closing_line(progress):
    out = io.StringIO()
    bar = progress.Progress(43, "epoch  1/2", stream=out, every=None)
    for step in range(43):
        bar.update(step + 1, f"loss {step}")
    bar.close(bar.text + ", test 95.0%")
    assert out.getvalue().count("\n") == 1
    assert out.getvalue().startswith("epoch  1/2 [43/43] ")
    assert out.getvalue().rstrip().endswith("loss 42, test 95.0%")


def test_disabled_prints_nothing(progress):
    out = FakeTerminal()
    bar = progress.Progress(3, "x", stream=out, enabled=False)
    bar.update(2, "y")
    bar.close("z")
    assert out.getvalue() == ""


def test_tqdm_on_a_terminal_only(progress, monkeypatch):
    made = []

    class FakeTqdm:
        def __init__(self, **kwargs):
            made.append(kwargs)
            self.n = 0
            self.postfix = None
            self.closed = False

        def set_postfix_str(self, text, refresh=True):
            self.postfix = text

        def update(self, k):
            self.n += k

        def close(self):
            self.closed = True

    monkeypatch.setattr(progress, "_tqdm", FakeTqdm)
    out = io.StringIO()
    progress.Progress(5, stream=out).close()
    assert not made                      # not a terminal: plain lines
    term = FakeTerminal()
    bar = progress.Progress(5, "run", stream=term)
    bar.update(3, "three")
    assert bar._bar.n == 3 and bar._bar.postfix == "three"
    inner = bar._bar
    bar.close("end")
    assert made[-1]["total"] == 5 and made[-1]["file"] is term
    assert inner.closed and inner.postfix == "end"
    assert term.getvalue() == ""         # everything went through tqdm
    monkeypatch.setattr(progress, "_tqdm", None)
    term = FakeTerminal()
    bar = progress.Progress(2, "run", stream=term)
    bar.update(2)
    bar.close()
    assert term.getvalue().startswith("run [2/2]")   # no tqdm: plain lines
