"""The closed-loop score from the simulator's ground truth (ROS-free; docs/closed-loop-evaluation.md)."""
