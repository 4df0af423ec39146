"""The simulator node in its own process over real (loopback) DDS: camera, odometry, clock, ground
truth, reaction to ControlCommand, safety stop, reset, fail-fast configuration.
Generous timeouts and behavioural assertions only: the test machine is shared."""

from __future__ import annotations

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import Twist, Vector3
from nav_msgs.msg import Odometry
from rclpy.qos import qos_profile_sensor_data
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image
from std_msgs.msg import Int64, String
from visualization_msgs.msg import Marker, MarkerArray

from conftest import REPO_ROOT, spin_until
from minipamayo_ros.bringup.processes import ros_args
from minipamayo_ros.msg import ControlCommand, Trajectory
from minipamayo_ros.nodes.conversions import msg_to_trajectory, odometry_to_sample, time_to_sec
from minipamayo_ros.safety.trajectory_input import trajectory_error
from minipamayo_ros.scoring.frames import from_json

pytestmark = pytest.mark.ros

MODULE = "minipamayo_ros.nodes.simulator_node"


def test_publishes_and_reacts_to_commands(ros_node, spawn) -> None:
    node, executor = ros_node
    spawn(module=MODULE, args=ros_args(
        params_files=[REPO_ROOT / "config" / "simulator.yaml"],
        parameters={"seed": 4, "real_time_factor": 2.0, "camera_rate_hz": 10.0, "image_width": 320,
                    "image_height": 320, "command_timeout": 0.5}))
    images: list[Image] = []
    odoms: list[Odometry] = []
    truths: list[Odometry] = []
    clocks: list[Clock] = []
    plans: list[Trajectory] = []
    metrics: list[DiagnosticArray] = []
    scenes: list[String] = []
    node.create_subscription(Image, "/camera/image_raw", images.append, qos_profile_sensor_data)
    node.create_subscription(String, "/sim/ground_truth/scene", scenes.append, 50)
    node.create_subscription(Odometry, "/odom", odoms.append, qos_profile_sensor_data)
    node.create_subscription(Odometry, "/sim/ground_truth/odom", truths.append, 10)
    node.create_subscription(Clock, "/clock", clocks.append, 10)
    node.create_subscription(Trajectory, "/sim/expert_trajectory", plans.append, 10)
    node.create_subscription(DiagnosticArray, "/sim/metrics", metrics.append, 10)
    assert spin_until(executor, lambda: len(images) >= 3 and len(odoms) >= 20 and len(plans) >= 3
                      and len(metrics) >= 1, 30.0), (len(images), len(odoms), len(plans), len(metrics))

    img = images[-1]
    assert (img.width, img.height, img.encoding, img.step) == (320, 320, "rgb8", 960)
    pixels = np.frombuffer(img.data, np.uint8).reshape(320, 320, 3)
    assert pixels.std() > 10.0  # a scene, not a blank frame
    o = odoms[-1]
    assert (o.header.frame_id, o.child_frame_id) == ("odom", "base_link")
    stamps = [time_to_sec(m.header.stamp) for m in odoms]
    assert all(b > a for a, b in zip(stamps, stamps[1:], strict=False))
    assert time_to_sec(clocks[-1].clock) >= stamps[-1] - 0.05
    assert len(truths) > 0
    plan = msg_to_trajectory(plans[-1])
    assert trajectory_error(plan) is None and len(plan.points) == 20
    assert plan.producer == "/simulator" and plan.producer_instance != 0  # it names itself
    assert plan.stamp in {time_to_sec(i.header.stamp) for i in images}  # plan at an image stamp
    keys = {kv.key for kv in metrics[-1].status[0].values}
    assert {"cross_track_rms_m", "lane_departures", "collisions", "seed"} <= keys
    # scene frames (what a run is scored from): every 50 ms of sim time, the ego where odometry is
    frames = [from_json(m.data) for m in scenes]
    assert len(frames) >= 5 and frames[-1].world.seed == 4 and frames[-1].scene.scenario == "classic"
    gaps = [round(b.stamp - a.stamp, 3) for a, b in zip(frames, frames[1:], strict=False)]
    assert all(0.035 < g < 0.075 for g in gaps), [g for g in gaps if not 0.035 < g < 0.075]
    truth = odometry_to_sample(truths[-1]).pose
    assert np.hypot(frames[-1].scene.ego.x - truth.x, frames[-1].scene.ego.y - truth.y) < 3.0

    # standing still without commands; a ControlCommand makes it drive
    assert abs(odoms[-1].twist.twist.linear.x) < 0.05
    pub = node.create_publisher(ControlCommand, "/vla/control", 10)

    def send() -> None:
        cmd = ControlCommand()
        cmd.steering_angle = 0.0
        cmd.speed = 4.0
        pub.publish(cmd)

    timer = node.create_timer(0.05, send)
    assert spin_until(executor, lambda: odoms[-1].twist.twist.linear.x > 2.0, 30.0)
    start = odometry_to_sample(odoms[-1]).pose
    # commands stop -> the car brakes to a standstill by itself
    timer.cancel()
    node.destroy_timer(timer)
    assert spin_until(executor, lambda: odoms[-1].twist.twist.linear.x < 0.05, 30.0)
    end = odometry_to_sample(odoms[-1]).pose
    assert np.hypot(end.x - start.x, end.y - start.y) > 1.0

    # reset: a new episode starts at the odom origin region, sim time keeps increasing
    before = time_to_sec(clocks[-1].clock)
    reset = node.create_publisher(Int64, "/sim/reset", 10)
    spin_until(executor, lambda: reset.get_subscription_count() > 0, 10.0)
    reset.publish(Int64(data=7))
    assert spin_until(executor, lambda: odometry_to_sample(odoms[-1]).pose.x < end.x - 0.5, 30.0)
    # /clock and /odom arrive on different subscriptions: wait for the clock instead of racing it
    # (a simulator that restarted its clock at the reset would never get past ``before``)
    assert spin_until(executor, lambda: time_to_sec(clocks[-1].clock) > before, 10.0)
    assert spin_until(executor, lambda: any(
        kv.key == "seed" and kv.value == "7" for kv in metrics[-1].status[0].values), 30.0)

    # /cmd_vel drives too when no ControlCommand comes
    twist_pub = node.create_publisher(Twist, "/cmd_vel", 10)
    twist_timer = node.create_timer(0.05, lambda: twist_pub.publish(Twist(linear=Vector3(x=3.0))))
    assert spin_until(executor, lambda: odoms[-1].twist.twist.linear.x > 1.5, 30.0)
    twist_timer.cancel()


