"""Support for the launch tests: the real ``ros2 launch`` / launch_testing (vendored Jazzy sources,
installed by ``scripts/setup.sh --dev``), on the test session's loopback DDS domain (test/conftest.py).

Without the vendored tools these tests cannot run: test/conftest.py does not collect them and
``test_launch_tools_present`` reports the skip with the reason (:func:`missing_launch_tools`).
The ``ros2`` daemon that a CLI call may start (it inherits the loopback environment) is stopped
after each module that uses :func:`ros2_launch`.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

LAUNCH_MODULES = ("launch", "launch_ros", "launch_testing", "ros2launch")


def missing_launch_tools() -> str:
    """Why the launch tests cannot run here ('' when they can)."""
    missing = [m for m in LAUNCH_MODULES if importlib.util.find_spec(m) is None
               or importlib.util.find_spec(m).origin is None]  # the repo's launch/ is no package
    if missing or shutil.which("ros2") is None:
        return (f"vendored ROS 2 launch tools not installed ({', '.join(missing) or 'ros2 CLI'} missing): "
                "scripts/setup.sh --dev installs them from shared/vendor/ros2-jazzy-python")
    return ""


def stop_ros2_daemon(env: dict[str, str] | None = None) -> None:
    if shutil.which("ros2"):
        subprocess.run(["ros2", "daemon", "stop"], capture_output=True, timeout=30, check=False, env=env)


class LaunchProcess:
    """``ros2 launch ...`` in its own process group, as a terminal would run it (SIGINT not
    ignored), output in a log file."""

    def __init__(self, args: list[str], log_path: Path, env: dict[str, str] | None = None) -> None:
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            ["ros2", "launch", "minipamayo_ros", *args], stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True, env=env,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for(self, text: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log():
                return True
            if self.proc.poll() is not None:
                return text in self.log()
            time.sleep(0.1)
        return False

    def terminal_ctrl_c(self) -> None:
        """What Ctrl-C in a terminal does: SIGINT to the whole foreground process group."""
        os.killpg(self.proc.pid, signal.SIGINT)

    def children(self) -> list[int]:
        import psutil

        try:
            return [p.pid for p in psutil.Process(self.proc.pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def stop(self) -> None:
        """Make sure nothing survives (SIGKILL to the group), close the log."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.proc.wait(10)
        self._log.close()


@pytest.fixture()
def ros2_launch(tmp_path: Path, ros_env: dict[str, str]) -> Iterator:
    started: list[LaunchProcess] = []

    def _start(*args: str) -> LaunchProcess:
        proc = LaunchProcess(list(args), tmp_path / f"launch{len(started)}.log", env=ros_env)
        started.append(proc)
        return proc

    yield _start
    for p in started:
        kids = p.children()
        p.stop()
        import psutil

        gone, alive = psutil.wait_procs([psutil.Process(k) for k in kids if psutil.pid_exists(k)], timeout=10)
        for a in alive:
            a.kill()
        assert not alive, f"processes survived the launch test: {[a.pid for a in alive]}"
    stop_ros2_daemon(ros_env)
