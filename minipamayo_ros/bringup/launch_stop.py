"""``ros2 launch``: what happens when a node of the stack exits (the runner's rule, ``stop_policy``).

``OnProcessExit`` handlers on every node action:

* the **follower** exits -> the launch stops everything at once;
* **another node** exits -> everything keeps running for the follower's controlled-stop grace
  (``stop_policy.controlled_stop_grace``, 6.5 s with the shipped parameters), then the launch
  stops everything (the follower's last message is its SHUTDOWN zero-speed command).

Either way ``ros2 launch`` then exits non-zero: the handler raises :class:`NodeDiedError`, which
``LaunchService`` logs ("Caught exception in launch: ...") and answers with a shutdown and return
code 1 (a plain ``Shutdown`` action would exit 0, hiding the failure). Exits during a shutdown
already under way (Ctrl-C) are ignored. A node exits 0 only when it was asked to stop (SIGINT /
SIGTERM, ``nodes/node_main.py``): a terminal's Ctrl-C reaches the nodes at the same instant as
``ros2 launch`` itself, so such an exit can be seen before the launch's own shutdown has begun;
it is judged :data:`REQUESTED_STOP_SETTLE_S` later, and ignored if a shutdown is then under way
(no ERROR line on Ctrl-C). A follower that stopped on request (exit 0, after its SHUTDOWN command)
stops the stack with exit 0. Imported only by the launch files (needs ``launch``).

SIGINT reaches ``ros2 launch`` only through launch's own signal manager
(:func:`sigint_through_launch_only`): Python's default handler also raised ``KeyboardInterrupt``
at an arbitrary point of launch's event loop, which upstream launch swallows, dropping the event
it was processing half-done (a second SIGINT while launch signalled its processes left one of them
un-signalled until the SIGTERM escalation, an ERROR: 8 of 40 stops of a six-process launch
with a second SIGINT 0-30 ms after the first, on a loaded 2-core box; 0 of 70 with it).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Sequence

from launch_ros.actions import Node

from launch import LaunchContext
from launch.actions import LogInfo, OpaqueFunction, RegisterEventHandler, Shutdown, TimerAction
from launch.event_handlers import OnProcessExit
from launch.events.process import ProcessExited
from minipamayo_ros.bringup.stack import NodeSpec
from minipamayo_ros.bringup.stop_policy import FOLLOWER

#: [s] how long an exit with code 0 (a requested stop) waits for the launch's own shutdown
REQUESTED_STOP_SETTLE_S = 0.5


class NodeDiedError(RuntimeError):
    """A node of the stack exited while the stack was running (makes ``ros2 launch`` exit 1)."""


def _fail(message: str) -> OpaqueFunction:
    def _raise(_context: LaunchContext) -> None:
        raise NodeDiedError(message)

    return OpaqueFunction(function=_raise)


def _on_exit(name: str, grace: float) -> Callable[[ProcessExited, LaunchContext], list | None]:
    def handler(event: ProcessExited, context: LaunchContext) -> list | None:
        if getattr(context, "is_shutdown", False):
            return None  # a shutdown already under way (Ctrl-C, another node's handler)
        if event.returncode == 0:  # a requested stop: is the whole launch being stopped (Ctrl-C)?
            return [TimerAction(period=REQUESTED_STOP_SETTLE_S, actions=[
                OpaqueFunction(function=lambda ctx: None if ctx.is_shutdown else requested(event))])]
        return respond(event)

    def requested(event: ProcessExited) -> list:
        # The follower exits 0 only when asked to stop, after its SHUTDOWN zero-speed command: the
        # vehicle has its stop, so the stack stops as requested (exit 0). This is also the path when
        # launch itself misses a terminal's Ctrl-C that every node got (upstream launch can lose a
        # SIGINT raced by KeyboardInterrupt, see sigint_through_launch_only): no false failure then.
        if name == FOLLOWER:
            return [LogInfo(msg="[minipamayo] node 'follower' stopped on request (its last command "
                                "was its zero-speed SHUTDOWN); stopping the stack"),
                    Shutdown(reason="follower stopped on request")]
        return respond(event)

    def respond(event: ProcessExited) -> list:
        what = f"node '{name}' exited (code {event.returncode})"
        if name == FOLLOWER or grace <= 0.0:
            return [_fail(f"{what}: nothing commands the vehicle any more; stopping the stack")]
        return [
            LogInfo(msg=f"[minipamayo] {what}; keeping the rest running {grace:.1f} s for the "
                        "follower's controlled stop, then stopping the stack"),
            TimerAction(period=grace, actions=[
                _fail(f"{what}; the follower's controlled-stop grace ({grace:.1f} s) is over")]),
        ]

    return handler


def sigint_through_launch_only() -> None:
    """Replace Python's default SIGINT handler in the ``ros2 launch`` process by one that does nothing.

    Launch handles SIGINT through ``signal.set_wakeup_fd`` (its ``AsyncSafeSignalManager``: shutdown
    on the first, "ignoring" the next), which needs a Python-level handler to stay installed, but
    the default one also raises ``KeyboardInterrupt`` wherever the event loop happens to be;
    ``LaunchService`` catches and drops it together with the event it was processing, e.g. the
    ``SignalProcess`` that would have sent SIGINT to one node. A no-op handler keeps the wakeup
    (launch still sees every SIGINT) without the interrupt. Only the default handler is replaced
    (a host process's own handler is left alone), and only in the main thread (where launch runs).
    """
    if (threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGINT) is signal.default_int_handler):
        signal.signal(signal.SIGINT, _sigint_seen_by_launch)


def _sigint_seen_by_launch(_signum: int, _frame: object) -> None:
    """SIGINT: nothing here; launch's signal manager gets it through its wakeup fd."""


def stop_handlers(specs: Sequence[NodeSpec], actions: Sequence[Node],
                  grace: float) -> list[RegisterEventHandler]:
    """One ``OnProcessExit`` handler per node action (``specs[i]`` describes ``actions[i]``)."""
    return [RegisterEventHandler(OnProcessExit(target_action=action, on_exit=_on_exit(spec.name, grace)))
            for spec, action in zip(specs, actions, strict=True)]
