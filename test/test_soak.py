"""Soak: the analysis core (ROS-free) and a real 2-minute soak of the closed-loop stack (CI)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from fault_support import fault_env  # noqa: F401 - fixture

from conftest import REPO_ROOT
from minipamayo_ros.bringup import soak_report
from minipamayo_ros.bringup.soak import driving_totals, parse_episodes
from minipamayo_ros.sim.metrics import EpisodeMetrics
from minipamayo_ros.sim.session import EpisodeSummary


def test_rss_growth_sees_a_leak_and_ignores_warmup() -> None:
    t = np.arange(0.0, 600.0, 5.0)
    flat = np.where(t < 60.0, 50.0 + t, 110.0)          # grows during warm-up only
    g = soak_report.rss_growth(t, flat, warmup_s=60.0)
    assert g is not None and g.growth == pytest.approx(0.0)
    leak = 100.0 + 0.02 * t                              # +12 MB over 10 min
    g = soak_report.rss_growth(t, leak, warmup_s=60.0)
    assert g is not None and 0.08 < g.growth < 0.12
    assert soak_report.rss_growth(t[:3], leak[:3], warmup_s=0.0) is None


def test_windowed_percentiles_and_drift() -> None:
    rng = np.random.default_rng(0)
    t = np.linspace(0.0, 900.0, 9000)
    v = rng.exponential(10.0, len(t)) * np.where(t > 600.0, 2.0, 1.0)  # last window twice as slow
    wins = soak_report.windowed_percentiles(t, v, 300.0, 0.0, 900.0)
    assert [w["start_s"] for w in wins] == [0.0, 300.0, 600.0]
    assert all(w["n"] == pytest.approx(3000, abs=2) for w in wins)
    assert soak_report.p99_drift(wins) == pytest.approx(1.0, abs=0.25)
    few = soak_report.windowed_percentiles([1.0, 2.0], [5.0, 6.0], 300.0, 0.0, 300.0)
    assert few[0]["p99"] is None and soak_report.p99_drift(few) is None
    # a short last window is left out of the drift when window_s is given
    short = [*wins[:2], {**wins[2], "start_s": 600.0, "end_s": 630.0}]
    assert soak_report.p99_drift(short, window_s=300.0) == pytest.approx(
        (wins[1]["p99"] - wins[0]["p99"]) / wins[0]["p99"])


def _report(crashes: list, growth: float, drift: float | None, departures: int = 0, violations: int = 0,
            standstill: float = 1.0, rejected: int = 0) -> dict:
    return {"crashes": crashes, "rss": {"policy": {"growth": growth}},
            "latency": {name: {"p99_drift": drift} for name in soak_report.DRIFT_JUDGED},
            "driving": {"lane_departures": departures, "collisions": 0, "stop_line_violations": violations,
                        "longest_standstill_s": standstill},
            "plans": {"published": 100, "rejected_output_check": 0, "rejected_by_follower": rejected}}


def test_verdict_fails_on_each_target() -> None:
    assert all(soak_report.verdict(_report([], 0.01, 0.05)).values())
    assert soak_report.verdict(_report([{"node": "policy"}], 0.01, 0.05))["no_crash"] is False
    assert soak_report.verdict(_report([], 0.06, 0.05))["rss_growth_within_5pct"] is False
    assert soak_report.verdict(_report([], 0.01, -0.2))["p99_last_window_within_10pct"] is False
    assert soak_report.verdict(_report([], 0.01, None))["p99_last_window_within_10pct"] is None
    assert soak_report.verdict(_report([], 0.01, 0.0, departures=1))["no_lane_departure"] is False
    assert soak_report.verdict(_report([], 0.01, 0.0, violations=1))["no_stop_line_violation"] is False
    assert soak_report.verdict(_report([], 0.01, 0.0, standstill=600.0))["no_stall"] is False
    assert soak_report.verdict(_report([], 0.01, 0.0, rejected=1))["no_plan_rejected"] is False


def test_counter_totals_survive_a_node_restart() -> None:
    """Diagnostics counters restart at 0 with a restarted node; the soak's totals keep counting."""
    totals = soak_report.CounterTotals()
    for values in ({"rejected": "2", "state": "OK"}, {"rejected": "5"}, {"rejected": "1"}, {"rejected": "3"}):
        totals.update(values)
    assert totals.totals() == {"rejected": "8"}


