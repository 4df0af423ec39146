"""Fault tests leave nothing behind: every process a test starts carries a tag in its environment,
inherited by whatever it starts (the runner's nodes, ``ros2 launch``'s nodes, anything they
spawn), and after the test no process with that tag may be alive.

This catches what a list of children cannot: a node orphaned by its dead parent (re-parented to
init), or one started after the list was taken. The DDS domain id cannot serve as the tag: it is
``pid % 100`` and may be shared with another test session on the same machine.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

TAG = "MINIPAMAYO_FAULT_TEST"


def tagged_processes(token: str) -> list[psutil.Process]:
    """Every live process (but this one) whose environment holds ``TAG=token``."""
    found = []
    for p in psutil.process_iter():
        if p.pid == os.getpid():
            continue
        try:
            if p.environ().get(TAG) == token:
                found.append(p)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            pass
    return found


@pytest.fixture()
def fault_env() -> Iterator[dict[str, str]]:
    """``env=`` for ``spawn``. Request it before ``spawn`` (``pytest.mark.usefixtures``) so that its
    check runs after ``spawn`` has stopped what it started: then nothing tagged may be left."""
    token = uuid.uuid4().hex
    yield {TAG: token}
    left = tagged_processes(token)
    gone, alive = psutil.wait_procs(left, timeout=15.0)
    described = []
    for p in alive:
        try:
            described.append(f"{p.pid} {' '.join(p.cmdline())[:160]}")
            p.kill()  # ours (it carries our token): do not let it disturb the next test
        except psutil.NoSuchProcess:
            pass
    assert not alive, f"processes left behind by the test: {described}"


def stale_install_files(repo_root: Path) -> list[str]:
    """Source files of the package whose installed copy (what ``ros2 launch`` / ``ros2 run`` run)
    differs or is missing: the colcon install holds *copies* of the Python package, refreshed by
    ``scripts/setup.sh --dev``; a launch test after a source edit would otherwise test old code."""
    from ament_index_python.packages import get_package_prefix

    prefix = Path(get_package_prefix("minipamayo_ros"))
    installed = next(prefix.glob("lib/python3*/site-packages/minipamayo_ros"), None)
    if installed is None:
        return ["<no installed minipamayo_ros package>"]
    source = repo_root / "minipamayo_ros"
    stale = []
    for f in sorted(source.rglob("*.py")):
        copy = installed / f.relative_to(source)
        if not copy.is_file() or copy.read_bytes() != f.read_bytes():
            stale.append(str(f.relative_to(repo_root)))
    return stale


def ros2_cli() -> str:
    """The ``ros2`` CLI, or a visible skip: it is the vendored Jazzy tools (not on PyPI), which
    ``scripts/setup.sh --dev`` installs only where shared/vendor/ros2-jazzy-python exists (issue
    #12: skip with the reason where they are absent, as the launch tests do)."""
    import shutil

    ros2 = shutil.which("ros2")
    if ros2 is None:
        pytest.skip("ros2 CLI not installed: scripts/setup.sh --dev installs it from "
                    "shared/vendor/ros2-jazzy-python, which was not found above this checkout")
    return ros2
