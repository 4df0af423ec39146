"""The closed-loop demo (README's main command): simulator + policy + follower (+ text) over DDS.

    python -m minipamayo_ros.bringup.demo [--seed 0] [--duration 60] [--out reports/...] [--namespace car7]

Starts the sim stack with the runner (every node its own process, same description as
``sim.launch.py``), records ground truth and the stack's outputs for ``--duration`` seconds of
sim time, stops everything, and writes a report folder: ``metrics.json`` (with the run's score,
``scoring.score``), ``birdseye.png``, ``camera_*.png`` (predicted trajectory drawn into the frame it
was computed from), ``latency.png``, ``scene.jsonl`` (the scene frames), node logs; with
``--record [BAG]`` also a rosbag2 of the run (camera, odometry, /clock, the stack's outputs, the
scene frames; see ``replay.record``). Prints a one-screen summary. Exit code 0 on a
completed run (the quality checks are reported, not enforced: see ``evaluation.evaluate`` for the bar).
With ``--namespace car7`` the stack, the recorder and the bag recorder run under ``/car7`` (topics
``/car7/vla/trajectory`` ...; ``/clock`` stays global).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from minipamayo_ros.bringup.runner import StackRunner, add_stack_arguments, build_specs
from minipamayo_ros.bringup.stack import with_parameters
from minipamayo_ros.dds_env import lease_domain_id, use_loopback_dds
from minipamayo_ros.params import build_config, config_dir, load_node_yaml
from minipamayo_ros.scoring.frames import SCENE_FILE, write_frames

DEFAULT_SEED = 0          # the embedded default road
DEFAULT_DURATION = 60.0   # [s] sim time


def episode_road_length(duration: float, cruise_speed: float = 8.0) -> float:
    """[m] a road long enough for one episode of ``duration`` [s] at ``cruise_speed`` [m/s]."""
    return round(max(400.0, cruise_speed * duration * 1.3 + 150.0), 1)


def sim_overrides(duration: float, cruise_speed: float = 8.0) -> dict[str, object]:
    """Simulator parameters for one long episode (no automatic reset during the run)."""
    return {"auto_reset": False, "road_length": episode_road_length(duration, cruise_speed)}


def scenario_overrides(args: argparse.Namespace) -> dict[str, object]:
    """Simulator parameters of ``--scenario`` / ``--scenario-mix`` (none given: the yaml's)."""
    out: dict[str, object] = {}
    if getattr(args, "scenario", ""):
        out["scenario"] = args.scenario
    if getattr(args, "scenario_mix", None):
        out["scenario_mix"] = args.scenario_mix
    return out


def add_scenario_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--scenario", default="",
                        help="one scenario type of config/scenarios.yaml for the run, "
                             "e.g. pedestrian_crossing")
    parser.add_argument("--scenario-mix", default=None,
                        help="scenario mix (default: config/simulator.yaml's scenario_mix)")


