"""Run a stack from ``bringup.stack`` as separate processes, without ``ros2 launch``.

    python -m minipamayo_ros.bringup.runner --stack sim --seed 3 [--real-time-factor 1.0]
    python -m minipamayo_ros.bringup.runner --stack drive --backend onnxruntime ...
    python -m minipamayo_ros.bringup.runner --stack sim --namespace car7 --use-sim-time  # 2nd car

Starts every node of the stack as its own process with the same parameter files, overrides and
remappings the launch files use; forwards SIGINT/SIGTERM; stops everything cleanly; exits
non-zero when any node dies (a vehicle stack with a dead node must not look alive). When a node
other than the follower dies, the rest keeps running for the follower's controlled stop first
(``bringup.stop_policy``: ``trajectory_timeout + max_speed / stop_decel + 1 s``, 6.5 s with the
shipped parameters; ``--stop-grace`` overrides it); a second signal cuts that wait short. When the
follower runs on ``/clock`` (the sim stack) the grace is counted on ``/clock`` (a loaded machine's
simulator runs slower than the wall clock), bounded by :data:`GRACE_HANG_FACTOR` times the wall
grace, and ends after the wall grace once ``/clock`` has stood still for :data:`CLOCK_STALL_S`
(the simulator died: node time stopped, nothing more will happen).
On this machine it also applies loopback-only DDS (``--loopback``, default on).
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from minipamayo_ros.bringup.processes import NodeProcess, ros_args
from minipamayo_ros.bringup.stack import (
    NodeSpec,
    StackArgs,
    drive_stack,
    process_env_overrides,
    resolve_params_file,
    sim_stack,
)
from minipamayo_ros.bringup.stop_policy import FOLLOWER, on_sim_time, stack_stop_grace
from minipamayo_ros.dds_env import apply_overrides, lease_domain_id, use_loopback_dds
from minipamayo_ros.params import config_dir

GRACE_HANG_FACTOR = 10.0  # a grace on /clock ends after this many wall graces at most (hang guard)
CLOCK_STALL_S = 1.0       # [s wall] /clock standing still this long: its publisher is gone


class Grace:
    """When the controlled-stop grace that began at a node's death is over (ROS-free).

    ``node_clock()`` [s] is the follower's clock (``/clock``) or None (not on sim time / none seen
    yet): then ``wall_s`` of wall time. Otherwise ``node_s`` of node time, or ``wall_s`` once the
    node clock has stood still for ``CLOCK_STALL_S``, or ``GRACE_HANG_FACTOR * wall_s`` at most.
    """

    def __init__(self, node_s: float, wall_s: float, node_clock: Callable[[], float | None] | None,
                 wall_now: float) -> None:
        self.node_s, self.wall_s, self.clock = node_s, wall_s, node_clock
        self.wall0 = wall_now
        self.node0 = node_clock() if node_clock is not None else None
        self._last_node, self._last_change = self.node0, wall_now

    def over(self, wall_now: float) -> bool:
        wall = wall_now - self.wall0
        node = self.clock() if self.clock is not None else None
        if node is None or self.node0 is None:
            return wall >= self.wall_s
        if node != self._last_node:
            self._last_node, self._last_change = node, wall_now
        stalled = wall_now - self._last_change >= CLOCK_STALL_S
        return (node - self.node0 >= self.node_s or (wall >= self.wall_s and stalled)
                or wall >= GRACE_HANG_FACTOR * self.wall_s)


def node_command_args(spec: NodeSpec, cfg_dir: Path, namespace: str = "") -> list[str]:
    """The ``--ros-args`` of one node, identical in meaning to the launch files' Node action."""
    files = [resolve_params_file(f, cfg_dir) for f in spec.params_files]
    return ros_args(spec.parameters, files, spec.remappings, node_name=spec.name,
                    namespace=namespace or None)


