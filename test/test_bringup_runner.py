"""The plain-Python runner brings the whole sim stack up over real DDS and takes it down cleanly."""

from __future__ import annotations

import sys
import time

import numpy as np
import psutil
import pytest
from fault_support import fault_env  # noqa: F401 - fixture
from rclpy.executors import SingleThreadedExecutor

from minipamayo_ros.bringup.recorder import RecorderNode

pytestmark = [pytest.mark.ros, pytest.mark.slow]

SIM_SECONDS = 30.0


@pytest.mark.usefixtures("fault_env")  # first: after the test, none of the runner's processes alive
def test_runner_drives_30_s_in_lane_and_shuts_down_clean(rclpy_context, fault_env, spawn) -> None:  # noqa: F811
    runner = spawn([sys.executable, "-u", "-m", "minipamayo_ros.bringup.runner", "--stack", "sim",
                    "--seed", "1001", "--no-loopback", "--backend", "onnxruntime"], name="runner",
                   env=fault_env)
    recorder = RecorderNode([], context=rclpy_context)
    executor = SingleThreadedExecutor(context=rclpy_context)
    executor.add_node(recorder)
    children: list[psutil.Process] = []
    deadline = time.monotonic() + 4 * SIM_SECONDS + 60
    try:
        while recorder.elapsed() < SIM_SECONDS and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.05)
            assert runner.poll() is None, "runner exited early (a node died?)"
            if len(children) < 3:  # the runner starts its nodes one after another
                children = psutil.Process(runner.pid).children(recursive=True)
        end = time.monotonic() + 2.0
        while time.monotonic() < end:  # the next /sim/metrics message
            executor.spin_once(timeout_sec=0.05)
        shm_ports = {_module(p): _shm_ports_mapped(p) for p in children if _module(p)}
    finally:
        executor.remove_node(recorder)
        recorder.destroy_node()
        executor.shutdown()

    assert recorder.elapsed() >= SIM_SECONDS, "sim time did not advance 30 s"
    names = {" ".join(p.cmdline()) for p in children}
    for module in ("simulator_node", "policy_node", "follower_node"):
        assert any(module in n for n in names), f"{module} not started by the runner"
    # the follower talks UDP only (no tool attaching can stall its commands: docs/latency.md), the
    # others shared memory too; the follower still drove the car (distance below)
    assert shm_ports["follower_node"] == 0 and shm_ports["policy_node"] > 0, shm_ports
    m = recorder.rec.sim_metrics
    assert float(m["distance_m"]) > 60.0, f"car made too little progress: {m}"
    assert float(m["lane_departures"]) == 0 and float(m["collisions"]) == 0, m
    assert len(recorder.rec.trajectories) > 100

    # clean shutdown: SIGINT to the runner only; it stops its nodes and exits 0
    runner.send_signal(2)
    assert runner.wait(30.0) == 0, runner.read_log()[-3000:]
    gone, alive = psutil.wait_procs(children, timeout=10.0)
    assert not alive, f"processes left behind: {[p.pid for p in alive]}"


@pytest.mark.usefixtures("fault_env")
def test_runner_exits_nonzero_when_a_node_dies(fault_env, spawn, tmp_path) -> None:  # noqa: F811
    bad = tmp_path / "bad.yaml"
    bad.write_text("/**/follower:\n  ros__parameters:\n    rate_hz: 5000.0\n")
    runner = spawn([sys.executable, "-u", "-m", "minipamayo_ros.bringup.runner", "--stack", "drive",
                    "--no-loopback", "--config-file", str(bad), "--backend", "onnxruntime"], name="runner",
                   env=fault_env)
    assert runner.wait(60.0) == 1
    assert "died" in runner.read_log()


def _module(p: psutil.Process) -> str:
    """'follower_node' for a process running minipamayo_ros.nodes.follower_node, '' for others."""
    cmd = " ".join(p.cmdline())
    return next((m for m in ("simulator_node", "policy_node", "follower_node") if m in cmd), "")


def _shm_ports_mapped(p: psutil.Process) -> int:
    """How many Fast DDS shared-memory port mappings the process has."""
    with open(f"/proc/{p.pid}/maps") as maps:
        return sum("fastrtps_port" in line for line in maps)


def _sleeper(name: str, seconds: float, code: int = 3) -> object:
    from minipamayo_ros.bringup.processes import NodeProcess

    return NodeProcess([sys.executable, "-c", f"import sys, time; time.sleep({seconds}); sys.exit({code})"],
                       name=name).start()


@pytest.mark.parametrize(("dies", "expect_wait"), [("policy", True), ("follower", False)])
def test_supervise_keeps_the_follower_for_its_stop_unless_it_is_the_one_dead(dies, expect_wait) -> None:
    """A node other than the follower dies: the rest runs the grace period, then exit 1; the
    follower dies: exit 1 at once (real processes standing in for the nodes)."""
    from minipamayo_ros.bringup.runner import StackRunner

    grace = 2.0
    runner = StackRunner([], {}, stop_grace=grace)
    runner.processes = [_sleeper("policy", 0.3 if dies == "policy" else 60.0),
                        _sleeper("follower", 0.3 if dies == "follower" else 60.0)]
    try:
        t0 = time.monotonic()
        rc = runner.supervise(lambda: False, poll_s=0.02)
        waited = time.monotonic() - t0
        assert rc == 1
        if expect_wait:
            assert waited >= 0.3 + grace - 0.05
            assert runner.follower_alive(), "the follower must outlive the grace period's end"
        else:
            assert waited < 0.3 + grace / 2
    finally:
        runner.stop()
    assert all(p.poll() is not None for p in runner.processes)


def test_supervise_returns_0_on_request() -> None:
    from minipamayo_ros.bringup.runner import StackRunner

    runner = StackRunner([], {}, stop_grace=2.0)
    runner.processes = [_sleeper("follower", 60.0)]
    try:
        assert runner.supervise(lambda: True) == 0
    finally:
        runner.stop()


def test_grace_on_the_node_clock_lasts_its_node_seconds_with_a_stalled_clock_and_hang_bounds() -> None:
    """The follower's stop takes /clock seconds: a simulator at 1/4 of real time gets 4x the wall
    time; a /clock that stopped (simulator dead) ends the grace after the wall grace; no /clock:
    wall time; a crawling /clock: the hang guard."""
    from minipamayo_ros.bringup.runner import CLOCK_STALL_S, GRACE_HANG_FACTOR, Grace

    sim = {"t": 100.0}
    slow = Grace(6.5, 6.5, lambda: sim["t"], wall_now=0.0)
    for wall in np.arange(0.1, 30.0, 0.1):
        sim["t"] = 100.0 + 0.25 * wall
        if slow.over(wall):
            break
    assert wall == pytest.approx(26.0, abs=0.11)  # 6.5 s of /clock at a quarter of real time

    stalled = Grace(6.5, 6.5, lambda: 100.0, wall_now=0.0)
    assert not stalled.over(6.4) and stalled.over(6.5 + CLOCK_STALL_S)
    assert Grace(6.5, 6.5, lambda: None, wall_now=0.0).over(6.5)
    assert not Grace(6.5, 6.5, None, wall_now=0.0).over(6.4)
    crawl = Grace(6.5, 6.5, lambda: sim["t"], wall_now=0.0)
    for wall in np.arange(0.1, 100.0, 0.1):
        sim["t"] += 1e-4
        if crawl.over(wall):
            break
    assert wall == pytest.approx(GRACE_HANG_FACTOR * 6.5, abs=0.11)
