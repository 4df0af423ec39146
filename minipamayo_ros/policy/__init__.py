"""The policy node's ROS-free core: image decoding, latest-frame scheduling, model I/O, statistics.

``minipamayo_ros.nodes.policy_node`` only converts messages and wires these together.
"""
