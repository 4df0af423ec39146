"""The text node in its own process over real (loopback) DDS: events, requests, stamps, diagnostics,
fail-fast configuration, and that killing it changes nothing in the policy's output."""

from __future__ import annotations

import signal
import time

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from nav_msgs.msg import Odometry
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import Image
from std_msgs.msg import Empty
from std_srvs.srv import Trigger
from test_text_core import arc

from conftest import REPO_ROOT, spin_until
from minipamayo_ros.bringup.processes import ros_args
from minipamayo_ros.events import Event
from minipamayo_ros.msg import Explanation, PolicyContext, Trajectory
from minipamayo_ros.nodes.conversions import sec_to_time, time_to_sec, trajectory_to_msg
from minipamayo_ros.nodes.node_main import EXIT_CONFIG_ERROR
from minipamayo_ros.nodes.policy_node import TRAJECTORY_QOS

pytestmark = pytest.mark.ros

TEXT = "minipamayo_ros.nodes.text_node"
POLICY = "minipamayo_ros.nodes.policy_node"
CONTEXT_DIM = 96
OBSERVER_QOS = QoSProfile(reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST, depth=100)


class TextRig:
    """Publishes trajectories (+ their context vectors) and collects what the text node says."""

    def __init__(self, node, executor) -> None:
        self.node, self.executor = node, executor
        self.traj_pub = node.create_publisher(Trajectory, "/vla/trajectory", TRAJECTORY_QOS)
        self.ctx_pub = node.create_publisher(PolicyContext, "/vla/context", 10)
        self.req_pub = node.create_publisher(Empty, "/vla/explain_request", 10)
        self.client = node.create_client(Trigger, "/vla/explain")
        self.explanations: list[Explanation] = []
        self.diags: list[DiagnosticArray] = []
        node.create_subscription(Explanation, "/vla/explanation", self.explanations.append, 50)
        node.create_subscription(DiagnosticArray, "/diagnostics", self.diags.append, 10)
        self.seq = 0
        self.rng = np.random.default_rng(0)

    def now(self) -> float:
        return self.node.get_clock().now().nanoseconds * 1e-9

    def start(self, spawn, **params: object):
        proc = spawn(module=TEXT, args=ros_args(params_files=[REPO_ROOT / "config" / "text.yaml"],
                                                parameters=params))
        def up() -> bool:
            ready = self.traj_pub.get_subscription_count() > 0 and self.client.service_is_ready()
            return ready or proc.poll() is not None

        ok = spin_until(self.executor, up, 60)
        assert ok and proc.poll() is None, f"text node did not come up:\n{proc.read_log()[-3000:]}"
        return proc

    def send(self, with_context: bool = True, age: float = 0.0, **plan: object) -> Trajectory:
        """Publish the next trajectory, stamped ``age`` [s] before now (+ its context vector)."""
        self.seq += 1
        msg = trajectory_to_msg(arc(self.now() - age, seq=self.seq, **plan))  # type: ignore[arg-type]
        self.traj_pub.publish(msg)
        if with_context:
            ctx = PolicyContext(header=msg.header, trajectory_sequence=msg.sequence, model_id="test")
            ctx.context = self.rng.normal(0.0, 1.0, CONTEXT_DIM).astype(np.float32)
            self.ctx_pub.publish(ctx)
        return msg

    def stream(self, n: int, period: float = 0.1, **plan: object) -> list[Trajectory]:
        sent = []
        for _ in range(n):
            sent.append(self.send(**plan))
            spin_until(self.executor, lambda: False, period)
        return sent

    def call(self) -> Trigger.Response:
        future = self.client.call_async(Trigger.Request())
        assert spin_until(self.executor, future.done, 10.0)
        return future.result()

    def diag_history(self) -> list[dict[str, str]]:
        return [{kv.key: kv.value for kv in d.status[0].values} for d in self.diags
                if d.status and "text explanations" in d.status[0].name]

    def diag(self) -> dict[str, str]:
        history = self.diag_history()
        assert history, "no text node /diagnostics"
        return history[-1]