def run_closed_loop(seed: int, duration: float, out_dir: Path, args: argparse.Namespace,
                    snapshot_count: int = 4, progress: bool = True) -> dict[str, Any]:
    """Run the stack once and write the report into ``out_dir``; returns the metrics."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    from minipamayo_ros.bringup import report
    from minipamayo_ros.bringup.recorder import RecorderNode
    from minipamayo_ros.sim.config import SimulatorConfig
    from minipamayo_ros.sim.world import World

    out_dir.mkdir(parents=True, exist_ok=True)
    args.seed = seed
    domain = args.domain_id if args.domain_id is not None else lease_domain_id()
    env = use_loopback_dds(domain)  # the recorder in this process joins the same loopback domain

    specs = with_parameters(build_specs(args), "simulator", {**sim_overrides(duration),
                                                             **scenario_overrides(args)})
    simulator = next(s for s in specs if s.name == "simulator")
    cfg = config_dir()
    sim_values = {**load_node_yaml(cfg / "simulator.yaml", "simulator"), **simulator.parameters}
    sim_config = build_config(SimulatorConfig, {k: v for k, v in sim_values.items() if k != "use_sim_time"})
    follower_rate = float(load_node_yaml(cfg / "follower.yaml", "follower").get("rate_hz", 50.0))
    max_rate = float(load_node_yaml(cfg / "policy.yaml", "policy").get("max_rate_hz", 10.0))

    snapshot_times = [duration * (k + 0.5) / snapshot_count for k in range(snapshot_count)]
    context = rclpy.Context()
    rclpy.init(context=context)
    # with a bag, the report's scene frames are the bag's (one subscription: the same frames)
    recorder = RecorderNode(snapshot_times, context=context, namespace=args.namespace,
                            scene_subscription=getattr(args, "record", None) is None)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(recorder)
    bag = None
    runner = StackRunner(specs, env, log_dir=out_dir / "logs", namespace=args.namespace)
    wall_start = time.monotonic()
    wall_limit = 60.0 + 3.0 * duration / max(args.real_time_factor, 1e-3)
    died: list[tuple[str, int]] = []
    last_print = -1
    tty = sys.stderr.isatty()
    try:
        bag = _start_bag(args, out_dir, context, executor, recorder.on_scene_frame)
        runner.start()
        while recorder.elapsed() < duration:
            executor.spin_once(timeout_sec=0.05)
            died = runner.dead()
            if died:
                break
            if time.monotonic() - wall_start > wall_limit:
                print(f"[demo] stopped: no progress in sim time after {wall_limit:.0f} s wall",
                      file=sys.stderr)
                break
            if bag is not None:
                bag.poll_graph()
            if progress and int(recorder.elapsed()) // 5 != last_print:
                last_print = int(recorder.elapsed()) // 5
                line = (f"[demo] sim time {recorder.elapsed():5.1f} / {duration:.0f} s  "
                        f"trajectories {len(recorder.rec.trajectories):4d}")
                # one updating line on a terminal, one line per step in a log file
                print(f"\r{line}" if tty else line, end="" if tty else "\n", file=sys.stderr, flush=True)
        # collect the simulator's last metrics message
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.05)
    finally:
        if progress and tty:
            print(file=sys.stderr)
        runner.stop()
        if bag is not None:
            counts = bag.close()
            executor.remove_node(bag.node)
            bag.node.destroy_node()
            print(f"[demo] recorded {bag.writer.path}: {counts}", file=sys.stderr)
        executor.remove_node(recorder)
        recorder.destroy_node()
        executor.shutdown()
        rclpy.try_shutdown(context=context)

    rec = recorder.rec
    metrics = report.closed_loop_metrics(rec, max_rate_hz=max_rate, follower_rate_hz=follower_rate)
    metrics["seed"] = seed
    metrics["first_sim_time"] = rec.first_sim_time
    metrics["requested_sim_seconds"] = duration
    metrics["wall_seconds"] = round(time.monotonic() - wall_start, 1)
    metrics["nodes_died"] = [{"node": n, "exit_code": c} for n, c in died]
    metrics["checks"] = report.quality_verdict(metrics)
    text = report.text_metrics(rec)
    if text is not None:
        metrics["text"] = text
    world = World(seed, sim_config.world_config())
    report.plot_birdseye(world.road, rec, out_dir / "birdseye.png")
    report.save_camera_frames(rec, sim_config.world_config().camera, out_dir)
    report.plot_latency(rec, out_dir / "latency.png")
    write_frames(out_dir / SCENE_FILE, rec.scene_frames)
    report.write_json(out_dir / "metrics.json", metrics)
    return metrics


def _start_bag(args: argparse.Namespace, out_dir: Path, context: Any, executor: Any,
               on_scene_frame: Callable[[str], None]) -> Any:
    """``--record``: a bag recorder node in this process (topics of ``replay.record``, sim time).
    Each scene frame it writes also goes to ``on_scene_frame`` (the report), so the live score and
    the bag's are made from the same frames: with its own subscription the report had frames the
    bag lacked -- one at the window's start or end (the two subscriptions matched the simulator at
    different moments; the executor served the report's first and the demo stopped spinning in
    between) or a few the bag's best-effort subscription lost."""
    path = getattr(args, "record", None)
    if path is None:
        return None
    from rclpy.node import Node
    from rclpy.parameter import Parameter
    from rclpy.serialization import deserialize_message
    from std_msgs.msg import String

    from minipamayo_ros.replay.record import DEFAULT_TOPICS, STACK_RELIABLE, STACK_TYPES, BagRecorder
    from minipamayo_ros.scoring.frames import TOPIC as SCENE_TOPIC

    node = Node("bag_recorder", context=context, namespace=args.namespace,
                parameter_overrides=[Parameter("use_sim_time", value=True)])
    executor.add_node(node)
    images = "" if args.record_images == "raw" else args.record_images
    bag = Path(path) if path else out_dir / "bag"

    def scene_frame(data: bytes) -> None:
        on_scene_frame(deserialize_message(data, String).data)

    # subscribed before the stack starts: the bag holds its first messages (no wait for discovery);
    # the scored scene frames reliable, as the simulator publishes them (record.STACK_RELIABLE)
    return BagRecorder(node, bag, DEFAULT_TOPICS, args.record_storage, images, types=STACK_TYPES,
                       reliable=STACK_RELIABLE, taps={SCENE_TOPIC: scene_frame})


