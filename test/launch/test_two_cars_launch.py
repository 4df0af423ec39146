"""Two simulated cars on one ROS domain (``launch_testing``, real ``ros2 launch`` files): one
``sim.launch.py`` without a namespace, one with ``namespace:=car7 use_sim_time:=true``.

* names: car 7's topics are ``/car7/vla/trajectory``, ``/car7/vla/control``, ``/car7/odom``,
  ``/car7/camera/image_raw`` (in the topic list, as ``ros2 topic list`` shows it), and no node of
  ``/car7`` publishes or subscribes a global topic but ``/clock``, ``/diagnostics``, ``/rosout``,
  ``/parameter_events``; the stack without a namespace still has ``/vla/trajectory`` unchanged;
* one clock: only the first simulator publishes ``/clock``; car 7's simulator follows it;
* isolation: each follower tracks only its own policy's trajectories -- every (stamp, sequence) its
  commands name is one its own policy published, and many of them the other policy never did
  (car 7's vehicle file caps its policy at 7 Hz, the other runs at 10 Hz, so the two sequences part);
* ``/diagnostics`` (global) tells the cars apart: ``policy: ...`` and ``car7/policy: ...``;
* a launch stop ends every node of both stacks with exit code 0.

With the names absolute (as before), both policies published on ``/vla/trajectory`` and each
follower tracked whichever trajectory came last, of either car.
"""

from __future__ import annotations

import tempfile
import time
import unittest
from pathlib import Path

import launch_testing
import launch_testing.asserts
import launch_testing.markers
import pytest
import rclpy
from ament_index_python.packages import get_package_share_directory
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor

from launch import LaunchDescription
from launch.actions import GroupAction, IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
from minipamayo_ros.msg import ControlCommand, Trajectory

CAR = "car7"
GLOBAL = {"/clock", "/diagnostics", "/rosout", "/parameter_events"}
CAR7_YAML = """/**/policy:
  ros__parameters:
    max_rate_hz: 7.0
"""
MIN_TRAJECTORIES = 15   # per car
MIN_TRACKING = 100      # TRACKING commands per car (2 s at 50 Hz)


@pytest.mark.launch_test
@launch_testing.markers.keep_alive
def generate_test_description():
    car7_yaml = Path(tempfile.mkdtemp(prefix="minipamayo_two_cars_")) / "car7.yaml"
    car7_yaml.write_text(CAR7_YAML)
    sim = str(Path(get_package_share_directory("minipamayo_ros")) / "launch" / "sim.launch.py")

    def car(arguments: dict[str, str]) -> GroupAction:  # scoped: one car's arguments stay its own
        return GroupAction([IncludeLaunchDescription(PythonLaunchDescriptionSource(sim),
                                                     launch_arguments=arguments.items())])

    return LaunchDescription([
        car({"backend": "onnxruntime", "seed": "3"}),
        car({"backend": "onnxruntime", "seed": "5", "namespace": CAR, "use_sim_time": "true",
             "config_file": str(car7_yaml)}),
        launch_testing.actions.ReadyToTest(),
    ]), {}


class _Car:
    """What the probe saw of one car: its trajectories and its follower's commands."""

    def __init__(self, node: rclpy.node.Node, prefix: str) -> None:
        self.prefix = prefix
        self.trajectories: set[tuple[int, int]] = set()  # (stamp [ns], sequence)
        self.first_stamp: int | None = None
        self.tracked: list[tuple[int, int]] = []          # (trajectory stamp, sequence) per TRACKING command
        self.listening = True
        node.create_subscription(Trajectory, f"{prefix}/vla/trajectory", self._on_trajectory, 50)
        node.create_subscription(ControlCommand, f"{prefix}/vla/control", self._on_control, 200)

    def _on_trajectory(self, m: Trajectory) -> None:
        stamp = m.header.stamp.sec * 10**9 + m.header.stamp.nanosec
        self.first_stamp = stamp if self.first_stamp is None else min(self.first_stamp, stamp)
        self.trajectories.add((stamp, int(m.sequence)))

    def _on_control(self, m: ControlCommand) -> None:
        if self.listening and m.status == ControlCommand.TRACKING:
            t = m.trajectory_stamp
            self.tracked.append((t.sec * 10**9 + t.nanosec, int(m.trajectory_sequence)))

    def ready(self) -> bool:
        return len(self.trajectories) >= MIN_TRAJECTORIES and len(self.tracked) >= MIN_TRACKING


