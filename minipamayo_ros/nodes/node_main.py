"""The one ``main()`` body every node shares: --help, init, build, spin, clean shutdown, exit codes.

Exit codes: 0 after a requested stop (SIGINT or SIGTERM, received any number of times, at any
point: while starting, spinning or shutting down), :data:`EXIT_CONFIG_ERROR` when the node
cannot start because of its configuration (the message says what to fix); an exception escaping
a callback ends the process with a traceback (exit 1) after the same clean shutdown;
:data:`EXIT_WORKER_STUCK` when an inference call was still running :data:`WORKER_STOP_TIMEOUT_S`
after the stop (:func:`close_worker_then_release`: the backend is then never freed under it). One
SingleThreadedExecutor per process: nothing heavy shares a node's executor (the policy runs
inference in its own worker thread).

Signals: SIGINT/SIGTERM only *request* the shutdown (:class:`StopRequest`); rclpy's own handlers
are not installed, because they shut the ROS context down inside the signal handler, after which
nothing can be published, and a second signal then lands as ``KeyboardInterrupt`` in the middle
of ``destroy_node()`` (traceback, exit -2, "process has died" in ``ros2 launch``). Ctrl-C in the
terminal of ``ros2 launch`` reaches the whole process group, so every node gets SIGINT twice (from
the terminal and forwarded by launch), and launch escalates to SIGTERM if a node is slow: the
first signal stops the spin loop, later ones are only counted, and the shutdown always runs to
its end. So every node is destroyed while its context is still valid, and a node whose
``destroy_node()`` publishes a last message (the follower's zero-speed stop command) gets it out.
The spin loop wakes at least every :data:`SIGNAL_POLL_S` so a signal is acted on even when no
callback is due (e.g. a node on ``use_sim_time`` whose /clock has stopped).

While the node is being built, a signal interrupts it (a clean exit 0), but a Python signal handler
runs only when the main thread returns to Python: during a native call such as a TensorRT engine
build (10+ minutes on the vehicle) it would wait for the call to end. So the signal also wakes a
watcher thread (``signal.set_wakeup_fd``: written by the C-level handler at once), which cancels
the build in progress (``inference.build_progress.STOP_BUILDS``); the build returns, and the
handler runs.
"""

from __future__ import annotations

import gc
import os
import signal
import sys
import textwrap
import threading
import traceback
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Protocol

import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node

from minipamayo_ros.inference.build_progress import STOP_BUILDS
from minipamayo_ros.params import param_specs

EXIT_CONFIG_ERROR = 2
EXIT_WORKER_STUCK = 3         # an inference call did not return within WORKER_STOP_TIMEOUT_S of the stop
WORKER_STOP_TIMEOUT_S = 5.0   # [s] wait for the call in progress; below launch's SIGKILL (10 s after SIGINT)
SIGNAL_POLL_S = 0.1  # [s] longest a SIGINT/SIGTERM waits before the spin loop sees it
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
        self._watch_from_native_code()

    @staticmethod
    def _watch_from_native_code() -> None:
        """A stop signal cancels native builds at once (module doc), not when they return."""
        read_fd, write_fd = os.pipe()
        os.set_blocking(write_fd, False)
        signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)

        def watch() -> None:
            while True:
                if set(os.read(read_fd, 64)) & set(STOP_SIGNALS):
                    STOP_BUILDS.set()

        threading.Thread(target=watch, name="stop-signal-watcher", daemon=True).start()

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


class _ErrorLogger(Protocol):
    def error(self, message: str, /) -> object: ...


def close_worker_then_release(close_worker: Callable[[float], bool], release: Callable[[], None],
                              logger: _ErrorLogger, what: str,
                              timeout: float = WORKER_STOP_TIMEOUT_S) -> bool:
    """A node's ``close()``: stop its worker thread, then ``release()`` what the work uses (the
    inference backend), but only once the call in progress has returned.

    ``close_worker(timeout)`` returns False while that call is still running after ``timeout`` [s]
    (``ScheduledWorker.close``): then nothing is released (freeing a TensorRT engine or CUDA buffers
    under a running call is a use-after-free), the error is logged, and False tells
    :func:`run_node` to end the process with :data:`EXIT_WORKER_STUCK` without running finalizers.
    """
    if close_worker(timeout):
        release()
        return True
    logger.error(f"{what} still running {timeout:g} s after the stop request: the inference backend is "
                 f"not freed under it; exiting with status {EXIT_WORKER_STUCK}")
    return False


