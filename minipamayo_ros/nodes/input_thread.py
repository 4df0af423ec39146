"""A node's inputs taken by its own worker thread, which also runs the work they schedule.

Why (docs/latency.md §5c): with rclpy's executor, every camera frame (30 Hz) and odometry message
(50 Hz) woke the executor thread, which rebuilt its wait set in Python, converted the 300 KB image
into a Python message and handed it to the inference thread (a second wake-up and a GIL hand-off),
although the rate cap drops two frames in three. Here one thread waits on an rcl wait set that holds
only the node's input subscriptions and a guard condition, takes each message serialized (raw: the
handler parses what it needs), and then calls ``step()``, which runs the work the inputs scheduled
(the policy's inference) in the same thread. The executor keeps the slow work (diagnostics,
parameter services), which shares state with the handlers under the owner's locks.

Inputs are handled in the order of :attr:`inputs` at each wake-up (the policy: odometry before the
image, so a frame never runs ahead of the odometry that arrived before it). The wait set is rclpy's
own ``_rclpy.WaitSet``, used exactly as Humble's ``rclpy.wait_for_message`` uses it (Humble and
later). An exception escaping a handler or ``step()`` ends the thread and is kept in
:attr:`InputThread.failure` for ``node_main.run_node`` to raise (the same exit path as an exception
in a callback); work that may fail per item catches its own errors in ``step()``.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Callable, Sequence
from typing import Any

from rclpy.guard_condition import GuardCondition
from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy
from rclpy.node import Node

from minipamayo_ros.nodes.polled_subscription import PolledSubscription

#: [s] longest wait without a wake-up: a bound on how long a lost wake-up could delay the next step
MAX_WAIT_S = 1.0


class InputThread:
    """Waits on ``inputs`` (handled in order on each wake-up), then calls ``step()``.

    ``step()`` returns how long [s] until it wants to be called again without new input (``inf``:
    only on input or :meth:`wake`)."""

    def __init__(self, node: Node, inputs: Sequence[tuple[PolledSubscription, Callable[[Any], None]]],
                 step: Callable[[], float], name: str) -> None:
        self.inputs = list(inputs)
        self._step = step
        self._context = node.context
        self._guard: GuardCondition | None = GuardCondition(None, None, context=node.context)
        self._guard_lock = threading.Lock()  # wake() from other threads vs its destruction in close()
        self._closing = False
        self.failure: BaseException | None = None  # what ended the thread, if a handler or step raised
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> InputThread:
        self._thread.start()
        return self

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def wake(self) -> None:
        """Call ``step()`` soon (the schedule changed: a new rate cap, a stop); no-op once closed."""
        with self._guard_lock:
            if self._guard is not None:
                self._guard.trigger()

    def close(self, timeout: float) -> bool:
        """No step starts after this; waits up to ``timeout`` [s] for the one in progress. False: the
        thread is still inside ``step()`` (what it uses must not be freed)."""
        self._closing = True
        if self._thread.ident is None:
            return True
        self.wake()
        if threading.current_thread() is self._thread:
            return False
        self._thread.join(timeout)
        if self._thread.is_alive():
            return False
        with self._guard_lock:  # a second close() finds nothing to wake
            if self._guard is not None:
                self._guard.destroy()
                self._guard = None
        return True

    def drain(self) -> None:
        """Handle every message queued now (from the thread itself, e.g. inside ``step()``)."""
        for sub, handle in self.inputs:
            for msg in sub.take():
                handle(msg)

    def _wait(self, wait_set: Any, timeout: float) -> None:
        with contextlib.ExitStack() as handles:  # as rclpy's executor: nothing destroyed mid-wait
            wait_set.clear_entities()
            for sub, _handle in self.inputs:
                handles.enter_context(sub.subscription.handle)
                wait_set.add_subscription(sub.subscription.handle)
            guard = self._guard
            if guard is None:  # closed
                return
            handles.enter_context(guard.handle)
            wait_set.add_guard_condition(guard.handle)
            wait_set.wait(int(min(timeout, MAX_WAIT_S) * 1e9))

    def _run(self) -> None:
        try:
            with self._context.handle:
                wait_set = _rclpy.WaitSet(len(self.inputs), 1, 0, 0, 0, 0, self._context.handle)
            timeout = 0.0
            while not self._closing:
                if timeout > 0.0:
                    self._wait(wait_set, timeout)
                    if self._closing:
                        return
                self.drain()
                wait = self._step()
                timeout = MAX_WAIT_S if math.isinf(wait) else max(wait, 1e-4)
        except BaseException as exc:  # kept for the main thread (node_main.raise_thread_failure)
            if not self._closing:
                self.failure = exc
