"""Safety core of the control path (no ROS): validation at each node's edge and of each output.

One module per message kind, each the only place that decides whether a sample is usable:

* :mod:`.odometry_input` -- ``nav_msgs/Odometry`` (both nodes),
* :mod:`.trajectory_input` -- ``Trajectory`` (follower input *and* policy output: the policy never
  publishes what the follower would reject),
* :mod:`.image_input` -- camera images on arrival (stamp, encoding, ``step * height``; the policy),
* :mod:`.context_input` -- ``PolicyContext`` (the text node),

plus the follower's last line of defence (:mod:`.command_guard`), the per-topic watchdog with
rejection counters and rate-limited log text (:mod:`.input_monitor`) and clock-jump detection
(:mod:`.stamps`). A rejected sample is a :class:`.rejection.Rejection` naming the field and value.
"""
