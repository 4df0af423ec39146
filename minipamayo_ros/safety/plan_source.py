"""Whose plans the follower follows: one producer, one live instance of it, one plan per stamp (no ROS).

Every ``Trajectory`` names its producer (the publishing node's fully qualified name) and a random
instance id drawn at each start of that node (``msg/Trajectory.msg``). The follower is configured
with the producer it follows (by default ``<its namespace>/policy``) and, for each plan, after the
content checks:

* another producer's plan is rejected (:data:`WRONG_PRODUCER`): a replay tool, a test script or a
  second stack publishing on the same topic is never followed;
* a plan of another *instance* of that producer is rejected while the plan held is fresh
  (:data:`OTHER_INSTANCE`): two live nodes with one name (a second launch of the stack) cannot
  take turns; once the held plan is older than ``trajectory_timeout`` the new instance is
  accepted (the producer restarted: its plans resume tracking);
* within the instance held, a plan older than the one held is out of order
  (:data:`~minipamayo_ros.safety.rejection.OUT_OF_ORDER`); one with the stamp of the held plan but
  different content (or sequence number) is a conflict (:data:`CONFLICT`; an identical copy is
  accepted).

None of this protects against a node that forges the producer name and instance id: that needs
DDS access control (SROS 2 enclaves, docs/follower.md "One source"). The graph check (more than one
publisher on the topic: :class:`SourceMonitor`) reports such a node whatever it sends.
"""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass, field

import numpy as np

from minipamayo_ros.safety.input_monitor import ERROR, OK
from minipamayo_ros.safety.rejection import OUT_OF_ORDER, Rejection
from minipamayo_ros.trajectory import PlannedTrajectory

#: rejection kinds (diagnostics counter keys)
WRONG_PRODUCER = "wrong_producer"
OTHER_INSTANCE = "other_instance"
CONFLICT = "conflict"
#: kinds that mean "someone else publishes plans on this topic" (ERROR in /diagnostics)
INTRUDER_KINDS = (WRONG_PRODUCER, OTHER_INSTANCE, CONFLICT)
#: node name of the policy within its namespace: the default producer
POLICY_NODE = "policy"
#: intruders remembered for /diagnostics (the most recent)
MAX_INTRUDERS = 5
#: the node name rmw reports for a publisher whose node is not known (yet): a new process's
#: endpoints are often discovered before the message that names their node
UNKNOWN_NODE = "_NODE_NAME_UNKNOWN_"


def new_instance_id() -> int:
    """A random, non-zero ``producer_instance`` (uint64), drawn once per start of a producer."""
    return secrets.randbits(64) or 1


def resolve_producer(name: str, namespace: str) -> str:
    """The fully qualified producer name: ``""`` -> ``<namespace>/policy``, a relative name ->
    ``<namespace>/<name>``, an absolute one (``/x/policy``) unchanged."""
    name = name or POLICY_NODE
    if name.startswith("/"):
        return name
    return f"{namespace.rstrip('/')}/{name}"


def describe_producer(producer: str, instance: int) -> str:
    """``'/policy' (instance 0x1a2b…)`` for log lines and diagnostics."""
    return f"{producer or '<unnamed>'!r} (instance {instance:#x})"


def same_content(a: PlannedTrajectory, x: np.ndarray, y: np.ndarray, speed: np.ndarray, dt: float,
                 sequence: int) -> bool:
    """Is the plan ``(x, y, speed, dt, sequence)`` the one held in ``a`` (a re-delivered copy)?"""
    p = np.asarray(a.points, dtype=np.float64)
    return (a.sequence == sequence and a.dt == dt and p.shape == (len(x), 2)
            and np.array_equal(p[:, 0], x) and np.array_equal(p[:, 1], y)
            and np.array_equal(np.asarray(a.speeds, dtype=np.float64), speed))


