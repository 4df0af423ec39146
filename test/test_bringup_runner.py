"""The plain-Python runner brings the whole sim stack up over real DDS and takes it down cleanly."""

from __future__ import annotations

import sys
import time

import psutil
import pytest
from rclpy.executors import SingleThreadedExecutor

from minipamayo_ros.bringup.recorder import RecorderNode

pytestmark = [pytest.mark.ros, pytest.mark.slow]

SIM_SECONDS = 30.0


def test_runner_drives_30_s_in_lane_and_shuts_down_clean(rclpy_context, spawn) -> None:
    runner = spawn([sys.executable, "-u", "-m", "minipamayo_ros.bringup.runner", "--stack", "sim",
                    "--seed", "1001", "--no-loopback", "--backend", "onnxruntime"], name="runner")
    recorder = RecorderNode([], context=rclpy_context)
    executor = SingleThreadedExecutor(context=rclpy_context)
    executor.add_node(recorder)
    children: list[psutil.Process] = []
    deadline = time.monotonic() + 4 * SIM_SECONDS + 60
    try:
        while recorder.elapsed() < SIM_SECONDS and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.05)
            assert runner.poll() is None, "runner exited early (a node died?)"
            if not children:
                children = psutil.Process(runner.pid).children(recursive=True)
        end = time.monotonic() + 2.0
        while time.monotonic() < end:  # the next /sim/metrics message
            executor.spin_once(timeout_sec=0.05)
    finally:
        executor.remove_node(recorder)
        recorder.destroy_node()
        executor.shutdown()

    assert recorder.elapsed() >= SIM_SECONDS, "sim time did not advance 30 s"
    names = {" ".join(p.cmdline()) for p in children}
    for module in ("simulator_node", "policy_node", "follower_node"):
        assert any(module in n for n in names), f"{module} not started by the runner"
    m = recorder.rec.sim_metrics
    assert float(m["distance_m"]) > 60.0, f"car made too little progress: {m}"
    assert float(m["lane_departures"]) == 0 and float(m["collisions"]) == 0, m
    assert len(recorder.rec.trajectories) > 100

    # clean shutdown: SIGINT to the runner only; it stops its nodes and exits 0
    runner.send_signal(2)
    assert runner.wait(30.0) == 0, runner.read_log()[-3000:]
    gone, alive = psutil.wait_procs(children, timeout=10.0)
    assert not alive, f"processes left behind: {[p.pid for p in alive]}"


def test_runner_exits_nonzero_when_a_node_dies(spawn, tmp_path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("/**/follower:\n  ros__parameters:\n    rate_hz: 5000.0\n")
    runner = spawn([sys.executable, "-u", "-m", "minipamayo_ros.bringup.runner", "--stack", "drive",
                    "--no-loopback", "--config-file", str(bad), "--backend", "onnxruntime"], name="runner")
    assert runner.wait(60.0) == 1
    assert "died" in runner.read_log()
