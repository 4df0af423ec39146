"""Run a stack from ``bringup.stack`` as separate processes, without ``ros2 launch``.

    python -m minipamayo_ros.bringup.runner --stack sim --seed 3 [--real-time-factor 1.0]
    python -m minipamayo_ros.bringup.runner --stack drive --backend onnxruntime ...

Starts every node of the stack as its own process with the same parameter files, overrides and
remappings the launch files use; forwards SIGINT/SIGTERM; stops everything cleanly; exits
non-zero as soon as any node dies (a vehicle stack with a dead node must not look alive).
On this machine it also applies loopback-only DDS (``--loopback``, default on).
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from minipamayo_ros.bringup.processes import NodeProcess, ros_args
from minipamayo_ros.bringup.stack import (
    PACKAGE,
    NodeSpec,
    StackArgs,
    drive_stack,
    resolve_params_file,
    sim_stack,
)
from minipamayo_ros.dds_env import loopback_dds_env, pick_domain_id


def config_dir() -> Path:
    """The installed ``share/minipamayo_ros/config`` (falls back to the source tree's config/)."""
    try:
        from ament_index_python.packages import get_package_share_directory

        return Path(get_package_share_directory(PACKAGE)) / "config"
    except Exception:  # not installed: running from a source checkout
        return Path(__file__).resolve().parents[2] / "config"


def node_command_args(spec: NodeSpec, cfg_dir: Path, namespace: str = "") -> list[str]:
    """The ``--ros-args`` of one node, identical in meaning to the launch files' Node action."""
    files = [resolve_params_file(f, cfg_dir) for f in spec.params_files]
    return ros_args(spec.parameters, files, spec.remappings, node_name=spec.name,
                    namespace=namespace or None)


class StackRunner:
    """Owns the processes of one stack."""

    def __init__(self, specs: Sequence[NodeSpec], env: dict[str, str], log_dir: Path | None = None,
                 namespace: str = "", cfg_dir: Path | None = None) -> None:
        cfg = cfg_dir or config_dir()
        self.processes = [
            NodeProcess.python_module(
                spec.module, node_command_args(spec, cfg, namespace), env, spec.name,
                (log_dir / f"{spec.name}.log") if log_dir else None,
            )
            for spec in specs
        ]

    def start(self) -> None:
        for p in self.processes:
            p.start()

    def dead(self) -> list[tuple[str, int]]:
        """(name, exit code) of every process that has exited."""
        return [(p.name, rc) for p in self.processes if (rc := p.poll()) is not None]

    def stop(self) -> None:
        # reverse order: consumers before producers (follower stops before the simulator)
        for p in reversed(self.processes):
            p.send_signal(signal.SIGINT)
        for p in reversed(self.processes):
            p.stop(grace=5.0)

    def __enter__(self) -> StackRunner:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def build_specs(args: argparse.Namespace) -> list[NodeSpec]:
    stack_args = StackArgs(
        config_file=args.config_file, camera_topic=args.camera_topic, odom_topic=args.odom_topic,
        backend=args.backend, engine=args.engine, use_sim_time=args.use_sim_time,
        enable_text=args.enable_text, namespace=args.namespace,
    )
    if args.stack == "sim":
        return sim_stack(stack_args, seed=args.seed, real_time_factor=args.real_time_factor)
    return drive_stack(stack_args)


def add_stack_arguments(parser: argparse.ArgumentParser) -> None:
    """The launch arguments, as command-line options (shared with the demo)."""
    d = StackArgs()
    parser.add_argument("--config-file", default=d.config_file)
    parser.add_argument("--camera-topic", default=d.camera_topic)
    parser.add_argument("--odom-topic", default=d.odom_topic)
    parser.add_argument("--backend", default=d.backend,
                        choices=["auto", "onnxruntime", "tensorrt", "torch"])
    parser.add_argument("--engine", default=d.engine, help="policy manifest path")
    parser.add_argument("--use-sim-time", action=argparse.BooleanOptionalAction, default=d.use_sim_time)
    parser.add_argument("--enable-text", action=argparse.BooleanOptionalAction, default=d.enable_text)
    parser.add_argument("--namespace", default=d.namespace)
    parser.add_argument("--seed", type=int, default=0, help="simulator seed (sim stack)")
    parser.add_argument("--real-time-factor", type=float, default=1.0, help="sim stack")
    parser.add_argument("--loopback", action=argparse.BooleanOptionalAction, default=True,
                        help="loopback-only DDS on a private domain id (development machines)")
    parser.add_argument("--domain-id", type=int, default=None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--stack", choices=["drive", "sim"], default="sim")
    parser.add_argument("--log-dir", type=Path, default=None, help="node logs (default: console)")
    add_stack_arguments(parser)
    args = parser.parse_args(argv)

    import os

    env = dict(os.environ)
    if args.loopback:
        env = loopback_dds_env(args.domain_id if args.domain_id is not None else pick_domain_id(), env)
    specs = build_specs(args)
    runner = StackRunner(specs, env, args.log_dir, args.namespace)
    stop = {"signal": 0}

    def on_signal(signum: int, _frame: object) -> None:
        stop["signal"] = signum

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    print(f"[runner] starting {[s.name for s in specs]}", file=sys.stderr)
    runner.start()
    rc = 0
    try:
        while not stop["signal"]:
            dead = runner.dead()
            if dead:
                print(f"[runner] node(s) died: {dead}; stopping the stack", file=sys.stderr)
                rc = 1
                break
            time.sleep(0.1)
    finally:
        runner.stop()
    print("[runner] stopped", file=sys.stderr)
    return rc


if __name__ == "__main__":
    sys.exit(main())
