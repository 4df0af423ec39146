"""Soak test: the closed-loop demo stack for N minutes, watched for crashes, leaks and latency drift.

    scripts/soak.sh [--minutes 30] [--window-minutes 5] [--seed 0] [--out reports/soak-...]
                    [--scenario-mix classic | traffic_and_classic | --scenario TYPE]

Runs the sim stack (simulator + policy + follower, same processes and parameters as the demo and
``sim.launch.py``; the simulator starts a new road at the end of each one, so the car keeps
driving) in a world of ``config/scenarios.yaml`` (``--scenario-mix``, default ``classic``: the roads
the shipped policy drives; ``traffic_and_classic`` = every traffic scenario type and the classic
roads, one per seed, for a policy trained for traffic) for ``--minutes`` of wall time and records

* **crashes / restarts**: a node that dies is recorded (name, exit code, time) and restarted, at
  most ``--max-restarts`` times in all (then the soak ends early);
* **RSS per node** every ``--sample-seconds``; growth after the warm-up (default: the first 25 %
  of the run, at most 5 min) = mean of the last 10 % of samples vs the first samples after it;
* **latency p50/p95/p99/max per window** (``--window-minutes``, from 30 s after the first
  trajectory): policy end-to-end (image stamp -> trajectory published) and inference latency (from
  the trajectory messages), follower command period (from /vla/control stamps, sim clock);
* **departures**: lane departures, collisions, stop-line violations, summed over episodes (the
  simulator's episode summaries, plus the unfinished last episode from /sim/metrics);
* **score per episode**: the simulator's scene frames (``scene.jsonl``) scored after the run with
  ``scoring.score.score_frames`` (the evaluator's and the demo's score); the driving checks are
  every episode's clean-run checks.

Writes ``soak.json``, ``summary.md``, ``soak.png``, ``scene.jsonl`` and the node logs into
``--out``; prints the summary. Exit code 1 when a node crashed, else 0 (the other targets are
reported, not enforced: latency on a shared machine is noisy). Targets: 0 crashes, RSS growth
<= 5 %, p99 of the last window within 10 % of the first.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import signal
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil

from minipamayo_ros.bringup import soak_report
from minipamayo_ros.bringup.demo import add_scenario_options, scenario_overrides
from minipamayo_ros.bringup.processes import NodeProcess
from minipamayo_ros.bringup.report import plan_rejections
from minipamayo_ros.bringup.runner import StackRunner, add_stack_arguments, build_specs
from minipamayo_ros.bringup.stack import with_parameters
from minipamayo_ros.dds_env import lease_domain_id, use_loopback_dds
from minipamayo_ros.scoring.frames import SCENE_FILE, iter_episodes
from minipamayo_ros.scoring.frames import TOPIC as SCENE_TOPIC
from minipamayo_ros.scoring.score import score_frames

if TYPE_CHECKING:
    from rclpy.context import Context

#: the default world: the one the shipped policy is trained for (as the demo's). The shipped policy
#: stands behind a parked car in traffic (issue 22: no traffic policy shipped yet), and a soak of
#: a stalled car watches nothing; ``--scenario-mix traffic_and_classic`` soaks a traffic policy.
SOAK_SCENARIO_MIX = "classic"
SOAK_DOMAIN_BASE = 120  # soaks use ROS domains 120..219: a long run must not share one with a test
LATENCY_START_S = 30.0   # [s] after the first trajectory: latency windows start (connect + warm-up)
EPISODE_LINE = re.compile(
    r"episode (\d+) \(seed (\d+)\) (completed|ended): (\d+) m in ([\d.]+) s, .*?lane departures (\d+), "
    r"collisions (\d+), stop-line violations (\d+)")


def _listener(context: Context, scene_file: Any, namespace: str = "") -> Any:
    """A node recording what the soak needs (built lazily: rclpy only once the soak runs), in the
    stack's namespace (the stack's relative topic names resolve there for it too); the scene
    frames go straight to ``scene_file`` (an open text file)."""
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.node import Node
    from rclpy.parameter import Parameter
    from std_msgs.msg import String

    from minipamayo_ros.bringup.report import is_follower_trajectory_input
    from minipamayo_ros.msg import ControlCommand, Trajectory
    from minipamayo_ros.nodes.conversions import time_to_sec

    class SoakListener(Node):
        def __init__(self) -> None:
            super().__init__("soak_listener", context=context, namespace=namespace,
                             parameter_overrides=[Parameter("use_sim_time", value=True)])
            self.t0 = time.monotonic()
            self.first_trajectory: float | None = None
            self.first_trajectory_stamp: float | None = None  # [s] sim time (image stamp)
            self.latency: dict[str, tuple[list[float], list[float]]] = {
                "policy end-to-end latency": ([], []), "policy inference latency": ([], []),
                "follower command period (sim clock)": ([], [])}
            self.sim_metrics: dict[str, str] = {}
            self.longest_standstill = 0.0  # [s] over all episodes (/sim/metrics)
            self.controls = 0
            self.trajectories = 0
            # plans withheld by the policy's output check / refused by the follower (/diagnostics)
            self.policy_counts = soak_report.CounterTotals()
            self.follower_counts = soak_report.CounterTotals()
            self._last_control: float | None = None
            self.create_subscription(Trajectory, "vla/trajectory", self._on_trajectory, 10)
            self.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 10)
            self.create_subscription(ControlCommand, "vla/control", self._on_control, 100)
            self.create_subscription(DiagnosticArray, "sim/metrics", self._on_metrics, 10)
            self.create_subscription(String, SCENE_TOPIC, self._on_scene, 100)
            self._scene_file = scene_file

        def _on_scene(self, msg: String) -> None:
            self._scene_file.write(msg.data + "\n")

        def wall(self) -> float:
            return time.monotonic() - self.t0

        def _add(self, key: str, value: float) -> None:
            t, v = self.latency[key]
            t.append(self.wall())
            v.append(float(value))

        def _on_trajectory(self, msg: Trajectory) -> None:
            self.trajectories += 1
            if self.first_trajectory is None:
                self.first_trajectory = self.wall()
                self.first_trajectory_stamp = time_to_sec(msg.header.stamp)
            self._add("policy end-to-end latency", msg.end_to_end_latency_ms)
            self._add("policy inference latency", msg.inference_latency_ms)

        def _on_control(self, msg: ControlCommand) -> None:
            self.controls += 1
            stamp = time_to_sec(msg.header.stamp)
            if self._last_control is not None and 0.0 < stamp - self._last_control < 1.0:
                self._add("follower command period (sim clock)", (stamp - self._last_control) * 1e3)
            self._last_control = stamp

        def _on_diagnostics(self, msg: DiagnosticArray) -> None:
            for status in msg.status:
                values = {kv.key: kv.value for kv in status.values}
                if status.name.endswith("policy inference"):
                    self.policy_counts.update(values)
                elif is_follower_trajectory_input(status.name):
                    self.follower_counts.update(values)

        def _on_metrics(self, msg: DiagnosticArray) -> None:
            for status in msg.status:
                self.sim_metrics = {kv.key: kv.value for kv in status.values}
                try:  # per episode, non-decreasing within one: the max over all is the soak's
                    still = float(self.sim_metrics.get("longest_standstill_s", "0"))
                    self.longest_standstill = max(self.longest_standstill, still)
                except ValueError:
                    pass

    return SoakListener()


def _rss_mb(pid: int) -> float | None:
    """[MB] resident memory of a process and its children (None if gone)."""
    try:
        proc = psutil.Process(pid)
        return sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)]) / 2**20
    except psutil.Error:
        return None


def parse_episodes(log_text: str) -> list[dict[str, Any]]:
    """The simulator's episode summary lines -> one dict per finished episode."""
    return [{"episode": int(m[1]), "seed": int(m[2]), "completed": m[3] == "completed",
             "distance_m": float(m[4]), "duration_s": float(m[5]), "lane_departures": int(m[6]),
             "collisions": int(m[7]), "stop_line_violations": int(m[8])}
            for m in EPISODE_LINE.finditer(log_text)]