def summary_text(m: dict[str, Any], out_dir: Path) -> str:
    d, p, f = m["driving"], m["policy"], m["follower"]

    def fmt(v: Any, spec: str = ".3f") -> str:
        return "n/a" if v is None or isinstance(v, str) else format(v, spec)

    lines = [
        f"minipamayo closed-loop demo — seed {m['seed']}, {m['sim_seconds']:.0f} s sim time "
        f"({m['wall_seconds']:.0f} s wall)",
        f"  driving   distance {fmt(d['distance_m'], '.0f')} m, "
        f"mean speed {fmt(d['mean_speed_mps'], '.1f')} m/s, "
        f"cross-track RMS {fmt(d['cross_track_rms_m'])} m / max {fmt(d['cross_track_max_m'])} m",
        f"            lane departures {fmt(d['lane_departures'], '.0f')}, collisions "
        f"{fmt(d['collisions'], '.0f')}, stop-line violations {fmt(d['stop_line_violations'], '.0f')}",
        f"  policy    {p['rate_hz']:.2f} Hz (cap {p['max_rate_hz']:.0f} Hz, sim time); steady clock: "
        f"end-to-end (receive -> publish) p50/p95/p99 "
        f"{fmt(p['end_to_end_ms']['p50'], '.1f')}/{fmt(p['end_to_end_ms']['p95'], '.1f')}/"
        f"{fmt(p['end_to_end_ms']['p99'], '.1f')} ms, "
        f"inference p95 {fmt(p['inference_ms']['p95'], '.1f')} ms",
        f"            frames {fmt(p['frames_received'], '.0f')} received, "
        f"{fmt(p['frames_skipped_rate_cap'], '.0f')} skipped by the rate cap (by design), "
        f"{fmt(p['frames_dropped_busy'], '.0f')} dropped while inference was busy",
        f"            model {p['model_id']} on {p['backend'] or 'n/a'}",
        f"  follower  {f['rate_hz']:.1f} Hz (configured {f['configured_rate_hz']:.0f} Hz, sim time), "
        f"command interval p99 {fmt(f['receive_period_ms']['p99'], '.1f')} ms (steady clock, as received), "
        f"ticks per status {f['status_ticks']}",
        f"  checks    {', '.join(k + ('=ok' if v else '=FAIL') for k, v in m['checks'].items())}",
    ]
    if m.get("score"):
        s = m["score"]
        lines.append(f"  score     {s['score']:.3f} ({s['scenario']}; "
                     + " ".join(f"{k}={v:.2f}" for k, v in s["subscores"].items())
                     + f"; progress {s['progress_m']:.0f} of the expert's {s['reference_progress_m']:.0f} m)")
        lines += [f"            {f['time']:6.2f} s  {f['check']}: {f['what']}" for f in s["failures"]]
    if "text" in m:
        t = m["text"]
        c = t["counters"]
        lines.append(f"  text      {t['count']} explanations (generated {c.get('generated')}, replaced "
                     f"{c.get('replaced')}, stale {c.get('dropped_stale')}, abandoned {c.get('abandoned')}; "
                     f"{c.get('cpu_priority')}), generation p95 {fmt(t['generation_ms']['p95'], '.1f')} ms")
        t0 = m.get("first_sim_time") or 0.0
        for e in t["explanations"][:8]:
            lines.append(f"            stamp {e['stamp'] - t0:6.2f} s  {e['event']:<9} \"{e['text']}\"")
        if t["count"] > 8:
            lines.append(f"            ... ({t['count'] - 8} more in metrics.json)")
    if m["nodes_died"]:
        lines.append(f"  NODES DIED: {m['nodes_died']} (see logs/)")
    lines.append(f"  report    {out_dir}/ (metrics.json, birdseye.png, camera_*.png, latency.png, logs/)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--duration", type=float, default=DEFAULT_DURATION, help="sim seconds")
    parser.add_argument("--out", type=Path, default=None, help="report folder")
    parser.add_argument("--record", nargs="?", const="", default=None, metavar="BAG",
                        help="record a rosbag2 of the run (default folder: <report>/bag); replay it with "
                             "python -m minipamayo_ros.replay.replay")
    parser.add_argument("--record-storage", choices=("mcap", "sqlite3"), default="mcap")
    parser.add_argument("--record-images", choices=("png", "jpeg", "raw"), default="png",
                        help="camera in the bag: PNG/JPEG CompressedImage (<topic>/compressed) or raw Image")
    add_stack_arguments(parser)
    add_scenario_options(parser)
    parser.add_argument("--text", action="store_true",
                        help="also run the text node (explanations on events; same as --enable-text)")
    parser.set_defaults(seed=DEFAULT_SEED, backend="onnxruntime", stack="sim", log_dir=None)
    args = parser.parse_args(argv)
    args.enable_text = args.enable_text or args.text
    if args.duration <= 0:
        parser.error("--duration must be > 0 s")
    from minipamayo_ros.sim.scenario import DEFAULT_MIX, ScenarioError, load_mix

    try:  # a bad name fails here, not in the simulator process
        load_mix(args.scenario_mix or DEFAULT_MIX, args.scenario)
    except ScenarioError as e:
        parser.error(str(e))
    out = args.out or Path("reports") / time.strftime(f"demo-seed{args.seed}-%Y%m%d-%H%M%S")
    print(f"[demo] seed {args.seed}, {args.duration:.0f} s sim time, backend {args.backend}; "
          f"report -> {out}", file=sys.stderr)
    metrics = run_closed_loop(args.seed, args.duration, out, args)
    print(summary_text(metrics, out))
    return 1 if metrics["nodes_died"] else 0


if __name__ == "__main__":
    sys.exit(main())
