"""The follower's tick thread (``minipamayo_ros.periodic_thread``), without ROS: it ticks, it stops
for good, an exception ends it and is kept for the owner, an overrun skips deadlines instead of
bursting. Timing is never asserted beyond "it happened" (benchmarks measure timing)."""

from __future__ import annotations

import threading
import time

import pytest

from minipamayo_ros.periodic_thread import PeriodicThread


def _wait(cond, timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.005)
    return cond()


def test_ticks_until_stopped_and_never_after() -> None:
    calls: list[float] = []
    t = PeriodicThread(0.01, lambda: calls.append(time.monotonic()), "t")
    t.start()
    assert _wait(lambda: len(calls) >= 5)
    assert t.stop(2.0) and not t.running
    n = len(calls)
    time.sleep(0.05)
    assert len(calls) == n == t.ticks
    assert t.failure is None


def test_stop_waits_for_the_tick_in_progress() -> None:
    inside, release, done = threading.Event(), threading.Event(), []

    def tick() -> None:
        inside.set()
        release.wait(5.0)
        done.append(1)

    t = PeriodicThread(0.01, tick, "t")
    t.start()
    assert inside.wait(5.0)
    assert not t.stop(0.05), "a tick still running is reported"
    release.set()
    assert t.stop(2.0)
    assert done == [1], "no tick started after stop()"


def test_an_exception_ends_the_thread_and_is_kept() -> None:
    calls = []

    def tick() -> None:
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("boom")

    t = PeriodicThread(0.01, tick, "t")
    t.start()
    assert _wait(lambda: not t.running)
    assert isinstance(t.failure, RuntimeError) and str(t.failure) == "boom"
    assert len(calls) == 3 and t.ticks == 2


def test_an_overrun_skips_missed_deadlines_instead_of_bursting() -> None:
    stamps: list[float] = []

    def tick() -> None:
        stamps.append(time.monotonic())
        if len(stamps) == 2:
            time.sleep(0.25)  # 25 periods lost

    t = PeriodicThread(0.01, tick, "t")
    t.start()
    assert _wait(lambda: len(stamps) >= 6)
    t.stop(2.0)
    assert t.skipped >= 20
    # a catch-up burst would have made ~25 back-to-back calls before stop()
    assert len(stamps) < 6 + 20


@pytest.mark.parametrize("period", [0.0, -1.0, float("nan"), float("inf")])
def test_a_bad_period_is_refused(period: float) -> None:
    with pytest.raises(ValueError, match="period"):
        PeriodicThread(period, lambda: None, "t")


def test_stop_before_start_is_immediate() -> None:
    t = PeriodicThread(0.01, lambda: None, "t")
    assert t.stop(0.0) and t.ticks == 0