def driving_totals(episodes: list[dict[str, Any]], last: dict[str, str]) -> dict[str, Any]:
    """Totals over finished episodes plus the unfinished one (latest /sim/metrics)."""
    def num(key: str) -> float:
        try:
            return float(last.get(key, 0.0))
        except ValueError:
            return 0.0

    done = {int(e["episode"]) for e in episodes}
    current = [] if not last or int(num("episode")) in done else [{
        "distance_m": num("distance_m"), "lane_departures": int(num("lane_departures")),
        "collisions": int(num("collisions")), "stop_line_violations": int(num("stop_line_violations"))}]
    rows = [*episodes, *current]
    return {
        "episodes": len(rows),
        "episodes_completed": sum(1 for e in episodes if e["completed"]),
        "distance_m": round(sum(e["distance_m"] for e in rows), 1),
        "lane_departures": sum(e["lane_departures"] for e in rows),
        "collisions": sum(e["collisions"] for e in rows),
        "stop_line_violations": sum(e["stop_line_violations"] for e in rows),
        "sim_seconds": num("sim_time_s"),
    }


def episode_scores(path: Path, first_trajectory: float | None) -> list[dict[str, Any]]:
    """The score of every episode in the soak's scene frames (``scoring``; from the stack's first
    trajectory on): seed, type, score, clean-run checks and failures."""
    keys = ("episode", "seed", "scenario", "score", "clean", "checks", "failures", "subscores", "progress_m",
            "reference_progress_m", "min_ttc_s")
    out = []
    for frames in iter_episodes(path) if path.exists() else ():
        s = score_frames(frames, first_trajectory).as_dict()
        out.append({k: s[k] for k in keys})
    return out


