"""Rosbag record / replay / compare: the regression suite for model and code changes.

Tools (each ``python -m minipamayo_ros.replay.<tool>`` and ``ros2 run minipamayo_ros <tool>``):

* ``record``  -- rosbag2 (mcap or sqlite3) of chosen topics from a running stack (rclpy, raw CDR);
* ``replay``  -- a bag through the deployed policy pipeline: ``lockstep`` (deterministic, in process,
  the regression mode) or ``realtime`` (publishes the bag with /clock into a running stack over DDS);
* ``compare`` -- replayed vs golden outputs under a tolerance table + latency gates; verdict, JSON
  lines, summary JSON, JUnit XML, PNG report; ``--update-golden`` refreshes the golden file;
* ``corpus``  -- replay + compare over many bags, on local cores or on a Ray cluster.

Bags are read and written with the ``rosbags`` library, so everything except ``record`` and the
realtime mode works without a ROS distro. See ``docs/replay.md``.
"""
