"""Policy statistics for ``/diagnostics``: achieved rate, latency percentiles, frame accounting.

Thread-safe (the worker records, the diagnostics timer reads). Latencies in ms; times in s.

Clocks: every duration measured inside the node is on the steady clock (``time.monotonic()``),
whatever clock stamps the messages: under ``use_sim_time`` the ROS clock advances in the
simulator's steps (10 ms) and says nothing about how long the work took. The only figure that
needs the ROS clock is the transport delay (image stamp -> callback), and it is known only when
that clock is the wall clock (``use_sim_time`` false): see :func:`trajectory_latency`.
"""

from __future__ import annotations

import math
import threading
from collections import Counter, deque
from dataclasses import dataclass

from minipamayo_ros.latency import LatencySummary, LatencyWindow

# diagnostic_msgs/DiagnosticStatus levels (ROS-free copies)
OK, WARN, ERROR, STALE = 0, 1, 2, 3


@dataclass(frozen=True)
class DiagnosticReport:
    level: int
    message: str
    values: dict[str, str]


def trajectory_latency(received_steady: float, published_steady: float, received_ros: float,
                       stamp: float, sim_time: bool) -> tuple[float, float]:
    """``(end_to_end_ms, transport_ms)`` of one trajectory (the ``end_to_end_latency_ms`` field).

    end-to-end = transport (image stamp -> camera callback) + in-node (callback -> publish, steady
    clock). The transport delay is measured on the ROS clock (``received_ros - stamp``, seconds),
    and only counted when that is the wall clock and the result is not negative (a camera whose
    clock is ahead of this machine's); otherwise it is NaN and end-to-end is the in-node time
    alone. Under sim time the field is therefore receive -> publish; on the vehicle it is image
    capture -> publish.
    """
    in_node_ms = (published_steady - received_steady) * 1e3
    transport_ms = math.nan if sim_time else (received_ros - stamp) * 1e3
    if not transport_ms >= 0.0:
        transport_ms = math.nan
    return in_node_ms + (0.0 if math.isnan(transport_ms) else transport_ms), transport_ms


