"""Stopping a node: SIGINT/SIGTERM any number of times, while starting, spinning or shutting down,
ends with exit code 0 and no traceback (what Ctrl-C on `ros2 launch` in a terminal does: every
node gets SIGINT twice, and launch escalates to SIGTERM). Runs the installed executables."""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

import pytest

from minipamayo_ros.nodes.node_main import EXIT_WORKER_STUCK
from minipamayo_ros.policy.probe_model import build_probe_model

pytestmark = pytest.mark.ros

SLOW_LOADING = Path(__file__).parent / "helpers" / "slow_loading_policy.py"
READY = {  # log line printed once the node spins
    "follower_node": "follower at",
    "policy_node": "policy: /camera/image_raw",
    "simulator_node": "simulator: seed",
}


def executable(name: str) -> str:
    from ament_index_python.packages import get_package_prefix

    path = Path(get_package_prefix("minipamayo_ros")) / "lib" / "minipamayo_ros" / name
    assert path.exists(), f"{path} not installed (scripts/setup.sh)"
    return str(path)


def wait_for_log(proc, text: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in proc.read_log():
            return
        assert proc.poll() is None, f"{proc.name} exited early:\n{proc.read_log()}"
        time.sleep(0.05)
    pytest.fail(f"{proc.name} never logged {text!r}:\n{proc.read_log()}")


def assert_clean_exit(proc, timeout: float = 15.0) -> None:
    code = proc.wait(timeout)
    log = proc.read_log()
    assert code == 0, f"{proc.name} exit code {code}:\n{log}"
    assert "Traceback" not in log and "KeyboardInterrupt" not in log, log
    assert "ExternalShutdownException" not in log, log


@pytest.mark.parametrize("name", sorted(READY))
@pytest.mark.parametrize("signals", [(signal.SIGINT, signal.SIGINT), (signal.SIGTERM,) * 3,
                                     (signal.SIGINT, signal.SIGTERM, signal.SIGINT)],
                         ids=["sigint-twice", "sigterm-3x", "mixed"])
def test_stop_signals_while_spinning_exit_0(spawn, name: str, signals: tuple[int, ...]) -> None:
    proc = spawn([executable(name), "--ros-args", "-p", "use_sim_time:=false"], name=name)
    wait_for_log(proc, READY[name])
    time.sleep(0.3)  # spinning, callbacks running
    for sig in signals:
        proc.send_signal(sig)
        time.sleep(0.01)  # "in quick succession": the later ones land during the shutdown
    assert_clean_exit(proc)
    assert "stop requested (" in proc.read_log()


def catches(pid: int, sig: int) -> bool:
    """Whether process ``pid`` has a handler installed for ``sig`` (/proc/<pid>/status SigCgt)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) >> (sig - 1) & 1)
    return False


def test_stop_signal_while_importing_exits_0(spawn) -> None:
    """The launcher's first lines own SIGTERM (Python itself does not): from then on, while the
    node's modules import (rclpy, numpy, onnxruntime: ~1 s), a stop signal is a clean exit.
    (Before the interpreter has started, a signal can only do its default action.)"""
    proc = spawn([executable("policy_node")], name="policy_node")
    deadline = time.monotonic() + 10.0
    while not catches(proc.pid, signal.SIGTERM):
        assert time.monotonic() < deadline and proc.poll() is None, proc.read_log()
        time.sleep(0.002)
    proc.send_signal(signal.SIGINT)
    proc.send_signal(signal.SIGINT)
    assert_clean_exit(proc)
    assert "loading policy model" not in proc.read_log()  # it really stopped during the imports


@pytest.mark.parametrize("load", ["python", "native"])
def test_stop_signal_while_loading_the_model_exits_0_at_once(spawn, load: str) -> None:
    """A stop during a long model load ends the node within seconds, not when the load ends: the
    load is a 60 s stand-in (test/helpers/slow_loading_policy.py), in Python code or in native code
    like a TensorRT engine build (10+ minutes on the vehicle), where the signal's Python handler
    cannot run before the call returns; node_main's signal watcher cancels the build instead."""
    proc = spawn([sys.executable, "-u", str(SLOW_LOADING), "--ros-args", "-p", "use_sim_time:=false"],
                 name=f"policy_node_{load}_load", env={"MINIPAMAYO_TEST_LOAD": load})
    wait_for_log(proc, "[engine build" if load == "native" else "loading policy model")
    time.sleep(0.3)  # inside the load
    proc.send_signal(signal.SIGINT)
    assert_clean_exit(proc, timeout=15.0)  # the load alone takes 60 s
    log = proc.read_log()
    assert "stop requested while starting" in log and READY["policy_node"] not in log, log



def test_stop_while_an_inference_call_hangs_exits_3_and_never_frees_the_backend(spawn, tmp_path) -> None:
    """Issue 20: the policy node (run_node, as shipped) whose inference call never returns (backend
    stand-in with a closed gate: a hung TensorRT call). On SIGINT it waits its bounded time for the
    call, says so, leaves the backend allocated and exits with EXIT_WORKER_STUCK at once (os._exit:
    no finalizer frees it either). Failed before: close() waited 5 s, freed the backend under the
    running call ("closed (DURING a call)"; on TensorRT a use-after-free) and the exit code was 0."""
    manifest = build_probe_model(tmp_path / "probe", image_size=(64, 64))
    helper = Path(__file__).resolve().parent / "helpers" / "stuck_policy.py"
    proc = spawn([sys.executable, "-u", str(helper), "--ros-args", "-p", f"manifest_path:={manifest}",
                  "-p", "backend:=onnxruntime"], name="stuck_policy")
    wait_for_log(proc, "inference call in progress")
    proc.send_signal(signal.SIGINT)
    code = proc.wait(20.0)
    log = proc.read_log()
    assert code == EXIT_WORKER_STUCK, f"exit code {code}:\n{log}"
    assert "policy inference still running 1 s after the stop request" in log, log
    assert "[gated backend] closed" not in log and "Traceback" not in log, log
