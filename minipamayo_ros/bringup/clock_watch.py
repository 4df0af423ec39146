"""The stack's ``/clock`` as the runner sees it (``bringup.runner``, needs rclpy).

When the stack runs on ``/clock`` (the sim stack, or a bag's clock) the follower's controlled stop
takes node-clock seconds; the runner counts its stop grace on the same clock. A simulator on a
loaded machine runs slower than the wall clock: a grace in wall seconds ended before the
follower's stop, with the simulated car still at speed when the stack went down.

One rclpy node (its own context) subscribed to ``/clock``, spun by a daemon thread.
"""

from __future__ import annotations

import os
import threading


class ClockWatch:
    """The latest ``/clock`` [s], or None before the first; :meth:`close` when done."""

    def __init__(self) -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.node import Node
        from rclpy.signals import SignalHandlerOptions  # Humble and later
        from rosgraph_msgs.msg import Clock

        self._latest: float | None = None
        self._context = rclpy.Context()
        # the runner handles SIGINT/SIGTERM itself: rclpy's handlers would shut this context down
        rclpy.init(context=self._context, signal_handler_options=SignalHandlerOptions.NO)
        self._node = Node(f"runner_clock_watch_{os.getpid()}", context=self._context,
                          start_parameter_services=False)
        self._node.create_subscription(Clock, "/clock", self._on_clock, 10)
        self._executor = SingleThreadedExecutor(context=self._context)
        self._executor.add_node(self._node)
        self._thread = threading.Thread(target=self._spin, name="clock_watch", daemon=True)
        self._thread.start()

    def _on_clock(self, msg: object) -> None:
        self._latest = msg.clock.sec + msg.clock.nanosec * 1e-9  # type: ignore[attr-defined]

    def _spin(self) -> None:
        try:
            self._executor.spin()
        except Exception:  # the context shut down under it (close()): nothing left to do
            pass

    def now(self) -> float | None:
        """[s] the latest /clock received (a float: read atomically by the runner's thread)."""
        return self._latest

    def close(self) -> None:
        import rclpy

        rclpy.try_shutdown(context=self._context)
        self._thread.join(2.0)
        self._executor.shutdown()
        self._node.destroy_node()
