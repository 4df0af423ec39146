"""The text node's ROS-free core: event detection, the one-slot drop policy, caption generation.

``events.EventDetector`` turns the policy's trajectories into explanation requests,
``scheduler.ExplanationSlot`` decides which request is generated (one slot, latest wins), and
``generator.CaptionGenerator`` decodes a caption token by token under a deadline. The node
(``nodes/text_node.py``) only converts messages and wires them together.
"""
