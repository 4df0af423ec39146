"""Ctrl-C on ``ros2 launch minipamayo_ros sim.launch.py``: every process exits 0, no traceback,
no ERROR line, no deprecation warning, nothing left behind (real ``ros2 launch``, real nodes,
loopback DDS).

* a terminal's Ctrl-C = SIGINT to the whole process group: every node gets it from the terminal
  and launch handles its own copy;
* Ctrl-C twice in quick succession (impatient user): every node gets SIGINT at least twice;
* SIGINT to the launch process only, twice (a supervisor stopping it): launch escalates to the
  nodes itself (SIGINT, then SIGTERM after ``sigterm_timeout``).
"""

from __future__ import annotations

import re
import signal
import time

import pytest
from launch_support import ros2_launch  # noqa: F401 - fixture

pytestmark = [pytest.mark.ros, pytest.mark.slow]

NODES = ("simulator_node", "policy_node", "follower_node")


def started_processes(log: str) -> dict[str, str]:
    """process name (e.g. 'policy_node-2') -> pid, from launch's 'process started' lines."""
    return dict(re.findall(r"\[INFO\] \[([\w-]+)\]: process started with pid \[(\d+)\]", log))


def assert_clean_stop(launch, log: str) -> None:
    started = started_processes(log)
    assert {re.sub(r"-\d+$", "", n) for n in started} >= set(NODES), log[-3000:]
    for name, pid in started.items():
        assert f"[INFO] [{name}]: process has finished cleanly [pid {pid}]" in log, (name, log[-4000:])
    assert "process has died" not in log, log[-4000:]
    assert "Traceback" not in log and "KeyboardInterrupt" not in log, log[-4000:]
    assert "[ERROR]" not in log, log[-4000:]
    # the discovery-range variable in the running distro's spelling only (minipamayo_ros/dds_env.py)
    assert "ROS_LOCALHOST_ONLY is deprecated" not in log, log[-3000:]
    assert launch.proc.returncode == 0, (launch.proc.returncode, log[-3000:])


@pytest.mark.parametrize("how", ["terminal-ctrl-c", "terminal-ctrl-c-twice", "sigint-launch-twice"])
def test_ctrl_c_stops_every_process_cleanly(ros2_launch, how: str) -> None:  # noqa: F811
    launch = ros2_launch("sim.launch.py", "backend:=onnxruntime")
    # driving: the follower tracks a trajectory (all nodes up, DDS connected, callbacks running)
    assert launch.wait_for("TRACKING: trajectory", 120.0), launch.log()[-4000:]
    time.sleep(1.0)
    if how == "terminal-ctrl-c":
        launch.terminal_ctrl_c()
    elif how == "terminal-ctrl-c-twice":
        launch.terminal_ctrl_c()
        time.sleep(0.05)
        launch.terminal_ctrl_c()
    else:
        launch.proc.send_signal(signal.SIGINT)
        time.sleep(0.05)
        launch.proc.send_signal(signal.SIGINT)
    launch.proc.wait(60.0)
    assert_clean_stop(launch, launch.log())


def test_enable_text_starts_the_text_node_and_ctrl_c_stops_it_cleanly(ros2_launch) -> None:  # noqa: F811
    """``enable_text:=true``: the text node loads its model next to the driving stack (it runs at
    the lowest CPU priority, so it may take a while here) and stops with the rest on Ctrl-C."""
    launch = ros2_launch("sim.launch.py", "backend:=onnxruntime", "enable_text:=true")
    assert launch.wait_for("TRACKING: trajectory", 120.0), launch.log()[-4000:]
    assert launch.wait_for("[text]: text model", 180.0), launch.log()[-4000:]
    assert "text_node" in {re.sub(r"-\d+$", "", n) for n in started_processes(launch.log())}
    time.sleep(1.0)
    launch.terminal_ctrl_c()
    launch.proc.wait(60.0)
    assert_clean_stop(launch, launch.log())
    assert "[text]: stop requested" in launch.log(), launch.log()[-3000:]
