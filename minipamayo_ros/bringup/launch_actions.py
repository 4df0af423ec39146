"""``ros2 launch`` glue over ``bringup.stack``: launch arguments -> launch_ros Node actions.

Imported only by the launch files (``launch``/``launch_ros`` exist on the vehicle's ROS install,
not on the development machine: nothing else imports this module).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from pathlib import Path

from ament_index_python.packages import get_package_share_directory
from launch_ros.actions import Node

import launch.logging
from launch import LaunchContext, LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from minipamayo_ros.bringup.launch_stop import sigint_through_launch_only, stop_handlers
from minipamayo_ros.bringup.stack import (
    PACKAGE,
    NodeSpec,
    StackArgs,
    process_env_overrides,
    resolve_params_file,
)
from minipamayo_ros.bringup.stop_policy import stack_stop_grace

_DESCRIPTIONS = {
    "config_file": "vehicle parameter file (name in share/minipamayo_ros/config or absolute path)",
    "camera_topic": "camera image topic (sensor_msgs/Image or CompressedImage); relative names resolve "
                    "in the namespace, absolute ones (/front/image) are global",
    "odom_topic": "odometry topic (nav_msgs/Odometry); relative: in the namespace, absolute: global",
    "backend": "inference backend: auto | onnxruntime | tensorrt | torch",
    "engine": "policy model manifest path ('' = shipped tiny model)",
    "use_sim_time": "use the global /clock (bag replay); sim.launch.py: the simulator too follows an "
                    "existing /clock instead of publishing one (a second simulated car on the domain)",
    "enable_text": "start the low-priority text node (explanations on events, docs/text.md)",
    "namespace": "namespace of every node and topic (car7 -> /car7/vla/trajectory; /clock and "
                 "/diagnostics stay global)",
    "follower_shared_memory": "false (default): the follower's process talks DDS over UDP only, so a tool "
                              "attaching to the vehicle cannot stall its commands (docs/latency.md); "
                              "true: Fast DDS shared memory as every other node",
}


def _to_launch_value(value: object) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _node_action(spec: NodeSpec, namespace: str, environment: Mapping[str, str]) -> Node:
    cfg = Path(get_package_share_directory(PACKAGE)) / "config"
    files = [str(resolve_params_file(f, cfg)) for f in spec.params_files]
    env = process_env_overrides(spec, environment, launch.logging.get_logger("minipamayo_ros").warning)
    return Node(
        package=PACKAGE,
        executable=spec.executable,
        name=spec.name,
        namespace=namespace,
        parameters=[*files, dict(spec.parameters)],
        remappings=list(spec.remappings.items()),
        additional_env=env or None,
        output="screen",
    )


def stack_launch_description(
    build: Callable[[StackArgs, dict[str, str]], list[NodeSpec]],
    extra_arguments: dict[str, tuple[str, str]] | None = None,
) -> LaunchDescription:
    """Declare every StackArgs field (plus ``extra_arguments``: name -> (default, description))
    as a launch argument, and start the nodes ``build(stack_args, all_values)`` returns."""
    extra_arguments = extra_arguments or {}
    defaults = {f.name: _to_launch_value(getattr(StackArgs(), f.name))
                for f in dataclasses.fields(StackArgs)}
    declared = [DeclareLaunchArgument(name, default_value=default, description=_DESCRIPTIONS[name])
                for name, default in defaults.items()]
    declared += [DeclareLaunchArgument(name, default_value=d, description=desc)
                 for name, (d, desc) in extra_arguments.items()]
    names = [*defaults, *extra_arguments]

    def _launch(context: LaunchContext) -> list[object]:
        sigint_through_launch_only()  # no SIGINT half-handled by a KeyboardInterrupt (launch_stop)
        values = {n: LaunchConfiguration(n).perform(context) for n in names}
        args = StackArgs.from_strings(values)
        specs = build(args, values)
        nodes = [_node_action(spec, args.namespace, context.environment) for spec in specs]
        # a node dies -> the follower finishes its controlled stop, then all stop, exit 1
        grace = stack_stop_grace(specs, Path(get_package_share_directory(PACKAGE)) / "config")
        return [*nodes, *stop_handlers(specs, nodes, grace)]

    return LaunchDescription([*declared, OpaqueFunction(function=_launch)])
