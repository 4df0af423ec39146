"""Declare a config dataclass (``minipamayo_ros.params``) as ROS 2 parameters with descriptors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from rcl_interfaces.msg import (
    FloatingPointRange,
    IntegerRange,
    ParameterDescriptor,
    SetParametersResult,
)
from rclpy.node import Node
from rclpy.parameter import Parameter

from minipamayo_ros.params import (
    ParameterError,
    ParamSpec,
    build_config,
    param_specs,
    renamed_error,
    renamed_params,
)

T = TypeVar("T")

_UNBOUNDED = 1e300
_INT_UNBOUNDED = 2**62


def descriptor_for(spec: ParamSpec) -> ParameterDescriptor:
    """The ROS parameter descriptor of ``spec`` (ranges enforced by rclpy on every set)."""
    choices = f" One of {list(spec.choices)}." if spec.choices else ""
    desc = ParameterDescriptor(
        description=spec.full_description + choices,
        read_only=spec.read_only,
    )
    kind = type(spec.default)
    if kind is float and (spec.min is not None or spec.max is not None):
        desc.floating_point_range = [
            FloatingPointRange(
                from_value=float(spec.min if spec.min is not None else -_UNBOUNDED),
                to_value=float(spec.max if spec.max is not None else _UNBOUNDED),
                step=0.0,
            )
        ]
    elif kind is int and (spec.min is not None or spec.max is not None):
        desc.integer_range = [
            IntegerRange(
                from_value=int(spec.min if spec.min is not None else -_INT_UNBOUNDED),
                to_value=int(spec.max if spec.max is not None else _INT_UNBOUNDED),
                step=1,
            )
        ]
    return desc


def declare_config(
    node: Node,
    config_cls: type[T],
    on_change: Callable[[T], None] | None = None,
) -> T:
    """Declare every field of ``config_cls`` on ``node`` and return the validated config.

    Raises :class:`ParameterError` (fatal at startup) naming the offending parameter. Later
    changes of writable parameters are validated the same way; a valid change rebuilds the config
    and calls ``on_change(new_config)``; an invalid one is refused with the reason.
    """
    specs = param_specs(config_cls)
    for old in renamed_params(config_cls):  # set under an old name (params file, -p): refuse to start
        node.declare_parameter(old, None, ParameterDescriptor(dynamic_typing=True))
        was_set = node.get_parameter(old).value is not None
        node.undeclare_parameter(old)
        if was_set:
            raise renamed_error(config_cls, old)
    for spec in specs:
        try:
            node.declare_parameter(spec.name, spec.default, descriptor_for(spec))
        except Exception as exc:  # rclpy raises several types for out-of-range / wrong-type values
            raise ParameterError(f"parameter '{spec.name}': {exc} ({spec.full_description})") from exc
    current = _read(node, specs)
    config = build_config(config_cls, current)

    def _on_set(params: list[Parameter]) -> SetParametersResult:
        nonlocal config
        values = _read(node, specs)
        for p in params:
            if p.name in values:
                values[p.name] = p.value
        try:
            new_config = build_config(config_cls, values)
        except (ParameterError, TypeError) as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        config = new_config
        if on_change is not None:
            on_change(new_config)
        return SetParametersResult(successful=True)

    node.add_on_set_parameters_callback(_on_set)
    return config


def _read(node: Node, specs: list[ParamSpec]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for spec in specs:
        value = node.get_parameter(spec.name).value
        if isinstance(spec.default, list):
            value = list(value) if value is not None else []
        elif isinstance(spec.default, float) and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        out[spec.name] = value
    return out