def run_soak(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    out.mkdir(parents=True, exist_ok=True)
    log_dir = out / "logs"
    duration = args.minutes * 60.0
    warmup = (args.warmup_minutes * 60.0 if args.warmup_minutes is not None
              else min(300.0, 0.25 * duration))
    env = use_loopback_dds(args.domain_id if args.domain_id is not None else lease_domain_id())
    specs = with_parameters(build_specs(args), "simulator", {"episode_seconds": args.episode_seconds,
                                                             **scenario_overrides(args)})
    context = rclpy.Context()
    rclpy.init(context=context)
    scene_file = (out / SCENE_FILE).open("w")
    listener = _listener(context, scene_file, args.namespace)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(listener)
    runner = StackRunner(specs, env, log_dir=log_dir, namespace=args.namespace)
    rss: dict[str, tuple[list[float], list[float]]] = {s.name: ([], []) for s in specs}
    crashes: list[dict[str, Any]] = []
    restarts = 0
    started_utc = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    load_start = os.getloadavg()
    next_sample = next_print = 0.0
    stop = {"signal": 0}

    def on_signal(signum: int, _frame: object) -> None:  # stop early, still write the report
        stop["signal"] = signum

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)
    try:
        runner.start()
        while listener.wall() < duration and not stop["signal"]:
            executor.spin_once(timeout_sec=0.05)
            now = listener.wall()
            for i, p in enumerate(runner.processes):
                rc = p.poll()
                if rc is None:
                    continue
                crashes.append({"node": p.name, "exit_code": rc, "wall_s": round(now, 1)})
                print(f"[soak] CRASH: {p.name} exited with {rc} at {now:.0f} s", file=sys.stderr, flush=True)
                p.stop()
                if restarts >= args.max_restarts:
                    raise _SoakAbortedError(f"more than {args.max_restarts} restarts")
                restarts += 1
                runner.processes[i] = NodeProcess(p.cmd, env, p.name,
                                                  log_dir / f"{p.name}.restart{restarts}.log").start()
            if now >= next_sample:
                next_sample = now + args.sample_seconds
                for p in runner.processes:
                    mb = _rss_mb(p.pid)
                    if mb is not None:
                        rss[p.name][0].append(round(now, 2))
                        rss[p.name][1].append(round(mb, 2))
            if now >= next_print:
                next_print = now + 30.0
                n = len(listener.latency["policy end-to-end latency"][0])
                print(f"[soak] {now / 60:5.1f} / {args.minutes:g} min  trajectories {n}  "
                      f"crashes {len(crashes)}  episode {listener.sim_metrics.get('episode', '-')}",
                      file=sys.stderr, flush=True)
    except _SoakAbortedError as exc:
        print(f"[soak] aborted: {exc}", file=sys.stderr)
    finally:
        wall = listener.wall()
        runner.stop()
        executor.remove_node(listener)
        listener.destroy_node()
        executor.shutdown()
        rclpy.try_shutdown(context=context)
        scene_file.close()

    sim_logs = "".join(p.read_text(errors="replace") for p in sorted(log_dir.glob("simulator*.log")))
    lat_start = (listener.first_trajectory or 0.0) + LATENCY_START_S
    window = args.window_minutes * 60.0
    latency = {}
    for name, (t, v) in listener.latency.items():
        wins = soak_report.windowed_percentiles(t, v, window, lat_start, wall)
        latency[name] = {"windows": wins, "p99_drift": soak_report.p99_drift(wins, window_s=window)}
    growth = {name: soak_report.rss_growth(t, r, warmup) for name, (t, r) in rss.items()}
    report: dict[str, Any] = {
        "minutes": args.minutes, "seed": args.seed, "backend": args.backend,
        "scenario_mix": args.scenario or args.scenario_mix,
        "started_utc": started_utc, "wall_s": round(wall, 1), "warmup_s": warmup, "window_s": window,
        "sample_s": args.sample_seconds, "domain_id": args.domain_id,
        "machine": (f"{platform.machine()}, {os.cpu_count()} cores, load average "
                    f"{load_start[0]:.1f} at start / {os.getloadavg()[0]:.1f} at end (shared machine: "
                    "latency figures include other jobs' load)"),
        "stopped_early": (f"signal {stop['signal']}" if stop["signal"] else None),
        "crashes": crashes, "restarts": restarts,
        "driving": {**driving_totals(parse_episodes(sim_logs), listener.sim_metrics),
                    "longest_standstill_s": round(listener.longest_standstill, 1)},
        "plans": plan_rejections(listener.policy_counts.totals(), listener.follower_counts.totals(),
                                 listener.trajectories),
        "scores": episode_scores(out / SCENE_FILE, listener.first_trajectory_stamp),
        "rss": {k: (asdict(g) if g is not None else None) for k, g in growth.items()},
        "latency": latency,
        "rss_samples": {k: {"wall_s": t, "rss_mb": r} for k, (t, r) in rss.items()},
    }
    report["checks"] = soak_report.verdict(report)
    soak_report.plot(report, rss, listener.latency, out / "soak.png")
    from minipamayo_ros.bringup.report import write_json

    write_json(out / "soak.json", report)
    (out / "summary.md").write_text(soak_report.summary_markdown(report))
    return report


