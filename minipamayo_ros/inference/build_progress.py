"""Visible progress for long TensorRT engine builds (10+ minutes on an Orin Nano).

TensorRT reports nested phases through ``IProgressMonitor`` (``phase_start(name, parent, steps)``,
``step_complete(name, step) -> keep going?``, ``phase_finish(name)``), possibly from several
threads. :class:`BuildProgress` turns that into a throttled log line such as

    [engine build 74 s] Building engine 2/3 > Tactic selection 41/118 (35%)

and lets a caller cancel the build (``cancel()`` -> the next ``step_complete`` returns False). A
process asked to stop cancels every build at its next step (:data:`STOP_BUILDS`, set by
``nodes.node_main`` when SIGINT/SIGTERM arrives): the build runs in native code, where the signal's
Python handler cannot run until it returns. Pure Python; the TensorRT adapter lives in
``tensorrt_backend.py``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

#: set once this process is asked to stop: every build in progress ends at its next step
STOP_BUILDS = threading.Event()


@dataclass
class _Phase:
    name: str
    parent: str | None
    steps: int
    done: int = 0


class BuildProgress:
    """Tracks the phase tree; logs on new top-level phases and at most every ``interval_s``."""

    def __init__(self, log: Callable[[str], Any] = print, interval_s: float = 5.0,
                 clock: Callable[[], float] = time.monotonic, stop: threading.Event = STOP_BUILDS) -> None:
        self._log = log
        self._interval = interval_s
        self._clock = clock
        self._t0 = clock()
        self._last_log = -float("inf")
        self._phases: dict[str, _Phase] = {}
        self._order: list[str] = []  # start order of active phases
        self._lock = threading.Lock()
        self._cancelled = False
        self._stop = stop
        self.lines_logged = 0

    def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
        with self._lock:
            self._phases[phase_name] = _Phase(phase_name, parent_phase or None, max(1, int(num_steps)))
            self._order.append(phase_name)
            self._maybe_log(force=parent_phase in (None, ""))

    def step_complete(self, phase_name: str, step: int) -> bool:
        """Record ``step`` (0-based) done; False asks TensorRT to cancel the build."""
        with self._lock:
            p = self._phases.get(phase_name)
            if p is not None:
                p.done = max(p.done, int(step) + 1)
            self._maybe_log(force=False)
            return not (self._cancelled or self._stop.is_set())

    def phase_finish(self, phase_name: str) -> None:
        with self._lock:
            self._phases.pop(phase_name, None)
            if phase_name in self._order:
                self._order.remove(phase_name)

    def cancel(self) -> None:
        """Make the next step_complete return False (TensorRT then aborts the build)."""
        self._cancelled = True

    @property
    def elapsed_s(self) -> float:
        return self._clock() - self._t0

    def render(self) -> str:
        """The deepest active chain of phases, outermost first."""
        chain: list[_Phase] = []
        if self._order:
            p: _Phase | None = self._phases.get(self._order[-1])
            while p is not None and len(chain) < 8:
                chain.append(p)
                p = self._phases.get(p.parent) if p.parent else None
        parts = [f"{p.name} {min(p.done, p.steps)}/{p.steps}" for p in reversed(chain)]
        if chain:
            inner = chain[0]
            parts[-1] += f" ({100 * min(inner.done, inner.steps) // inner.steps}%)"
        return f"[engine build {self.elapsed_s:.0f} s] " + (" > ".join(parts) or "starting")

    def _maybe_log(self, force: bool) -> None:
        now = self._clock()
        if force or now - self._last_log >= self._interval:
            self._last_log = now
            self.lines_logged += 1
            self._log(self.render())
