"""A progress line for long replays: done/total, frames per second, ETA.

One updating line on a terminal, one line per update in a log file (CI), at most every
``interval_s`` seconds, on stderr so that stdout stays machine-readable.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO


class Progress:
    def __init__(
        self,
        total: int,
        label: str = "replay",
        unit: str = "frames",
        interval_s: float = 1.0,
        stream: TextIO | None = None,
        enabled: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total = max(0, int(total))
        self.label = label
        self.unit = unit
        self.interval_s = interval_s
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.clock = clock
        self.done = 0
        self._t0 = clock()
        self._last = -float("inf")
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())

    def line(self) -> str:
        elapsed = max(self.clock() - self._t0, 1e-9)
        rate = self.done / elapsed
        pct = f" ({100.0 * self.done / self.total:3.0f} %)" if self.total else ""
        eta = f"ETA {max(0.0, (self.total - self.done) / rate):.0f} s" if self.total and rate > 0 else "ETA ?"
        return (
            f"[{self.label}] {self.done}/{self.total or '?'} {self.unit}{pct}  "
            f"{rate:.1f} {self.unit}/s  {eta}"
        )

    def update(self, n: int = 1) -> None:
        self.done += n
        now = self.clock()
        if self.enabled and now - self._last >= self.interval_s:
            self._last = now
            self._emit()

    def _emit(self) -> None:
        text = self.line()
        print(f"\r{text}" if self._tty else text, end="" if self._tty else "\n", file=self.stream, flush=True)

    def close(self) -> None:
        """The final line: the total is now known exactly (it was an estimate for a slice of a bag)."""
        self.total = self.done
        if self.enabled:
            self._emit()
            if self._tty:
                print(file=self.stream)