def check_source(producer: str, instance: int, sequence: int, stamp: float,
                 content: tuple[np.ndarray, np.ndarray, np.ndarray, float],
                 held: PlannedTrajectory | None, expected: str | None, now: float,
                 timeout: float) -> Rejection | None:
    """Why a (content-checked) plan must not replace ``held``, or None.

    ``expected``: the producer followed (None: any, for offline callers with one source by
    construction); ``content``: ``(x, y, speed, dt)`` of the new plan; ``timeout`` [s]: the
    follower's ``trajectory_timeout`` (a held plan older than that no longer binds the instance).
    """
    if expected is not None and producer != expected:
        return Rejection(WRONG_PRODUCER, "producer", describe_producer(producer, instance),
                         f"this follower follows {expected!r} (parameter trajectory_producer)")
    if held is None:
        return None
    if instance != held.producer_instance:
        age = now - held.stamp
        if age <= timeout:
            return Rejection(OTHER_INSTANCE, "producer_instance", f"{instance:#x}",
                             f"instance {held.producer_instance:#x} of {held.producer or '<unnamed>'!r} "
                             f"is live (its plan held is {age:.3f} s old): two nodes with one name?")
        return None  # the producer restarted: its new instance takes over
    if stamp < held.stamp:
        return Rejection(OUT_OF_ORDER, "header.stamp", stamp,
                         f"{held.stamp - stamp:.3f} s older than the trajectory held")
    if stamp == held.stamp:
        x, y, speed, dt = content
        if same_content(held, x, y, speed, dt, sequence):
            return None
        return Rejection(CONFLICT, "header.stamp", stamp,
                         f"same stamp as the plan held (sequence {held.sequence}) but different content "
                         f"(sequence {sequence})")
    return None


@dataclass
class SourceMonitor:
    """The trajectory source as ``/diagnostics`` reports it (no ROS): ERROR while another
    producer / instance / conflicting plan was rejected within the last ``hold`` seconds, or while
    the graph shows more than one publisher on the topic; OK otherwise.

    ``hold`` [s] on the ROS clock; ``publishers``: node names from the last graph check.
    """

    producer: str
    topic: str
    hold: float = 3.0
    publishers: list[str] = field(default_factory=list)
    intruders: dict[str, int] = field(default_factory=dict)  # the last few intruders -> plans rejected
    last_intruder: str = ""
    last_intruder_detail: str = ""
    _last_intrusion: float = -math.inf

    def rejected(self, rejection: Rejection, producer: str, instance: int, now: float) -> bool:
        """Note a rejected plan; True if it starts an intrusion or comes from another intruder than
        the last one (report it now, not at the next diagnostics period)."""
        if rejection.kind not in INTRUDER_KINDS:
            return False
        who = describe_producer(producer, instance)
        starts = now - self._last_intrusion > self.hold or who != self.last_intruder
        self.intruders[who] = self.intruders.pop(who, 0) + 1  # newest last
        while len(self.intruders) > MAX_INTRUDERS:  # an attacker may vary its name: bounded
            del self.intruders[next(iter(self.intruders))]
        self.last_intruder, self.last_intruder_detail = who, f"{rejection.kind}: {rejection.detail}"
        self._last_intrusion = now
        return starts

    def graph(self, publishers: list[str]) -> bool:
        """Publishers seen on the topic (fully qualified node names); True if the set changed
        (report it now)."""
        changed = sorted(publishers) != self.publishers
        self.publishers = sorted(publishers)
        return changed

    def names_pending(self) -> bool:
        """A publisher of the last graph check had no node name yet: read the names again at the
        next check, not only when the count changes (else a restarted policy stays
        ``_NODE_NAMESPACE_UNKNOWN_/_NODE_NAME_UNKNOWN_`` in /diagnostics)."""
        return any(name.endswith(UNKNOWN_NODE) for name in self.publishers)

    def clock_reset(self) -> None:
        self._last_intrusion = -math.inf

    def report(self, now: float, held: PlannedTrajectory | None) -> tuple[int, str, dict[str, str]]:
        """``(level, message, values)`` of the ``trajectory source`` diagnostic status."""
        problems = []
        if now - self._last_intrusion <= self.hold:
            problems.append(f"rejecting plans of {self.last_intruder} ({self.last_intruder_detail})")
        if len(self.publishers) > 1:
            names = ", ".join(self.publishers)
            problems.append(f"{len(self.publishers)} publishers on {self.topic}: {names}")
        if problems:
            level, message = ERROR, "; ".join(problems)
        elif held is None:
            level, message = OK, f"waiting for plans of {self.producer!r}"
        else:
            level, message = OK, f"following {describe_producer(held.producer, held.producer_instance)}"
        values = {
            "producer": self.producer,
            "instance": f"{held.producer_instance:#x}" if held is not None else "",
            "publishers": ",".join(self.publishers),
            "last_intruder": self.last_intruder,
            **{f"rejected from {k}": str(n) for k, n in self.intruders.items()},
        }
        return level, message, values
