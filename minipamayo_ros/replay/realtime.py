"""Real-time replay over DDS: publish a bag into a running stack with ``/clock``, record its outputs.

    python -m minipamayo_ros.replay.replay BAG --mode realtime --out OUT [--rate 2] [--start 5 --end 30]
        [--remap /camera/image_raw:=/front/image_raw] [--namespace car7]

What ``ros2 bag play --clock`` + ``ros2 bag record`` do, in one process and with the numbers a
regression needs. The stack (``ros2 launch minipamayo_ros drive.launch.py use_sim_time:=true``, or
the runner) must already run on the same ROS domain. Every bag topic a node of the stack might
consume is published at its log time (scaled by ``rate``) with the raw CDR bytes of the bag;
``/clock`` (global) carries the log time of each message just before it (the bag's own ``/clock``
and the stack's output topics are not re-published). The stack's ``vla/trajectory``,
``vla/explanation`` and ``vla/control`` are recorded and matched to the published frames by image
stamp. ``namespace``: where the stack runs -- its outputs are read there, and bag topics recorded
at the root (``/odom``) are published into it (``/car7/odom``); topics already under it stay;
``--remap`` renames any topic (applied instead).

Timing is honest, not deterministic: DDS may deliver an image before the odometry of the same
instant, the policy drops frames under its rate cap and under load. The statistics say what
happened per topic (published, received, matched to an input, out of order, duplicates, sequence
gaps) and ``total_ms`` of each output is image publish -> trajectory received (wall clock), which
the latency gates of ``compare`` judge. Compare with ``--match-only`` (the default of
``replay --mode realtime``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from minipamayo_ros.policy.config import PolicyConfig
from minipamayo_ros.replay.bagio import CLOCK, CONTROL, EXPLANATION, TRAJECTORY, BagError, BagReader
from minipamayo_ros.replay.inputs import resolve_topics
from minipamayo_ros.replay.messages import explanation_record, trajectory_record
from minipamayo_ros.replay.progress import Progress
from minipamayo_ros.replay.records import ControlRecord, Meta, Outputs

NS = 1_000_000_000
#: the stack's outputs (names relative to its namespace): recorded, never re-published into it
OUTPUT_TOPICS = {"/vla/trajectory": TRAJECTORY, "/vla/explanation": EXPLANATION, "/vla/control": CONTROL}
#: never re-published: global topics, and the stack's outputs in any namespace (name suffixes)
NOT_REPLAYED_GLOBAL = {"/clock", "/diagnostics", "/rosout", "/parameter_events", "/tf", "/tf_static"}
NOT_REPLAYED_OUTPUTS = (
    "/vla/trajectory",
    "/vla/explanation",
    "/vla/control",
    "/vla/context",
    "/vla/path",
    "/vla/lookahead_point",
    "/cmd_vel",
)


def not_replayed(topic: str) -> bool:
    return topic in NOT_REPLAYED_GLOBAL or topic.endswith(NOT_REPLAYED_OUTPUTS)


def into_namespace(topic: str, namespace: str) -> str:
    """A bag topic as published into a stack in ``namespace``: root-level names move under it,
    names already under it stay."""
    ns = namespace.strip("/")
    if not ns or topic.startswith(f"/{ns}/"):
        return topic
    return f"/{ns}{topic}"


def parse_remaps(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        if ":=" not in item:
            raise BagError(f"--remap expects FROM:=TO, got '{item}'")
        a, b = item.split(":=", 1)
        out[a.strip()] = b.strip()
    return out


def run_realtime(
    bag: Path | list[Path],
    policy: PolicyConfig,
    out: Path,
    rate: float = 1.0,
    start: float = 0.0,
    end: float = float("inf"),
    remaps: list[str] | None = None,
    settle: float = 2.0,
    wait_subscribers: float = 20.0,
    progress: bool = True,
    context: Any = None,
    namespace: str = "",
) -> tuple[Outputs, dict[str, Any]]:
    """Play ``bag`` into the running stack; returns its outputs and per-topic statistics."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

    from minipamayo_ros.replay.record import msg_class

    if not rate > 0.0:
        raise BagError(f"--rate must be > 0, got {rate}")
    remap = parse_remaps(remaps or [])
    own_context = context is None
    if own_context:
        context = rclpy.Context()
        rclpy.init(context=context)
    node = Node("bag_player", context=context, namespace=namespace)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    try:
        with BagReader(bag) as reader:
            info = reader.info
            assert info is not None
            try:  # a bag recorded in the stack's namespace, else one recorded at the root
                topics = resolve_topics(info, policy.image_topic, policy.odom_topic, namespace)
            except BagError:
                if not namespace.strip("/"):
                    raise
                topics = resolve_topics(info, policy.image_topic, policy.odom_topic)
            qos = QoSProfile(
                history=HistoryPolicy.KEEP_LAST, depth=100, reliability=ReliabilityPolicy.RELIABLE
            )
            pubs: dict[str, Any] = {}
            skipped: dict[str, str] = {}
            for t in info.topics:
                if not_replayed(t.name) or t.msgtype == CLOCK:
                    skipped[t.name] = "not re-published (clock or a stack output)"
                    continue
                try:
                    name = remap.get(t.name, into_namespace(t.name, namespace))
                    pubs[t.name] = node.create_publisher(msg_class(t.msgtype), name, qos)
                except (ImportError, AttributeError, ValueError) as exc:
                    skipped[t.name] = f"type {t.msgtype} not importable here ({exc})"
            clock_pub = node.create_publisher(msg_class(CLOCK), "/clock", qos)
            rec = _OutputRecorder(node)
            camera_pub = pubs[topics.image]
            deadline = time.monotonic() + wait_subscribers
            while camera_pub.get_subscription_count() == 0 and time.monotonic() < deadline:
                executor.spin_once(timeout_sec=0.1)
            if camera_pub.get_subscription_count() == 0:
                raise BagError(
                    f"nobody subscribes to {camera_pub.topic_name} after "
                    f"{wait_subscribers:.0f} s: start the stack first (use_sim_time:=true, same "
                    "ROS_DOMAIN_ID), or --remap the camera topic to the one it subscribes"
                )
            time.sleep(0.5)  # let the other topics' matching finish too
            start_ns = info.start_ns + int(start * NS)
            end_ns = None if end == float("inf") else info.start_ns + int(end * NS) + 1
            bar = Progress(
                info.estimate_count(topics.image, start_ns, end_ns), "replay realtime", enabled=progress
            )
            Clock = msg_class(CLOCK)
            Time = msg_class("builtin_interfaces/msg/Time")
            published: dict[str, int] = {}
            t0_wall = None
            t0_log = 0
            for topic, _, log_ns, data in reader.messages(
                list(pubs), raw=True, start_ns=start_ns, end_ns=end_ns
            ):
                if t0_wall is None:
                    t0_wall, t0_log = time.monotonic(), log_ns
                target = t0_wall + (log_ns - t0_log) / NS / rate
                while (wait := target - time.monotonic()) > 0:
                    executor.spin_once(timeout_sec=min(wait, 0.01))
                clock_pub.publish(Clock(clock=Time(sec=log_ns // NS, nanosec=log_ns % NS)))
                pubs[topic].publish(data)
                published[topic] = published.get(topic, 0) + 1
                if topic == topics.image:
                    rec.sent(data, time.monotonic())
                    bar.update()
            play_wall = time.monotonic() - (t0_wall or time.monotonic())
            deadline = time.monotonic() + settle
            while time.monotonic() < deadline:
                executor.spin_once(timeout_sec=0.02)
            bar.close()
        meta = Meta(
            mode="realtime",
            bag=", ".join(str(p) for p in info.paths),
            image_topic=topics.image,
            odom_topic=topics.odom,
            model_id=rec.model_id,
            backend="",
            created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            extra={"rate": rate, "remaps": remap},
        )
        outputs = rec.outputs(meta)
        stats = rec.stats(published, play_wall, rate, skipped)
    finally:
        executor.remove_node(node)
        node.destroy_node()
        executor.shutdown()
        if own_context:
            rclpy.try_shutdown(context=context)
    return outputs, stats


def _cdr_header_stamp_ns(data: bytes) -> int:
    """``header.stamp`` of a serialised message that starts with a ``std_msgs/Header`` (Image and
    CompressedImage do), without decoding the pixels: CDR = 4-byte encapsulation, int32 sec, uint32 ns."""
    import struct

    sec, nsec = struct.unpack_from("<iI" if data[1] & 1 else ">iI", data, 4)
    return sec * NS + nsec


class _TopicOrder:
    """Ordering / duplicate / match counts of one output topic (stamps in ns)."""

    def __init__(self) -> None:
        self.received = 0
        self.matched = 0  # to an input the player published (a frame's image stamp)
        self.out_of_order = 0  # stamp older than the newest seen before it
        self.duplicates = 0  # same key as an earlier message
        self._last = -1
        self._seen: set[Any] = set()

    def add(self, stamp_ns: int, key: Any, matched: bool) -> bool:
        """Count one message; False for a duplicate (not kept)."""
        self.received += 1
        if key in self._seen:
            self.duplicates += 1
            return False
        self._seen.add(key)
        if stamp_ns < self._last:
            self.out_of_order += 1
        self._last = max(self._last, stamp_ns)
        self.matched += bool(matched)
        return True

    def as_dict(self) -> dict[str, int]:
        return {
            "received": self.received,
            "matched_to_inputs": self.matched,
            "unmatched": self.received - self.duplicates - self.matched,
            "out_of_order": self.out_of_order,
            "duplicates": self.duplicates,
        }


class _OutputRecorder:
    """Subscribes to the stack's outputs; matches them to the frames published (by image stamp).

    A trajectory and an explanation carry the stamp of their image; a control command carries
    the stamp of the trajectory it tracks (0 before the first one: counted apart, not unmatched).
    """

    #: stamps cross the stack as float seconds: match within this [ns]
    MATCH_NS = 1_000

    def __init__(self, node: Any) -> None:
        from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

        from minipamayo_ros.replay.record import msg_class

        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=200, reliability=ReliabilityPolicy.RELIABLE)
        self._sent: dict[int, float] = {}  # image stamp [ns] -> wall time published
        self._sorted: list[int] = []
        self._trajectories: list[Any] = []
        self._explanations: list[Any] = []
        self._controls: list[ControlRecord] = []
        self.model_id = ""
        self.order = {name: _TopicOrder() for name in OUTPUT_TOPICS}
        self.sequence_gaps = 0
        self.controls_before_trajectory = 0
        self._last_seq = 0
        # relative: the stack's outputs in the player node's namespace
        node.create_subscription(msg_class(TRAJECTORY), "vla/trajectory", self._on_traj, qos)
        node.create_subscription(msg_class(EXPLANATION), "vla/explanation", self._on_expl, qos)
        node.create_subscription(msg_class(CONTROL), "vla/control", self._on_control, qos)

    def sent(self, data: bytes, wall: float) -> None:
        """A camera message (raw CDR) went out at ``wall``: remember its header stamp."""
        import bisect

        stamp = _cdr_header_stamp_ns(data)
        self._sent[stamp] = wall
        bisect.insort(self._sorted, stamp)

    def frame_of(self, stamp_ns: int) -> int | None:
        """The published image stamp ``stamp_ns`` refers to (None: not one of ours)."""
        import bisect

        i = bisect.bisect_left(self._sorted, stamp_ns - self.MATCH_NS)
        if i < len(self._sorted) and abs(self._sorted[i] - stamp_ns) <= self.MATCH_NS:
            return self._sorted[i]
        return None

    def _on_traj(self, msg: Any) -> None:
        now = time.monotonic()
        rec = trajectory_record(msg)
        self.model_id = self.model_id or rec.model_id
        frame = self.frame_of(rec.stamp_ns)
        if not self.order["/vla/trajectory"].add(rec.stamp_ns, rec.stamp_ns, frame is not None):
            return
        if self._last_seq and rec.sequence != self._last_seq + 1:
            self.sequence_gaps += 1
        self._last_seq = rec.sequence
        rec.total_ms = (now - self._sent[frame]) * 1e3 if frame is not None else float("nan")
        self._trajectories.append(rec)

    def _on_expl(self, msg: Any) -> None:
        rec = explanation_record(msg)
        key = (rec.stamp_ns, rec.event, rec.sequence)
        if self.order["/vla/explanation"].add(rec.stamp_ns, key, self.frame_of(rec.stamp_ns) is not None):
            self._explanations.append(rec)

    def _on_control(self, msg: Any) -> None:
        rec = ControlRecord(
            stamp_ns=msg.header.stamp.sec * NS + msg.header.stamp.nanosec,
            status=int(msg.status),
            speed=float(msg.speed),
            steering_angle=float(msg.steering_angle),
            curvature=float(msg.curvature),
            trajectory_stamp_ns=msg.trajectory_stamp.sec * NS + msg.trajectory_stamp.nanosec,
        )
        matched = rec.trajectory_stamp_ns != 0 and self.frame_of(rec.trajectory_stamp_ns) is not None
        key = (rec.stamp_ns, rec.trajectory_stamp_ns, rec.status)
        if self.order["/vla/control"].add(rec.stamp_ns, key, matched):
            self._controls.append(rec)
            self.controls_before_trajectory += rec.trajectory_stamp_ns == 0

    def outputs(self, meta: Meta) -> Outputs:
        out = Outputs(meta)
        for r in self._trajectories:
            out.add(r)
        for e in self._explanations:
            out.add(e)
        for c in self._controls:
            out.add(c)
        return out

    def stats(
        self, published: dict[str, int], play_wall: float, rate: float, skipped: dict[str, str]
    ) -> dict[str, Any]:
        traj = self.order["/vla/trajectory"]
        frames = len(self._sent)
        outputs = {name: o.as_dict() for name, o in self.order.items()}
        outputs["/vla/trajectory"]["sequence_gaps"] = self.sequence_gaps
        outputs["/vla/control"]["before_first_trajectory"] = self.controls_before_trajectory
        outputs["/vla/control"]["unmatched"] -= self.controls_before_trajectory
        return {
            "mode": "realtime",
            "rate": rate,
            "play_wall_seconds": round(play_wall, 3),
            "published": published,
            "not_replayed": skipped,
            "received": {name: o.received for name, o in self.order.items()},
            "outputs": outputs,
            "frames_published": frames,
            "trajectories_matched_to_frames": traj.matched,
            "trajectories_unmatched": len(self._trajectories) - traj.matched,
            "frames_without_trajectory": frames - traj.matched,
            "trajectory_out_of_order": traj.out_of_order,
            "trajectory_duplicates": traj.duplicates,
            "trajectory_sequence_gaps": self.sequence_gaps,
        }


def describe_stats(stats: dict[str, Any]) -> str:
    """The real-time replay's statistics as console lines (per topic: published; per output:
    received, matched to an input, out of order, duplicates)."""
    pub = ", ".join(f"{k} {v}" for k, v in sorted(stats["published"].items()))
    lines = [
        f"[replay] realtime x{stats['rate']:g}: {stats['play_wall_seconds']:.1f} s; published: {pub}",
        f"[replay]   frames {stats['frames_published']}, with a trajectory "
        f"{stats['trajectories_matched_to_frames']}, without {stats['frames_without_trajectory']}",
    ]
    for name, o in stats["outputs"].items():
        extra = "".join(
            f", {k.replace('_', ' ')} {o[k]}" for k in ("sequence_gaps", "before_first_trajectory") if k in o
        )
        lines.append(
            f"[replay]   {name}: received {o['received']}, matched to inputs {o['matched_to_inputs']}, "
            f"unmatched {o['unmatched']}, out of order {o['out_of_order']}, "
            f"duplicates {o['duplicates']}{extra}"
        )
    return "\n".join(lines)
