"""Closed-loop report and evaluation logic (ROS-free parts)."""

from __future__ import annotations

import numpy as np
import pytest

from minipamayo_ros.bringup.recorder import Recording
from minipamayo_ros.bringup.report import MAX_STANDSTILL_S, closed_loop_metrics, quality_verdict
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
                       "at_fault_collisions": "1", "cross_track_rms_m": "0.12"}
    return rec


def test_rates_latency_and_checks() -> None:
    m = closed_loop_metrics(_recording(10.0, 50.0), max_rate_hz=10.0, follower_rate_hz=50.0)
    assert m["policy"]["rate_hz"] == pytest.approx(10.0, rel=0.02)
    assert m["follower"]["rate_hz"] == pytest.approx(50.0, rel=0.02)
    assert m["policy"]["end_to_end_ms"]["max"] == 14.0
    assert m["driving"]["distance_m"] == 100.0
    checks = quality_verdict(m)
    assert checks["no_lane_departure"] and not checks["no_at_fault_collision"]
    assert m["score"] is None  # no scene frames recorded
    assert checks["policy_rate_within_10pct"] and checks["follower_rate_within_10pct"]


def test_slow_policy_fails_the_rate_check() -> None:
    m = closed_loop_metrics(_recording(7.5, 50.0), max_rate_hz=10.0, follower_rate_hz=50.0)
    assert not quality_verdict(m)["policy_rate_within_10pct"]


def _run(rms: float, departures: int = 0, collisions: int = 0, violations: int = 0,
         standstill: float = 1.0) -> dict:
    driving = {"cross_track_rms_m": rms, "lane_departures": departures, "at_fault_collisions": collisions,
               "stop_line_violations": violations, "longest_stall_s": standstill}
    return {"driving": driving,
            "checks": {"policy_rate_within_10pct": True, "follower_rate_within_10pct": True}}


def test_evaluation_verdict_applies_the_bar() -> None:
    runs = [_run(0.1) for _ in range(19)] + [_run(0.3, collisions=1)]
    v = verdict(runs)
    assert v["clean_fraction"] == 0.95 and v["pass"]
    v = verdict([_run(0.1) for _ in range(18)] + [_run(0.3, collisions=1)] * 2)
    assert not v["pass"]
    assert not verdict([_run(0.3) for _ in range(20)])["pass"]  # median RMS above 0.25 m
    # a stop-line violation or a stall (a car waiting for ever) is not a clean run either
    for bad in (_run(0.1, violations=1), _run(0.1, standstill=MAX_STANDSTILL_S + 1.0)):
        assert verdict([_run(0.1) for _ in range(18)] + [bad] * 2)["clean_fraction"] == 0.9
    assert verdict([_run(0.1, standstill=MAX_STANDSTILL_S)] * 20)["pass"]



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


def _explanation(stamp: float, text: str, event: str = "CURVE") -> dict:
    return {"stamp": stamp, "received": stamp + 0.05, "sequence": 1, "event": event, "situation": event,
            "text": text, "tokens": len(text.split()), "truncated": False, "generation_ms": 4.0,
            "event_age_ms": 20.0}


def test_text_metrics_list_explanations_with_their_stamps() -> None:
    from minipamayo_ros.bringup.report import text_metrics

    rec = _recording(10.0, 50.0)
    assert text_metrics(rec) is None  # no text node ran
    rec.explanations = [_explanation(3.0, "following gentle left curve"),
                        _explanation(7.5, "waiting at stop line")]
    rec.text_diagnostics = {"requested": "3", "replaced": "1", "generated": "2", "cpu_priority": "SCHED_IDLE"}
    t = text_metrics(rec)
    assert t is not None and t["count"] == 2 and [e["stamp"] for e in t["explanations"]] == [3.0, 7.5]
    assert t["counters"]["requested"] == 3 and t["counters"]["cpu_priority"] == "SCHED_IDLE"
    assert t["generation_ms"]["p50"] == 4.0


def test_camera_frames_show_the_latest_explanation_of_an_earlier_trajectory() -> None:
    from minipamayo_ros.bringup.report import draw_explanation, latest_explanation

    ex = [_explanation(3.0, "a"), _explanation(5.0, "b"), _explanation(9.0, "c")]
    assert latest_explanation(ex, 6.0)["text"] == "b"   # type: ignore[index]
    assert latest_explanation(ex, 2.9) is None          # nothing explained yet
    assert latest_explanation(ex, 8.5, window=3.0) is None  # "b" is 3.5 s old
    img = np.full((64, 128, 3), 128, np.uint8)
    out = draw_explanation(img, ex[1], 6.0)
    assert out.shape == img.shape and not np.array_equal(out[:30], img[:30])
    assert np.array_equal(out[40:], img[40:])  # the frame itself stays visible