def _exit_leaving_worker(code: int) -> None:
    """End the process at once: a worker thread is still inside a native call (see
    :func:`close_worker_then_release`). A normal interpreter exit would clear modules and thread
    states and could free what that call uses; ``os._exit`` runs no finalizers, and the OS reclaims
    the memory (the CUDA driver the device memory) once every thread is gone."""
    if sys.exc_info()[0] is not None:  # an exception from a callback is on its way out: show it
        traceback.print_exc()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


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


def _init_without_rclpy_signal_handlers(args: list[str] | None) -> None:
    try:
        from rclpy.signals import SignalHandlerOptions  # Humble and later
    except ImportError:  # pragma: no cover - older rclpy: its handlers stay installed
        rclpy.init(args=args)
        return
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)


def freeze_startup_objects() -> None:
    """Collect once, then move every object alive after start-up to the permanent generation.

    Why: CPython's full (generation 2) collection walks every tracked object; a node holds ~40k of
    them after start-up (rclpy, numpy, message classes, the model wrapper) and the per-tick garbage
    of a 100 Hz loop triggers such a collection every few tens of seconds: measured 33 ms for the
    follower on the loaded dev VM, i.e. late control ticks. Frozen objects are never scanned again
    (``gc.freeze``), so a full collection only walks what was allocated since (measured < 0.1 ms).
    Objects created later are collected as usual.
    """
    gc.collect()
    gc.freeze()


def raise_thread_failure(node: Node) -> None:
    """Raise what ended a node's own thread (``node.thread_failure``, e.g. the follower's tick
    thread) here, in the main thread: the same path as an exception escaping a callback."""
    failure = getattr(node, "thread_failure", None)
    if failure is not None:
        raise failure


def run_node(make_node: Callable[[], Node], start_errors: tuple[type[BaseException], ...],
             args: list[str] | None = None, *, config: type | None = None) -> int:
    """Run the node ``make_node()`` builds until a stop signal; returns the process exit code.

    ``start_errors``: exceptions raised while building the node that mean "misconfigured" (fatal,
    logged with the fix, exit :data:`EXIT_CONFIG_ERROR`). ``config``: the node's parameter
    dataclass, listed by ``--help``. A node with a ``close()`` method gets it called before it is
    destroyed (worker threads, native resources); a ``close()`` that returns False (a worker still
    running, :func:`close_worker_then_release`) ends the process with :data:`EXIT_WORKER_STUCK`
    after the node is destroyed. ``destroy_node()`` always runs on a valid context (signal,
    exception or external shutdown alike). An exception that ended a node's own thread
    (:func:`raise_thread_failure`) is raised as if a callback had raised it.
    """
    argv = list(sys.argv if args is None else args)
    if wants_help(argv):
        module = sys.modules.get(getattr(make_node, "__module__", ""), None)
        print(usage(Path(argv[0]).name if argv else "node", getattr(module, "__doc__", None), config))
        return 0
    stop = StopRequest()
    try:
        _init_without_rclpy_signal_handlers(args)
        node = make_node()
        stop.starting = False  # from here on a signal only requests the stop
    except BaseException as exc:
        stop.starting = False
        if stop.requested:
            # stopped while starting; the interruption may surface as another error (a signal
            # during the import of a native module comes out as ImportError): not a config error
            rclpy.logging.get_logger("minipamayo").info("stop requested while starting: exiting")
            stop.shutdown_rclpy()
            return 0
        if isinstance(exc, start_errors):
            rclpy.logging.get_logger("minipamayo").fatal(f"cannot start the node: {exc}")
            stop.shutdown_rclpy()
            return EXIT_CONFIG_ERROR
        stop.shutdown_rclpy()
        raise
    freeze_startup_objects()
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        while not stop.requested and rclpy.ok():
            executor.spin_once(timeout_sec=SIGNAL_POLL_S)
            raise_thread_failure(node)
    except Exception:
        if rclpy.ok() and not stop.requested:
            raise
        # a callback racing the stop request / an external shutdown is a normal exit
    finally:
        if stop.requested:
            names = ", ".join(signal.Signals(s).name for s in stop.signals)
            node.get_logger().info(f"stop requested ({names}): shutting down")
        close = getattr(node, "close", None)
        released = close() is not False if callable(close) else True
        executor.shutdown()
        node.destroy_node()
        stop.shutdown_rclpy()
        if not released:
            _exit_leaving_worker(EXIT_WORKER_STUCK)
    return 0