def test_events_requests_stamps_and_diagnostics(ros_node, spawn) -> None:
    node, executor = ros_node
    rig = TextRig(node, executor)
    proc = rig.start(spawn)
    assert rig.call().success is False  # nothing to explain yet
    rig.stream(10)                                    # straight: no event
    curve = rig.stream(15, curvature=0.05)            # curve onset: exactly one CURVE event
    rig.stream(5)
    assert spin_until(executor, lambda: len(rig.explanations) >= 1, 10.0)
    spin_until(executor, lambda: False, 0.5)
    (ex,) = rig.explanations
    assert ex.event == Event.CURVE and ex.situation == Event.CURVE
    assert ex.header.stamp == curve[0].header.stamp and ex.trajectory_sequence == curve[0].sequence
    assert ex.text and ex.token_count == len(ex.token_ids) <= 24
    assert ex.model_id.startswith("minipamayo-tiny-text-step@")
    assert ex.generation_latency_ms > 0.0 and 0.0 <= ex.event_age_ms < 1000.0

    last = rig.stream(1)[0]
    resp = rig.call()                                  # service: explains the newest trajectory
    assert resp.success and str(last.sequence) in resp.message
    assert spin_until(executor, lambda: len(rig.explanations) >= 2, 10.0)
    assert rig.explanations[1].event == Event.REQUESTED
    assert rig.explanations[1].header.stamp == last.header.stamp

    last = rig.stream(1)[0]
    rig.req_pub.publish(Empty())                       # the topic does the same
    assert spin_until(executor, lambda: len(rig.explanations) >= 3, 10.0)
    assert rig.explanations[2].event == Event.REQUESTED
    assert rig.explanations[2].header.stamp == last.header.stamp

    rig.send(with_context=False)                       # no context vector: nothing is made up
    rig.call()
    assert spin_until(executor, lambda: rig.diags and rig.diag().get("skipped_no_context") == "1", 5.0)
    d = rig.diag()
    assert d["generated"] == "3" and d["requested"] == "4" and d["failed"] == "1"
    assert d["cpu_priority"] in ("SCHED_IDLE", "nice 19") and d["events_curve"] == "1"
    assert proc.poll() is None


def test_storm_of_requests_is_coalesced(ros_node, spawn) -> None:
    node, executor = ros_node
    rig = TextRig(node, executor)
    rig.start(spawn, max_event_age=5.0)
    rig.stream(2)
    for _ in range(200):  # far faster than generation: the slot coalesces them
        rig.req_pub.publish(Empty())
        executor.spin_once(timeout_sec=0.001)
    def settled() -> bool:  # idle, and the same request count in two diagnostics in a row
        last = rig.diag_history()[-2:]
        return (len(last) == 2 and last[0]["requested"] == last[1]["requested"] != "0"
                and last[1]["running"] == "false" and last[1]["waiting"] == "0")

    assert spin_until(executor, settled, 15.0)
    d = rig.diag()
    counts = {k: int(d[k]) for k in ("requested", "replaced", "dropped_stale", "started", "generated",
                                     "abandoned", "failed", "waiting")}
    # keep-last-10 topic QoS may lose requests at a busy low-priority subscriber: that is allowed
    assert 10 <= counts["requested"] <= 200
    assert counts["requested"] == counts["replaced"] + counts["dropped_stale"] + counts["started"]
    assert counts["started"] == counts["generated"] + counts["abandoned"] + counts["failed"]
    assert counts["replaced"] > 0 and len(rig.explanations) == counts["generated"] < counts["requested"]


def test_a_burst_of_1000_explain_calls_gets_1000_answers(ros_node, spawn) -> None:
    """Issue 19: 1000 Trigger calls at once (the client's queue as deep as its burst) are all
    answered, each accepted or coalesced (failed before: 14 answers, the service's keep-last-10
    queue overwrote the rest before the SCHED_IDLE executor took them)."""
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

    node, executor = ros_node
    rig = TextRig(node, executor)
    rig.start(spawn, max_event_age=5.0)
    rig.stream(2)
    deep = QoSProfile(reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST, depth=1000)
    client = node.create_client(Trigger, "/vla/explain", qos_profile=deep)
    assert spin_until(executor, client.service_is_ready, 10.0)
    t0 = time.monotonic()
    futures = [client.call_async(Trigger.Request()) for _ in range(1000)]
    spin_until(executor, lambda: all(f.done() for f in futures), 30.0)
    answers = [f.result() for f in futures if f.done()]
    kinds = {m: sum(a.message.startswith(m) for a in answers) for m in ("accepted:", "coalesced:")}
    print(f"MEASURED explain burst: {len(answers)} of 1000 answered in {time.monotonic() - t0:.1f} s, "
          f"{kinds}")
    assert len(answers) == 1000 and all(a.success for a in answers)
    assert kinds["accepted:"] >= 1 and sum(kinds.values()) == 1000


