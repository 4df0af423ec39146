"""Node parameters declared once, as typed dataclass fields carrying their descriptor.

A node's configuration is a frozen dataclass whose fields are made with :func:`param`
(description, unit, range, choices, read-only). The same declaration drives

* validation (:func:`build_config`), with errors that name the parameter and say what to fix,
* the ROS parameter declarations with descriptors (``minipamayo_ros.nodes.ros_params``),
* the defaults shipped in ``config/*.yaml`` (a test checks that the YAML matches).

Cross-parameter rules live in the dataclass's ``__post_init__`` and raise :class:`ParameterError`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

ParamValue = bool | int | float | str | list[float] | list[str]
T = TypeVar("T")


class ParameterError(ValueError):
    """A parameter value is invalid; the message names the parameter and the allowed values."""


@dataclass(frozen=True)
class ParamSpec:
    """Descriptor of one parameter."""

    name: str
    default: ParamValue
    description: str
    unit: str = ""
    min: float | None = None
    max: float | None = None
    choices: tuple[str, ...] | None = None
    read_only: bool = False

    @property
    def full_description(self) -> str:
        unit = f" [{self.unit}]" if self.unit else ""
        return f"{self.description}{unit}"

    def check(self, value: Any) -> ParamValue:
        """Return ``value`` coerced to this parameter's type, or raise :class:`ParameterError`."""
        kind = type(self.default)
        if kind is bool:
            if not isinstance(value, bool):
                raise self._error(value, "must be true or false")
        elif kind is int:
            if isinstance(value, bool) or not isinstance(value, int):
                raise self._error(value, "must be an integer")
        elif kind is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise self._error(value, "must be a number")
            value = float(value)
            if not math.isfinite(value):
                raise self._error(value, "must be finite")
        elif kind is str:
            if not isinstance(value, str):
                raise self._error(value, "must be a string")
            if self.choices is not None and value not in self.choices:
                raise self._error(value, f"must be one of {list(self.choices)}")
        elif kind is list:
            if not isinstance(value, Sequence) or isinstance(value, str):
                raise self._error(value, "must be a list")
            value = list(value)
        if kind in (int, float):
            if self.min is not None and value < self.min:
                raise self._error(value, f"must be >= {self.min}")
            if self.max is not None and value > self.max:
                raise self._error(value, f"must be <= {self.max}")
        return value

    def _error(self, value: Any, what: str) -> ParameterError:
        unit = f" {self.unit}" if self.unit else ""
        return ParameterError(
            f"parameter '{self.name}' = {value!r}{unit} is invalid: {what} ({self.description})"
        )


def param(
    default: ParamValue,
    description: str,
    unit: str = "",
    *,
    min: float | None = None,
    max: float | None = None,
    choices: Sequence[str] | None = None,
    read_only: bool = False,
) -> Any:
    """A dataclass field that is also a node parameter (see module docstring)."""
    meta = {
        "param": {
            "description": description,
            "unit": unit,
            "min": min,
            "max": max,
            "choices": tuple(choices) if choices is not None else None,
            "read_only": read_only,
        }
    }
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


def param_specs(config_cls: type) -> list[ParamSpec]:
    """The parameter descriptors of a config dataclass, in declaration order."""
    specs = []
    for f in dataclasses.fields(config_cls):
        meta = f.metadata.get("param")
        if meta is None:
            continue
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:  # param() always sets one
            raise TypeError(f"{config_cls.__name__}.{f.name}: a parameter needs a default")
        specs.append(ParamSpec(name=f.name, default=default, **meta))
    return specs


def renamed_params(config_cls: type) -> dict[str, str]:
    """Old parameter names of ``config_cls`` -> their new names (the class's ``RENAMED``)."""
    return dict(getattr(config_cls, "RENAMED", {}))


def renamed_error(config_cls: type, old: str) -> ParameterError:
    """The error for a parameter file that still sets a renamed parameter: a safety threshold set
    under its old name must not be silently ignored (nor guessed: the meaning was split)."""
    new = renamed_params(config_cls)[old]
    spec = next(s for s in param_specs(config_cls) if s.name == new)
    return ParameterError(f"parameter '{old}' was renamed '{new}' ({spec.full_description}): rename it "
                          "in your parameter file")


def build_config(config_cls: type[T], values: Mapping[str, Any] | None = None) -> T:
    """Validate ``values`` (missing ones take their defaults) and build the config.

    Unknown names are an error too: a misspelt parameter in a YAML file must not be ignored; a
    renamed one names its new name.
    """
    values = dict(values or {})
    for old in renamed_params(config_cls):
        if old in values:
            raise renamed_error(config_cls, old)
    specs = {s.name: s for s in param_specs(config_cls)}
    unknown = sorted(set(values) - set(specs))
    if unknown:
        raise ParameterError(
            f"unknown parameter(s) {unknown} for {config_cls.__name__}; known: {sorted(specs)}"
        )
    checked = {name: spec.check(values.get(name, spec.default)) for name, spec in specs.items()}
    return config_cls(**checked)


def load_node_yaml(path: str | Path, node_name: str,
                   declared: Iterable[str] | None = None) -> dict[str, Any]:
    """The ``ros__parameters`` of ``node_name`` in a ROS 2 parameter file (empty if absent).

    As ``rclpy`` applies the file: the ``/**`` section (every node; e.g. the vehicle's geometry,
    shared by the policy and the follower), then the node's own section, the first of ``name``,
    ``/name``, ``/**/name`` (namespace-agnostic: what the shipped files use, so the stack can run
    under a namespace). A node takes from ``/**`` only the parameters it declares: with
    ``declared`` (the node's parameter names) the others are left out.
    """
    data = yaml.safe_load(Path(path).read_text()) or {}

    def section(key: str) -> dict[str, Any] | None:
        value = data.get(key)
        if isinstance(value, dict) and "ros__parameters" in value:
            return dict(value["ros__parameters"] or {})
        return None

    values = section("/**") or {}
    if declared is not None:
        names = set(declared)
        values = {k: v for k, v in values.items() if k in names}
    for key in (node_name, f"/{node_name}", f"/**/{node_name}"):
        own = section(key)
        if own is not None:
            values.update(own)
            break
    return values


def config_dir() -> Path:
    """The installed ``share/minipamayo_ros/config`` (falls back to the source tree's ``config/``):
    the node parameter files every tool reads (runner, demo, replay)."""
    try:
        from ament_index_python.packages import get_package_share_directory

        return Path(get_package_share_directory("minipamayo_ros")) / "config"
    except Exception:  # not installed: running from a source checkout
        return Path(__file__).resolve().parents[1] / "config"
