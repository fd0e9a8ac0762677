"""The progress bar of a benchmark run."""

import os
import sys
import time

class Progress:
    """A one-line progress bar on stderr (a line per 10% when not a terminal)."""

    def __init__(self, total, stream=sys.stderr, width=28):
        self.total = max(1, total)
        self.stream = stream
        self.width = width
        self.start = time.perf_counter()
        self.tty = hasattr(stream, "isatty") and stream.isatty()
        self.last_decile = -1

    def update(self, done, label=""):
        frac = done / self.total
        elapsed = time.perf_counter() - self.start
        eta = elapsed / frac - elapsed if frac > 0 else 0.0
        filled = int(round(self.width * frac))
        bar = "#" * filled + "." * (self.width - filled)
        text = (f"[{bar}] {done}/{self.total} {elapsed:5.0f}s"
                f"{f' (~{eta:.0f}s left)' if 0 < frac < 1 else ''}  {label}")
        if self.tty:
            cols = 100
            try:
                cols = os.get_terminal_size(self.stream.fileno()).columns
            except (OSError, ValueError):
                pass
            self.stream.write("\r" + text[:cols - 1].ljust(cols - 1))
            self.stream.flush()
        else:
            decile = int(frac * 10)
            if decile != self.last_decile:
                self.last_decile = decile
                self.stream.write(text + "\n")
                self.stream.flush()

    def close(self):
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()
