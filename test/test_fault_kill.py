"""A node killed mid-drive, or the stack stopped with Ctrl-C, real processes over real DDS, under
the runner and under ``ros2 launch``.

The policy is killed (SIGKILL) while the car drives the simulator at speed. The follower must
outlive it, go STALE after ``trajectory_timeout`` and bring the car to 0 within the documented
stop time; then the runner / launch stops the rest and exits non-zero, leaving no process behind.

(Before the fix the runner stopped the whole stack within 0.1-0.35 s of the death, so the last
command the vehicle got was TRACKING at speed; ``ros2 launch`` left the follower running forever
and never exited.)
"""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psutil
import pytest
from fault_support import fault_env, ros2_cli, stale_install_files  # noqa: F401 - fixture
from rclpy.executors import SingleThreadedExecutor

from conftest import REPO_ROOT
from minipamayo_ros.bringup.recorder import RecorderNode, Recording
from minipamayo_ros.bringup.stop_policy import controlled_stop_grace
from minipamayo_ros.control.config import FollowerConfig
from minipamayo_ros.control.follower import ControlStatus

# fault_env first: its check (no tagged process alive) runs after spawn has stopped everything
pytestmark = [pytest.mark.ros, pytest.mark.slow, pytest.mark.usefixtures("fault_env")]

KILL_AT_SPEED = 5.0   # [m/s] ground-truth speed at which the policy is killed
TICK_SLACK = 0.15     # [s sim] one 50 Hz tick + /clock granularity + a loaded 2-core box


def _child(children: list[psutil.Process], module: str) -> psutil.Process:
    return next(p for p in children if module in " ".join(p.cmdline()))


def _command(how: str) -> list[str]:
    if how == "runner":
        return [sys.executable, "-u", "-m", "minipamayo_ros.bringup.runner", "--stack", "sim",
                "--seed", "1001", "--no-loopback", "--backend", "onnxruntime"]
    ros2 = ros2_cli()
    stale = stale_install_files(REPO_ROOT)
    assert not stale, f"install/ is older than the source (run scripts/setup.sh --dev): {stale[:5]}"
    return [ros2, "launch", "minipamayo_ros", "sim.launch.py", "seed:=1001", "backend:=onnxruntime"]


def _drain(executor: SingleThreadedExecutor, rec: RecorderNode, quiet_s: float = 0.5) -> None:
    """Take what is still queued (a loaded recorder lags its publishers; the samples stay in the
    reader's history after they are gone): spin until nothing new arrived for ``quiet_s``."""
    def size() -> int:
        return len(rec.rec.truth) + len(rec.rec.controls) + len(rec.rec.trajectories)

    last, quiet_since, end = size(), time.monotonic(), time.monotonic() + 10.0
    while time.monotonic() - quiet_since < quiet_s and time.monotonic() < end:
        executor.spin_once(timeout_sec=0.05)
        if size() != last:
            last, quiet_since = size(), time.monotonic()


def _drive_at_speed(runner: object, rec: RecorderNode, executor: SingleThreadedExecutor,
                    deadline: float) -> list[psutil.Process]:
    """Spin until the car tracks a plan at ``KILL_AT_SPEED``; the stack's processes."""
    while time.monotonic() < deadline:
        executor.spin_once(timeout_sec=0.05)
        assert runner.poll() is None, runner.read_log()[-3000:]  # type: ignore[attr-defined]
        speed = rec.rec.truth[-1][4] if rec.rec.truth else 0.0
        tracking = bool(rec.rec.controls) and rec.rec.controls[-1][1] == ControlStatus.TRACKING
        if speed >= KILL_AT_SPEED and tracking and len(rec.rec.trajectories) > 20:
            return psutil.Process(runner.pid).children(recursive=True)  # type: ignore[attr-defined]
    pytest.fail("the car never reached speed under the policy")


@dataclass
class FaultRun:
    """What a fault injected while driving left behind (see :func:`_fault_while_driving`)."""

    rec: Recording                 # everything the recorder received, drained
    log: str                       # the runner's / launch's output
    exit_code: int | None
    t_fault: float                 # [s, monotonic] right after the fault was injected
    t_exit: float                  # [s, monotonic] when the runner / launch had exited (or gave up)
    at_fault: dict[str, Any]       # what ``inject`` recorded at the fault


