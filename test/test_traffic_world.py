"""Traffic world core (no ROS): IDM, light cycle, pedestrian state machine, fault rules, TTC, scenario
file errors, determinism, occlusion order, the expert in traffic, and the classic world unchanged."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from minipamayo_ros import language
from minipamayo_ros.events import Reason
from minipamayo_ros.params import ParameterError
from minipamayo_ros.sim.agents.behavior import IDM, Leader, Pedestrian, Vehicle, WalkState, idm_acceleration
from minipamayo_ros.sim.agents.fault import collision_fault
from minipamayo_ros.sim.agents.kinematics import AgentKind, AgentState, Role
from minipamayo_ros.sim.agents.objects import LightCycle, LightState
from minipamayo_ros.sim.config import SimulatorConfig
from minipamayo_ros.sim.dataset import TRAFFIC_GENERATOR_VERSION, generate_dataset, load_dataset
from minipamayo_ros.sim.metrics import MetricsTracker, clean_checks, time_to_collision
from minipamayo_ros.sim.scenario import ScenarioError, load_catalog, load_mix, parse_catalog
from minipamayo_ros.sim.world import World, WorldConfig

REPO = Path(__file__).resolve().parents[1]
FINGERPRINT = REPO / "test" / "data" / "classic_world.json"


def world(scenario: str, seed: int, **road: float) -> World:
    cfg = WorldConfig(scenarios=load_mix(scenario=scenario))
    if road:
        cfg = replace(cfg, road=replace(cfg.road, **road))
    return World(seed, cfg)


def drive_expert(w: World, seconds: float) -> None:
    while w.time < seconds and not w.done:
        steer, speed = w.expert_command()
        w.step(steer, speed, 0.02)


# ------------------------------------------------------------------ behaviour models
def test_idm_free_road_follow_and_stop() -> None:
    p = IDM()
    assert idm_acceleration(p, 0.0, 10.0) == pytest.approx(p.accel)          # free road: full accel
    assert idm_acceleration(p, 10.0, 10.0) == pytest.approx(0.0, abs=1e-9)   # at the desired speed
    # closing fast on a standing leader: brakes hard; far behind a leader at the same speed: ~free
    assert idm_acceleration(p, 10.0, 10.0, Leader(15.0, 0.0)) < -5.0
    assert idm_acceleration(p, 8.0, 10.0, Leader(200.0, 8.0)) > 0.5 * idm_acceleration(p, 8.0, 10.0)
    # equilibrium gap behind a leader at the same speed ~ s0 + v T (the safe time gap)
    v = 8.0
    gaps = np.linspace(5.0, 60.0, 2000)
    acc = [idm_acceleration(p, v, 12.0, Leader(g, v)) for g in gaps]
    g_eq = gaps[int(np.argmin(np.abs(acc)))]
    assert p.min_gap + v * p.time_gap < g_eq < 1.6 * (p.min_gap + v * p.time_gap)


def test_light_cycle_phases_and_cross_direction() -> None:
    c = LightCycle(green=10.0, amber=3.0, all_red=2.0, cross_green=8.0, cross_amber=3.0, offset=0.0)
    assert c.period == pytest.approx(28.0)
    t = np.arange(0.0, 2 * c.period, 0.05)
    ours = [c.state(x) for x in t]
    cross = [c.cross_state(x) for x in t]
    # never both directions allowed to go (green or amber) at once; all-red gaps between
    assert not any(a != LightState.RED and b != LightState.RED for a, b in zip(ours, cross, strict=True))
    assert [c.state(t) for t in (0.0, 11.0, 14.0)] == [LightState.GREEN, LightState.AMBER, LightState.RED]
    assert c.cross_state(16.0) == LightState.GREEN and c.cross_state(24.0) == LightState.AMBER
    assert c.time_to_change(4.0) == pytest.approx(6.0) and c.time_to_change(12.0) == pytest.approx(1.0)
    assert LightCycle(offset=5.0).state(0.0) == LightCycle().state(5.0)  # pure function of time
    with pytest.raises(ValueError, match="amber"):
        LightCycle(amber=0.0)


class _Ego:
    """The minimum of a traffic a pedestrian reads: our front bumper's route s."""

    def __init__(self, front: float) -> None:
        self.ego_front_s = front


