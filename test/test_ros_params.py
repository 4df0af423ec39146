"""declare_config over a real rclpy node: descriptors, startup validation, runtime changes."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from rclpy.node import Node
from rclpy.parameter import Parameter

from minipamayo_ros.nodes.ros_params import declare_config
from minipamayo_ros.params import ParameterError, param

pytestmark = pytest.mark.ros


@dataclass(frozen=True)
class _Config:
    rate_hz: float = param(50.0, "control rate", "Hz", min=10.0, max=200.0, read_only=True)
    gain: float = param(1.0, "gain", min=0.0, max=5.0)
    lo: float = param(1.0, "lower bound", "m", min=0.0)
    hi: float = param(2.0, "upper bound", "m", min=0.0)

    def __post_init__(self) -> None:
        if self.lo > self.hi:
            raise ParameterError(f"parameter 'lo' ({self.lo} m) must be <= 'hi' ({self.hi} m)")


def _node(ctx, **overrides) -> Node:
    return Node("params_probe", context=ctx,
                parameter_overrides=[Parameter(k, value=v) for k, v in overrides.items()])


def test_declares_with_descriptors(rclpy_context) -> None:
    node = _node(rclpy_context)
    cfg = declare_config(node, _Config)
    assert cfg.rate_hz == 50.0
    desc = node.describe_parameter("rate_hz")
    assert desc.read_only and desc.description == "control rate [Hz]"
    assert desc.floating_point_range[0].to_value == 200.0
    node.destroy_node()


def test_startup_out_of_range_is_fatal_and_named(rclpy_context) -> None:
    node = _node(rclpy_context, rate_hz=500.0)
    with pytest.raises(ParameterError, match="rate_hz"):
        declare_config(node, _Config)
    node.destroy_node()


def test_startup_cross_check_is_fatal(rclpy_context) -> None:
    node = _node(rclpy_context, lo=3.0)
    with pytest.raises(ParameterError, match="'lo'"):
        declare_config(node, _Config)
    node.destroy_node()


def test_a_renamed_parameter_is_refused_naming_its_new_name(rclpy_context) -> None:
    """odom_timeout meant a watchdog threshold in the policy and a stop trigger in the follower: a
    vehicle file still setting it must not be ignored silently (a node would run on the default)."""
    from minipamayo_ros.control.config import FollowerConfig
    from minipamayo_ros.params import build_config
    from minipamayo_ros.policy.config import PolicyConfig

    for cls, new in ((FollowerConfig, "odom_stop_after"), (PolicyConfig, "odom_stale_after")):
        node = _node(rclpy_context, odom_timeout=0.1)
        with pytest.raises(ParameterError, match=f"'odom_timeout' was renamed '{new}'"):
            declare_config(node, cls)
        node.destroy_node()
        with pytest.raises(ParameterError, match=f"'odom_timeout' was renamed '{new}'"):
            build_config(cls, {"odom_timeout": 0.1})  # offline tools (replay, demo) read the same files
    node = _node(rclpy_context)
    assert declare_config(node, FollowerConfig).odom_stop_after == 0.2
    assert not node.has_parameter("odom_timeout")  # only looked for, not left declared
    node.destroy_node()


def test_runtime_changes_validated_and_applied(rclpy_context) -> None:
    node = _node(rclpy_context)
    seen: list[_Config] = []
    declare_config(node, _Config, on_change=seen.append)
    assert node.set_parameters([Parameter("gain", value=2.0)])[0].successful
    assert seen[-1].gain == 2.0
    bad = node.set_parameters([Parameter("lo", value=5.0)])[0]
    assert not bad.successful and "'lo'" in bad.reason
    assert not node.set_parameters([Parameter("rate_hz", value=20.0)])[0].successful  # read-only
    assert node.get_parameter("lo").value == 1.0
    node.destroy_node()