def _fault_while_driving(proc: Any, rclpy_context: Any,
                         inject: Callable[[list[psutil.Process], Recording], dict[str, Any]],
                         exit_wait_s: float) -> FaultRun:
    """Drive at ``KILL_AT_SPEED`` under ``proc`` (runner or ``ros2 launch``), call ``inject(children,
    recording)``, record until ``proc`` exits (at most ``exit_wait_s`` more), drain; fails if any of
    the stack's processes is left behind."""
    rec = RecorderNode([], context=rclpy_context)
    executor = SingleThreadedExecutor(context=rclpy_context)
    executor.add_node(rec)
    try:
        deadline = time.monotonic() + 180.0
        children = _drive_at_speed(proc, rec, executor, deadline)
        at_fault = inject(children, rec.rec)
        t_fault = time.monotonic()
        while proc.poll() is None and time.monotonic() < deadline + exit_wait_s:
            executor.spin_once(timeout_sec=0.05)
        t_exit = time.monotonic()
        _drain(executor, rec)
    finally:
        executor.remove_node(rec)
        rec.destroy_node()
        executor.shutdown()
    run = FaultRun(rec.rec, proc.read_log(), proc.poll(), t_fault, t_exit, at_fault)
    gone, alive = psutil.wait_procs(children, timeout=10.0)
    assert not alive, f"processes left behind: {[p.pid for p in alive]}"
    return run


@pytest.mark.parametrize("how", ["runner", "ros2_launch"])
def test_policy_killed_at_speed_follower_stops_then_stack_exits_nonzero(
        rclpy_context, fault_env, spawn, how) -> None:  # noqa: F811
    cfg = FollowerConfig()  # follower.yaml and drive.yaml keep the defaults of these fields
    runner = spawn(_command(how), name=how, env=fault_env)

    def kill_policy(children: list[psutil.Process], rec: Recording) -> dict[str, Any]:
        n_traj_before = len(rec.trajectories)
        _child(children, "policy_node").send_signal(signal.SIGKILL)
        return {"n_traj_before": n_traj_before, "speed": rec.truth[-1][4], "sim": rec.truth[-1][0],
                "n_controls": len(rec.controls)}

    # the runner keeps the rest alive for the controlled stop, then exits 1
    run = _fault_while_driving(runner, rclpy_context, kill_policy, exit_wait_s=60.0)
    rec, log, at_kill = run.rec, run.log, run.at_fault
    assert run.exit_code == 1, log[-3000:]

    last_stamp = max(t.stamp for t in rec.trajectories[: at_kill["n_traj_before"] + 5])
    after = [c for c in rec.controls[at_kill["n_controls"]:] if c[0] > last_stamp]
    stale = [c for c in after if c[1] == ControlStatus.STALE_TRAJECTORY_STOP]
    assert stale, f"the follower never went STALE; statuses {sorted({c[1] for c in after})}"
    first_stale = stale[0][0]
    assert cfg.trajectory_timeout - 1e-3 <= first_stale - last_stamp <= cfg.trajectory_timeout + TICK_SLACK
    assert all(c[1] in (ControlStatus.TRACKING, ControlStatus.STALE_TRAJECTORY_STOP, ControlStatus.SHUTDOWN)
               for c in after)
    speeds = [c[2] for c in after if c[1] == ControlStatus.STALE_TRAJECTORY_STOP]
    assert all(b <= a + 1e-6 for a, b in zip(speeds, speeds[1:], strict=False)), "speed rose during the stop"
    first_zero = next(c[0] for c in after if c[1] == ControlStatus.STALE_TRAJECTORY_STOP and c[2] == 0.0)
    # documented bound (docs/follower.md): trajectory_timeout + v / stop_decel after the last stamp
    # with v = the speed commanded when the stop began
    v = [c[2] for c in after if c[0] < first_stale][-1] if after[0][0] < first_stale else at_kill["speed"]
    bound = cfg.trajectory_timeout + cfg.stop_time(v) + TICK_SLACK
    print(f"MEASURED {how}: STALE after {first_stale - last_stamp:.3f} s, speed 0 after "
          f"{first_zero - last_stamp:.3f} s from {v:.2f} m/s (bound {bound - TICK_SLACK:.3f} s)")
    assert first_zero - last_stamp <= bound, (first_zero - last_stamp, bound)
    # the (simulated) vehicle really stopped, and the follower's last word was its SHUTDOWN stop
    after_zero = [t[4] for t in rec.truth if t[0] > first_zero]
    assert after_zero and min(after_zero) < 0.2, (
        f"car still at {after_zero[-1] if after_zero else None} m/s when the stack went down: in "
        f"{run.t_exit - run.t_fault:.2f} s wall the simulator advanced "
        f"{rec.truth[-1][0] - at_kill['sim']:.2f} s")
    assert rec.controls[-1][1] == ControlStatus.SHUTDOWN and rec.controls[-1][2] == 0.0
    assert "controlled-stop grace" in log and "policy" in log


