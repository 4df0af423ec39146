"""The shared node description (used by the launch files and the runner)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from minipamayo_ros.bringup.processes import ros_args
from minipamayo_ros.bringup.runner import node_command_args
from minipamayo_ros.bringup.stack import (
    NodeSpec,
    StackArgs,
    drive_stack,
    process_env_overrides,
    resolve_params_file,
    sim_stack,
)
from minipamayo_ros.dds_env import FASTDDS_LOOPBACK_PROFILE, FASTDDS_LOOPBACK_UDP_PROFILE

CONFIG = Path(__file__).resolve().parents[1] / "config"
LAUNCH = Path(__file__).resolve().parents[1] / "launch"


def _by_name(specs: list[NodeSpec]) -> dict[str, NodeSpec]:
    return {s.name: s for s in specs}


def test_drive_stack_nodes_and_remappings() -> None:
    """Remapping rules name the nodes' relative topics (a rule for ``/odom`` would not match
    ``/car7/odom``); relative targets stay in the namespace, absolute ones are global."""
    args = StackArgs(camera_topic="front/image", odom_topic="/wheel/odom", backend="onnxruntime",
                     engine="/tmp/m.json", enable_text=False)
    nodes = _by_name(drive_stack(args))
    assert set(nodes) == {"policy", "follower"}
    policy, follower = nodes["policy"], nodes["follower"]
    assert policy.executable == "policy_node" and follower.executable == "follower_node"
    assert policy.remappings == {"camera/image_raw": "front/image", "odom": "/wheel/odom"}
    assert follower.remappings == {"odom": "/wheel/odom"}
    assert _by_name(drive_stack(StackArgs()))["policy"].remappings == {}  # no identity rules
    assert policy.parameters["backend"] == "onnxruntime"
    assert policy.parameters["manifest_path"] == "/tmp/m.json"
    assert policy.params_files[-1] == "drive.yaml"  # vehicle file overrides node defaults


def test_sim_stack_runs_everything_on_sim_time() -> None:
    nodes = sim_stack(StackArgs(enable_text=False), seed=7, real_time_factor=2.0)
    assert nodes[0].name == "simulator" and nodes[0].parameters["seed"] == 7
    assert nodes[0].parameters["use_sim_time"] is False  # it publishes /clock
    assert all(n.parameters.get("use_sim_time") for n in nodes[1:])
    # a second car on the domain: its simulator follows the one /clock instead of publishing one
    second = sim_stack(StackArgs(use_sim_time=True, namespace="car7"))
    assert all(n.parameters.get("use_sim_time") for n in second)


def test_text_node_starts_only_with_enable_text() -> None:
    with_text = _by_name(drive_stack(StackArgs(enable_text=True)))
    assert with_text["text"].module == "minipamayo_ros.nodes.text_node"
    assert with_text["text"].params_files == ("text.yaml", "drive.yaml")
    assert importlib.util.find_spec(with_text["text"].module) is not None
    assert "text" not in _by_name(drive_stack(StackArgs()))  # off unless asked for
    assert "text" in _by_name(sim_stack(StackArgs(enable_text=True)))


def test_every_executable_is_installed_by_cmake() -> None:
    cmake = (Path(__file__).resolve().parents[1] / "CMakeLists.txt").read_text()
    for spec in sim_stack(StackArgs(enable_text=True)):
        assert f'"{spec.executable}:{spec.module}"' in cmake


def test_launch_argument_strings() -> None:
    args = StackArgs.from_strings({"use_sim_time": "true", "enable_text": "False", "backend": "tensorrt"})
    assert args.use_sim_time and not args.enable_text and args.backend == "tensorrt"
    with pytest.raises(ValueError, match="use_sim_time"):
        StackArgs.from_strings({"use_sim_time": "yes please"})


def test_missing_params_file_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="my_car.yaml"):
        resolve_params_file("my_car.yaml", tmp_path)


def test_only_the_follower_leaves_shared_memory_unless_asked() -> None:
    """The follower's process talks UDP only by default (docs/latency.md); the launch argument keeps
    it on shared memory; under a site profile that cannot be derived it warns and keeps it."""
    nodes = drive_stack(StackArgs(enable_text=True))
    assert [n.name for n in nodes if not n.shared_memory] == ["follower"]
    assert all(n.shared_memory for n in drive_stack(StackArgs(follower_shared_memory=True)))
    assert StackArgs.from_strings({"follower_shared_memory": "true"}).follower_shared_memory
    follower = _by_name(nodes)["follower"]
    loopback = {"FASTRTPS_DEFAULT_PROFILES_FILE": str(FASTDDS_LOOPBACK_PROFILE), "RMW_IMPLEMENTATION":
                "rmw_fastrtps_cpp"}
    said: list[str] = []
    assert process_env_overrides(follower, loopback, said.append)["FASTRTPS_DEFAULT_PROFILES_FILE"] == str(
        FASTDDS_LOOPBACK_UDP_PROFILE)
    assert process_env_overrides(_by_name(nodes)["policy"], loopback, said.append) == {}
    assert not said
    site = {"FASTRTPS_DEFAULT_PROFILES_FILE": "/etc/car/dds.xml"}
    assert process_env_overrides(follower, site, said.append) == {}
    assert len(said) == 1 and "/etc/car/dds.xml" in said[0] and "follower_shared_memory:=true" in said[0]


def test_runner_args_carry_files_overrides_and_remaps(tmp_path) -> None:
    (tmp_path / "a.yaml").write_text("{}\n")
    spec = NodeSpec("follower", "follower_node", "m", ("a.yaml",), {"use_sim_time": True},
                    {"/odom": "/x/odom"})
    args = node_command_args(spec, tmp_path, namespace="car1")  # rcl takes only "/car1"
    assert args == ["--ros-args", "-r", "__node:=follower", "-r", "__ns:=/car1",
                    "--params-file", str(tmp_path / "a.yaml"), "-p", "use_sim_time:=true",
                    "-r", "/odom:=/x/odom"]
    assert ros_args({"v": [1.0, 2.0]}) == ["--ros-args", "-p", "v:=[1.0,2.0]"]


def test_launch_files_use_the_shared_description() -> None:
    """launch/launch_ros are not installable here; at least make sure the launch files are thin
    wrappers over bringup.stack (so the runner tests cover what they start)."""
    for name, builder in (("drive.launch.py", "drive_stack"), ("sim.launch.py", "sim_stack")):
        text = (LAUNCH / name).read_text()
        assert "stack_launch_description" in text and builder in text
        compile(text, name, "exec")


def test_sros2_policy_lets_only_the_policy_publish_trajectories() -> None:
    """The documented SROS 2 access control (config/sros2/minipamayo.policy.xml, docs/follower.md):
    one enclave per drive node; only the policy's may publish vla/trajectory, only the follower's
    the vehicle commands. (sros2 itself does not run here: the file is checked as data.)"""
    import xml.etree.ElementTree as ET

    path = Path(__file__).resolve().parents[1] / "config" / "sros2" / "minipamayo.policy.xml"
    root = ET.parse(path).getroot()
    assert root.tag == "policy" and root.get("version") == "0.2.0"
    publishes: dict[str, set[str]] = {}
    for enclave in root.iter("enclave"):
        profile = enclave.find("profiles/profile")
        assert profile is not None and enclave.get("path") == f"/minipamayo/{profile.get('node')}"
        publishes[profile.get("node") or ""] = {t.text or "" for topics in profile.findall("topics")
                                                if topics.get("publish") == "ALLOW" for t in topics}
    assert set(publishes) == {"policy", "follower", "text"}
    assert [n for n, topics in publishes.items() if "vla/trajectory" in topics] == ["policy"]
    assert [n for n, topics in publishes.items() if {"vla/control", "cmd_vel"} & topics] == ["follower"]
