"""The ownerless-segment rule of tools/shm_clean: on files in a temporary folder, and on a real
Fast DDS participant killed with SIGKILL."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from minipamayo_ros.tools import shm_clean

LIVE, DEAD = "fastrtps_0123456789abcdef", "fastrtps_fedcba9876543210"


def _segment(shm: Path, name: str) -> None:
    (shm / name).write_bytes(b"\0" * 16)
    (shm / f"{name}_el").write_bytes(b"")


def test_only_segments_whose_lock_nobody_holds_are_ownerless_and_removed(tmp_path: Path) -> None:
    _segment(tmp_path, LIVE)
    _segment(tmp_path, DEAD)
    (tmp_path / "fastrtps_port7411").write_bytes(b"")  # a domain's port: never a segment
    (tmp_path / "fastrtps_port7411_el").write_bytes(b"")
    fd = os.open(tmp_path / f"{LIVE}_el", os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)  # what the owning participant holds for its life
    try:
        assert shm_clean.segments(tmp_path) == {LIVE, DEAD}
        assert shm_clean.ownerless(shm=tmp_path) == [DEAD]
        assert shm_clean.remove([DEAD], tmp_path) == 1
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
            [LIVE, f"{LIVE}_el", "fastrtps_port7411", "fastrtps_port7411_el"])
        assert shm_clean.main(["--remove", "--shm", str(tmp_path)]) == 0
        assert (tmp_path / LIVE).exists()  # still held
    finally:
        os.close(fd)
    assert shm_clean.ownerless(shm=tmp_path) == [LIVE]  # the owner let go without removing it


@pytest.mark.ros
def test_a_sigkilled_participant_leaves_ownerless_segments(ros_env: dict[str, str]) -> None:
    before = shm_clean.segments()
    code = ("import rclpy, time\nfrom std_msgs.msg import String\nrclpy.init()\n"
            "node = rclpy.create_node('shm_probe')\nnode.create_publisher(String, 'shm_probe', 1)\n"
            "print('up', flush=True)\ntime.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], env=ros_env, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "up"
        new = shm_clean.segments() - before
        assert new, "a Fast DDS participant with the SHM transport made no segment in /dev/shm"
        assert shm_clean.ownerless(new) == []  # alive: every lock held
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert shm_clean.ownerless(new) == sorted(new)
    assert shm_clean.remove(sorted(new)) == len(new)
    assert not (shm_clean.segments() & new)
