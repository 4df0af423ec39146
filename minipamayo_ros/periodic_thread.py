"""A call every ``period`` seconds of the steady clock, in its own thread: the follower's tick
without rclpy's executor (ROS-free).

Why (docs/latency.md, "CPU per node"): rclpy's executor rebuilds its whole wait set in Python at
every wake-up (150-220 us on the 2-core development box, and it wakes twice per callback); at
100 Hz that was about 40 % of the follower's CPU, more than its control law. A thread that sleeps to
absolute deadlines of ``time.monotonic()`` (``time.sleep`` is ``clock_nanosleep`` on Linux) costs one
wake-up per tick and nothing else. The executor keeps the node's slow work (diagnostics, graph
checks, parameter services), which shares state with the tick under the owner's lock.

Deadlines are absolute, so the rate does not drift. A tick that ends after the next deadline is
followed at once by the next one; deadlines missed altogether are skipped, not caught up in a
burst (a controller wants the newest sample, not a backlog; the owner's loop timing counts the gap).
An exception escaping ``tick`` ends the thread and is kept in :attr:`PeriodicThread.failure` for the
owner to raise where the process handles errors (the node's main loop: ``node_main.run_node``).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable


class PeriodicThread:
    """Calls ``tick()`` every ``period`` [s] (steady clock) from :meth:`start` until :meth:`stop`."""

    def __init__(self, period: float, tick: Callable[[], None], name: str) -> None:
        if not (math.isfinite(period) and period > 0.0):
            raise ValueError(f"period must be a positive number of seconds, got {period!r}")
        self.period = period
        self._tick = tick
        self._stopping = False
        self.ticks = 0          # completed calls of tick()
        self.skipped = 0        # deadlines skipped because a tick (or the machine) overran them
        self.failure: BaseException | None = None  # what ended the thread, if tick() raised
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    @property
    def started(self) -> bool:
        """start() was called (a thread starts once: it is not restarted after stop or a failure)."""
        return self._thread.ident is not None

    def start(self) -> None:
        """First tick at once, then every period. The thread inherits the caller's scheduling
        policy, priority and CPU affinity (Linux: per thread, copied at creation)."""
        self._thread.start()

    def stop(self, timeout: float) -> bool:
        """No tick starts after this returns True; waits up to ``timeout`` [s] for a tick in progress
        and the sleep (at most one period). False: the thread is still inside ``tick()``."""
        self._stopping = True
        if not self.started:
            return True
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        deadline = time.monotonic()
        while not self._stopping:
            try:
                self._tick()
            except BaseException as exc:  # the owner raises it in its main thread
                self.failure = exc
                return
            self.ticks += 1
            deadline += self.period
            now = time.monotonic()
            if now >= deadline + self.period:  # whole periods missed: skip them, no burst
                missed = math.floor((now - deadline) / self.period)
                self.skipped += missed
                deadline += missed * self.period
            if deadline > now:
                time.sleep(deadline - now)