def test_max_rate_caps_generations_under_a_storm(ros_node, spawn) -> None:
    """3 s of requests at ~100 Hz against max_rate_hz 2: at most 2 starts a second (+1 at t=0)."""
    node, executor = ros_node
    rig = TextRig(node, executor)
    rig.start(spawn, max_event_age=5.0, max_rate_hz=2.0)
    rig.stream(2)
    first = None
    end = time.monotonic() + 3.0
    while time.monotonic() < end:
        rig.req_pub.publish(Empty())
        spin_until(executor, lambda: False, 0.01)
        if first is None and rig.explanations:
            first = time.monotonic()
    assert first is not None, "nothing generated during the storm"
    storm_s = end - first + 0.2  # starts counted from the first one (its delivery is later than its start)
    assert spin_until(executor, lambda: any(d["running"] == "false" and d["waiting"] == "0"
                                            for d in rig.diag_history()[-1:]), 10.0)
    d = rig.diag()
    started, requested = int(d["started"]), int(d["requested"])
    allowed = 2.0 * storm_s + 2
    # the cap held, and it was what limited the starts: the node saw at least twice as many requests
    # as the cap allows (uncapped, nearly each would have started: a generation takes ~15 ms). Not
    # "requested > 5 * started": the requests a SCHED_IDLE node takes from its keep-last-10 topic
    # depend on the machine's load (38 in 3.1 s seen under load, against 8 allowed)
    assert 2 <= started <= allowed and requested >= 2 * allowed
    assert int(d["replaced"]) > 0 and int(d["generated"]) == started == len(rig.explanations)


def test_stale_request_is_dropped_before_generation(ros_node, spawn) -> None:
    """A request for a trajectory older than max_event_age is dropped, never generated.

    Nothing here depends on timing: the trajectory is stamped 1 s in the past (stale whenever the
    worker looks at it), and the request is sent once the node has the trajectory (the service says
    "no trajectory received yet" until then). The old version slept 0.3 s and ignored that answer:
    start() only knows that *our* publisher matched the node's subscription; the node may match our
    publisher later (more so at SCHED_IDLE under load), and a sample sent in between arrives 0.1-0.23 s
    late (measured, 4 CPU hogs). A request made before it asks about nothing: no count, no drop."""
    node, executor = ros_node
    rig = TextRig(node, executor)
    rig.start(spawn, max_event_age=0.05)
    old = rig.send(with_context=False, age=1.0)
    replies: list[str] = []

    def queued() -> bool:  # each call that fails queues nothing
        resp = rig.call()
        replies.append(resp.message)
        return resp.success

    assert spin_until(executor, queued, 10.0), replies
    assert replies[-1] == f"accepted: explanation of trajectory {old.sequence} queued"
    assert spin_until(executor, lambda: rig.diags and rig.diag()["dropped_stale"] == "1", 5.0)
    d = rig.diag()
    assert not rig.explanations and d["started"] == "0" and d["requested"] == "1"


def test_misconfiguration_fails_fast(spawn) -> None:
    proc = spawn(module=TEXT, args=ros_args(parameters={
        "manifest_path": str(REPO_ROOT / "engines" / "minipamayo-tiny-text.manifest.json")}))
    assert proc.wait(60) == EXIT_CONFIG_ERROR
    assert "text_step" in proc.read_log()
    proc = spawn(module=TEXT, args=ros_args(parameters={"curve_on": 0.01, "curve_off": 0.02}))
    assert proc.wait(60) == EXIT_CONFIG_ERROR
    assert "curve_off" in proc.read_log()


