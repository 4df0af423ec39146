"""Traffic world benchmark: cost of one 20 Hz camera frame vs the number of agents in view, and
training-data throughput of the classic world vs the traffic mix.

* ``frame_<n>agents_{p50,p95,p99,max}_ms``: what the simulator node does per camera frame at
  20 Hz: 5 physics steps of 10 ms (ego + traffic decisions and kinematics + collision / lane /
  light checks + metrics) and the render, with ``n`` road users in view (``N_AGENTS``: vehicles
  ahead in our lane, vehicles in the opposite lane, pedestrians at the kerbs, placed 8-70 m ahead
  and moving), wall clock. ``frame_<n>agents_cpu_mean_ms``: the same in CPU time of this process,
  and ``core_share_<n>agents_ratio`` = mean CPU time per frame / 50 ms: the share of one core the
  simulator needs for a 20 Hz camera (CPU time: on a shared machine wall times include waiting for
  a core). Goal: <= 0.30 with 12 agents.
* ``extras_{plan,scene}_p50_ms``: what the node adds per frame (the expert label for
  ``/sim/expert_trajectory``, the scene for ``sim/ground_truth/objects``), at 12 agents.
* ``dataset_{classic,traffic}_samples_per_s``: ``sim.dataset.generate_episode`` (the perturbed
  expert, 30 s episodes, a 128 px sample every 0.2 s) on one process = samples/s per core, over
  the same seeds: the classic world (before the traffic world) and the ``traffic`` mix, per second
  of this process's CPU time (= per core).
"""

from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from bench.result import BenchResult
from minipamayo_ros.latency import summarize
from minipamayo_ros.sim.agents.behavior import Pedestrian, Vehicle, WalkState
from minipamayo_ros.sim.dataset import generate_episode
from minipamayo_ros.sim.scenario import load_mix
from minipamayo_ros.sim.traffic import CAR_COLORS
from minipamayo_ros.sim.world import World, WorldConfig

N_AGENTS = (0, 3, 6, 12, 18)
FRAME_DT = 0.05      # [s] 20 Hz camera
PHYSICS_DT = 0.01    # [s]


def traffic_world(n: int, seed: int = 1) -> World:
    """A lead_vehicle world (day) on a straight start whose agents are replaced by ``n`` in view."""
    cfg = WorldConfig(scenarios=load_mix(scenario="lead_vehicle"))
    w = World(seed, cfg)
    tr = w.traffic
    assert tr is not None
    rng = np.random.default_rng(seed)
    front = w.proj.s + w.config.body.front
    agents: list[object] = []
    lw = w.road.lane_width
    for k in range(n):
        gap = 8.0 + 62.0 * (k + 0.5) / max(n, 1)
        kind = k % 3
        aid = 100 + k
        if kind == 2:
            agents.append(Pedestrian(aid, tr.route, front + gap, -lw / 2 - 1.2 if k % 2 else 1.5 * lw + 1.2,
                                     0.0, walk_speed=1.2, trigger_distance=0.0, hesitate=False,
                                     stop_halfway=False, pause_d=lw / 2, rng=rng, length=0.45, width=0.6,
                                     height=1.75, color=(40, 50, 110)))
            agents[-1].walk = WalkState.WAITING  # type: ignore[attr-defined]
            continue
        d = 0.0 if kind == 0 else lw
        agents.append(Vehicle(aid, tr.route, front + gap, d, 6.0, desired_speed=6.0, rng=rng, lane_d=d,
                              length=4.5, width=1.8, height=1.5,
                              color=CAR_COLORS[k % len(CAR_COLORS)]))
    tr.agents = agents  # type: ignore[assignment]
    return w


