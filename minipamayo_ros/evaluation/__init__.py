"""Evaluation: the layer above ``sim``, ``control`` and ``policy`` (and the bringup) that drives them.

* ``closed_loop``: the one ROS-free closed loop (policy -> follower -> simulated car), running the
  policy node's own pipeline; also the follower's tracking evaluation (``tracking``).
* ``dagger``: policy-driven, expert-labelled training data.
* ``evaluate``: the multi-seed evaluator and its bar, offline or over DDS.

Seeds come from ``minipamayo_ros.seeds`` (training / validation / test).
"""
