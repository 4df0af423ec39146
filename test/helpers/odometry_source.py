"""Test helper process: straight-line odometry on /odom (sensor-data QoS) at a constant speed.

    python odometry_source.py SPEED_MPS RATE_HZ

Stamped with the ROS clock when published; x = speed * (seconds since start). Its own process, so
the feed goes on while the test process asserts or waits for the GIL: fed by a timer of the test's
executor, odometry paused for 0.22 s while the test computed between two spins under load, and the
follower rightly reported NO_ODOMETRY (odom_stop_after 0.2 s) in the middle of its stale stop.
"""

import sys

import rclpy
from nav_msgs.msg import Odometry
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data


def main() -> None:
    speed, rate_hz = float(sys.argv[1]), float(sys.argv[2])
    rclpy.init()
    node = Node("odometry_source")
    pub = node.create_publisher(Odometry, "/odom", qos_profile_sensor_data)
    msg = Odometry()
    msg.header.frame_id, msg.child_frame_id = "odom", "base_link"
    msg.pose.pose.orientation.w = 1.0
    msg.twist.twist.linear.x = speed
    t0 = node.get_clock().now()

    def publish() -> None:
        now = node.get_clock().now()
        msg.header.stamp = now.to_msg()
        msg.pose.pose.position.x = speed * (now - t0).nanoseconds * 1e-9
        pub.publish(msg)

    node.create_timer(1.0 / rate_hz, publish)
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