def test_ground_truth_objects_as_markers(ros_node, spawn) -> None:
    """Traffic world (scenario urban, seed 0: a lead vehicle ahead, a signalised intersection): the
    agents and light states arrive as a MarkerArray on sim/ground_truth/objects."""
    node, executor = ros_node
    spawn(module=MODULE, args=ros_args(
        params_files=[REPO_ROOT / "config" / "simulator.yaml"],
        parameters={"seed": 0, "scenario": "urban", "real_time_factor": 3.0, "camera_rate_hz": 10.0}))
    arrays: list[MarkerArray] = []
    metrics: list[DiagnosticArray] = []
    node.create_subscription(MarkerArray, "/sim/ground_truth/objects", arrays.append, 10)
    node.create_subscription(DiagnosticArray, "/sim/metrics", metrics.append, 10)
    assert spin_until(executor, lambda: len(arrays) >= 2 and len(metrics) >= 1, 30.0), \
        (len(arrays), len(metrics))
    markers = arrays[-1].markers
    assert markers[0].action == Marker.DELETEALL  # agents come and go
    by_ns = {m.ns: m for m in markers[1:]}
    lead = by_ns["lead"]
    assert lead.type == Marker.CUBE and lead.header.frame_id == "odom"
    assert 3.5 < lead.scale.x < 6.5 and 1.5 < lead.scale.y < 2.2 and lead.pose.position.x > 10.0  # ahead
    light = by_ns["traffic_lights"]
    assert light.type == Marker.SPHERE and light.text.split()[0] in ("green", "amber", "red")
    assert {"pedestrian", "parked", "crosswalks", "stop_lines"} <= set(by_ns)
    values = {kv.key: kv.value for kv in metrics[-1].status[0].values}
    assert values["scenario"] == "urban" and "at_fault_collisions" in values


def test_invalid_configuration_fails_fast(spawn) -> None:
    proc = spawn(module=MODULE, args=ros_args(parameters={"image_width": 1000}))
    assert proc.wait(timeout=60) == 2  # specified (nodes/node_main.py, README): 2 = misconfiguration
    assert "image_width" in proc.read_log()


def test_closed_loop_with_the_follower_on_sim_time(ros_node, spawn) -> None:
    """Simulator + real follower node (use_sim_time), the expert plan standing in for the policy."""
    node, executor = ros_node
    spawn(module=MODULE, name="simulator", args=ros_args(
        params_files=[REPO_ROOT / "config" / "simulator.yaml"],
        parameters={"seed": 3, "real_time_factor": 2.0},
        remappings={"/sim/expert_trajectory": "/vla/trajectory"}))
    spawn(module="minipamayo_ros.nodes.follower_node", name="follower", args=ros_args(
        params_files=[REPO_ROOT / "config" / "follower.yaml"],
        parameters={"use_sim_time": True, "trajectory_producer": "/simulator"}))  # the expert's plans
    latest: dict[str, str] = {}
    node.create_subscription(DiagnosticArray, "/sim/metrics",
                             lambda m: latest.update({kv.key: kv.value for kv in m.status[0].values}), 10)
    assert spin_until(executor, lambda: float(latest.get("distance_m", 0.0)) > 40.0, 60.0), latest
    assert latest["control_source"] == "vla_control"
    assert latest["lane_departures"] == "0" and latest["collisions"] == "0"
    assert float(latest["cross_track_max_m"]) < 0.5