def test_verdict_takes_every_episodes_clean_run_checks_from_their_scores() -> None:
    clean = {"no_at_fault_collision": True, "no_lane_departure": True, "no_stall": True}
    report = {**_report([], 0.01, 0.0, departures=3), "scores": [{"checks": clean}] * 2}
    assert soak_report.verdict(report)["no_lane_departure"]   # the scores, not the summed counters
    report["scores"] = [{"checks": clean}, {"checks": {**clean, "no_stall": False}}]
    v = soak_report.verdict(report)
    assert v["no_stall"] is False and v["no_at_fault_collision"] and "no_collision" not in v


def test_episode_lines_parse_and_sum() -> None:
    m = EpisodeMetrics(50.0, 400.0, 8.0, 0.1, 0.3, 1, 0.5, 0, 2, 1, 2.0, 1.0, 0.5, 3.0)
    log = "\n".join(f"[INFO] [1.0] [simulator]: {EpisodeSummary(7, k, True, m).line()}" for k in (0, 1))
    episodes = parse_episodes(log)
    assert [e["episode"] for e in episodes] == [0, 1]
    assert episodes[0]["lane_departures"] == 1 and episodes[0]["stop_line_violations"] == 2
    totals = driving_totals(episodes, {"episode": "2", "distance_m": "120", "lane_departures": "0",
                                       "collisions": "1", "stop_line_violations": "0", "sim_time_s": "130"})
    assert totals["episodes"] == 3 and totals["distance_m"] == 920.0
    assert totals["lane_departures"] == 2 and totals["collisions"] == 1 and totals["sim_seconds"] == 130.0


def test_soak_script_is_valid_bash() -> None:
    subprocess.run(["bash", "-n", str(REPO_ROOT / "scripts" / "soak.sh")], check=True)


@pytest.mark.ros
@pytest.mark.slow
@pytest.mark.usefixtures("fault_env")  # none of the soak's processes alive afterwards
def test_two_minute_soak(tmp_path, ros_env, fault_env) -> None:  # noqa: F811
    """The CI soak: 2 minutes of the closed-loop stack, 30 s windows. Judged here: no crash, no
    collision, every node sampled, no gross leak (> 25 %), a complete report. Latency is reported,
    not asserted (a shared 2-core CI box)."""
    out = tmp_path / "soak"
    proc = subprocess.run(
        [sys.executable, "-m", "minipamayo_ros.bringup.soak", "--minutes", "2", "--window-minutes", "0.5",
         "--sample-seconds", "2", "--out", str(out)],
        env=ros_env | {k: v for k, v in __import__("os").environ.items() if k not in ros_env} | fault_env,
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((out / "soak.json").read_text())
    assert report["crashes"] == [] and report["restarts"] == 0
    assert report["driving"]["collisions"] == 0
    assert report["driving"]["distance_m"] > 200.0, report["driving"]
    assert {"simulator", "policy", "follower"} <= set(report["rss"])  # (+ text when installed)
    for name, g in report["rss"].items():
        assert g is not None and g["samples"] >= 20, name
        assert g["growth"] < 0.25, f"{name} RSS grew {100 * g['growth']:.0f} % in 2 minutes"
    inference = report["latency"]["policy inference latency"]["windows"]
    assert len(inference) >= 2 and all(w["p99"] is not None for w in inference[:-1])
    assert (out / "soak.png").stat().st_size > 10_000
    # issue 19: every plan of the shipped policy passes the output check and the follower's checks
    # (a plan delivered later than trajectory_timeout on this shared box would be old_stamp: timing)
    plans = report["plans"]
    assert plans["published"] > 500 and plans["rejected_output_check"] == 0, plans
    assert set(plans["rejected_by_follower_kinds"]) <= {"old_stamp"}, plans
    summary = (out / "summary.md").read_text()
    assert "RSS per node" in summary and "Verdict" in summary
    # every episode scored from the simulator's scene frames (roads of seed 0, 1, ...)
    assert [s["seed"] for s in report["scores"]][:2] == [0, 1] and "Score per episode" in summary
    assert all(0.0 <= s["score"] <= 1.0 and s["scenario"] == "classic" for s in report["scores"])
