"""Text node: short explanations of the policy's trajectories on events, at the lowest priority.

Thin wiring around ``minipamayo_ros.text`` (see docs/text.md): trajectories (``/vla/trajectory``)
feed the event detector; events and user requests (``std_srvs/Trigger`` on ``/vla/explain``, or any
``std_msgs/Empty`` on ``/vla/explain_request``) go into a one-slot latest-wins queue; a worker thread
generates the caption from the explained trajectory's context vector (``/vla/context``) and
publishes ``/vla/explanation`` stamped with that trajectory's stamp. ``/diagnostics`` at 1 Hz.

The whole process (DDS threads included) runs at SCHED_IDLE, else nice 19 (logged), with one
ONNX Runtime intra-op and inter-op thread: it may drop work, never delay the policy or follower.
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
from std_msgs.msg import Empty
from std_srvs.srv import Trigger

from minipamayo_ros.events import Event
from minipamayo_ros.inference import BackendOptions
from minipamayo_ros.latency import LatencyWindow
from minipamayo_ros.msg import Explanation, PolicyContext, Trajectory
from minipamayo_ros.nodes.conversions import msg_to_trajectory_fields, sec_to_time, time_to_sec
from minipamayo_ros.nodes.node_main import run_node
from minipamayo_ros.nodes.ros_params import declare_config
from minipamayo_ros.params import ParameterError
from minipamayo_ros.safety.context_input import check_context
from minipamayo_ros.safety.log_limit import LogLimiter
from minipamayo_ros.safety.stamps import check_stamp
from minipamayo_ros.safety.trajectory_input import TrajectoryLimits, check_trajectory
from minipamayo_ros.text.config import TextConfig
from minipamayo_ros.text.events import EventDetector
from minipamayo_ros.text.generator import TextModelError, load_text_generator
from minipamayo_ros.text.priority import current_policy, lower_process_priority
from minipamayo_ros.text.scheduler import ExplanationRequest, ExplanationSlot, ExplanationWorker

WARN_PERIOD_S = 2.0


class TextNode(Node):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__("text", **kwargs)
        cfg: TextConfig = declare_config(self, TextConfig, self._on_config)
        self.config = cfg
        self._warnings = LogLimiter(WARN_PERIOD_S)
        try:
            prio = lower_process_priority(cfg.affinity(), cfg.lower_priority)
        except ValueError as exc:
            raise ParameterError(f"parameter 'cpu_affinity' = {cfg.cpu_affinity!r}: {exc}") from exc
        self.priority = prio
        self.get_logger().info(
            f"CPU priority: {prio.policy} on {prio.threads} threads (now {current_policy()}), CPUs "
            f"{list(prio.affinity) or 'any'}" + (f"; {prio.detail}" if prio.detail else ""))
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
        self._skipped: dict[str, int] = {"invalid_trajectory": 0, "no_context": 0, "bad_context": 0}
        self._latency = LatencyWindow(cfg.diagnostics_window)
        self._last_text = ""
        self._problems_reported = 0
        slot: ExplanationSlot[ExplanationRequest] = ExplanationSlot(cfg.max_event_age, lambda r: r.stamp,
                                                                    cfg.min_generation_period)
        self.worker = ExplanationWorker(self._generate, slot, self._now, self._on_worker_error).start()

        self._pub = self.create_publisher(Explanation, cfg.explanation_topic, 10)
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_subscription(Trajectory, cfg.trajectory_topic, self._on_trajectory, 10)
        self.create_subscription(PolicyContext, cfg.context_topic, self._on_context, 10)
        if cfg.request_service:
            self.create_service(Trigger, cfg.request_service, self._on_trigger)
        if cfg.request_topic:
            self.create_subscription(Empty, cfg.request_topic, self._on_request_msg, 10)
        self.create_timer(cfg.diagnostics_period, self._publish_diagnostics)
        self.get_logger().info(f"text: events {cfg.events} on {cfg.trajectory_topic} -> "
                               f"{cfg.explanation_topic} (max {cfg.max_tokens} tokens)")

    def _on_config(self, cfg: TextConfig) -> None:
        self.config = cfg
        self.worker.configure(cfg.max_event_age, cfg.min_generation_period)
        self.detector.settings = cfg.detector_settings()

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    # --- executor thread -------------------------------------------------------------------------
    def _on_trajectory(self, msg: Trajectory) -> None:
        fields = msg_to_trajectory_fields(msg)
        # the follower's trajectory rules (frame, shapes, finite, limits) and a stamp not from the future
        bad = check_trajectory(fields, TrajectoryLimits()) or check_stamp(
            fields.stamp, self._now(), self.config.max_stamp_future, math.inf)
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
        bad = check_context(stamp, self._now(), cfg.max_stamp_future, cfg.max_event_age, context,
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

    def _on_request_msg(self, _msg: Empty) -> None:
        self._request()

    def _request(self) -> tuple[bool, str]:
        if self._last_traj is None:
            return False, "no trajectory received yet"
        stamp, seq = self._last_traj
        request = ExplanationRequest(Event.REQUESTED, stamp, seq, self.detector.situation())
        replaced = self.worker.offer(request)
        return True, f"explanation of trajectory {seq} queued" + (" (replaced one)" if replaced else "")

    def _on_trigger(self, _req: Trigger.Request, resp: Trigger.Response) -> Trigger.Response:
        resp.success, resp.message = self._request()
        return resp

    # --- worker thread -----------------------------------------------------------------------------
    def _context_for(self, req: ExplanationRequest) -> np.ndarray | None:
        deadline = time.monotonic() + self.config.context_wait
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
        cfg = self.config
        context = self._context_for(req)
        if context is None:
            self._skipped["no_context"] += 1
            self._warn("context", f"no context vector for trajectory {req.sequence} within "
                                  f"{cfg.context_wait:g} s (is the policy publishing {cfg.context_topic}?)")
            return "failed"
        age_ms = (self._now() - req.stamp) * 1e3  # when generation starts
        cap = self.generator.generate(context, int(req.situation), cfg.max_tokens, cfg.max_generation_ms,
                                      min_confidence=cfg.min_confidence)
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
        self._latency.add(cap.latency_ms)
        self._last_text = cap.text
        return "generated"

    def _on_worker_error(self, exc: BaseException) -> None:
        self._warn("error", f"generation failed: {type(exc).__name__}: {exc}")

    def _warn(self, key: str, text: str) -> None:
        if self._warnings.allow(key, time.monotonic()) is not None:
            self.get_logger().warning(text)

    # --- diagnostics -------------------------------------------------------------------------------
    def _publish_diagnostics(self) -> None:
        counts, waiting, running = self.worker.counts()
        lat = self._latency.summary()
        values = {**{k: str(v) for k, v in counts.as_dict().items()}, "waiting": str(waiting),
                  "running": str(running).lower(),
                  **{k: str(v) for k, v in self.detector.counts().items()},
                  **{f"skipped_{k}": str(v) for k, v in self._skipped.items()},
                  "generation_ms_p50": f"{lat.p50:.1f}", "generation_ms_p95": f"{lat.p95:.1f}",
                  "generation_ms_p99": f"{lat.p99:.1f}", "cpu_priority": self.priority.policy,
                  "cpu_affinity": ",".join(map(str, self.priority.affinity)),
                  "situation": self.detector.situation().name, "last_text": self._last_text,
                  **{f"backend_{k}": v for k, v in self.backend_info.items()}}
        problems = counts.failed + counts.abandoned + sum(self._skipped.values())
        # WARN while problems occur (since the previous report), OK again once they stop
        level = DiagnosticStatus.WARN if problems > self._problems_reported else DiagnosticStatus.OK
        self._problems_reported = problems
        message = (f"{counts.generated} explanations, {counts.replaced} replaced, "
                   f"{counts.dropped_stale} stale, "
                   f"{counts.abandoned} abandoned, {counts.failed} failed")
        status = DiagnosticStatus(level=level, name=f"{self.get_name()}: text explanations", message=message,
                                  hardware_id=self.generator.model_id)
        status.values = [KeyValue(key=k, value=v) for k, v in values.items()]
        arr = DiagnosticArray(status=[status])
        arr.header.stamp = self.get_clock().now().to_msg()
        self._diag_pub.publish(arr)

    def close(self) -> None:
        self.worker.close()
        self.generator.backend.close()


def main(args: list[str] | None = None) -> int:
    return run_node(TextNode, (TextModelError, ParameterError), args, config=TextConfig)


if __name__ == "__main__":
    sys.exit(main())
