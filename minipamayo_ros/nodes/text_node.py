"""Text node: short explanations of the policy's trajectories on events, at the lowest priority.

Thin wiring around ``minipamayo_ros.text`` (see docs/text.md): trajectories (``/vla/trajectory``)
feed the event detector; events and user requests (``std_srvs/Trigger`` on ``/vla/explain``, or any
``std_msgs/Empty`` on ``/vla/explain_request``) go into a one-slot latest-wins queue; a worker thread
generates the caption from the explained trajectory's context vector (``/vla/context``) and
publishes ``/vla/explanation`` stamped with that trajectory's stamp. ``/diagnostics`` at 1 Hz.
Names are relative (``/car7/vla/explanation`` under namespace ``car7``; ``/diagnostics`` is
global). The generation cap (``max_rate_hz``) and ``/diagnostics`` run on the steady clock, event
ages (stamp -> now) on the ROS clock (``nodes/clocks.py``).

The generation thread runs at SCHED_IDLE, else nice 19 (logged), with one ONNX Runtime intra-op and
inter-op thread; the executor and DDS threads keep normal priority (a starved DDS thread stalls
other processes' shared-memory port checks: docs/latency.md §1), so the executor must stay light:
the request topic is polled (``REQUEST_POLL_PERIOD``). It may drop work, never delay the policy or
follower.
"""

from __future__ import annotations

import math
import sys
import threading
import time
from collections import OrderedDict
from typing import Any

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import Empty
from std_srvs.srv import Trigger

from minipamayo_ros.events import Event
from minipamayo_ros.inference import BackendOptions
from minipamayo_ros.latency import LatencyWindow
from minipamayo_ros.msg import Explanation, PolicyContext, Trajectory
from minipamayo_ros.nodes.clocks import ros_now, steady_timer
from minipamayo_ros.nodes.conversions import msg_to_trajectory_fields, sec_to_time, time_to_sec
from minipamayo_ros.nodes.diagnostics import diagnostic_name
from minipamayo_ros.nodes.node_main import WORKER_STOP_TIMEOUT_S, close_worker_then_release, run_node
from minipamayo_ros.nodes.polled_subscription import PolledSubscription
from minipamayo_ros.nodes.ros_params import declare_config
from minipamayo_ros.params import ParameterError
from minipamayo_ros.realtime import PriorityResult, current_policy, lower_thread_priority, set_affinity
from minipamayo_ros.safety.context_input import check_context
from minipamayo_ros.safety.log_limit import LogLimiter
from minipamayo_ros.safety.stamps import check_stamp
from minipamayo_ros.safety.trajectory_input import TrajectoryLimits, check_trajectory
from minipamayo_ros.text.config import TextConfig
from minipamayo_ros.text.events import EventDetector
from minipamayo_ros.text.generator import TextModelError, load_text_generator
from minipamayo_ros.text.scheduler import ExplanationRequest, ExplanationSlot, ExplanationWorker

WARN_PERIOD_S = 2.0
#: The explain service's request/response queues. rclpy's default (keep-last 10) overwrote all but
#: the last 10 requests of a burst before this low-priority node's executor took them: those calls
#: were never answered (1000-call burst: 14 answers). Each call is answered in microseconds, so a
#: deep queue costs nothing but bounded memory; a client bursting more calls than its own QoS depth
#: (rclpy default 10) loses responses on its side.
REQUEST_QOS = QoSProfile(reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST, depth=1000)
#: [s] how often the request topic's queue is taken (steady clock). A message on it used to wake the
#: executor each -- at normal priority, as the executor thread is (only the generation thread is
#: lowered): a 1 kHz storm kept that thread ~60 % busy on the policy's CPUs (docs/latency.md).
#: Polled, the storm costs a DDS listener's delivery per message and 10 executor wake-ups a second.
#: Requests are latest-wins and rate-capped anyway: at most this much later, none lost but to the
#: queue's keep-last depth, which the old callback path had too.
REQUEST_POLL_PERIOD = 0.1
REQUEST_TOPIC_QOS = QoSProfile(reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST,
                               depth=10)