class TestTwoCarsOnOneDomain(unittest.TestCase):
    def test_each_follower_tracks_its_own_policy_in_its_own_namespace(self) -> None:
        context = Context()
        rclpy.init(context=context)
        node = rclpy.create_node("two_cars_probe", context=context)
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(node)
        root, car7 = _Car(node, ""), _Car(node, f"/{CAR}")
        statuses: set[str] = set()
        node.create_subscription(DiagnosticArray, "/diagnostics",
                                 lambda m: statuses.update(s.name for s in m.status), 50)

        def spin(seconds: float, until=lambda: False) -> bool:
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline and not until():
                executor.spin_once(timeout_sec=0.05)
            return until()

        def graph() -> dict[tuple[str, str], set[str]]:
            """(namespace, node) -> every topic it publishes or subscribes, for the cars' nodes."""
            out = {}
            for name, ns in node.get_node_names_and_namespaces():
                if ns in ("/", f"/{CAR}") and name in ("simulator", "policy", "follower"):
                    out[(ns, name)] = (
                        {t for t, _ in node.get_publisher_names_and_types_by_node(name, ns)}
                        | {t for t, _ in node.get_subscriber_names_and_types_by_node(name, ns)})
            return out

        def misnamed(g: dict[tuple[str, str], set[str]]) -> list[str]:
            """Car 7's nodes on global topics (but the global ones), the other car's under /car7."""
            bad = []
            for (ns, name), names in sorted(g.items()):
                if ns == f"/{CAR}":
                    bad += [f"{ns}/{name}: {t}" for t in sorted(names) if not t.startswith(f"/{CAR}/")
                            and t not in GLOBAL]
                else:
                    bad += [f"/{name}: {t}" for t in sorted(names) if t.startswith(f"/{CAR}/")]
            return bad

        checked = {"at": 0.0, "bad": []}

        def driving_or_misnamed() -> bool:
            if root.ready() and car7.ready():
                return True
            if time.monotonic() - checked["at"] > 1.0:  # graph queries are not free: once a second
                checked["at"], checked["bad"] = time.monotonic(), misnamed(graph())
            return bool(checked["bad"])

        try:
            # all six nodes up (start-up on a loaded 2-core machine: generous), then both cars
            # driving -- or a node on a wrong name, which fails at once
            spin(120.0, lambda: len(graph()) == 6)
            spin(120.0, driving_or_misnamed)
            root.listening = car7.listening = False
            spin(1.0)  # trajectories still in flight for the last commands
            spin(3.0, lambda: {"policy: policy inference", f"{CAR}/policy: policy inference"} <= statuses)
            by_node, topics = graph(), dict(node.get_topic_names_and_types())
            clock_publishers = {(i.node_namespace, i.node_name)
                                for i in node.get_publishers_info_by_topic("/clock")}
        finally:
            executor.remove_node(node)
            node.destroy_node()
            executor.shutdown()
            rclpy.try_shutdown(context=context)
        # names: car 7 under /car7, nothing of it global; the car without a namespace unchanged
        self.assertEqual(len(by_node), 6, sorted(by_node))
        self.assertEqual(misnamed(by_node), [])
        for name in ("vla/trajectory", "vla/control", "odom", "camera/image_raw"):
            self.assertIn(f"/{CAR}/{name}", topics)
        self.assertIn("/vla/trajectory", topics)
        self.assertIn("/vla/trajectory", by_node[("/", "policy")])
        self.assertEqual(clock_publishers, {("/", "simulator")})  # one clock; car 7's sim follows it
        counts = {c.prefix or "/": (len(c.trajectories), len(c.tracked)) for c in (root, car7)}
        self.assertTrue(root.ready() and car7.ready(),
                        f"cars not both driving: (trajectories, TRACKING commands) {counts}")
        self.assertTrue({"policy: policy inference", f"{CAR}/policy: policy inference"} <= statuses, statuses)

        # isolation: every tracked trajectory is one of the follower's own policy, and the two
        # policies' (stamp, sequence) sets part, so "its own" is not an accident
        for own, other in ((root, car7), (car7, root)):
            seen = [p for p in own.tracked if p[0] >= (own.first_stamp or 0)]  # the probe saw its trajectory
            foreign = [p for p in seen if p not in own.trajectories]
            only_own = {p for p in seen if p in own.trajectories and p not in other.trajectories}
            print(f"MEASURED {own.prefix or '/'}: {len(own.trajectories)} trajectories, {len(own.tracked)} "
                  f"TRACKING commands naming {len(set(seen))} trajectories, {len(only_own)} of them only "
                  f"this car's policy published, {len(foreign)} commands naming another trajectory")
            self.assertEqual(foreign, [], f"{own.prefix or '/'} follower tracked trajectories its policy "
                                          "never published")
            self.assertGreaterEqual(len(only_own), 5, f"{own.prefix or '/'}: {counts}")


@launch_testing.post_shutdown_test()
class TestTwoCarsShutdown(unittest.TestCase):
    def test_every_node_of_both_cars_exits_0(self, proc_info) -> None:
        launch_testing.asserts.assertExitCodes(proc_info)
