"""The run score (scoring/): scene frames, each sub-metric on hand-built frame sequences, the
combination, the per-type table, and one short run scored offline and from a bag of itself."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from minipamayo_ros.evaluation import scenario_table
from minipamayo_ros.evaluation.closed_loop import ClosedLoopSettings, ExpertPolicy, run_episode
from minipamayo_ros.replay.bagio import STRING, BagWriter
from minipamayo_ros.replay.messages import string_msg
from minipamayo_ros.replay.score_bag import read_bag, score_bag
from minipamayo_ros.scoring import score as sc
from minipamayo_ros.scoring.frames import TOPIC, SceneFrame, WorldId, from_json, to_json
from minipamayo_ros.scoring.reference import expert_progress, world_config
from minipamayo_ros.sim.agents.kinematics import AgentKind, AgentState, Role
from minipamayo_ros.sim.agents.objects import LightState
from minipamayo_ros.sim.metrics import Incident
from minipamayo_ros.sim.scenario import load_mix
from minipamayo_ros.sim.scene import CrosswalkView, LightView, SceneState
from minipamayo_ros.sim.world import WorldConfig

LANE = 3.5
WORLD = WorldId(seed=7, scenario="classic", road_length=400.0, cruise_speed=8.0)
QUIET = {"collisions": 0, "at_fault_collisions": 0, "lane_departures": 0, "stop_line_violations": 0,
         "red_light_violations": 0, "min_ttc_s": 5.0, "longest_stall_s": 0.0, "longest_standstill_s": 0.0}


def _ego(s: float, d: float = 0.0, speed: float = 8.0, yaw: float = 0.0, in_lane: bool = True
         ) -> AgentState:
    return AgentState(0, AgentKind.VEHICLE, Role.EGO, s, d, yaw, 4.5, 1.8, 1.5, speed, 0.0, s, d,
                      in_lane, True)


def _frame(t: float, ego: AgentState, metrics: dict | None = None, incidents: tuple[Incident, ...] = (),
           agents: tuple[AgentState, ...] = (), offset: float = 0.0) -> SceneFrame:
    return SceneFrame(stamp=t + offset, episode=0, world=WORLD,
                      scene=SceneState(t, "classic", LANE, ego, agents), metrics={**QUIET, **(metrics or {})},
                      incidents=incidents)


def _drive(seconds: float = 8.0, speed: float = 8.0, dt: float = 0.05, **kw) -> list[SceneFrame]:
    """A straight drive along x at constant ``speed`` (what a clean run's frames look like)."""
    return [_frame(k * dt, _ego(k * dt * speed, speed=speed), **kw) for k in range(int(seconds / dt) + 1)]


def _score(frames: list[SceneFrame], reference: float | None = None) -> sc.RunScore:
    ref = reference if reference is not None else frames[-1].scene.ego.s - frames[0].scene.ego.s
    return sc.score_run(frames, ref)


# --------------------------------------------------------------------------- frames
def test_frames_round_trip_exactly_and_reject_garbage() -> None:
    car = AgentState(3, AgentKind.VEHICLE, Role.CUT_IN, 10.123456789, 1.0, 0.1, 4.4, 1.8, 1.5, 6.0, -2.0,
                     30.0, 2.4, False, True, 12.5, True, -1)
    cross = AgentState(4, AgentKind.PEDESTRIAN, Role.PEDESTRIAN, 50.0, 9.0, 1.57, 0.5, 0.6, 1.7, 1.2, 0.0)
    scene = SceneState(12.34, "urban", LANE, _ego(20.0), (car, cross),
                       (LightView(1, LightState.RED, 3.2, 80.0, 80.0, 0.0, 0.0, LightState.GREEN),),
                       (55.0,), (CrosswalkView(2, 60.0, 3.0, 60.0, 0.0),))
    hit = Incident(12.3, "collision", 3, "vehicle", "cut_in", False, "cut_in", 5.5)
    f = SceneFrame(13.34, 2, WORLD, scene, dict(QUIET), (hit,))
    text = to_json(f)
    back = from_json(text)
    assert to_json(back) == text                          # the wire text is a fixed point
    assert back.scene.agents[0].kind is AgentKind.VEHICLE and back.scene.agents[0].role is Role.CUT_IN
    assert back.scene.agents[0].x == 10.12346              # rounded once, when made
    assert math.isnan(back.scene.agents[1].s) and back.scene.agents[1].cut_in_time is None
    assert back.scene.lights[0].state is LightState.RED and back.incidents == (hit,)
    assert back.world == WORLD and back.time == 12.34 and back.stamp == 13.34
    for bad in ("{}", '{"v": 2}', "not json", json.dumps({"v": 1, "scene": {}})):
        with pytest.raises(ValueError):
            from_json(bad)


# --------------------------------------------------------------------------- sub-metrics
def test_a_clean_drive_scores_one() -> None:
    s = _score(_drive())
    assert s.clean and s.score == pytest.approx(1.0) and s.failures == []
    assert set(s.subscores) == {*sc.MULTIPLIERS, *sc.WEIGHTS}


def test_no_at_fault_collision_by_whom_and_whose_fault() -> None:
    ped = Incident(2.0, "collision", 5, "pedestrian", "pedestrian", True, "ego", 6.0)
    box = Incident(2.0, "collision", -1, "obstacle", "obstacle", True, "ego", 6.0)
    rear = Incident(2.0, "collision", 6, "vehicle", "lead", False, "rear_ended", 6.0)
    assert sc.no_at_fault_collision([ped]) == 0.0
    assert sc.no_at_fault_collision([box]) == 0.5           # NAVSIM: a static object halves
    assert sc.no_at_fault_collision([]) == 1.0
    frames = _drive()
    frames[40] = replace(frames[40], incidents=(ped,),
                         metrics={**QUIET, "collisions": 1, "at_fault_collisions": 1})
    for k in range(41, len(frames)):
        frames[k] = replace(frames[k], metrics=frames[40].metrics)
    s = _score(frames)
    assert s.score == 0.0 and not s.clean and s.at_fault[0]["agent_role"] == "pedestrian"
    assert s.failures[0]["check"] == "no_at_fault_collision" and s.failures[0]["time"] == 2.0
    frames[40] = replace(frames[40], incidents=(rear,), metrics={**QUIET, "collisions": 1})
    for k in range(41, len(frames)):
        frames[k] = replace(frames[k], metrics=frames[40].metrics)
    s = _score(frames)
    assert s.score == pytest.approx(1.0) and s.clean and s.not_at_fault[0]["reason"] == "rear_ended"


def test_drivable_area_is_left_over_the_right_edge_not_the_centre_line() -> None:
    frames = _drive()
    right = [replace(f, scene=replace(f.scene, ego=_ego(f.scene.ego.s, -1.4, in_lane=False)))
             if 60 <= k < 70 else f for k, f in enumerate(frames)]
    left = [replace(f, scene=replace(f.scene, ego=_ego(f.scene.ego.s, 1.4, in_lane=False)))
            if 60 <= k < 70 else f for k, f in enumerate(frames)]
    assert sc.drivable_area_departures(right) == 1 and sc.drivable_area_compliance(right) == 0.0
    assert sc.drivable_area_compliance(left) == 1.0 and sc.drivable_area_compliance(frames) == 1.0


def test_traffic_rules_and_lane_keeping_from_the_worlds_facts() -> None:
    assert sc.traffic_rule_compliance({"red_light_violations": 1}) == 0.0
    assert sc.traffic_rule_compliance({"stop_line_violations": 1}) == 0.0
    assert sc.traffic_rule_compliance(QUIET) == 1.0
    assert sc.lane_keeping({"lane_departures": 1}) == 0.0 and sc.lane_keeping(QUIET) == 1.0
    s = _score(_drive(metrics={"red_light_violations": 1, "min_ttc_s": 0.5}))
    assert s.subscores["traffic_rule_compliance"] == 0.0 and s.score == 0.0
    assert not s.checks["no_red_light_violation"] and s.min_ttc_s == 0.5


def _with(frames: list[SceneFrame], agent) -> list[SceneFrame]:
    """``frames`` with the agent ``agent(t)`` (an AgentState or None) in each."""
    return [replace(f, scene=replace(f.scene, agents=tuple(a for a in [agent(f.time)] if a))) for f in frames]


def _car(x: float, y: float = 0.0, yaw: float = 0.0, speed: float = 0.0, role: Role = Role.LEAD
         ) -> AgentState:
    return AgentState(9, AgentKind.VEHICLE, role, x, y, yaw, 4.5, 1.8, 1.5, speed, 0.0)


def test_ttc_conflict_is_the_ego_at_its_velocity_against_the_agents_actual_future() -> None:
    drive = _drive(seconds=12.0)                           # 8 m/s along x
    # a car standing 40 m ahead, touched (centres 4.5 m apart) at 4.44 s: a conflict from 0.9 s before
    # until it is no longer ahead (the synthetic ego drives through it)
    standing = _with(drive, lambda t: _car(40.0))
    conflicts = sc.ttc_conflicts(standing)
    assert {a for _, a in conflicts} == {9} and 3.5 < conflicts[0][0] < 3.6 and conflicts[-1][0] < 5.0
    assert sc.ttc_within_bound(standing) == pytest.approx(1 / 3)   # windows 0-4 s and 4-8 s fail
    # the same car driving away at our speed: never a conflict
    assert sc.ttc_conflicts(_with(drive, lambda t: _car(40.0 + 8.0 * t, speed=8.0))) == []
    # an oncoming car in its own lane that is extrapolated into us: not a conflict (its actual path
    # stays 3.5 m to the left); one that really comes into our lane is
    oncoming = _with(drive, lambda t: _car(96.0 - 8.0 * t, 3.5, math.pi - 0.2, 8.0, Role.ONCOMING))
    assert sc.ttc_conflicts(oncoming) == []
    head_on = _with(drive, lambda t: _car(96.0 - 8.0 * t, 0.3, math.pi, 8.0, Role.ONCOMING))
    assert sc.ttc_conflicts(head_on) and sc.ttc_within_bound(head_on) < 1.0
    # a pedestrian about to step into our path: a conflict already before it moves (its actual future)
    def walker(t: float) -> AgentState:
        return AgentState(9, AgentKind.PEDESTRIAN, Role.PEDESTRIAN, 47.0, 2.0 - 1.5 * max(0.0, t - 5.0),
                          -math.pi / 2, 0.5, 0.6, 1.7, 1.5 if t >= 5.0 else 0.0, 0.0)
    assert 4.6 < sc.ttc_conflicts(_with(drive, walker))[0][0] < 5.0    # it starts walking at 5 s
    # beside us (not ahead) while we keep our lane, or after the contact (NC's, not TTC's): none
    assert sc.ttc_conflicts(_with(drive, lambda t: _car(8.0 * t - 1.0, 1.9, speed=8.0))) == []
    hit = Incident(4.0, "collision", 9, "vehicle", "lead", True, "ego", 8.0)
    touched = [replace(f, incidents=(hit,)) if f.time == 4.0 else f for f in standing]
    assert all(time < 4.0 for time, _ in sc.ttc_conflicts(touched))


def test_making_progress_multiplies() -> None:
    frames = _drive(seconds=10.0, speed=1.0)               # 10 m
    assert _score(frames, reference=40.0).subscores["making_progress"] == 1.0
    s = _score(frames, reference=60.0)                     # 1/6 of the expert's progress: a crawl
    assert s.subscores["making_progress"] == 0.0 and s.score == 0.0 and s.clean


def test_progress_against_the_expert() -> None:
    frames = _drive(seconds=10.0, speed=4.0)            # 40 m
    assert sc.ego_progress(frames) == pytest.approx(40.0)
    assert sc.ego_progress(frames, start=5.0) == pytest.approx(20.0)
    assert _score(frames, reference=80.0).subscores["ego_progress"] == pytest.approx(0.5)
    assert _score(frames, reference=30.0).subscores["ego_progress"] == 1.0   # capped
    assert sc.progress_ratio(0.0, 4.0) == 1.0           # the expert did not move either
    s = _score(frames, reference=80.0)
    assert s.score == pytest.approx((5 * 0.5 + 11) / 16)
    assert _score(frames, reference=201.0).score == 0.0    # < 20 % of the expert's: MP = 0


def test_driving_direction_counts_distance_in_the_oncoming_lane_within_one_second() -> None:
    def over(n: int) -> list[SceneFrame]:  # n frames (50 ms each, 8 m/s) with the rear axle over the line
        frames = _drive()
        return [replace(f, scene=replace(f.scene, ego=_ego(f.scene.ego.s, 2.0 if 50 <= k < 50 + n else 0.0)))
                for k, f in enumerate(frames)]
    assert sc.driving_direction(sc.oncoming_lane_distance(over(3))) == 1.0       # 1.2 m
    assert sc.driving_direction(sc.oncoming_lane_distance(over(8))) == 0.5       # 3.2 m in 0.4 s
    assert sc.oncoming_lane_distance(over(40)) == pytest.approx(8.0, abs=0.5)    # 8 m/s over 1 s
    assert sc.driving_direction(sc.oncoming_lane_distance(over(40))) == 0.0


def test_comfort_flags_the_windows_with_a_hard_brake_or_jerky_speed() -> None:
    assert sc.comfort(_drive(seconds=16.0)) == 1.0
    dt, t = 0.05, np.arange(0.0, 16.0 + 1e-9, 0.05)
    v = np.where(t < 9.0, 8.0, np.maximum(0.5, 8.0 - 6.0 * (t - 9.0)))   # -6 m/s^2 from 9 s
    s = np.concatenate(([0.0], np.cumsum(v[1:] * dt)))
    brake = [_frame(float(a), _ego(float(b), speed=float(c))) for a, b, c in zip(t, s, v, strict=True)]
    assert sc.comfort(brake) == pytest.approx(0.75)       # 1 window of 4 (8-12 s) fails
    sig = sc.comfort_signals(brake)
    assert sig.lon_accel.min() < sc.LON_ACCEL[0]
    wobble = 8.0 + 0.6 * np.sin(np.pi * t)                  # +-0.6 m/s at 0.5 Hz: jerk ~ 6 m/s^3
    s = np.concatenate(([0.0], np.cumsum(wobble[1:] * dt)))
    jerky = [_frame(float(a), _ego(float(b), speed=float(c))) for a, b, c in zip(t, s, wobble, strict=True)]
    sig = sc.comfort_signals(jerky)
    assert np.abs(sig.lon_accel).max() < sc.LON_ACCEL[1] and np.abs(sig.lon_jerk).max() > sc.MAX_LON_JERK
    assert sc.comfort(jerky) == 0.0                       # the jerk alone fails every window
    turn = [_frame(f.time, _ego(f.scene.ego.s, yaw=1.2 * f.time)) for f in _drive()]  # 1.2 rad/s
    assert sc.comfort(turn) == 0.0 and sc.comfort_signals(turn).yaw_rate.max() > sc.MAX_YAW_RATE


def test_the_combination_is_multipliers_times_the_weighted_average() -> None:
    sub = dict.fromkeys((*sc.MULTIPLIERS, *sc.WEIGHTS), 1.0)
    assert sc.pdm_score(sub) == 1.0
    assert sum(sc.WEIGHTS.values()) == 16.0
    assert sc.pdm_score({**sub, "ego_progress": 0.0}) == pytest.approx(11 / 16)
    assert sc.pdm_score({**sub, "ttc_within_bound": 0.0, "comfort": 0.5}) == pytest.approx(10 / 16)
    assert sc.MULTIPLIERS == ("no_at_fault_collision", "drivable_area_compliance", "traffic_rule_compliance",
                              "making_progress")
    half = sc.pdm_score({**sub, "no_at_fault_collision": 0.5, "lane_keeping": 0.0})
    assert half == pytest.approx(0.5 * 14 / 16)
    for k in sc.MULTIPLIERS:
        assert sc.pdm_score({**sub, k: 0.0}) == 0.0


def test_stall_and_counter_failures_are_dated_and_lost_incidents_counted() -> None:
    frames = _drive(seconds=20.0)
    for k, f in enumerate(frames):
        m = {**QUIET, "longest_stall_s": max(0.0, f.time - 4.0), "stop_line_violations": int(f.time >= 3.0),
             "collisions": 1 if f.time >= 1.0 else 0}
        frames[k] = replace(f, metrics=m)
    s = _score(frames)
    assert [(x["check"], round(x["time"], 2)) for x in s.failures] == [
        ("no_stop_line_violation", 3.0), ("no_stall", 4.05)]
    assert s.missing_incidents == 1 and not s.checks["no_stall"]


def test_score_frames_windows_by_node_clock_and_the_last_episode() -> None:
    frames = _drive(seconds=10.0, offset=100.0)           # node clock = episode time + 100 s
    old = [replace(f, episode=-1) for f in _drive(seconds=3.0)]
    s = sc.score_frames(old + frames, start_stamp=102.0, end_stamp=106.0)
    assert (s.start_s, s.end_s) == pytest.approx((2.0, 6.0)) and s.progress_m == pytest.approx(32.0)
    assert s.reference_progress_m == pytest.approx(expert_progress(WORLD, 4.0))


def test_a_recording_holding_more_frames_scores_the_stated_window_the_same() -> None:
    """A live recording and a bag of the run need not begin or end with the same frame (the demo's
    end is its last ground-truth sample, whose tick's frame may come after it; a recorder of its
    own may begin earlier; the first trajectory may come before the demo's clock or first frame):
    over the window the live score states (score_window) a bag holding more frames scores the same,
    to the last bit, whichever frame each begins with."""
    frames = [from_json(to_json(f)) for f in _drive(seconds=10.0, offset=1.0)]  # sim clock from 1 s
    live = frames[3:181]                          # 0.15 .. 9.0 s: 1.15 - 0.15 != 1.0 in floats
    t1 = frames[181].stamp                        # the last ground-truth sample: the tick of frame 181
    # clock not running yet: from the first frame (0.15 s); a receipt on the sim clock: from 2.67 s
    for receipt, count in ((0.0, 178), (3.6700000000000004, 127)):
        window = sc.score_window(live, receipt, t1)
        assert window[1] == live[-1].stamp and window[0] == max(receipt, live[0].stamp)
        stated = sc.score_frames(live, *window).as_dict()
        assert stated == sc.score_frames(live, receipt, t1).as_dict()  # the live score itself
        assert sc.score_frames(frames, *window).as_dict() == stated    # the bag's over the stated window
        assert stated["frames"] == count


def test_expert_reference_drives_the_runs_world() -> None:
    assert world_config(WORLD).road.length == 400.0 and world_config(WORLD).scenarios is None
    cut_in = replace(WORLD, scenario="cut_in")
    assert world_config(cut_in).scenarios == load_mix(scenario="cut_in")
    p = expert_progress(WORLD, 6.0)
    assert 10.0 < p < 6.0 * 8.0 and expert_progress(WORLD, 6.0) == p and expert_progress(WORLD, 0.0) == 0.0


# --------------------------------------------------------------------------- per type
def _record(driver: str, scenario: str, score: float, clean: bool) -> dict:
    s = _score(_drive(seconds=2.0)).as_dict()
    s.update(scenario=scenario, score=score, clean=clean,
             checks={**s["checks"], "no_stall": clean})
    return {"driver": driver, "score": s}


def test_per_type_table_puts_the_expert_beside_the_policy() -> None:
    runs = [_record("policy", "cut_in", 0.5, False), _record("policy", "cut_in", 1.0, True),
            _record("expert", "cut_in", 1.0, True), _record("policy", "classic", 0.9, True)]
    t = scenario_table.by_type(runs)
    assert list(t) == ["classic", "cut_in", "all"] and "expert" not in t["classic"]
    assert t["cut_in"]["policy"]["clean_fraction"] == 0.5 and t["cut_in"]["policy"]["mean_score"] == 0.75
    assert t["cut_in"]["policy"]["failed_checks"] == {"no_stall": 1}
    assert t["all"]["policy"]["runs"] == 3 and t["all"]["expert"]["mean_score"] == 1.0
    md = scenario_table.table(t)
    assert "| cut_in | 1/2 (50 %) | 0.750 | 1/1 (100 %) | 1.000 |" in md and "no_stall 1" in md


# --------------------------------------------------------------------------- one run, two paths
def test_offline_run_and_a_bag_of_it_score_the_same(tmp_path: Path) -> None:
    cfg = replace(WorldConfig(), scenarios=load_mix(scenario="pedestrian_crossing"))
    settings = ClosedLoopSettings(max_seconds=6.0, latency=0.02)
    r = run_episode(1003, ExpertPolicy(), cfg, settings, record_path=True, record_frames=True)
    assert r.frames and len(r.frames) == 121             # 20 Hz over 6 s, and the start
    plain = run_episode(1003, ExpertPolicy(), cfg, settings, record_path=True)   # sampling changes nothing
    assert plain.metrics == r.metrics and np.array_equal(plain.path, r.path)
    offline = sc.score_frames([from_json(t) for t in r.frames], start_stamp=r.first_trajectory_s)
    assert offline.scenario == "pedestrian_crossing" and offline.clean
    with BagWriter(tmp_path / "bag") as w:
        for text in r.frames:
            w.write("/" + TOPIC, STRING, round(from_json(text).stamp * 1e9), string_msg(text))
    frames, _ = read_bag(tmp_path / "bag")
    (bagged,) = score_bag(frames, start=r.first_trajectory_s)
    assert bagged.as_dict() == offline.as_dict()


def test_the_evaluator_prints_the_per_type_table_with_the_expert(tmp_path: Path, capsys) -> None:
    """Wiring of ``evaluation.evaluate``: the shipped policy and the expert on one short seed of a
    traffic type, scored, tabled per type, plotted."""
    from minipamayo_ros.evaluation import evaluate

    evaluate.main(["--seeds", "1003:1004", "--latency", "0.02", "--duration", "4", "--scenario",
                   "pedestrian_crossing", "--out", str(tmp_path)])
    printed = capsys.readouterr().out
    assert "| pedestrian_crossing | " in printed and "| **all** |" in printed
    summary = json.loads((tmp_path / "summary.json").read_text())
    row = summary["by_type"]["pedestrian_crossing"]
    assert row["policy"]["runs"] == 1 and row["expert"]["runs"] == 1
    assert {r["driver"] for r in summary["runs"]} == {"policy", "expert"}
    assert all(0.0 <= r["score"]["score"] <= 1.0 for r in summary["runs"])
    assert (tmp_path / "scores.png").exists() and (tmp_path / "ttc.png").exists()