def test_pedestrian_state_machine() -> None:
    w = world("pedestrian_crossing", 0)
    path = w.traffic.route
    rng = np.random.default_rng(0)
    ped = Pedestrian(1, path, 100.0, -2.95, 6.45, walk_speed=1.25, trigger_distance=30.0, hesitate=True,
                     stop_halfway=True, pause_d=1.75, rng=rng)
    ego = _Ego(50.0)
    states, t, dt = [], 0.0, 0.05
    for _ in range(1200):
        ped.act(t, ego)  # type: ignore[arg-type]
        ped.step(dt)
        t += dt
        states.append(ped.walk)
        if t > 3.0:
            ego.ego_front_s = 75.0   # within the trigger distance from 3 s on
    assert set(states[: int(3.0 / dt)]) == {WalkState.WAITING}   # waits until we come close
    order = [s for i, s in enumerate(states) if i == 0 or s != states[i - 1]]
    assert order == [WalkState.WAITING, WalkState.STEPPING, WalkState.HESITATING, WalkState.WALKING,
                     WalkState.PAUSED, WalkState.WALKING, WalkState.DONE]
    paused = [i for i, s in enumerate(states) if s == WalkState.PAUSED]
    assert 2.0 <= len(paused) * dt <= 6.1
    assert ped.d == pytest.approx(6.45)   # reached the far kerb and stays there
    st = ped.state(3.5, t)
    assert st.kind == AgentKind.PEDESTRIAN and st.speed == 0.0


def test_fault_rules() -> None:
    def agent(x: float, y: float, yaw: float, speed: float, **kw: object) -> AgentState:
        return AgentState(1, AgentKind.VEHICLE, Role.LEAD, x, y, yaw, 4.5, 1.8, 1.5, speed, 0.0, **kw)  # type: ignore[arg-type]

    ego = AgentState(0, AgentKind.VEHICLE, Role.EGO, 1.3, 0.0, 0.0, 4.2, 1.8, 1.5, 6.0, 0.0)
    axle = (0.0, 0.0)
    assert collision_fault(ego, axle, True, agent(5.5, 0.0, 0.0, 0.0), 10.0) == (True, "ego")  # rear-ending
    standing = replace(ego, speed=0.0)
    assert collision_fault(standing, axle, True, agent(5.5, 0.0, 0.0, 0.0), 10.0) == (False, "ego_standing")
    assert collision_fault(ego, axle, True, agent(-3.5, 0.0, 0.0, 9.0), 10.0) == (False, "rear_ended")
    drifted = agent(6.0, 1.8, math.pi, 8.0, in_own_lane=False)
    assert collision_fault(ego, axle, True, drifted, 10.0) == (False, "other_out_of_lane")
    assert collision_fault(ego, axle, False, drifted, 10.0)[0]   # we had left our lane too
    cut = agent(5.5, 0.5, 0.0, 6.0, cut_in_time=9.5)
    assert collision_fault(ego, axle, True, cut, 10.0) == (False, "cut_in")
    assert collision_fault(ego, axle, True, cut, 12.0) == (True, "ego")
    ped = AgentState(2, AgentKind.PEDESTRIAN, Role.PEDESTRIAN, 4.0, 0.5, 1.57, 0.45, 0.6, 1.7, 1.2, 0.0,
                     in_own_lane=False)
    assert collision_fault(ego, axle, True, ped, 10.0) == (True, "ego")


def test_time_to_collision_and_clean_checks() -> None:
    ego = (0.0, 0.0, 0.0, 8.0, 4.2, 1.8)
    standing = (30.0, 0.0, 0.0, 0.0, 4.5, 1.8)
    assert time_to_collision(ego, [standing]) == pytest.approx((30.0 - 4.35) / 8.0, abs=0.1)
    assert time_to_collision(ego, [(30.0, 3.5, math.pi, 8.0, 4.5, 1.8)]) == 5.0   # oncoming in its lane
    assert time_to_collision(ego, [(20.0, 0.0, 0.0, 8.0, 4.5, 1.8)]) == 5.0       # same speed ahead
    assert time_to_collision(ego, [(3.0, 0.5, 0.0, 0.0, 4.5, 1.8)]) == 0.0        # overlapping now
    assert time_to_collision(ego, []) == 5.0
    t = MetricsTracker()
    assert all(clean_checks(t.summary().as_dict()).values())
    t.light_passed(1.0, red=True, speed=5.0)
    t.stall_sample(11.0, standing=True, expert_would_drive=True)
    failed = {k for k, ok in clean_checks(t.summary().as_dict()).items() if not ok}
    assert failed == {"no_red_light_violation", "no_stall"}


