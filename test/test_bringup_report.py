"""Closed-loop report and evaluation logic (ROS-free parts)."""

from __future__ import annotations

import numpy as np
import pytest

from minipamayo_ros.bringup.recorder import Recording
from minipamayo_ros.bringup.report import closed_loop_metrics, quality_verdict
from minipamayo_ros.evaluation.evaluate import verdict
from minipamayo_ros.trajectory import PlannedTrajectory


def _recording(policy_hz: float, follower_hz: float, seconds: float = 20.0) -> Recording:
    rec = Recording(first_sim_time=1.0, last_sim_time=1.0 + seconds)
    for k in range(int(seconds * policy_hz)):
        t = 1.0 + k / policy_hz
        rec.trajectories.append(PlannedTrajectory(t, np.zeros((20, 2)) + [[1.0, 0.0]], np.ones(20),
                                                  end_to_end_latency_ms=10.0 + k % 5,
                                                  inference_latency_ms=5.0))
    for k in range(int(seconds * follower_hz)):
        rec.controls.append((1.0 + k / follower_hz, 0, 5.0, 0.0, 0.0))
    rec.sim_metrics = {"distance_m": "100.0", "lane_departures": "0", "collisions": "1",
                       "cross_track_rms_m": "0.12"}
    return rec


def test_rates_latency_and_checks() -> None:
    m = closed_loop_metrics(_recording(10.0, 50.0), max_rate_hz=10.0, follower_rate_hz=50.0)
    assert m["policy"]["rate_hz"] == pytest.approx(10.0, rel=0.02)
    assert m["follower"]["rate_hz"] == pytest.approx(50.0, rel=0.02)
    assert m["policy"]["end_to_end_ms"]["max"] == 14.0
    assert m["driving"]["distance_m"] == 100.0
    checks = quality_verdict(m)
    assert checks["no_lane_departure"] and not checks["no_collision"]
    assert checks["policy_rate_within_10pct"] and checks["follower_rate_within_10pct"]


def test_slow_policy_fails_the_rate_check() -> None:
    m = closed_loop_metrics(_recording(7.5, 50.0), max_rate_hz=10.0, follower_rate_hz=50.0)
    assert not quality_verdict(m)["policy_rate_within_10pct"]


def _run(rms: float, departures: int = 0, collisions: int = 0) -> dict:
    return {"driving": {"cross_track_rms_m": rms},
            "checks": {"no_lane_departure": departures == 0, "no_collision": collisions == 0,
                       "policy_rate_within_10pct": True, "follower_rate_within_10pct": True}}


def test_evaluation_verdict_applies_the_bar() -> None:
    runs = [_run(0.1) for _ in range(19)] + [_run(0.3, collisions=1)]
    v = verdict(runs)
    assert v["clean_fraction"] == 0.95 and v["pass"]
    v = verdict([_run(0.1) for _ in range(18)] + [_run(0.3, collisions=1)] * 2)
    assert not v["pass"]
    assert not verdict([_run(0.3) for _ in range(20)])["pass"]  # median RMS above 0.25 m



def test_report_timing_clocks_and_frame_accounting() -> None:
    rec = _recording(10.0, 50.0)
    rec.control_receive_steady = [500.0 + 0.02 * k + 0.001 * (k % 3) for k in range(len(rec.controls))]
    rec.policy_diagnostics = {"frames_received": "400", "frames_skipped_rate_cap": "198",
                              "frames_dropped_busy": "2", "latency_clock": "steady; ..."}
    m = closed_loop_metrics(rec, max_rate_hz=10.0, follower_rate_hz=50.0)
    p, f = m["policy"], m["follower"]
    assert (p["frames_received"], p["frames_skipped_rate_cap"], p["frames_dropped_busy"]) == (400, 198, 2)
    assert "frames_dropped" not in p
    # the receipt intervals (steady clock) are not quantised to the sim step
    assert f["receive_period_ms"]["p50"] == pytest.approx(20.0, abs=2.5)
    assert f["receive_period_ms"]["max"] == pytest.approx(21.0, abs=0.01)  # 21, 21, 18 ms, ...
    assert "steady" in m["clocks"]["policy.end_to_end_ms"] and "sim time" in m["clocks"]["follower.period_ms"]