def test_launch_stops_at_once_and_exits_nonzero_when_the_follower_dies(
        fault_env, spawn, tmp_path) -> None:  # noqa: F811
    bad = tmp_path / "bad.yaml"  # the follower refuses to start (exit 2); the policy is fine
    bad.write_text("/**/follower:\n  ros__parameters:\n    rate_hz: 5000.0\n")
    t0 = time.monotonic()
    launch = spawn([*_command("ros2_launch")[:2], "minipamayo_ros", "drive.launch.py",
                    f"config_file:={bad}", "backend:=onnxruntime", "enable_text:=false"],
                   name="launch", env=fault_env)
    assert launch.wait(60.0) == 1, launch.read_log()[-3000:]
    log = launch.read_log()
    assert "node 'follower' exited (code 2): nothing commands the vehicle" in log
    assert "controlled-stop grace" not in log  # no waiting for a stop nobody can command
    assert time.monotonic() - t0 < 45.0


def test_simulator_killed_under_the_runner_follower_last_word_is_its_stop(
        rclpy_context, fault_env, spawn) -> None:  # noqa: F811
    """The simulator is the clock (``use_sim_time``): when it dies, node time stops, so no timeout
    can expire and the follower's timer stops ticking. What it then sends is its SHUTDOWN command
    when the grace is over (the same holds for a bag's /clock on the drive stack: docs/follower.md)."""
    runner = spawn(_command("runner"), name="runner", env=fault_env)

    def kill_simulator(children: list[psutil.Process], rec: Recording) -> dict[str, Any]:
        _child(children, "simulator_node").send_signal(signal.SIGKILL)
        return {"n_controls": len(rec.controls)}

    run = _fault_while_driving(runner, rclpy_context, kill_simulator, exit_wait_s=60.0)
    assert run.exit_code == 1, run.log[-3000:]
    after = run.rec.controls[run.at_fault["n_controls"]:]
    waited = run.t_exit - run.t_fault
    grace = controlled_stop_grace(FollowerConfig())
    print(f"MEASURED simulator killed: {len(after)} commands in the {waited:.2f} s until the runner "
          f"exited (grace {grace:.1f} s); last {ControlStatus(after[-1][1]).name if after else None}")
    assert waited >= grace - 0.5, "the runner did not wait for the follower's stop"
    assert after and after[-1][1] == ControlStatus.SHUTDOWN and after[-1][2] == 0.0
    assert "controlled-stop grace" in run.log and "simulator" in run.log


@pytest.mark.parametrize("how", ["runner", "ros2_launch"])
def test_ctrl_c_while_driving_ends_with_the_followers_stop(rclpy_context, fault_env, spawn,  # noqa: F811
                                                          how) -> None:
    """Ctrl-C in a terminal (SIGINT to the process group: the runner alone, its nodes have their own
    sessions; ``ros2 launch`` and every node at once) while the car drives at speed: the last
    command is the follower's SHUTDOWN at speed 0, exit 0, nothing left behind."""
    runner = spawn(_command(how), name=how, env=fault_env)

    def ctrl_c(children: list[psutil.Process], rec: Recording) -> dict[str, Any]:
        runner.send_signal(signal.SIGINT)
        return {"speed": rec.controls[-1][2]}

    run = _fault_while_driving(runner, rclpy_context, ctrl_c, exit_wait_s=30.0)
    assert run.exit_code == 0, run.log[-3000:]
    last = run.rec.controls[-1]
    assert run.at_fault["speed"] >= KILL_AT_SPEED - 1.0
    assert last[1] == ControlStatus.SHUTDOWN and last[2] == 0.0, (ControlStatus(last[1]).name, last[2])
    assert sum(c[1] == ControlStatus.SHUTDOWN for c in run.rec.controls) == 1


def test_follower_stopped_on_request_under_ros2_launch_stops_the_stack_cleanly(
        rclpy_context, fault_env, spawn) -> None:  # noqa: F811
    """SIGTERM to the follower alone (an operator's ``kill``; also what the stack sees when a
    terminal's Ctrl-C reached every node but launch itself missed it): the follower's last command
    is its SHUTDOWN stop, then launch stops the rest and exits 0 (a requested stop, not a crash)."""
    launch = spawn(_command("ros2_launch"), name="ros2_launch", env=fault_env)

    def stop_follower(children: list[psutil.Process], rec: Recording) -> dict[str, Any]:
        _child(children, "follower_node").send_signal(signal.SIGTERM)
        return {}

    run = _fault_while_driving(launch, rclpy_context, stop_follower, exit_wait_s=30.0)
    log = run.log
    assert run.exit_code == 0, log[-3000:]
    assert "follower' stopped on request" in log and "nothing commands the vehicle" not in log, log[-3000:]
    assert run.rec.controls[-1][1] == ControlStatus.SHUTDOWN and run.rec.controls[-1][2] == 0.0
