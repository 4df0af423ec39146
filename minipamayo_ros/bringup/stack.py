"""The node set of the product, described once.

Both ``launch/*.launch.py`` (``ros2 launch`` on the vehicle) and the plain-Python runner
(``minipamayo_ros.bringup.runner``, for machines without ``ros2 launch``) turn these
:class:`NodeSpec` lists into processes, so executables, parameter files, overrides and
remappings cannot drift apart. ROS-free: plain data.

Names: every node uses relative topic and service names, resolved in the stack's ``namespace``
(``/car7/vla/trajectory``); only ``/clock``, ``/diagnostics``, ``/tf``, ``/tf_static``,
``/parameter_events`` (and ``/rosout``) are global. The remappings below are relative too, so
``camera_topic:=front/image`` means ``/car7/front/image`` and ``camera_topic:=/front/image`` the
global topic. One ``/clock`` per domain: a second simulated car runs ``sim.launch.py`` with
``use_sim_time:=true``, and its simulator follows the first one's clock.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from minipamayo_ros.dds_env import PROFILE_VARIABLES, without_shared_memory

PACKAGE = "minipamayo_ros"
CAMERA_TOPIC = "camera/image_raw"  # the names the nodes use (relative: resolved in the namespace)
ODOM_TOPIC = "odom"


@dataclass(frozen=True)
class NodeSpec:
    """One node of the stack: what to run, with which parameters and remappings."""

    name: str                               # node name (= section name in the parameter files)
    executable: str                         # `ros2 run minipamayo_ros <executable>`
    module: str                             # Python module whose main() the executable runs
    params_files: tuple[str, ...] = ()      # config/ file names, applied in order
    parameters: dict[str, object] = field(default_factory=dict)  # overrides, applied last
    remappings: dict[str, str] = field(default_factory=dict)
    #: False: the process talks DDS over UDP only, never Fast DDS shared memory (the follower:
    #: no stall when a tool attaches, receives again after a restart; ``dds_env.without_shared_memory``)
    shared_memory: bool = True


@dataclass(frozen=True)
class StackArgs:
    """The launch arguments of ``drive.launch.py`` / ``sim.launch.py`` (same names)."""

    config_file: str = "drive.yaml"        # vehicle parameter file in config/ (or an absolute path)
    camera_topic: str = CAMERA_TOPIC         # relative: in the namespace; absolute: global
    odom_topic: str = ODOM_TOPIC
    backend: str = "auto"                  # auto | onnxruntime | tensorrt | torch
    engine: str = ""                       # policy manifest path ("" = the shipped tiny model)
    use_sim_time: bool = False             # sim stack: the simulator follows an existing /clock
    enable_text: bool = False              # the low-priority text node (explanations on events)
    namespace: str = ""
    follower_shared_memory: bool = False   # true: the follower uses Fast DDS shared memory as well

    @staticmethod
    def from_strings(values: dict[str, str]) -> StackArgs:
        """Build from launch-argument strings (as ``ros2 launch`` hands them over)."""
        def as_bool(key: str, default: bool) -> bool:
            v = values.get(key)
            if v is None:
                return default
            if v.lower() not in ("true", "false", "1", "0"):
                raise ValueError(f"launch argument '{key}' must be true or false, got {v!r}")
            return v.lower() in ("true", "1")

        d = StackArgs()
        return StackArgs(
            config_file=values.get("config_file", d.config_file),
            camera_topic=values.get("camera_topic", d.camera_topic),
            odom_topic=values.get("odom_topic", d.odom_topic),
            backend=values.get("backend", d.backend),
            engine=values.get("engine", d.engine),
            use_sim_time=as_bool("use_sim_time", d.use_sim_time),
            enable_text=as_bool("enable_text", d.enable_text),
            namespace=values.get("namespace", d.namespace),
            follower_shared_memory=as_bool("follower_shared_memory", d.follower_shared_memory),
        )


def drive_stack(args: StackArgs) -> list[NodeSpec]:
    """Policy, follower (and text) nodes: what runs on the vehicle."""
    sim: dict[str, object] = {"use_sim_time": args.use_sim_time}
    policy_params: dict[str, object] = {**sim, "backend": args.backend}
    if args.engine:
        policy_params["manifest_path"] = args.engine
    nodes = [
        NodeSpec(
            name="policy",
            executable="policy_node",
            module="minipamayo_ros.nodes.policy_node",
            params_files=("policy.yaml", args.config_file),
            parameters=policy_params,
            remappings=_remaps({CAMERA_TOPIC: args.camera_topic, ODOM_TOPIC: args.odom_topic}),
        ),
        NodeSpec(
            name="follower",
            executable="follower_node",
            module="minipamayo_ros.nodes.follower_node",
            params_files=("follower.yaml", args.config_file),
            parameters=sim,
            remappings=_remaps({ODOM_TOPIC: args.odom_topic}),
            shared_memory=args.follower_shared_memory,
        ),
    ]
    text = NodeSpec(
        name="text",
        executable="text_node",
        module="minipamayo_ros.nodes.text_node",
        params_files=("text.yaml", args.config_file),
        parameters=sim,
    )
    if args.enable_text:
        nodes.append(text)
    return nodes


def _remaps(rules: dict[str, str]) -> dict[str, str]:
    """The rules that change a name (an identity rule would only clutter ``ros2 launch``'s output)."""
    return {src: dst for src, dst in rules.items() if dst != src}


def sim_stack(args: StackArgs, seed: int = 0, real_time_factor: float = 1.0) -> list[NodeSpec]:
    """The simulator plus the drive stack on simulated time (the closed-loop demo).

    ``args.use_sim_time`` is the simulator's: False (default) = it publishes /clock; True = it
    follows the /clock another simulator on the domain publishes (a second car). The drive nodes
    always run on /clock."""
    drive_args = StackArgs(**{**args.__dict__, "use_sim_time": True,
                              "camera_topic": CAMERA_TOPIC, "odom_topic": ODOM_TOPIC})
    simulator = NodeSpec(
        name="simulator",
        executable="simulator_node",
        module="minipamayo_ros.nodes.simulator_node",
        params_files=("simulator.yaml",),
        parameters={"seed": seed, "real_time_factor": real_time_factor, "use_sim_time": args.use_sim_time},
    )
    return [simulator, *drive_stack(drive_args)]


def with_parameters(specs: list[NodeSpec], node: str, overrides: dict[str, object]) -> list[NodeSpec]:
    """``specs`` with ``overrides`` applied last to the parameters of the node named ``node``."""
    return [replace(s, parameters={**s.parameters, **overrides}) if s.name == node else s for s in specs]


def process_env_overrides(spec: NodeSpec, env: Mapping[str, str],
                          warn: Callable[[str], object]) -> dict[str, str]:
    """Environment variables ``spec``'s process needs on top of the stack's ``env`` ("" = remove;
    ``dds_env.apply_overrides``). A node that must not use shared memory under a site profile this
    package cannot derive a UDP-only variant of keeps shared memory, with a warning saying what to do."""
    if spec.shared_memory:
        return {}
    overrides = without_shared_memory(env)
    if overrides is None:
        profile = next(env[v] for v in PROFILE_VARIABLES if env.get(v))
        warn(f"{spec.name}: keeps Fast DDS shared memory: the DDS profile {profile} is a site profile, "
             f"and a tool attaching to the vehicle can then delay its commands by up to "
             f"healthy_check_timeout_ms/3 (docs/latency.md, 'The follower without shared memory'). Start "
             f"the {spec.name} with a UDP-only variant of that profile, or pass "
             f"follower_shared_memory:=true to keep shared memory knowingly")
        return {}
    return overrides


def resolve_params_file(name: str, config_dir: Path) -> Path:
    """A params file name (relative to ``config_dir``, or absolute) -> existing path."""
    path = Path(name) if Path(name).is_absolute() else config_dir / name
    if not path.is_file():
        raise FileNotFoundError(
            f"parameter file '{name}' not found (looked for {path}); pass an existing file"
        )
    return path