class _SoakAbortedError(RuntimeError):
    """Too many crashes: the soak ends early (the report is still written)."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30.0, help="wall-clock duration")
    parser.add_argument("--window-minutes", type=float, default=5.0, help="latency percentile window")
    parser.add_argument("--warmup-minutes", type=float, default=None,
                        help="RSS growth counts from here (default: 25 %% of the run, at most 5)")
    parser.add_argument("--sample-seconds", type=float, default=5.0, help="RSS sampling period")
    parser.add_argument("--max-restarts", type=int, default=3, help="crashed nodes restarted at most")
    parser.add_argument("--episode-seconds", type=float, default=120.0,
                        help="sim stack: a new episode after this long (roads take 45-65 s), so that a "
                        "stalled car (reported: no_stall) does not end the driving for the rest of the soak; "
                        "0 = only at the road end")
    parser.add_argument("--out", type=Path, default=None, help="report folder")
    add_scenario_options(parser)
    add_stack_arguments(parser)
    # the world a soak drives (config/scenarios.yaml): SOAK_SCENARIO_MIX unless given
    parser.set_defaults(backend="onnxruntime", stack="sim", log_dir=None, scenario_mix=SOAK_SCENARIO_MIX)
    args = parser.parse_args(argv)
    if args.domain_id is None:  # not the 1..100 the tests and demos pick from their pid
        args.domain_id = SOAK_DOMAIN_BASE + os.getpid() % 100
    if args.minutes <= 0 or args.window_minutes <= 0:
        parser.error("--minutes and --window-minutes must be > 0")
    out = args.out or Path("reports") / time.strftime("soak-%Y%m%d-%H%M%S")
    print(f"[soak] {args.minutes:g} min, seed {args.seed}, mix {args.scenario or args.scenario_mix}, "
          f"backend {args.backend}; report -> {out}",
          file=sys.stderr)
    report = run_soak(args, out)
    print((out / "summary.md").read_text())
    return 1 if report["crashes"] else 0


if __name__ == "__main__":
    sys.exit(main())
