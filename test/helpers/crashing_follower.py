"""Test helper process: the real follower node, whose control tick raises after it has tracked for
``CRASH_AFTER_TICKS`` ticks at speed (a bug in a callback). Run through the same ``run_node`` as the
shipped executable, so the test sees what the vehicle would: the exception path of a real process.
"""

import sys

from minipamayo_ros.control.follower import ControlStatus
from minipamayo_ros.nodes.follower_node import FollowerNode
from minipamayo_ros.nodes.node_main import run_node
from minipamayo_ros.params import ParameterError

CRASH_AFTER_TICKS = 25


class CrashingFollower(FollowerNode):
    def __init__(self) -> None:
        super().__init__()
        self._tracked = 0

    def tick(self) -> None:
        super().tick()
        if self._last_status == ControlStatus.TRACKING and self._last_speed > 1.0:
            self._tracked += 1
        if self._tracked >= CRASH_AFTER_TICKS:
            raise RuntimeError("injected fault in the control tick")


if __name__ == "__main__":
    sys.exit(run_node(CrashingFollower, (ParameterError,), sys.argv))