# ------------------------------------------------------------------ scenario file
def test_scenario_file_errors_name_file_key_and_allowed_values(tmp_path: Path) -> None:
    good = {"scenario_types": {"classic": {"classic": True},
                               "peds": {"pedestrians": {"count": [1, 2]}}},
            "mixes": {"m": {"classic": 1, "peds": 2}}}
    cat = parse_catalog(good, "s.yaml")
    assert cat.mix("m").weights == (1.0, 2.0) and cat.mix(scenario="peds").types[0].pedestrians is not None

    def error(data: dict, path: str = "s.yaml") -> str:
        with pytest.raises(ScenarioError) as e:
            parse_catalog(data, path)
        return str(e.value)

    bad_key = json.loads(json.dumps(good))
    bad_key["scenario_types"]["peds"]["pedestrians"]["cout"] = [1, 2]
    msg = error(bad_key)
    assert msg.startswith("s.yaml: scenario_types.peds.pedestrians.cout: unknown key; allowed: count,")
    bad_range = json.loads(json.dumps(good))
    bad_range["scenario_types"]["peds"]["pedestrians"]["stop_halfway"] = 1.5
    msg = error(bad_range)
    assert "scenario_types.peds.pedestrians.stop_halfway: 1.5 outside the allowed range 0..1" in msg
    bad_pair = json.loads(json.dumps(good))
    bad_pair["scenario_types"]["peds"]["pedestrians"]["count"] = [3, 1]
    assert "count: min 3 > max 1" in error(bad_pair)
    bad_mix = json.loads(json.dumps(good))
    bad_mix["mixes"]["m"]["nope"] = 1
    assert "mixes.m.nope: unknown scenario type; allowed: classic, peds" in error(bad_mix)
    bad_pop = json.loads(json.dumps(good))
    bad_pop["scenario_types"]["peds"]["walkers"] = {}
    assert "scenario_types.peds.walkers: unknown key; allowed: description, classic, road" in error(bad_pop)
    classic_extra = json.loads(json.dumps(good))
    classic_extra["scenario_types"]["classic"]["pedestrians"] = {}
    assert "a classic type takes no other keys" in error(classic_extra)
    with pytest.raises(ScenarioError, match="unknown scenario mix 'x'; allowed: m"):
        cat.mix("x")
    # a file: bad YAML and a missing file name the file
    f = tmp_path / "bad.yaml"
    f.write_text("scenario_types: [1, 2\n")
    with pytest.raises(ScenarioError, match=f"{f}: not valid YAML"):
        load_catalog(f)
    with pytest.raises(ScenarioError, match="scenario file not found"):
        load_catalog(tmp_path / "missing.yaml")
    # the node's parameters name the parameter
    with pytest.raises(ParameterError, match="'scenario'.*unknown scenario type 'nope'; allowed: classic"):
        SimulatorConfig(scenario="nope")
    with pytest.raises(ParameterError, match="'scenario_mix'.*allowed: classic, traffic"):
        SimulatorConfig(scenario_mix="rush_hour")


def test_shipped_scenario_file_and_per_seed_mix() -> None:
    cat = load_catalog()
    assert {"classic", "lead_vehicle", "oncoming", "cut_in", "parked_vehicles", "pedestrian_crossing",
            "traffic_light", "urban"} <= set(cat.types)
    mix = cat.mix("traffic")
    names = [mix.for_seed(s).name for s in range(200)]
    assert set(names) == set(mix_name for mix_name in cat.mixes["traffic"])   # every type occurs
    assert names == [mix.for_seed(s).name for s in range(200)]                # per seed, stable
    assert SimulatorConfig().scenario_mix == "classic"   # default: the world the shipped policy knows


# ------------------------------------------------------------------ determinism, classic unchanged
def test_same_seed_same_traffic_and_images() -> None:
    a, b, c = world("urban", 3), world("urban", 3), world("urban", 4)
    for w in (a, b, c):
        drive_expert(w, 6.0)
    np.testing.assert_array_equal(a.render(), b.render())
    assert a.scene_state() == b.scene_state()
    assert a.scene_state() != c.scene_state()


def test_classic_mix_is_bit_identical_to_the_world_before_traffic() -> None:
    """Renders, expert plans and metrics of the classic world (default WorldConfig and the 'classic'
    mix of the scenario file) equal the fingerprint recorded before the traffic world existed
    (test/data/classic_world.json; regenerate only if the classic world is meant to change)."""
    import hashlib

    ref = json.loads(FINGERPRINT.read_text())

    def h(*arrays: np.ndarray) -> str:
        m = hashlib.sha256()
        for x in arrays:
            m.update(np.ascontiguousarray(x).tobytes())
        return m.hexdigest()[:16]

    for cfg in (WorldConfig(), WorldConfig(scenarios=load_mix("classic"))):
        for seed in ("0", "7"):
            w = World(int(seed), cfg)
            assert w.traffic is None
            got, k = [], 0
            while w.time < 12.0 and not w.done:
                steer, speed = w.expert_command()
                w.step(steer, speed, 0.02)
                k += 1
                if k % 25 == 0:
                    p = w.expert_plan()
                    got.append(h(w.render(), p.points, p.speeds) + f":{int(p.event)}:{p.caption}")
            assert got == ref["world"][seed][:-1], seed
            m, old = w.metrics().as_dict(), json.loads(ref["world"][seed][-1])
            assert {k: m[k] for k in old} == old


