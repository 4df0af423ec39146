"""A subscription whose messages a periodic callback takes itself, instead of one executor wake-up each.

Why (docs/latency.md, "CPU per node"): rclpy's executor rebuilds its whole wait set in Python at
every wake-up -- every subscription, timer, service and QoS event handler of the node, a new
``WaitSet``, a guard condition that wakes it once more after each callback. For the 100 Hz follower
that was 81 % of its CPU (py-spy): 100 ticks, 50 odometry and 10 trajectory callbacks a second, each
a wake-up -- two in fact: the executor's guard condition is triggered after every callback.
The control law only acts at its ticks, so the tick takes whatever arrived since the last one
(:meth:`PolledSubscription.take`) and the executor never waits on these subscriptions.

How: the subscription is created in a callback group that never lets the executor run it
(:class:`NeverScheduled`: ``can_execute`` is False, so rclpy's executors -- Humble's and later ones
-- leave it out of the wait set), and :meth:`PolledSubscription.take` calls the subscription
handle's ``take_message`` as the executor itself does (Humble's ``Executor._take_subscription``).
Its QoS event handlers (incompatible-QoS warnings) share the group, so they are not run either.

Each message is still taken, in arrival order; the reader queue (keep-last ``depth``) must hold
what arrives in one period (the caller sizes it), and one call takes at most ``depth`` messages so
a flooding publisher cannot stretch a tick (the queue keeps the newest).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from rclpy.callback_groups import CallbackGroup
from rclpy.node import Node
from rclpy.qos import QoSProfile
from rclpy.subscription import Subscription


class NeverScheduled(CallbackGroup):
    """Entities the executor must not wait on or run: their owner takes their data itself (a polled
    subscription), or nobody does (the QoS event handlers of a publisher created in this group:
    its incompatible-QoS warnings are given up to keep them out of every wait set)."""

    def can_execute(self, entity: Any) -> bool:
        return False

    def beginning_execution(self, entity: Any) -> bool:
        return False

    def ending_execution(self, entity: Any) -> None:
        pass


def _never_called(_msg: Any) -> None:  # pragma: no cover - the executor never runs the group
    raise AssertionError("a polled subscription's callback was called by the executor")


class PolledSubscription:
    """``node``'s subscription to ``topic`` whose messages :meth:`take` returns, oldest first."""

    def __init__(self, node: Node, msg_type: Any, topic: str, qos: QoSProfile, raw: bool = False) -> None:
        self.msg_type = msg_type
        self.raw = raw  # take the serialized bytes (the caller parses them: no Python message built)
        self.depth = max(1, qos.depth)
        self.subscription = node.create_subscription(msg_type, topic, _never_called, qos,
                                                     callback_group=NeverScheduled())

    @property
    def topic_name(self) -> str:
        """The resolved name (namespace, remapping), as ``ros2 topic`` shows it."""
        return self.subscription.topic_name

    def take(self) -> Iterator[Any]:
        """Every message queued now, oldest first, at most ``depth`` (the rest stay for the next call);
        serialized (``bytes``) if ``raw``."""
        return take_queued(self.subscription, self.depth, self.raw)


def take_queued(subscription: Subscription, limit: int, raw: bool | None = None) -> Iterator[Any]:
    """The messages queued on ``subscription`` now, oldest first, at most ``limit``, taken as the
    executor takes one (Humble's ``Executor._take_subscription``); serialized if ``raw`` (default:
    the subscription's own ``raw``)."""
    handle = subscription.handle
    raw = subscription.raw if raw is None else raw
    for _ in range(limit):
        with handle:
            taken = handle.take_message(subscription.msg_type, raw)
        if taken is None:
            return
        yield taken[0]
