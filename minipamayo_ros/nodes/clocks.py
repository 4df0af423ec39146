"""The two clocks of a node, by name: the ROS clock for stamps and ages, the steady clock for duty cycles.

* **ROS clock** (``node.get_clock()``: system time, or ``/clock`` under ``use_sim_time``): message
  stamps, input ages and the watchdogs and stop triggers built on them, and the follower's control
  tick under ``use_sim_time`` (the controller's sample period is in the vehicle's time: a
  simulation at any real-time factor is controlled at ``rate_hz`` of its own time; on wall time the
  tick is a thread on the steady clock: ``periodic_thread``).
* **Steady clock** (``time.monotonic()``; rclpy ``STEADY_TIME`` timers): every duty cycle and
  rate limit -- the policy's inference cap, the text node's generation cap, the ``/diagnostics``
  periods, the simulator's loop, log rate limits. They bound CPU/GPU load and tell an operator
  what happens, so under ``use_sim_time`` they neither scale with the real-time factor nor stop
  when ``/clock`` stops (nor jump with the system clock).
"""

from __future__ import annotations

from collections.abc import Callable

from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.timer import Timer


def ros_now(node: Node) -> float:
    """[s] the node's ROS clock (sim time under ``use_sim_time``): what stamps are compared with."""
    return node.get_clock().now().nanoseconds * 1e-9


def steady_timer(node: Node, period: float, callback: Callable[[], None]) -> Timer:
    """A timer on the steady clock (a duty cycle: runs at ``period`` [s] of wall time in any clock mode)."""
    return node.create_timer(period, callback, clock=Clock(clock_type=ClockType.STEADY_TIME))