# ------------------------------------------------------------------ rendering
def test_occlusion_nearer_car_hides_farther_one() -> None:
    w = world("lead_vehicle", 1)
    tr = w.traffic
    front = w.proj.s + w.config.body.front
    rng = np.random.default_rng(0)
    near = Vehicle(90, tr.route, front + 8.0, 0.0, 0.0, desired_speed=0.0, rng=rng, length=4.5, width=1.9,
                   height=1.6, color=(220, 20, 20))
    far = Vehicle(91, tr.route, front + 16.0, 0.0, 0.0, desired_speed=0.0, rng=rng, length=5.5, width=2.1,
                  height=2.4, color=(20, 20, 220))
    tr.agents = []
    bg = w.render()
    tr.agents = [near]
    only_near = w.render()
    tr.agents = [far]
    only_far = w.render()
    tr.agents = [far, near]
    both = w.render()
    tr.agents = [near, far]
    np.testing.assert_array_equal(both, w.render())   # drawn by depth, not in list order
    near_px = np.any(only_near != bg, axis=-1)
    far_px = np.any(only_far != bg, axis=-1)
    overlap = near_px & far_px
    assert overlap.sum() > 50                          # the near car covers part of the far van
    # where both are, the near car is seen (edge pixels blend: anti-aliasing)
    same = np.all(both == only_near, axis=-1)
    assert same[overlap].mean() > 0.9
    # the van's part above the car is still seen
    assert np.all(both == only_far, axis=-1)[far_px & ~near_px].mean() > 0.9


def test_agents_lights_and_night_are_visible() -> None:
    w = world("traffic_light", 0)
    ix = w.traffic.layout.intersections[0]
    # drive to 25 m before the first stop line and look: the lit lamp's colour is in the frame
    while w.proj.s + w.config.body.front < ix.stop_line - 25.0:
        steer, speed = w.expert_command()
        w.step(steer, speed, 0.02)
    img = w.render().astype(int)
    state = ix.cycle.state(w.time)
    lamp = {LightState.RED: (img[..., 0] > 200) & (img[..., 1] < 90),
            LightState.GREEN: (img[..., 1] > 200) & (img[..., 0] < 120),
            LightState.AMBER: (img[..., 0] > 200) & (img[..., 1] > 130) & (img[..., 2] < 90)}[state]
    assert lamp.sum() >= 2, state
    # a night world (seed 7 of lead_vehicle): dark sky, road lit in the beam
    n = world("lead_vehicle", 7)
    assert n.lighting.time_of_day.name == "NIGHT"
    frame = n.render().astype(int)
    assert frame[:20].mean() < 40 and frame[-30:, 100:156].mean() > 2 * frame[:20].mean()


# ------------------------------------------------------------------ the expert in traffic
@pytest.mark.parametrize("scenario,seed,reason", [
    ("lead_vehicle", 0, Reason.LEAD_BRAKING),
    ("pedestrian_crossing", 0, Reason.PEDESTRIAN),
    ("traffic_light", 0, Reason.RED_LIGHT),
    ("parked_vehicles", 2, Reason.PARKED_VEHICLE),
])
def test_expert_handles_traffic_and_names_what_it_reacts_to(scenario: str, seed: int, reason: Reason) -> None:
    w = world(scenario, seed)
    reasons, k = set(), 0
    while w.time < 22.0 and not w.done:   # each of these seeds meets its situation within 15 s
        steer, speed = w.expert_command()
        w.step(steer, speed, 0.02)
        k += 1
        if k % 10 == 0:
            plan = w.expert_plan()
            assert language.in_vocabulary(plan.caption)
            reasons.add(plan.reason)
    m = w.metrics().as_dict()
    assert all(clean_checks(m).values()), (m, w.incidents())
    assert m["collisions"] == 0 and reason in reasons, reasons


def test_traffic_dataset_stores_reasons_and_its_generator_version(tmp_path: Path) -> None:
    cfg = WorldConfig(scenarios=load_mix(scenario="lead_vehicle"))
    ds = load_dataset(generate_dataset(tmp_path, [0], episode_seconds=8.0, sample_period=0.5,
                                       image_size=(32, 32), world_config=cfg, progress=False))
    assert ds.reasons.shape == ds.events.shape and Reason.LEAD_VEHICLE in set(ds.reasons.tolist())
    assert ds.meta["generator_version"] == TRAFFIC_GENERATOR_VERSION
    assert ds.meta["scenario_mix"] == "lead_vehicle" and ds.meta["scenario_types"] == {"0": "lead_vehicle"}
