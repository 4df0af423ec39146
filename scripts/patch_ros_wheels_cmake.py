"""Rewrite the ROS 2 wheels' exported CMake files to this venv's Python and numpy include dirs.

The ros-jazzy-* wheels are built in a manylinux container; their
``*__rosidl_generator_pyExport.cmake`` files hard-code that container's
``/opt/python/cpXY-cpXY/include/pythonX.Y`` and its numpy include dir, so any package that
generates Python message bindings against them fails to configure. Idempotent.
"""

from __future__ import annotations

import re
import sys
import sysconfig
from pathlib import Path

import numpy

CONTAINER_PY_INCLUDE = re.compile(r"/opt/python/cp\d+-cp\d+/include/python\d+\.\d+")
CONTAINER_NUMPY_INCLUDE = re.compile(
    r"/opt/python/cp\d+-cp\d+/lib/python\d+\.\d+/site-packages/numpy/(?:_core|core)/include"
)


def patch(venv: Path) -> int:
    """Patch every exported CMake file under ``venv``; returns the number of files changed."""
    py_include = sysconfig.get_paths()["include"]
    np_include = numpy.get_include()
    changed = 0
    for path in (venv / "share").glob("*/cmake/*.cmake"):
        text = path.read_text()
        new = CONTAINER_NUMPY_INCLUDE.sub(np_include, text)
        new = CONTAINER_PY_INCLUDE.sub(py_include, new)
        if new != text:
            path.write_text(new)
            changed += 1
    return changed


if __name__ == "__main__":
    n = patch(Path(sys.argv[1]))
    print(f"[setup] patched {n} CMake files", file=sys.stderr)
