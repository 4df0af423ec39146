"""``drive.launch.py`` under launch_testing (the ROS convention): a vehicle file passed with
``config_file:=`` overrides the node defaults, topics are the documented ones in the ``namespace``
(``/car7/vla/trajectory``), the ``camera_topic``/``odom_topic`` remappings are honoured -- a
relative target in the namespace, an absolute one global -- and a launch stop (SIGINT from launch)
ends every node with exit code 0. Two stacks on one domain: ``test_two_cars_launch.py``."""

from __future__ import annotations

import tempfile
import time
import unittest
from pathlib import Path

import launch_testing
import launch_testing.asserts
import launch_testing.markers
import psutil
import pytest
import rclpy
from ament_index_python.packages import get_package_share_directory
from rcl_interfaces.srv import GetParameters
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor

from launch import LaunchDescription
from launch.actions import IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource

NAMESPACE = "car7"
CAMERA, ODOM = "front/image", "/wheel/odom"  # -> /car7/front/image (relative), /wheel/odom (global)
NS_CAMERA = f"/{NAMESPACE}/{CAMERA}"
VEHICLE_YAML = """/**/policy:
  ros__parameters:
    max_rate_hz: 7.0
/**/follower:
  ros__parameters:
    wheelbase: 2.9
    max_speed: 9.0
"""


@pytest.mark.launch_test
@launch_testing.markers.keep_alive
def generate_test_description():
    vehicle = Path(tempfile.mkdtemp(prefix="minipamayo_launch_")) / "my_car.yaml"
    vehicle.write_text(VEHICLE_YAML)
    drive = Path(get_package_share_directory("minipamayo_ros")) / "launch" / "drive.launch.py"
    include = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(str(drive)),
        launch_arguments={"config_file": str(vehicle), "camera_topic": CAMERA, "odom_topic": ODOM,
                          "namespace": NAMESPACE, "backend": "onnxruntime", "enable_text": "false"}.items())
    return LaunchDescription([include, launch_testing.actions.ReadyToTest()]), {}


class TestDriveLaunch(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        cls.context = Context()
        rclpy.init(context=cls.context)
        cls.node = rclpy.create_node("drive_launch_probe", context=cls.context)
        cls.executor = SingleThreadedExecutor(context=cls.context)
        cls.executor.add_node(cls.node)

    @classmethod
    def tearDownClass(cls) -> None:
        cls.executor.remove_node(cls.node)
        cls.node.destroy_node()
        cls.executor.shutdown()
        rclpy.try_shutdown(context=cls.context)

    def _spin_until(self, predicate, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            self.executor.spin_once(timeout_sec=0.1)
        return predicate()

    def _wait_for_nodes(self) -> None:
        def up() -> bool:
            names = set(self.node.get_node_names_and_namespaces())
            return {("policy", f"/{NAMESPACE}"), ("follower", f"/{NAMESPACE}")} <= names

        ok = self._spin_until(up, 90.0)
        self.assertTrue(ok, f"nodes not up: {self.node.get_node_names_and_namespaces()}")

    def _params(self, node: str, names: list[str]) -> list[object]:
        client = self.node.create_client(GetParameters, f"/{NAMESPACE}/{node}/get_parameters")
        try:
            self.assertTrue(client.wait_for_service(timeout_sec=60.0), f"{node}: no parameter service")
            future = client.call_async(GetParameters.Request(names=names))
            self._spin_until(future.done, 30.0)
            values = future.result().values
        finally:
            self.node.destroy_client(client)
        return [rclpy.parameter.parameter_value_to_python(v) for v in values]

    def test_nodes_run_in_the_namespace(self, proc_output) -> None:
        self._wait_for_nodes()
        proc_output.assertWaitFor(f"policy: {NS_CAMERA} (raw) + {ODOM} -> /{NAMESPACE}/vla/trajectory",
                                  timeout=90, stream="stderr")

    def test_vehicle_file_overrides_the_node_defaults(self) -> None:
        self._wait_for_nodes()
        # from my_car.yaml (config_file:=) over policy.yaml / follower.yaml; the rest as shipped
        self.assertEqual(self._params("policy", ["max_rate_hz", "backend", "odom_history"]),
                         [7.0, "onnxruntime", 2.0])
        self.assertEqual(self._params("follower", ["wheelbase", "max_speed", "rate_hz", "use_sim_time"]),
                         [2.9, 9.0, 50.0, False])

    def test_topics_and_remappings(self) -> None:
        self._wait_for_nodes()

        def topics(kind: str, node: str) -> set[str]:
            get = (self.node.get_subscriber_names_and_types_by_node if kind == "sub"
                   else self.node.get_publisher_names_and_types_by_node)
            return {name for name, _types in get(node, f"/{NAMESPACE}")}

        # subscriptions of the remapped camera/odometry topics, the documented outputs
        ns = f"/{NAMESPACE}"
        ok = self._spin_until(lambda: {NS_CAMERA, ODOM} <= topics("sub", "policy")
                              and {f"{ns}/vla/trajectory", ODOM} <= topics("sub", "follower"), 60.0)
        self.assertTrue(ok, (topics("sub", "policy"), topics("sub", "follower")))
        self.assertNotIn(f"{ns}/camera/image_raw", topics("sub", "policy"))
        self.assertFalse({f"{ns}/odom", "/odom"} & (topics("sub", "policy") | topics("sub", "follower")))
        self.assertTrue({f"{ns}/vla/trajectory", f"{ns}/vla/path", f"{ns}/vla/context", "/diagnostics"}
                        <= topics("pub", "policy"), topics("pub", "policy"))
        self.assertTrue({f"{ns}/vla/control", f"{ns}/cmd_vel"} <= topics("pub", "follower"))

    def test_only_the_follower_runs_without_shared_memory(self) -> None:
        """``follower_shared_memory`` defaults to false: launch gives the follower's process the UDP-only
        profile (``additional_env``), so it never maps a Fast DDS shared-memory port; the policy does."""
        self._wait_for_nodes()

        def ports(executable: str) -> int:
            proc = next(p for p in psutil.Process().children(recursive=True)
                        if any(executable in part for part in p.cmdline()))
            with open(f"/proc/{proc.pid}/maps") as maps:
                return sum("fastrtps_port" in line for line in maps)

        self.assertTrue(self._spin_until(lambda: ports("policy_node") > 0, 30.0), "policy maps no port")
        self.assertEqual(ports("follower_node"), 0)


@launch_testing.post_shutdown_test()
class TestDriveLaunchShutdown(unittest.TestCase):
    def test_every_node_exits_0(self, proc_info) -> None:
        launch_testing.asserts.assertExitCodes(proc_info)
