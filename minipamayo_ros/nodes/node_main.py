"""The one ``main()`` body every node shares: init, build, spin, clean shutdown, exit codes.

Exit codes: 0 after a normal shutdown (SIGINT, SIGTERM → ``ExternalShutdownException`` since
Jazzy), :data:`EXIT_CONFIG_ERROR` when the node cannot start because of its configuration (the
message says what to fix). One SingleThreadedExecutor per process: nothing heavy shares a
node's executor (the policy runs inference in its own worker thread).
"""

from __future__ import annotations

from collections.abc import Callable

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node

EXIT_CONFIG_ERROR = 2


def run_node(make_node: Callable[[], Node], start_errors: tuple[type[BaseException], ...],
             args: list[str] | None = None) -> int:
    """Run the node ``make_node()`` builds until shutdown; returns the process exit code.

    ``start_errors``: exceptions raised while building the node that mean "misconfigured" (fatal,
    logged with the fix, exit :data:`EXIT_CONFIG_ERROR`). A node with a ``close()`` method gets it
    called before it is destroyed (worker threads, native resources).
    """
    rclpy.init(args=args)
    try:
        node = make_node()
    except start_errors as exc:
        rclpy.logging.get_logger("minipamayo").fatal(f"cannot start the node: {exc}")
        rclpy.try_shutdown()
        return EXIT_CONFIG_ERROR
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception:
        if rclpy.ok():
            raise
        # a callback racing the shutdown of the context (SIGINT/SIGTERM) is a normal exit
    finally:
        close = getattr(node, "close", None)
        if callable(close):
            close()
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    return 0