class TextNode(Node):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__("text", **kwargs)
        cfg: TextConfig = declare_config(self, TextConfig, self._on_config)
        self.config = cfg
        self._warnings = LogLimiter(WARN_PERIOD_S)
        try:
            affinity = set_affinity(cfg.affinity())
        except ValueError as exc:
            raise ParameterError(f"parameter 'cpu_affinity' = {cfg.cpu_affinity!r}: {exc}") from exc
        # the generation thread's priority: set by that thread when it starts (_lower_worker_priority)
        self.priority = PriorityResult("not started", 0, affinity)
        options = BackendOptions(backend=cfg.backend, intra_op_threads=cfg.intra_op_threads,
                                 inter_op_threads=cfg.inter_op_threads, warmup_runs=1)
        t0 = time.monotonic()
        self.generator = load_text_generator(cfg.manifest_path, options, cfg.verify_model_hash,
                                             logger=self.get_logger())
        self.backend_info = self.generator.backend.describe()
        info = self.backend_info
        self.get_logger().info(f"text model {self.generator.model_id} ready in {time.monotonic() - t0:.1f} s "
                               f"({info.get('backend')}, {info.get('threads', '')})")
        self.detector = EventDetector(cfg.detector_settings())
        self._lock = threading.Condition()
        self._contexts: OrderedDict[int, tuple[float, np.ndarray]] = OrderedDict()
        self._last_traj: tuple[float, int] | None = None   # (stamp, sequence) of the newest trajectory
        # counters: the executor thread's own (inputs dropped on arrival); requests without a context
        # vector are counted by the slot (no_context), atomically with their failed outcome
        self._skipped: dict[str, int] = {"invalid_trajectory": 0, "bad_context": 0}
        self._stats_lock = threading.Lock()  # the worker writes these, the diagnostics timer reads them
        self._latency = LatencyWindow(cfg.diagnostics_window)
        self._last_text = ""
        self._problems_reported = 0
        slot: ExplanationSlot[ExplanationRequest] = ExplanationSlot(
            cfg.max_event_age, lambda r: r.stamp, cfg.min_generation_period, ros_clock=self._ros_now)
        # the rate cap on the steady clock: under use_sim_time it must not scale with the sim speed
        self.worker = ExplanationWorker(self._generate, slot, time.monotonic, self._on_worker_error,
                                        on_start=self._lower_worker_priority).start()

        self._pub = self.create_publisher(Explanation, cfg.explanation_topic, 10)
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_subscription(Trajectory, cfg.trajectory_topic, self._on_trajectory, 10)
        self.create_subscription(PolicyContext, cfg.context_topic, self._on_context, 10)
        if cfg.request_service:
            self.create_service(Trigger, cfg.request_service, self._on_trigger, qos_profile=REQUEST_QOS)
        if cfg.request_topic:
            self._request_sub = PolledSubscription(self, Empty, cfg.request_topic, REQUEST_TOPIC_QOS)
            steady_timer(self, REQUEST_POLL_PERIOD, self._take_requests)
        steady_timer(self, cfg.diagnostics_period, self._publish_diagnostics)
        self.get_logger().info(f"text: events {cfg.events} on {cfg.trajectory_topic} -> "
                               f"{cfg.explanation_topic} (max {cfg.max_tokens} tokens)")

    def _on_config(self, cfg: TextConfig) -> None:
        self.config = cfg
        self.worker.configure(cfg.max_event_age, cfg.min_generation_period)
        self.detector.settings = cfg.detector_settings()

    def _ros_now(self) -> float:
        """[s] ROS clock: stamps and event ages (nodes/clocks.py)."""
        return ros_now(self)

    # --- executor thread -------------------------------------------------------------------------
    def _on_trajectory(self, msg: Trajectory) -> None:
        fields = msg_to_trajectory_fields(msg)
        # the follower's trajectory rules (frame, shapes, finite, limits) and a stamp not from the future
        bad = check_trajectory(fields, TrajectoryLimits()) or check_stamp(
            fields.stamp, self._ros_now(), self.config.max_stamp_future, math.inf)
        if bad is not None:
            self._skipped["invalid_trajectory"] += 1
            self._warn(f"trajectory.{bad.kind}", f"{self.config.trajectory_topic}: trajectory "
                                                 f"{fields.sequence} ignored ({bad.kind}): {bad}")
            return
        traj = fields.to_trajectory()
        if self._last_traj is not None and traj.stamp < self._last_traj[0] - 1.0:
            self.detector.reset()  # time went backwards (simulator reset, bag loop): start afresh
        self._last_traj = (traj.stamp, traj.sequence)
        for ev in self.detector.update(traj):
            self.worker.offer(ExplanationRequest(ev.kind, ev.stamp, ev.sequence, ev.situation))

    def _on_context(self, msg: PolicyContext) -> None:
        stamp, context, cfg = time_to_sec(msg.header.stamp), np.asarray(msg.context, np.float32), self.config
        bad = check_context(stamp, self._ros_now(), cfg.max_stamp_future, cfg.max_event_age, context,
                            self.generator.context_dim)
        if bad is not None:  # never buffered: a caption is never made from it
            self._skipped["bad_context"] += 1
            self._warn(f"context.{bad.kind}", f"{cfg.context_topic}: context of trajectory "
                                              f"{msg.trajectory_sequence} dropped ({bad.kind}): {bad}")
            return
        with self._lock:
            self._contexts[int(msg.trajectory_sequence)] = (stamp, context)
            while len(self._contexts) > self.config.context_buffer:
                self._contexts.popitem(last=False)
            self._lock.notify_all()

    def _take_requests(self) -> None:
        """Each request message queued since the last poll counts as one request (oldest first)."""
        for _msg in self._request_sub.take():
            self._request()

    def _request(self) -> tuple[bool, str]:
        """Queue an explanation of the newest trajectory; the answer says what became of the call:
        ``accepted`` (queued), ``coalesced`` (it replaced a request still waiting: one generation
        serves both) or ``refused`` (nothing to explain yet). Never blocks."""
        if self._last_traj is None:
            return False, "refused: no trajectory received yet"
        stamp, seq = self._last_traj
        request = ExplanationRequest(Event.REQUESTED, stamp, seq, self.detector.situation())
        if self.worker.offer(request):
            return True, f"coalesced: explanation of trajectory {seq} queued, replacing the waiting request"
        return True, f"accepted: explanation of trajectory {seq} queued"

    def _on_trigger(self, _req: Trigger.Request, resp: Trigger.Response) -> Trigger.Response:
        resp.success, resp.message = self._request()
        return resp

    # --- worker thread -----------------------------------------------------------------------------
    def _context_for(self, req: ExplanationRequest, wait: float) -> np.ndarray | None:
        deadline = time.monotonic() + wait
        with self._lock:
            while True:
                entry = self._contexts.get(req.sequence)
                if entry is not None and abs(entry[0] - req.stamp) < 1e-6:
                    return entry[1]
                left = deadline - time.monotonic()
                if left <= 0.0:
                    return None
                self._lock.wait(left)

    def _generate(self, req: ExplanationRequest) -> str:
        cfg = self.config  # one snapshot for the whole request
        context = self._context_for(req, cfg.context_wait)
        if context is None:
            self._warn("context", f"no context vector for trajectory {req.sequence} within "
                                  f"{cfg.context_wait:g} s (is the policy publishing {cfg.context_topic}?)")
            return "no_context"
        age_ms = (self._ros_now() - req.stamp) * 1e3  # when generation starts
        cap = self.generator.generate(context, int(req.situation), cfg.max_tokens, cfg.max_generation_ms)
        if cap.abandoned:
            self._warn("abandoned", f"generation abandoned after {cap.latency_ms:.0f} ms "
                                    f"(max_generation_ms {cfg.max_generation_ms:g})")
            return "abandoned"
        msg = Explanation(trajectory_sequence=req.sequence, event=int(req.kind), situation=int(req.situation),
                          text=cap.text, token_count=len(cap.token_ids),
                          generation_latency_ms=float(cap.latency_ms), event_age_ms=float(age_ms),
                          truncated=cap.truncated, model_id=self.generator.model_id)
        msg.header.stamp = sec_to_time(req.stamp)
        msg.header.frame_id = "base_link"
        msg.token_ids = [int(t) for t in cap.token_ids]
        self._pub.publish(msg)
        with self._stats_lock:
            self._latency.add(cap.latency_ms)
            self._last_text = cap.text
        return "generated"

    def _on_worker_error(self, exc: BaseException) -> None:
        self._warn("error", f"generation failed: {type(exc).__name__}: {exc}")

    def _warn(self, key: str, text: str) -> None:
        if self._warnings.allow(key, time.monotonic()) is not None:
            self.get_logger().warning(text)

    # --- diagnostics -------------------------------------------------------------------------------
    def _lower_worker_priority(self) -> None:
        """On the generation thread: SCHED_IDLE (else nice 19) for it alone; the DDS and executor
        threads keep their priority (docs/text.md "Priority")."""
        prio = lower_thread_priority(self.config.lower_priority)
        self.priority = prio
        self.get_logger().info(
            f"CPU priority of the generation thread: {prio.policy} (now {current_policy()}), CPUs "
            f"{list(prio.affinity) or 'any'}" + (f"; {prio.detail}" if prio.detail else ""))

    def _publish_diagnostics(self) -> None:
        counts, waiting, running = self.worker.counts()
        with self._stats_lock:
            lat, last_text = self._latency.summary(), self._last_text
        slot = counts.as_dict()
        skipped = {**self._skipped, "no_context": slot.pop("no_context")}
        values = {**{k: str(v) for k, v in slot.items()}, "waiting": str(waiting),
                  "running": str(running).lower(),
                  **{k: str(v) for k, v in self.detector.counts().items()},
                  **{f"skipped_{k}": str(v) for k, v in skipped.items()},
                  "generation_ms_p50": f"{lat.p50:.1f}", "generation_ms_p95": f"{lat.p95:.1f}",
                  "generation_ms_p99": f"{lat.p99:.1f}", "cpu_priority": self.priority.policy,
                  "cpu_affinity": ",".join(map(str, self.priority.affinity)),
                  "situation": self.detector.situation().name, "last_text": last_text,
                  **{f"backend_{k}": v for k, v in self.backend_info.items()}}
        problems = counts.failed + counts.abandoned + sum(self._skipped.values())  # no_context: in failed
        # WARN while problems occur (since the previous report), OK again once they stop
        level = DiagnosticStatus.WARN if problems > self._problems_reported else DiagnosticStatus.OK
        self._problems_reported = problems
        message = (f"{counts.generated} explanations, {counts.replaced} replaced, "
                   f"{counts.dropped_stale} stale, "
                   f"{counts.abandoned} abandoned, {counts.failed} failed")
        status = DiagnosticStatus(level=level, name=f"{diagnostic_name(self)}: text explanations",
                                  message=message, hardware_id=self.generator.model_id)
        status.values = [KeyValue(key=k, value=v) for k, v in values.items()]
        arr = DiagnosticArray(status=[status])
        arr.header.stamp = self.get_clock().now().to_msg()
        self._diag_pub.publish(arr)

    def close(self, timeout: float = WORKER_STOP_TIMEOUT_S) -> bool:
        """Stop generating; free the backend once the generation in progress has returned (False:
        still running after ``timeout`` [s], nothing freed; ``run_node`` then exits non-zero)."""
        return close_worker_then_release(self.worker.close, self.generator.backend.close, self.get_logger(),
                                         "text generation", timeout)


def main(args: list[str] | None = None) -> int:
    return run_node(TextNode, (TextModelError, ParameterError), args, config=TextConfig)


if __name__ == "__main__":
    sys.exit(main())
