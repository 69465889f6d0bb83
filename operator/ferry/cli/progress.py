"""A progress bar for long CLI work, drawn on a terminal and reduced to a few lines elsewhere."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class ProgressBar:
    def __init__(self, label: str, stream: TextIO = sys.stderr, width: int = 30) -> None:
        self.label = label
        self.stream = stream
        self.width = width
        self.interactive = stream.isatty()
        self.started = time.monotonic()
        self._last_tenth = -1

    def __call__(self, done: int, total: int) -> None:
        fraction = done / total if total else 1.0
        elapsed = time.monotonic() - self.started
        if self.interactive:
            filled = int(fraction * self.width)
            bar = "#" * filled + "-" * (self.width - filled)
            self.stream.write(f"\r{self.label} [{bar}] {done}/{total} {elapsed:5.0f}s")
            if done >= total:
                self.stream.write("\n")
        elif (tenth := int(fraction * 10)) > self._last_tenth:
            # Logs (CI) get a line per tenth, not a line per package.
            self._last_tenth = tenth
            self.stream.write(f"{self.label}: {tenth * 10}% ({done}/{total}, {elapsed:.0f}s)\n")
        self.stream.flush()
