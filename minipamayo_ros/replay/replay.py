"""Replay a rosbag through the policy and (optionally) compare with golden outputs.

    python -m minipamayo_ros.replay.replay BAG --out OUT [--golden GOLDEN.jsonl]       # lock-step
    python -m minipamayo_ros.replay.replay BAG --mode realtime --out OUT [--rate 2] ...  # over DDS
    ros2 run minipamayo_ros replay BAG ...

``lockstep`` (default, the regression mode) runs the bag's frames and odometry through the
node's own pipeline in this process, deterministically (see ``replay.lockstep``); ``--follower``
also runs the follower core, ``--text`` the text node's core (explanations). ``realtime``
publishes the bag's topics with ``/clock`` into a running stack (started by launch or the runner,
``use_sim_time:=true``) and records what it publishes (see ``replay.realtime``).

Writes ``OUT/replayed.jsonl`` and ``OUT/replay_stats.json`` (+ ``OUT/replayed.mcap`` with
``--output-bag``); with ``--golden`` also the compare report (see ``replay.compare``) and the exit
code says PASS (0) / REGRESSION (1) / error (2).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from minipamayo_ros.params import ParameterError
from minipamayo_ros.replay.bagio import BagError, BagWriter
from minipamayo_ros.replay.compare import EXIT_ERROR, EXIT_OK, add_compare_arguments, run_compare
from minipamayo_ros.replay.records import Outputs
from minipamayo_ros.replay.tolerances import ToleranceError


def _parse_params(items: list[str]) -> dict[str, Any]:
    import yaml

    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ParameterError(f"--param expects name=value, got '{item}'")
        k, v = item.split("=", 1)
        out[k.strip()] = yaml.safe_load(v)
    return out


def write_output_bag(outputs: Outputs, path: Path, storage: str = "mcap") -> None:
    """The replayed outputs as a bag (/vla/trajectory, /vla/explanation), log time = input stamp."""
    from minipamayo_ros.replay.bagio import EXPLANATION, TRAJECTORY
    from minipamayo_ros.replay.messages import explanation_msg, trajectory_msg

    with BagWriter(path, storage) as w:
        for t in outputs.trajectories:
            w.write("/vla/trajectory", TRAJECTORY, t.stamp_ns, trajectory_msg(t))
        for e in outputs.explanations:
            w.write("/vla/explanation", EXPLANATION, e.stamp_ns, explanation_msg(e))


def no_trajectory_reasons(outputs: Outputs) -> str:
    """Why the frames produced nothing: per skip category its count and last reason."""
    if not outputs.skips:
        return "no camera frame was replayed (check --image-topic, --start/--end)"
    last: dict[str, tuple[int, str]] = {}
    for s in outputs.skips:
        n, _ = last.get(s.category, (0, ""))
        last[s.category] = (n + 1, s.reason)
    return "skipped: " + "; ".join(f"{cat} x{n} (last: {reason or '-'})" for cat, (n, reason) in last.items())


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("bag", type=Path, nargs="+", help="bag folder(s) (several = one split recording)")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--mode", choices=("lockstep", "realtime"), default="lockstep")
    p.add_argument("--engine", default=None, help="policy manifest (default: policy.yaml's manifest_path)")
    p.add_argument("--backend", default=None, choices=("auto", "onnxruntime", "tensorrt", "torch"))
    p.add_argument("--config-file", default="drive.yaml", help="vehicle parameter file (as the launch files)")
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="policy parameter override (repeatable), e.g. max_rate_hz=5",
    )
    p.add_argument(
        "--image-topic", default=None, help="camera topic in the bag (default: policy image_topic)"
    )
    p.add_argument(
        "--odom-topic", default=None, help="odometry topic in the bag (default: policy odom_topic)"
    )
    p.add_argument(
        "--namespace",
        default="",
        help="the stack's namespace (car7): the policy's relative topic names resolve in it -- "
        "lockstep: where the recorded stack ran; realtime: where the running stack runs (root-level "
        "bag topics are published into it; its outputs are read there)",
    )
    p.add_argument("--start", type=float, default=0.0, help="[s] after the bag start")
    p.add_argument("--end", type=float, default=float("inf"), help="[s] after the bag start")
    lk = p.add_argument_group("lockstep")
    lk.add_argument("--follower", action="store_true", help="also run the follower core (control outputs)")
    lk.add_argument(
        "--text",
        action="store_true",
        help="also run the text node's core (event detector + captions): Explanation outputs",
    )
    lk.add_argument(
        "--follower-latency",
        type=float,
        default=0.1,
        help="[s] modelled image stamp -> trajectory at the follower",
    )
    rt = p.add_argument_group("realtime")
    rt.add_argument("--rate", type=float, default=1.0, help="playback rate factor")
    rt.add_argument("--remap", action="append", default=[], metavar="FROM:=TO", help="topic remapping")
    rt.add_argument("--settle", type=float, default=2.0, help="[s] wall time to wait for late outputs")
    rt.add_argument(
        "--wait-subscribers",
        type=float,
        default=20.0,
        help="[s] wait this long for the stack to subscribe before playing",
    )
    p.add_argument("--output-bag", action="store_true", help="also write OUT/replayed.mcap")
    p.add_argument("--golden", type=Path, default=None, help="compare with these golden outputs")
    p.add_argument("--no-progress", dest="progress", action="store_false")
    add_compare_arguments(p)
    return p


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    from minipamayo_ros.policy.config import PolicyConfig
    from minipamayo_ros.replay import lockstep

    try:
        overrides = _parse_params(a.param)
        if a.engine:
            overrides["manifest_path"] = a.engine
        if a.backend:
            overrides["backend"] = a.backend
        if a.image_topic:
            overrides["image_topic"] = a.image_topic
        if a.odom_topic:
            overrides["odom_topic"] = a.odom_topic
        policy = lockstep.load_node_config(PolicyConfig, "policy", "policy.yaml", a.config_file, overrides)
        a.out.mkdir(parents=True, exist_ok=True)
        if a.mode == "lockstep":
            settings = lockstep.settings_from_config(
                a.config_file,
                overrides,
                follower=a.follower,
                text=a.text,
                follower_latency=a.follower_latency,
                start_offset=a.start,
                end_offset=a.end,
                namespace=a.namespace,
            )
            result = lockstep.run_lockstep(a.bag, settings, progress=a.progress)
            outputs, stats = result.outputs, result.stats.as_dict()
            print(
                f"[replay] {stats['frames']} frames ({stats['trajectories']} trajectories, "
                f"{stats['dropped_rate']} over the rate cap, skips {stats['skips']}) in "
                f"{stats['wall_seconds']:.2f} s: {stats['frames_per_s']:.0f} frames/s, "
                f"{stats['x_real_time']:.1f}x real time; rejected at the node's input checks: "
                f"{stats['rejected'] or 'none'}",
                file=sys.stderr,
            )
            if result.topics.skipped:
                print(f"[replay] topics not replayed: {', '.join(result.topics.skipped)}", file=sys.stderr)
        else:
            from minipamayo_ros.replay import realtime

            outputs, stats = realtime.run_realtime(
                a.bag,
                policy,
                a.out,
                rate=a.rate,
                start=a.start,
                end=a.end,
                remaps=a.remap,
                settle=a.settle,
                wait_subscribers=a.wait_subscribers,
                progress=a.progress,
                namespace=a.namespace,
            )
            print(realtime.describe_stats(stats), file=sys.stderr)
        outputs.write(a.out / "replayed.jsonl")
        (a.out / "replay_stats.json").write_text(json.dumps(stats, indent=2, default=str) + "\n")
        if a.output_bag:
            write_output_bag(outputs, a.out / "replayed.mcap")
    except (BagError, ParameterError, RuntimeError) as exc:
        print(f"[replay] error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    if not outputs.trajectories:  # nothing to compare or to trust: say why, fail
        print(f"[replay] error: no frame of the bag produced a trajectory; {no_trajectory_reasons(outputs)} "
              f"(outputs in {a.out / 'replayed.jsonl'})", file=sys.stderr)
        return EXIT_ERROR
    print(f"[replay] outputs: {a.out / 'replayed.jsonl'}", file=sys.stderr)
    if a.golden is None:
        return EXIT_OK
    try:
        code, _, text = run_compare(
            a.out / "replayed.jsonl",
            a.golden,
            a.out,
            a.profile,
            a.tolerances,
            a.latency_gates,
            a.match_only or a.mode == "realtime",
            a.update_golden,
            bag=a.bag[0],
            plots=a.plots,
            replayed=outputs,
        )
    except (ToleranceError, BagError, ValueError) as exc:
        print(f"[compare] error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    print(text)
    return code


if __name__ == "__main__":
    sys.exit(main())
