"""`ros2 run minipamayo_ros <executable>`: installed, executable, only for modules that exist."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def cmake_executables() -> dict[str, str]:
    """executable name -> module, from the one list in CMakeLists.txt."""
    text = (REPO / "CMakeLists.txt").read_text()
    block = text[text.index("set(MINIPAMAYO_EXECUTABLES"):]
    block = block[:block.index(")")]
    return dict(re.findall(r'"(\w+):([\w.]+)"', block))


def module_exists(module: str) -> bool:
    return (REPO / (module.replace(".", "/") + ".py")).is_file()


def installed_lib_dir() -> Path:
    from ament_index_python.packages import get_package_prefix

    return Path(get_package_prefix("minipamayo_ros")) / "lib" / "minipamayo_ros"


def test_cmake_list_is_parsed() -> None:
    exes = cmake_executables()
    assert {"policy_node", "follower_node", "simulator_node", "run_stack", "demo"} <= set(exes)


@pytest.mark.parametrize("name", sorted(cmake_executables()))
def test_installed_executable_is_runnable_only_if_its_module_exists(name: str) -> None:
    path = installed_lib_dir() / name
    if module_exists(cmake_executables()[name]):
        assert path.exists(), f"{path} not installed"
        # with --symlink-install the link target (the generated launcher) needs the execute bit
        assert os.access(path.resolve(), os.X_OK), f"{path} -> {path.resolve()} is not executable"
        assert path.read_text().startswith("#!")
    else:
        assert not path.exists(), f"{path} installed but its module does not exist"


@pytest.mark.parametrize("name", sorted(n for n, m in cmake_executables().items() if module_exists(m)))
def test_help_prints_usage_and_exits_0(name: str) -> None:
    """`ros2 run minipamayo_ros <exe> --help` must not start a node (it would never return)."""
    import subprocess

    done = subprocess.run([str(installed_lib_dir() / name), "--help"], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "usage:" in done.stdout
    if name.endswith("_node"):
        assert "parameters" in done.stdout and "--ros-args" in done.stdout


PROBE_CMAKE = """cmake_minimum_required(VERSION 3.16)
project(exe_probe NONE)
find_package(ament_cmake REQUIRED)
include({executables_cmake})
minipamayo_install_executables("present:exe_probe_py.present" "absent:exe_probe_py.absent")
ament_package()
"""
PROBE_XML = """<?xml version="1.0"?>
<package format="3"><name>exe_probe</name><version>0.0.0</version><description>probe</description>
<maintainer email="probe@example.com">probe</maintainer><license>Apache-2.0</license>
<buildtool_depend>ament_cmake</buildtool_depend><export><build_type>ament_cmake</build_type></export>
</package>
"""


@pytest.mark.slow
@pytest.mark.parametrize("symlink", [True, False], ids=["symlink-install", "plain-install"])
def test_launchers_are_executable_in_both_install_modes(tmp_path: Path, symlink: bool) -> None:
    """The real cmake/executables.cmake in a probe package: an existing module's launcher runs
    from install/lib/<pkg>/ (with --symlink-install that is the generated file itself); a
    missing module's launcher is not installed."""
    import shutil
    import subprocess
    import sys

    colcon = shutil.which("colcon")
    assert colcon, "colcon not on PATH (source scripts/env.sh)"
    src = tmp_path / "src"
    (src / "exe_probe_py").mkdir(parents=True)
    (src / "exe_probe_py" / "__init__.py").write_text("")
    (src / "exe_probe_py" / "present.py").write_text("def main():\n    print('probe ran')\n    return 0\n")
    cmake_file = REPO / "cmake" / "executables.cmake"
    (src / "CMakeLists.txt").write_text(PROBE_CMAKE.format(executables_cmake=cmake_file))
    (src / "package.xml").write_text(PROBE_XML)
    venv = Path(sys.executable).parent.parent
    env = {**os.environ, "CMAKE_PREFIX_PATH": str(venv)}
    cmd = [colcon, "--log-base", str(tmp_path / "log"), "build", "--base-paths", str(src),
           "--build-base", str(tmp_path / "build"), "--install-base", str(tmp_path / "install"),
           "--event-handlers", "console_direct-", "summary-",
           "--cmake-args", f"-DPython3_EXECUTABLE={sys.executable}", "-DBUILD_TESTING=OFF"]
    if symlink:
        cmd.insert(cmd.index("--event-handlers"), "--symlink-install")
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    lib = tmp_path / "install" / "exe_probe" / "lib" / "exe_probe"
    present = lib / "present"
    assert present.is_symlink() == symlink
    assert os.access(present.resolve(), os.X_OK)
    ran = subprocess.run([str(present)], env={**env, "PYTHONPATH": str(src)}, capture_output=True,
                         text=True, timeout=60)
    assert ran.returncode == 0 and "probe ran" in ran.stdout, ran.stdout + ran.stderr
    assert not (lib / "absent").exists()
