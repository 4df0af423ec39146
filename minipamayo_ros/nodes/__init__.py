"""Thin ROS 2 nodes: message conversion and wiring around the ROS-free core modules."""
