"""Start ROS node processes and make sure none outlives its owner.

Each node runs as ``python -m <module> --ros-args ...`` in its own process group, so stopping it
also stops anything it spawned. Stop = SIGINT (rclpy shuts down cleanly), then SIGTERM, then
SIGKILL after short grace periods.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO


def ros_args(
    parameters: Mapping[str, object] | None = None,
    params_files: Sequence[str | Path] = (),
    remappings: Mapping[str, str] | None = None,
    node_name: str | None = None,
    namespace: str | None = None,
) -> list[str]:
    """Command-line ``--ros-args`` for a node (parameter files first, then overrides).

    ``namespace`` may be given with or without its leading ``/`` (``car7`` = ``/car7``, as
    ``launch_ros`` takes it; rcl itself accepts only the absolute form)."""
    args = ["--ros-args"]
    if node_name:
        args += ["-r", f"__node:={node_name}"]
    if namespace and namespace.strip("/"):
        args += ["-r", f"__ns:=/{namespace.strip('/')}"]
    for f in params_files:
        args += ["--params-file", str(f)]
    for name, value in (parameters or {}).items():
        args += ["-p", f"{name}:={_yaml_scalar(value)}"]
    for src, dst in (remappings or {}).items():
        args += ["-r", f"{src}:={dst}"]
    return args


def _yaml_scalar(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_yaml_scalar(v) for v in value) + "]"
    return str(value)


class NodeProcess:
    """One command (usually ``python -m <node module> --ros-args ...``) in its own process group."""

    def __init__(
        self,
        cmd: Sequence[str],
        env: Mapping[str, str] | None = None,
        name: str | None = None,
        log_path: str | Path | None = None,
    ) -> None:
        self.cmd = list(cmd)
        self.name = name or Path(self.cmd[-1]).name
        self._env = dict(env) if env is not None else None
        self._log_path = Path(log_path) if log_path else None
        self._log_file: IO[bytes] | None = None
        self.proc: subprocess.Popen[bytes] | None = None

    @classmethod
    def python_module(
        cls,
        module: str,
        args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        name: str | None = None,
        log_path: str | Path | None = None,
    ) -> NodeProcess:
        """``python -u -m module args...`` with this interpreter."""
        return cls([sys.executable, "-u", "-m", module, *args], env, name or module.rsplit(".", 1)[-1],
                   log_path)

    def start(self) -> NodeProcess:
        out: int | IO[bytes] = subprocess.DEVNULL
        if self._log_path is not None:
            self._log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log_file = open(self._log_path, "wb")  # noqa: SIM115 - closed in stop()
            out = self._log_file
        self.proc = subprocess.Popen(
            self.cmd, env=self._env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def poll(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def send_signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass

    def stop(self, grace: float = 5.0) -> int | None:
        """Stop the process group: SIGINT, then SIGTERM, then SIGKILL. Returns the exit code."""
        if self.proc is None:
            return None
        for sig, wait in ((signal.SIGINT, grace), (signal.SIGTERM, 2.0), (signal.SIGKILL, 2.0)):
            if self.proc.poll() is not None:
                break
            self.send_signal(sig)
            try:
                self.proc.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                continue
        # the group may still hold children of the node even after the leader exited
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        return self.proc.returncode

    def wait(self, timeout: float) -> int | None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return self.proc.returncode
            time.sleep(0.05)
        return None

    def read_log(self) -> str:
        if self._log_path is None or not self._log_path.exists():
            return ""
        return self._log_path.read_text(errors="replace")

    def __enter__(self) -> NodeProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
