"""Test helper process: echoes every Trajectory on /smoke/in to /smoke/out with sequence + 1000.

Runs as its own process so the smoke test crosses a real process boundary over DDS.
"""

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node

from minipamayo_ros.msg import Trajectory


def main() -> None:
    rclpy.init()
    node = Node("smoke_echo")
    pub = node.create_publisher(Trajectory, "/smoke/out", 10)

    def on_msg(msg: Trajectory) -> None:
        msg.sequence += 1000
        pub.publish(msg)

    node.create_subscription(Trajectory, "/smoke/in", on_msg, 10)
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
