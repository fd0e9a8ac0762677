"""The progress bar of the benchmark suite and of examples/train_digits.py.

On a terminal it is tqdm's bar, where tqdm is installed (``pip install
".[progress]"``). Otherwise, and whenever the output is not a terminal (a CI
log, a file, a pipe), it prints plain lines that nothing redraws: one each
time the run passes another ``every`` of its total (a tenth by default), or
with ``every=None`` only the last one, when the bar is closed.

    bar = Progress(len(tasks), "benchmark")
    for i, task in enumerate(tasks):
        bar.update(i, task.name)        # what runs next
        ...
    bar.close("done")

``update`` takes the number of steps done so far (not an increment) and a
short text shown after the count.
"""

import sys
import time

try:
    from tqdm import tqdm as _tqdm
except ImportError:  # the optional extra `progress` is not installed
    _tqdm = None


def _is_terminal(stream):
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


class Progress:
    """A progress bar over ``total`` steps, written to ``stream`` (stderr by
    default): tqdm's on a terminal where tqdm is installed, plain lines
    otherwise (see the module's docstring).

    ``plain=True`` asks for the plain lines even on a terminal; ``enabled=False``
    prints nothing at all.
    """

    def __init__(self, total, desc="", *, stream=None, every=0.1, plain=False,
                 enabled=True):
        self.total = max(1, int(total))
        self.desc = desc
        self.stream = sys.stderr if stream is None else stream
        self.every = every
        self.enabled = enabled
        self.start = time.perf_counter()
        self.done = 0
        self.text = ""
        self._next_line = 0.0      # the fraction at which the next plain line is due
        self._written = None       # (done, text) of the last plain line
        self._bar = None
        if enabled and not plain and _tqdm is not None and _is_terminal(self.stream):
            self._bar = _tqdm(total=self.total, desc=desc or None, file=self.stream,
                              leave=True, dynamic_ncols=True)

    def update(self, done, text=""):
        """``done`` steps of ``total`` are finished; ``text`` says what runs now
        (or how the run is going)."""
        self.done, self.text = int(done), text
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.set_postfix_str(text, refresh=False)
            self._bar.update(self.done - self._bar.n)
            return
        if self.every is not None and self.done / self.total >= self._next_line:
            self._write_line()
            # the next line is due one `every` further on, counted from here
            step = self.every
            self._next_line = (int(self.done / self.total / step) + 1) * step

    def close(self, text=None):
        """Ends the bar; ``text``, if given, replaces the last update's text."""
        if text is not None:
            self.text = text
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.set_postfix_str(self.text, refresh=False)
            self._bar.close()
            self._bar = None
        elif self._written != (self.done, self.text):
            # the last line, unless the last update wrote just that
            self._write_line()
        self.enabled = False

    def _write_line(self):
        elapsed = time.perf_counter() - self.start
        frac = self.done / self.total
        width = len(str(self.total))
        parts = [self.desc] if self.desc else []
        parts.append(f"[{self.done:{width}d}/{self.total}]")
        parts.append(f"{elapsed:.1f}s")
        if 0 < frac < 1:
            parts.append(f"(~{elapsed / frac - elapsed:.0f}s left)")
        if self.text:
            parts.append(self.text)
        self._written = (self.done, self.text)
        self.stream.write(" ".join(parts) + "\n")
        self.stream.flush()
