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
