"""The one ``main()`` body every node shares: --help, init, build, spin, clean shutdown, exit codes.

Exit codes: 0 after a requested stop (SIGINT or SIGTERM, received any number of times, at any
point: while starting, spinning or shutting down), :data:`EXIT_CONFIG_ERROR` when the node
cannot start because of its configuration (the message says what to fix). One
SingleThreadedExecutor per process: nothing heavy shares a node's executor (the policy runs
inference in its own worker thread).

Why own signal handlers instead of rclpy's: Ctrl-C in the terminal of ``ros2 launch`` reaches the
whole process group, so every node gets SIGINT twice (from the terminal and forwarded by launch),
and launch follows up with SIGTERM if a node is slow. With rclpy's handlers the second signal
lands as ``KeyboardInterrupt`` in the middle of ``destroy_node()``: a traceback, exit code -2 and
"process has died" for every node. Here the first signal asks the spin loop to stop, later ones
are only counted, and the shutdown always runs to its end.
"""

from __future__ import annotations

import signal
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from types import FrameType

import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions

from minipamayo_ros.params import param_specs

EXIT_CONFIG_ERROR = 2
#: [s] longest wait of the spin loop: how soon a stop request is noticed
STOP_POLL_S = 0.1
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class _StartupInterrupted(BaseException):
    """A stop signal arrived while the node was still being built (e.g. loading a model)."""


class StopRequest:
    """Owns SIGINT/SIGTERM for the life of the process: records stop requests, never raises
    except while the node is being built (so a long model load can be interrupted)."""

    def __init__(self) -> None:
        self.signals: list[int] = []
        self.starting = True
        for sig in STOP_SIGNALS:
            signal.signal(sig, self._handle)

    def shutdown_rclpy(self) -> None:
        """The last step of every path: ``rclpy.try_shutdown()``, then ignore stop signals.

        ``try_shutdown`` resets SIGINT/SIGTERM to the handlers rclpy saw at import (the default:
        die on the signal), and so does the interpreter's own exit for Python-level handlers.
        With nothing left to stop, later signals are ignored (held while switching, so none can
        slip through to the default) and the process exits with the code it returns.
        """
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            rclpy.try_shutdown()
        finally:
            for sig in STOP_SIGNALS:
                signal.signal(sig, signal.SIG_IGN)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)

    @property
    def requested(self) -> bool:
        return bool(self.signals)

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        self.signals.append(signum)
        if self.starting and len(self.signals) == 1:
            raise _StartupInterrupted


def wants_help(argv: list[str]) -> bool:
    """``-h``/``--help`` among the non-ROS arguments (``argv[0]`` is the program)."""
    from rclpy.utilities import remove_ros_args

    return any(a in ("-h", "--help") for a in remove_ros_args(args=argv)[1:])


def usage(program: str, doc: str | None, config: type | None) -> str:
    """``--help`` text: how to run, what the node does, and its parameters with defaults/ranges."""
    lines = [f"usage: ros2 run minipamayo_ros {program} [--ros-args [-p NAME:=VALUE]... "
             "[--params-file FILE] [-r FROM:=TO]... [-r __ns:=/NAMESPACE]]", ""]
    if doc:
        lines += [doc.strip(), ""]
    if config is not None:
        lines.append("parameters (default; range or choices; read-only = only at startup):")
        for spec in param_specs(config):
            extra = []
            if spec.min is not None or spec.max is not None:
                lo = "" if spec.min is None else f"{spec.min:g}"
                hi = "" if spec.max is None else f"{spec.max:g}"
                extra.append(f"[{lo}, {hi}]")
            if spec.choices:
                extra.append(" | ".join(spec.choices))
            if spec.read_only:
                extra.append("read-only")
            default = spec.default if spec.default != "" else "''"
            head = f"  {spec.name} = {default}" + (f"  ({'; '.join(extra)})" if extra else "")
            lines.append(head)
            lines += textwrap.wrap(spec.full_description, 96, initial_indent=" " * 6,
                                   subsequent_indent=" " * 6)
    lines += ["", "Stops cleanly (exit 0) on SIGINT/SIGTERM; exit 2 on a configuration error."]
    return "\n".join(lines)


def run_node(make_node: Callable[[], Node], start_errors: tuple[type[BaseException], ...],
             args: list[str] | None = None, *, config: type | None = None) -> int:
    """Run the node ``make_node()`` builds until a stop signal; returns the process exit code.

    ``start_errors``: exceptions raised while building the node that mean "misconfigured" (fatal,
    logged with the fix, exit :data:`EXIT_CONFIG_ERROR`). ``config``: the node's parameter
    dataclass, listed by ``--help``. A node with a ``close()`` method gets it called before it is
    destroyed (worker threads, native resources).
    """
    argv = list(sys.argv if args is None else args)
    if wants_help(argv):
        module = sys.modules.get(getattr(make_node, "__module__", ""), None)
        print(usage(Path(argv[0]).name if argv else "node", getattr(module, "__doc__", None), config))
        return 0
    stop = StopRequest()
    node: Node | None = None
    try:
        rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
        try:
            node = make_node()
        except start_errors as exc:
            rclpy.logging.get_logger("minipamayo").fatal(f"cannot start the node: {exc}")
            stop.shutdown_rclpy()
            return EXIT_CONFIG_ERROR
        stop.starting = False
    except _StartupInterrupted:
        stop.starting = False
        stop.shutdown_rclpy()
        return 0
    stop.starting = False  # (a second signal during startup only gets counted)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        while not stop.requested and rclpy.ok():
            executor.spin_once(timeout_sec=STOP_POLL_S)
    except Exception:
        if rclpy.ok() and not stop.requested:
            raise
        # a callback racing the stop request / an external shutdown is a normal exit
    finally:
        if stop.requested:
            names = ", ".join(signal.Signals(s).name for s in stop.signals)
            node.get_logger().info(f"stop requested ({names}): shutting down")
        close = getattr(node, "close", None)
        if callable(close):
            close()
        executor.shutdown()
        node.destroy_node()
        stop.shutdown_rclpy()
    return 0