class PolicyStats:
    """Counters and sliding windows; :meth:`report` turns them into one diagnostic status."""

    def __init__(self, window: int = 100, rate_window_s: float = 5.0) -> None:
        self._lock = threading.Lock()
        self.inference = LatencyWindow(window)
        self.end_to_end = LatencyWindow(window)
        self.overhead = LatencyWindow(window)      # end-to-end minus engine time
        self.preprocess = LatencyWindow(window)    # decode + resize + state history
        self.transport = LatencyWindow(window)     # image stamp -> camera callback (DDS, camera driver)
        self.queue = LatencyWindow(window)         # camera callback -> worker start (steady clock)
        self.transport_included = False  # whether the last end-to-end figure includes the transport
        self._publish_times: deque[float] = deque()
        self._rate_window_s = rate_window_s
        self.published = 0
        self.skipped: Counter[str] = Counter()
        self.last_skip_reason = ""
        self.last_error = ""
        self.errors = 0
        self._last_outcome = ""  # published | skipped | error
        self._last_publish = -float("inf")  # [s] monotonic

    def record_published(self, now: float, inference_ms: float, end_to_end_ms: float,
                         preprocess_ms: float, transport_ms: float = float("nan"),
                         queue_ms: float = float("nan")) -> None:
        """One published trajectory; overhead = end-to-end - engine, the rest is its breakdown.
        ``transport_ms`` NaN: not measurable (sim time), and not part of ``end_to_end_ms``."""
        with self._lock:
            self.transport_included = transport_ms == transport_ms  # not NaN
            if self.transport_included:
                self.transport.add(transport_ms)
            if queue_ms == queue_ms:
                self.queue.add(queue_ms)
            self.published += 1
            self.inference.add(inference_ms)
            self.end_to_end.add(end_to_end_ms)
            self.overhead.add(end_to_end_ms - inference_ms)
            self.preprocess.add(preprocess_ms)
            self._publish_times.append(now)
            self._last_publish = now
            self._trim(now)
            self._last_outcome = "published"

    def record_skip(self, category: str, reason: str) -> None:
        """A frame that produced no trajectory: ``category`` is counted, ``reason`` shown."""
        with self._lock:
            self.skipped[category] += 1
            self.last_skip_reason = reason
            self._last_outcome = "skipped"

    def record_error(self, message: str) -> None:
        with self._lock:
            self.errors += 1
            self.last_error = message
            self.skipped["error"] += 1
            self._last_outcome = "error"

    def _trim(self, now: float) -> None:
        while self._publish_times and now - self._publish_times[0] > self._rate_window_s:
            self._publish_times.popleft()

    def achieved_rate_hz(self, now: float) -> float:
        """Trajectories per second over the last ``rate_window_s`` (0 if none recently)."""
        with self._lock:
            self._trim(now)
            t = self._publish_times
            if len(t) < 2:
                return 0.0
            # count intervals between publishes, plus the silence since the last one if longer
            span = max(t[-1] - t[0], 1e-9)
            if now - t[-1] > span / (len(t) - 1):
                span = now - t[0]
            return (len(t) - 1) / span

    def report(self, now: float, *, received: int, dropped_busy: int, dropped_rate: int,
               max_rate_hz: float, backend: dict[str, str], warmed_up: bool) -> DiagnosticReport:
        """One ``DiagnosticStatus`` worth of level, message and key/values."""
        rate = self.achieved_rate_hz(now)
        with self._lock:
            values: dict[str, str] = {
                "achieved_rate_hz": f"{rate:.2f}",
                "max_rate_hz": f"{max_rate_hz:.2f}",
                # skipped by the rate cap = by design (a 20 Hz camera, a 10 Hz cap: every other
                # frame); dropped busy = a newer frame replaced it while inference was running
                "frames_received": str(received),
                "frames_skipped_rate_cap": str(dropped_rate),
                "frames_dropped_busy": str(dropped_busy),
                "trajectories_published": str(self.published),
                "warmed_up": str(warmed_up).lower(),
            }
            values["latency_clock"] = (
                "steady; end_to_end = transport (image stamp -> receive) + receive -> publish"
                if self.transport_included else
                "steady; end_to_end = receive -> publish (transport not measurable: sim time or camera "
                "clock ahead)")
            for name, win in (("inference_ms", self.inference), ("end_to_end_ms", self.end_to_end),
                              ("overhead_ms", self.overhead), ("preprocess_ms", self.preprocess),
                              ("transport_ms", self.transport), ("queue_ms", self.queue)):
                values.update(_percentiles(name, win.summary()))
            for cat, n in sorted(self.skipped.items()):
                values[f"skipped_{cat}"] = str(n)
            values["last_skip_reason"] = self.last_skip_reason
            if self.last_error:
                values["last_error"] = self.last_error
            for k, v in backend.items():
                values[f"backend_{k}"] = str(v)
            outcome, last_error, last_skip = self._last_outcome, self.last_error, self.last_skip_reason
            silent = now - self._last_publish
        if not warmed_up:
            return DiagnosticReport(WARN, "warming up", values)
        if received == 0:
            return DiagnosticReport(STALE, "no camera images received", values)
        if outcome == "published" and silent <= max(1.0, 3.0 / max_rate_hz):
            return DiagnosticReport(OK, f"publishing at {rate:.1f} Hz", values)
        if outcome == "published":
            return DiagnosticReport(WARN, f"no trajectory for {silent:.1f} s: no new camera frames "
                                    "(camera stopped or all frames dropped)", values)
        if outcome == "error":
            return DiagnosticReport(ERROR, f"inference failing: {last_error}", values)
        return DiagnosticReport(WARN, f"no trajectory: {last_skip or 'waiting for frames'}", values)


def _percentiles(name: str, s: LatencySummary) -> dict[str, str]:
    base = name.removesuffix("_ms")
    return {f"{base}_{k}_ms": f"{getattr(s, k):.2f}" for k in ("p50", "p95", "p99", "max")}
