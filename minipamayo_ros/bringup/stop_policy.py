"""What the stack does when one of its nodes dies: the follower finishes its controlled stop first.

Shared by the runner (``bringup.runner``) and the launch files (``bringup.launch_stop``), ROS-free.

* The **follower** dies: nothing can command the vehicle any more; the rest of the stack is
  stopped at once (the vehicle's own command timeout must brake: docs/follower.md).
* **Any other node** dies (policy, simulator, text): the follower and everything it needs keep
  running for :func:`controlled_stop_grace` seconds, so the follower sees its trajectory go stale
  (``trajectory_timeout``) and ramps the speed to 0 at ``stop_decel`` from at most ``max_speed``;
  then the stack is stopped (the follower's last message is its SHUTDOWN zero-speed command) and
  the runner / ``ros2 launch`` exits non-zero.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from minipamayo_ros.bringup.stack import NodeSpec, resolve_params_file
from minipamayo_ros.control.config import FollowerConfig
from minipamayo_ros.params import ParameterError, build_config, load_node_yaml, param_specs

FOLLOWER = "follower"
STOP_MARGIN_S = 1.0  # [s] beyond the worst-case stop: process start-up jitter, one last tick


def follower_config(spec: NodeSpec, cfg_dir: Path) -> FollowerConfig:
    """The follower's configuration as its node will build it (files in order, then overrides).

    Falls back to the defaults when the files are unusable (the node itself then fails fast
    with the real message).
    """
    known = {s.name for s in param_specs(FollowerConfig)}
    values: dict[str, object] = {}
    try:
        for name in spec.params_files:
            values.update(load_node_yaml(resolve_params_file(name, cfg_dir), spec.name, known))
        values.update(spec.parameters)
        return build_config(FollowerConfig, {k: v for k, v in values.items() if k in known})
    except (OSError, ValueError, ParameterError):
        return FollowerConfig()


def controlled_stop_grace(config: FollowerConfig, real_time_factor: float = 1.0) -> float:
    """[s wall] how long the follower must outlive a dead node to finish its controlled stop.

    ``trajectory_timeout + max_speed / stop_decel + margin``, in node-clock seconds, stretched by
    ``1 / real_time_factor`` when the stack runs on a slower-than-real-time simulated clock.
    """
    node_clock_s = config.trajectory_timeout + config.stop_time(config.max_speed) + STOP_MARGIN_S
    return node_clock_s / min(max(real_time_factor, 1e-3), 1.0)


def stack_stop_grace(specs: Sequence[NodeSpec], cfg_dir: Path) -> float:
    """:func:`controlled_stop_grace` of a stack (0 if it has no follower)."""
    follower = next((s for s in specs if s.name == FOLLOWER), None)
    if follower is None:
        return 0.0
    rtf = 1.0
    for s in specs:
        if "real_time_factor" in s.parameters:
            rtf = float(s.parameters["real_time_factor"])  # type: ignore[arg-type]
    return controlled_stop_grace(follower_config(follower, cfg_dir), rtf)
