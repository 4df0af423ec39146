"""The launch tests need the vendored ROS 2 tools; say so visibly when they are absent."""

from __future__ import annotations

import pytest
from launch_support import missing_launch_tools


def test_launch_tools_present() -> None:
    missing = missing_launch_tools()
    if missing:
        pytest.skip(missing)
    import launch_ros
    import launch_testing

    assert launch_ros.__file__ and launch_testing.__file__