class StackRunner:
    """Owns the processes of one stack."""

    def __init__(self, specs: Sequence[NodeSpec], env: dict[str, str], log_dir: Path | None = None,
                 namespace: str = "", cfg_dir: Path | None = None, stop_grace: float | None = None) -> None:
        cfg = cfg_dir or config_dir()
        #: [s wall] how long the rest of the stack outlives a dead node (follower's controlled stop)
        self.stop_grace = stack_stop_grace(specs, cfg) if stop_grace is None else stop_grace
        #: [s] the same on the follower's clock (counted there when supervise() is given that clock)
        self.node_stop_grace = (stack_stop_grace(specs, cfg, node_clock=True) if stop_grace is None
                                else stop_grace)
        self.processes = [
            NodeProcess.python_module(
                spec.module, node_command_args(spec, cfg, namespace),
                apply_overrides(env, process_env_overrides(spec, env, _say)), spec.name,
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

    def follower_alive(self) -> bool:
        return any(p.name == FOLLOWER and p.poll() is None for p in self.processes)

    def supervise(self, should_stop: Callable[[], bool], poll_s: float = 0.1,
                  node_clock: Callable[[], float | None] | None = None) -> int:
        """Watch the processes until ``should_stop()`` or a node dies; returns the exit code.

        0 on request; 1 when a node died, after the controlled-stop grace if the follower is
        still alive (``should_stop()`` during the grace cuts it short; on ``node_clock``, the
        follower's /clock [s], when given: :class:`Grace`). Does not stop anything.
        """
        reported: set[str] = set()
        grace: Grace | None = None
        while True:
            dead = [(n, rc) for n, rc in self.dead() if n not in reported]
            if dead:
                reported.update(n for n, _ in dead)
                if grace is None and self.follower_alive() and self.stop_grace > 0:
                    grace = Grace(self.node_stop_grace, self.stop_grace, node_clock, time.monotonic())
                    clock = (f"{self.node_stop_grace:.1f} s of /clock" if grace.node0 is not None
                             else f"{self.stop_grace:.1f} s")
                    _say(f"node(s) died: {dead}; keeping the rest running {clock} for the follower's "
                         "controlled stop, then stopping the stack")
                else:
                    _say(f"node(s) died: {dead}; stopping the stack")
                    return 1
            if grace is not None and (grace.over(time.monotonic()) or not self.follower_alive()):
                _say("controlled-stop grace over; stopping the stack")
                return 1
            if should_stop():
                return 1 if grace is not None else 0
            time.sleep(poll_s)

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
        follower_shared_memory=args.follower_shared_memory,
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
    parser.add_argument("--follower-shared-memory", action=argparse.BooleanOptionalAction,
                        default=d.follower_shared_memory,
                        help="the follower uses Fast DDS shared memory too "
                             "(default: UDP only, docs/latency.md)")
    parser.add_argument("--seed", type=int, default=0, help="simulator seed (sim stack)")
    parser.add_argument("--real-time-factor", type=float, default=1.0, help="sim stack")
    parser.add_argument("--loopback", action=argparse.BooleanOptionalAction, default=True,
                        help="loopback-only DDS on a private domain id (development machines)")
    parser.add_argument("--domain-id", type=int, default=None)
    parser.add_argument("--stop-grace", type=float, default=None,
                        help="[s] how long the rest of the stack outlives a dead node before it is "
                             "stopped (default: the follower's worst-case controlled stop + 1 s)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--stack", choices=["drive", "sim"], default="sim")
    parser.add_argument("--log-dir", type=Path, default=None, help="node logs (default: console)")
    add_stack_arguments(parser)
    args = parser.parse_args(argv)

    import os

    env = dict(os.environ)
    if args.loopback:  # this process too: its /clock watch joins the stack's domain
        env = use_loopback_dds(args.domain_id if args.domain_id is not None else lease_domain_id())
    specs = build_specs(args)
    runner = StackRunner(specs, env, args.log_dir, args.namespace, stop_grace=args.stop_grace)
    stop = {"signal": 0}

    def on_signal(signum: int, _frame: object) -> None:
        stop["signal"] = signum

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    print(f"[runner] starting {[s.name for s in specs]}", file=sys.stderr)
    clock = None
    if on_sim_time(specs):  # the follower's stop takes /clock seconds: so does its grace
        from minipamayo_ros.bringup.clock_watch import ClockWatch

        clock = ClockWatch()
    runner.start()
    try:
        rc = runner.supervise(lambda: stop["signal"] != 0, node_clock=clock.now if clock else None)
    finally:
        runner.stop()
        if clock is not None:
            clock.close()
    _say("stopped")
    return rc


def _say(text: str) -> None:
    print(f"[runner] {text}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
