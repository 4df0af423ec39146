"""The one ``main()`` body every node shares: init, build, spin, clean shutdown, exit codes.

Exit codes: 0 after a normal shutdown (SIGINT, SIGTERM), :data:`EXIT_CONFIG_ERROR` when the node
cannot start because of its configuration (the message says what to fix); an exception escaping
a callback ends the process with a traceback (exit 1) after the same clean shutdown. One
SingleThreadedExecutor per process: nothing heavy shares a node's executor (the policy runs
inference in its own worker thread).

Signals: SIGINT/SIGTERM only *request* the shutdown (:class:`StopRequest`); rclpy's own handlers
are not installed, because they shut the ROS context down inside the signal handler, after which
nothing can be published. So every node is destroyed while its context is still valid, and a
node whose ``destroy_node()`` publishes a last message (the follower's zero-speed stop command)
gets it out. A repeated signal while shutting down (a terminal's Ctrl-C reaches the node and
``ros2 launch`` forwards it again) is absorbed. The spin loop wakes at least every
:data:`SIGNAL_POLL_S` so a signal is acted on even when no callback is due (e.g. a node on
``use_sim_time`` whose /clock has stopped).
"""

from __future__ import annotations

import signal
from collections.abc import Callable

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node

EXIT_CONFIG_ERROR = 2
SIGNAL_POLL_S = 0.1  # [s] longest a SIGINT/SIGTERM waits before the spin loop sees it


class StopRequest:
    """SIGINT/SIGTERM -> a flag the spin loop checks (no exception thrown into callbacks)."""

    def __init__(self) -> None:
        self.signal = 0
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._on_signal)

    def _on_signal(self, signum: int, _frame: object) -> None:
        self.signal = self.signal or signum

    @property
    def requested(self) -> bool:
        return self.signal != 0


def _init_without_rclpy_signal_handlers(args: list[str] | None) -> None:
    try:
        from rclpy.signals import SignalHandlerOptions  # Humble and later
    except ImportError:  # pragma: no cover - older rclpy: its handlers stay installed
        rclpy.init(args=args)
        return
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)


def run_node(make_node: Callable[[], Node], start_errors: tuple[type[BaseException], ...],
             args: list[str] | None = None) -> int:
    """Run the node ``make_node()`` builds until shutdown; returns the process exit code.

    ``start_errors``: exceptions raised while building the node that mean "misconfigured" (fatal,
    logged with the fix, exit :data:`EXIT_CONFIG_ERROR`). A node with a ``close()`` method gets it
    called before it is destroyed (worker threads, native resources). ``destroy_node()`` always
    runs on a valid context (signal, exception or external shutdown alike).
    """
    stop = StopRequest()
    _init_without_rclpy_signal_handlers(args)
    try:
        node = make_node()
    except start_errors as exc:
        rclpy.logging.get_logger("minipamayo").fatal(f"cannot start the node: {exc}")
        rclpy.try_shutdown()
        return EXIT_CONFIG_ERROR
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        while not stop.requested and rclpy.ok():
            executor.spin_once(timeout_sec=SIGNAL_POLL_S)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception:
        if rclpy.ok():
            raise
        # a callback racing an external shutdown of the context is a normal exit
    finally:
        close = getattr(node, "close", None)
        if callable(close):
            close()
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    return 0
