"""Shared fixtures: real rclpy over loopback-only DDS, and node processes that never outlive a test.

The DDS environment is set at import time, before any test initialises rclpy, so the test
process itself and every process it starts use LOCALHOST discovery, the loopback Fast DDS
profile and one ROS_DOMAIN_ID unique to this test session.
"""

from __future__ import annotations

import importlib.util
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from minipamayo_ros.bringup.processes import NodeProcess
from minipamayo_ros.dds_env import lease_domain_id, loopback_dds_env, use_loopback_dds
from minipamayo_ros.tools import shm_clean

REPO_ROOT = Path(__file__).resolve().parents[1]

# launch tests need the vendored ROS 2 launch tools (scripts/setup.sh --dev); without them they
# are not collected and test/launch/test_tools_present.py shows the skip and its reason
if importlib.util.find_spec("launch_testing") is None or importlib.util.find_spec("launch_ros") is None:
    collect_ignore_glob = ["launch/test_*_launch.py"]
DOMAIN_ID = int(os.environ.get("MINIPAMAYO_TEST_DOMAIN_ID", 0)) or lease_domain_id()
use_loopback_dds(DOMAIN_ID)


#: (test id, Fast DDS segments its processes left) for the end-of-session summary
_SHM_LEFT: list[tuple[str, int]] = []


@pytest.fixture(autouse=True)
def _remove_ownerless_shm_segments(request: pytest.FixtureRequest) -> Iterator[None]:
    """Remove the Fast DDS segments a test's processes left in /dev/shm (a SIGKILLed node cannot
    clean up) and name the test in the summary: nothing piles up in RAM over runs, and a node that
    leaves segments after a normal stop shows up by name. Torn down after every other fixture
    (autouse fixtures are set up first), so the test's processes have exited."""
    before = shm_clean.segments()
    yield
    left = shm_clean.ownerless(shm_clean.segments() - before)
    if left:
        shm_clean.remove(left)
        _SHM_LEFT.append((request.node.nodeid, len(left)))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _SHM_LEFT:
        terminalreporter.write_sep("-", "Fast DDS segments left in /dev/shm by test processes (removed)")
        for nodeid, n in _SHM_LEFT:
            terminalreporter.write_line(f"{n:3d}  {nodeid}")


@pytest.fixture(scope="session")
def ros_env() -> dict[str, str]:
    """Environment for node processes started by tests (same loopback DDS domain as the test)."""
    return loopback_dds_env(DOMAIN_ID)


@pytest.fixture(scope="session")
def udp_ros_env() -> dict[str, str]:
    """``ros_env`` without Fast DDS shared memory (loopback UDP only), for stacks whose nodes are
    killed and restarted one at a time: a node restarted after ``kill -9`` may receive nothing over
    shared memory from the processes that survived its predecessor (fastdds_loopback_udp.xml). The
    test process (shared memory + UDP) talks to such nodes over UDP on 127.0.0.1."""
    return loopback_dds_env(DOMAIN_ID, shared_memory=False)


@pytest.fixture()
def rclpy_context() -> Iterator[object]:
    """A fresh, initialised rclpy context for one test (shut down afterwards)."""
    import rclpy
    from rclpy.context import Context

    ctx = Context()
    rclpy.init(context=ctx)
    try:
        yield ctx
    finally:
        rclpy.try_shutdown(context=ctx)


@pytest.fixture()
def ros_node(rclpy_context: object) -> Iterator[object]:
    """A test node plus a SingleThreadedExecutor on the test's context: ``(node, executor)``."""
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node

    node = Node(f"test_probe_{os.getpid()}", context=rclpy_context)
    executor = SingleThreadedExecutor(context=rclpy_context)
    executor.add_node(node)
    try:
        yield node, executor
    finally:
        executor.remove_node(node)
        node.destroy_node()
        executor.shutdown()


def spin_until(executor: object, predicate: Callable[[], bool], timeout: float) -> bool:
    """Spin ``executor`` until ``predicate()`` is true or ``timeout`` [s] passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        executor.spin_once(timeout_sec=0.02)  # type: ignore[attr-defined]
    return predicate()


@pytest.fixture()
def one_torch_thread() -> Iterator[None]:
    """The CI box has 2 shared cores: one torch intra-op thread is faster than two that contend.
    For the model tests (``pytestmark = pytest.mark.usefixtures("one_torch_thread")``)."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture()
def spawn(ros_env: dict[str, str], tmp_path: Path) -> Iterator[Callable[..., NodeProcess]]:
    """Factory starting processes on the test's DDS domain; all are stopped at teardown.

    ``spawn(cmd_list)`` or ``spawn(module="minipamayo_ros.nodes.x", args=[...])``. Logs go to
    ``tmp_path/<name>.log`` and are printed on failure by pytest's captured output. ``env`` is
    added to ``dds`` (default ``ros_env``; e.g. ``udp_ros_env``: no shared memory).
    """
    started: list[NodeProcess] = []

    def _spawn(cmd: list[str] | None = None, *, module: str | None = None,
               args: list[str] | None = None, name: str | None = None,
               env: dict[str, str] | None = None, dds: dict[str, str] | None = None) -> NodeProcess:
        full_env = {**(ros_env if dds is None else dds), **(env or {})}
        if module is not None:
            proc = NodeProcess.python_module(module, args or [], full_env, name,
                                             tmp_path / f"{name or module}.log")
        else:
            assert cmd is not None
            proc = NodeProcess(cmd, full_env, name, tmp_path / f"{name or Path(cmd[-1]).name}.log")
        started.append(proc.start())
        return proc

    yield _spawn
    for proc in started:
        proc.stop()
        log = proc.read_log()
        if log:
            print(f"----- {proc.name} log -----\n{log[-4000:]}")
    for proc in started:  # nothing may survive a test
        assert proc.poll() is not None, f"process {proc.name} survived its test"