def bench_frames(n: int, frames: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, float]:
    """Per-frame wall times [ms] (physics + render), expert plan [ms], scene state [ms]; mean agents
    in view; mean CPU time per frame [ms]."""
    w = traffic_world(n)
    steps = round(FRAME_DT / PHYSICS_DT)
    total, plan, scene, seen = [], [], [], []
    cpu = 0.0
    for _ in range(frames):
        cmd = w.expert_command()
        c0 = time.process_time_ns()
        t0 = time.perf_counter_ns()
        for _ in range(steps):
            w.step(*cmd, PHYSICS_DT)
        w.render()
        total.append((time.perf_counter_ns() - t0) / 1e6)
        cpu += (time.process_time_ns() - c0) / 1e6
        t1 = time.perf_counter_ns()
        w.expert_plan()
        plan.append((time.perf_counter_ns() - t1) / 1e6)
        t2 = time.perf_counter_ns()
        st = w.scene_state()
        scene.append((time.perf_counter_ns() - t2) / 1e6)
        ego = st.ego
        c, s = np.cos(ego.yaw), np.sin(ego.yaw)
        seen.append(sum(1 for a in st.agents if 0.0 < (a.x - ego.x) * c + (a.y - ego.y) * s < 80.0))
    return np.array(total), np.array(plan), np.array(scene), float(np.mean(seen)), cpu / frames


def bench_dataset(mix: str, seeds: list[int], seconds: float) -> float:
    cfg = replace(WorldConfig(), scenarios=load_mix(mix))
    n, c0 = 0, time.process_time()
    for s in seeds:
        n += len(generate_episode(s, seconds, 0.2, (128, 128), cfg)["images"])
    return n / (time.process_time() - c0)


def run(out_dir: Path, quick: bool) -> BenchResult:
    load_before = os.getloadavg()[0]
    frames = 60 if quick else 300
    metrics: dict[str, object] = {"loadavg_1min_before": load_before, "cpu_count": os.cpu_count()}
    rows = []
    for n in N_AGENTS:
        total, plan, scene, seen, cpu = bench_frames(n, frames)
        s = summarize(total)
        share = cpu / (FRAME_DT * 1e3)
        metrics.update({f"frame_{n}agents_p50_ms": s.p50, f"frame_{n}agents_p95_ms": s.p95,
                        f"frame_{n}agents_p99_ms": s.p99, f"frame_{n}agents_max_ms": s.max,
                        f"frame_{n}agents_cpu_mean_ms": cpu,
                        f"core_share_{n}agents_ratio": share, f"in_view_{n}agents_mean": seen})
        if n == 12:
            metrics.update({"extras_plan_p50_ms": float(np.median(plan)),
                            "extras_scene_p50_ms": float(np.median(scene))})
        rows.append(f"| {n} | {seen:.1f} | {s.p50:.2f} | {s.p95:.2f} | {s.p99:.2f} | {s.max:.2f} | "
                    f"{cpu:.2f} | {100 * share:.1f} % |")
    seeds = [0, 1] if quick else [0, 1, 2, 3]
    seconds = 10.0 if quick else 30.0
    classic = bench_dataset("classic", seeds, seconds)
    traffic = bench_dataset("traffic", seeds, seconds)
    metrics.update({"dataset_classic_samples_per_s": classic, "dataset_traffic_samples_per_s": traffic,
                    "loadavg_1min_after": os.getloadavg()[0]})
    goals = {"step + render at 20 Hz with 12 agents in view <= 30 % of one core":
             metrics["core_share_12agents_ratio"] <= 0.30}  # type: ignore[operator]
    md = "\n".join([
        f"Load average (1 min) {load_before:.1f} before, {metrics['loadavg_1min_after']:.1f} after, "
        f"{os.cpu_count()} cores. One camera frame at 20 Hz = 5 physics steps (10 ms) + render, 256 px.",
        "",
        "| agents | in view | wall p50 ms | p95 ms | p99 ms | max ms | CPU mean ms | share of one core |",
        "|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        f"Per frame the node also computes the expert plan (p50 {metrics['extras_plan_p50_ms']:.2f} ms) "
        f"and the scene for the markers (p50 {metrics['extras_scene_p50_ms']:.2f} ms) at 12 agents.",
        "",
        f"Training data (one process, 128 px, a sample every 0.2 s, {len(seeds)} x {seconds:.0f} s "
        f"episodes): classic {classic:.0f} samples/s, traffic mix {traffic:.0f} samples/s per core "
        "(CPU time).",
    ])
    return BenchResult(metrics=metrics, summary_md=md, goals=goals)
