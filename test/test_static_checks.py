"""The Humble / Python 3.10 static check (``scripts/check_static.py``) rejects what the vehicle lacks.

``scripts/test.sh`` runs the check over the package and the launch files. Here it is shown to fail
on planted calls that Jazzy has and Humble lacks (found by diffing the two distros' sources), to
pass a call guarded by a runtime test with a correct Humble fallback, and to fail a guard whose
fallback is itself post-Humble. Each line that must be reported is marked ``# LACKS``; no other
line may be.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[1]
CHECK = REPO / "scripts" / "check_static.py"

POST_HUMBLE = '''
from launch.substitutions import EqualsSubstitution  # LACKS (launch 2.x)
from launch_ros.actions import Node as NodeAction
from launch_ros.actions import PushROSNamespace  # LACKS (Humble: PushRosNamespace)
from rclpy.event_handler import SubscriptionEventCallbacks  # LACKS (Humble: rclpy.qos_event)
from rclpy.node import Node
from rclpy.qos import ReliabilityPolicy
from rclpy.subscription import Subscription


def calls(node: Node, sub: Subscription) -> None:
    node.create_timer(0.1, lambda: None, autostart=False)  # LACKS (keyword)
    sub.get_publisher_count()  # LACKS (method)
    print(ReliabilityPolicy.BEST_AVAILABLE)  # LACKS (enum member)
    Node("n", enable_logger_service=True)  # LACKS (constructor keyword)
    NodeAction(package="p", executable="x", respawn=True, respawn_max_retries=3)  # LACKS (**kwargs)
    NodeAction(package="p", executable="x", respawn=True, respawn_delay=1.0, output="screen")
'''

GUARDED = '''
import rclpy.qos
from rclpy.node import Node
from rclpy.subscription import Subscription


def publishers(node: Node, sub: Subscription) -> int:
    if hasattr(sub, "get_publisher_count"):  # Iron and later
        return int(sub.get_publisher_count())
    return len(node.get_publishers_info_by_topic(sub.topic_name))  # Humble


def profile() -> rclpy.qos.QoSProfile:
    if hasattr(rclpy.qos, "qos_profile_best_available"):
        return rclpy.qos.qos_profile_best_available
    return rclpy.qos.qos_profile_sensor_data
'''

BAD_FALLBACK = '''
from rclpy.node import Node
from rclpy.subscription import Subscription


def publishers(node: Node, sub: Subscription) -> int:
    if hasattr(node, "count_clients"):
        return int(sub.get_publisher_count())  # LACKS (the guard tests something else)
    return int(node.count_clients("/x"))  # LACKS (the fallback is post-Humble too)
'''

PYTHON_311 = '''
import tomllib  # 3.11
from typing import Self  # 3.11
'''


def _checker() -> ModuleType:
    """scripts/check_static.py as a module (scripts/ is no package)."""
    spec = importlib.util.spec_from_file_location("check_static", CHECK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(CHECK), *args], cwd=REPO, capture_output=True, text=True,
                          timeout=300, env=env)


def _marked(source: str) -> set[int]:
    return {i for i, line in enumerate(source.splitlines(), 1) if "# LACKS" in line}


def _reported(output: str, name: str) -> set[int]:
    """Lines of ``name`` with an error. By file name: mypy's cache may replay the errors of an
    identical file under the path it had in an earlier run (same module name, same content)."""
    return {int(m) for m in re.findall(rf"^\S*\b{re.escape(name)}:(\d+): error:", output, re.MULTILINE)}


def test_post_humble_calls_fail_the_check_and_guarded_ones_pass(tmp_path: Path) -> None:
    if _checker().find_humble_api() is None:
        pytest.skip("ROS 2 Humble API sources not found (shared/vendor/ros2-humble-python-api above this "
                    "checkout): scripts/check_static.py checks against the installed Jazzy API instead")
    files = {"post_humble.py": POST_HUMBLE, "guarded.py": GUARDED, "bad_fallback.py": BAD_FALLBACK}
    for name, source in files.items():
        (tmp_path / name).write_text(source)
    # its own mypy cache: with the shared one, the next run's planted modules (same names, another
    # tmp_path) were reported at the previous run's paths (reproduced: mypy 2.4.1 takes the cached
    # module's errors), and once with a mypy INTERNAL ERROR; the planted modules stay out of it too
    res = _run("mypy", *(str(tmp_path / name) for name in files), "--mypy-cache-dir", str(tmp_path / "cache"))
    out = res.stdout + res.stderr
    assert res.returncode != 0, out
    assert "ROS 2 Humble API from" in out
    for name, source in files.items():
        assert _reported(out, name) == _marked(source), f"{name}:\n{out}"


def test_the_check_says_so_when_the_humble_sources_are_missing(tmp_path: Path) -> None:
    (tmp_path / "plain.py").write_text("x: int = 1\n")
    res = _run("mypy", str(tmp_path / "plain.py"), "--mypy-cache-dir", str(tmp_path / "cache"),
               env={**os.environ, "MINIPAMAYO_HUMBLE_API": str(tmp_path / "absent")})
    assert res.returncode == 0, res.stdout + res.stderr
    assert "ROS 2 Humble API sources NOT found" in res.stdout


def test_python_311_features_fail_the_language_floor(tmp_path: Path) -> None:
    (tmp_path / "py311.py").write_text(PYTHON_311)
    res = _run("vermin", str(tmp_path / "py311.py"))
    assert res.returncode != 0
    assert "tomllib" in res.stdout and "typing.Self" in res.stdout, res.stdout
