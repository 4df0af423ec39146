"""Pure-pursuit trajectory follower (ROS-free core): regulation functions, motion compensation,
lookahead search and the :class:`~minipamayo_ros.control.follower.Follower` state machine."""