def test_killing_the_text_node_changes_nothing_in_the_policy_output(ros_node, spawn) -> None:
    """Same frames with the text node storming and after it was killed (SIGKILL): the policy
    publishes a trajectory for every frame, with consecutive sequence numbers, identical values."""
    node, executor = ros_node
    rig = TextRig(node, executor)
    odom_pub = node.create_publisher(Odometry, "/odom", 10)
    image_pub = node.create_publisher(Image, "/camera/image_raw", qos_profile_sensor_data)
    trajs: list[Trajectory] = []
    # counts every trajectory: a deep reliable reader (TRAJECTORY_QOS, the follower's depth 1, keeps
    # only the newest if the test's executor falls a frame behind, and the count would miss one)
    node.create_subscription(Trajectory, "/vla/trajectory", trajs.append, OBSERVER_QOS)
    policy = spawn(module=POLICY, args=ros_args(parameters={"backend": "onnxruntime"}), name="policy")
    assert spin_until(executor, lambda: image_pub.get_subscription_count() > 0 or policy.poll() is not None,
                      60)
    text = rig.start(spawn, max_event_age=5.0)
    frames = [np.random.default_rng(i).integers(0, 256, (128, 128, 3), np.uint8) for i in range(12)]

    def phase() -> list[Trajectory]:
        start = len(trajs)
        sent: list[tuple[float, float]] = []  # (time.monotonic() when sent, stamp) of each odometry
        for i, img in enumerate(frames):
            t_img = time.monotonic() + (1.3 if i == 0 else 0.25)  # first: the 1 s state history fills
            while time.monotonic() < t_img:  # 50 Hz odometry at 3 m/s, straight
                msg = Odometry()
                msg.header.stamp = sec_to_time(rig.now())
                msg.header.frame_id, msg.child_frame_id = "odom", "base_link"
                msg.pose.pose.orientation.w = 1.0
                msg.twist.twist.linear.x = 3.0
                odom_pub.publish(msg)
                sent.append((time.monotonic(), time_to_sec(msg.header.stamp)))
                rig.req_pub.publish(Empty())  # text storm (ignored once the text node is gone)
                spin_until(executor, lambda: False, 0.02)
            image = Image(height=128, width=128, encoding="rgb8", step=384)
            # stamped at an odometry sample sent >= 0.1 s ago, so the node's state history at the
            # image stamp needs only odometry it has had for 0.1 s. Stamped "now", it needed the
            # sample sent just before the image: topics are not ordered with each other, and a
            # loaded test process left 136 / 152 ms between its last odometry and the image (> the
            # node's 100 ms extrapolation limit): the frame was skipped and the counts differed
            image.header.stamp = sec_to_time(max(st for t, st in sent if t <= time.monotonic() - 0.1))
            image.data = img.tobytes()
            image_pub.publish(image)
        spin_until(executor, lambda: len(trajs) >= start + len(frames), 5.0)
        return trajs[start:]

    with_text = phase()
    assert len(rig.explanations) > 0, "the text node never generated during the storm"
    text.send_signal(signal.SIGKILL)
    assert text.wait(10) is not None
    without_text = phase()
    assert policy.poll() is None
    assert len(with_text) == len(without_text) == len(frames)
    seqs = [t.sequence for t in with_text + without_text]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    for a, b in zip(with_text, without_text, strict=True):
        np.testing.assert_allclose(a.x, b.x, atol=1e-5)
        np.testing.assert_allclose(a.speed, b.speed, atol=1e-5)
        assert time_to_sec(a.header.stamp) < time_to_sec(b.header.stamp)


def test_bad_trajectories_and_contexts_are_dropped_on_arrival(ros_node, spawn) -> None:
    """Issue 13, one check per message kind at the edge: trajectories in frame "map" / "" or with x/y
    of different lengths are ignored (the follower's rules; counted, logged with field and value);
    a context vector with a NaN, the wrong length or a +20 s stamp is never buffered, so the request
    for its trajectory gets no caption (no_context), never one made from it."""
    node, executor = ros_node
    rig = TextRig(node, executor)
    proc = rig.start(spawn, diagnostics_period=0.2)
    for n, bad in enumerate(("map", "", "short"), start=1):  # each until counted (discovery may lag)
        msg = trajectory_to_msg(arc(rig.now(), seq=99, curvature=0.05))  # type: ignore[arg-type]
        if bad == "short":
            msg.y = msg.y[:19]
        else:
            msg.header.frame_id = bad
        for _ in range(50):
            rig.traj_pub.publish(msg)
            if spin_until(executor, lambda n=n: bool(rig.diags) and
                          int(rig.diag().get("skipped_invalid_trajectory", "0")) >= n, 0.5):
                break
    assert rig.call().success is False  # nothing valid to explain

    for i, bad in enumerate(("nan", "short", "future"), start=1):
        tr = rig.send(with_context=False)
        ctx = PolicyContext(header=tr.header, trajectory_sequence=tr.sequence, model_id="test")
        values = rig.rng.normal(0.0, 1.0, CONTEXT_DIM).astype(np.float32)
        if bad == "nan":
            values[5] = np.nan
        elif bad == "short":
            values = values[:3]
        else:
            ctx.header.stamp = sec_to_time(time_to_sec(tr.header.stamp) + 20.0)
        ctx.context = values
        rig.ctx_pub.publish(ctx)
        spin_until(executor, lambda: False, 0.2)
        assert rig.call().success
        assert spin_until(executor, lambda i=i: rig.diag().get("skipped_no_context") == str(i), 10.0)
    assert rig.diag()["skipped_bad_context"] == "3" and not rig.explanations
    log = proc.read_log()
    for text in ("header.frame_id = 'map'", "lengths 20/19/20", "context[5] = nan", "context = 3 values",
                 "ahead of the ROS clock"):
        assert text in log, text
    d = rig.diag()
    print(f"MEASURED text node bad trajectories (map, '', x/y 20/19) and contexts (NaN, 3 values, +20 s): "
          f"skipped_invalid_trajectory {d['skipped_invalid_trajectory']}, skipped_bad_context "
          f"{d['skipped_bad_context']}, skipped_no_context {d['skipped_no_context']}, explanations "
          f"{len(rig.explanations)}")
