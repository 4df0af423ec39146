"""Deterministic lock-step replay: a bag's frames + odometry through the node's own policy pipeline.

Why not ``ros2 bag play`` into the node: its maintainers say deterministic replay is not
supported (same-stamp reordering, drops under load). Here nothing goes over DDS and nothing
depends on wall time:

* every message becomes an input through the node's own conversion and input-check functions
  (``nodes.conversions.odometry_to_fields`` + the pipeline's odometry gate,
  ``nodes.image_conversions`` + ``safety.image_input``): a sample the node rejects (all-zero
  quaternion, NaN twist, future or old stamp, short buffer, unsupported encoding) is rejected here
  too, counted per kind like the node's ``/diagnostics`` (``LockstepStats.rejected``);
* messages are processed in **header-stamp order** (a reorder window of ``reorder_window`` s of
  log time absorbs recorder jitter), but never later than they arrived: a message stamped after
  its log time (a clock mismatch, a hostile stamp) is processed at its log time, as the node got
  it. At equal stamps odometry comes before the image, as the simulator publishes them (the state
  at the image stamp may use odometry of that stamp);
* the ROS clock is **injected**: "now" is the processing key of the message being processed --
  its header stamp, or its log time if that is earlier (a message stamped after it arrived is
  judged at its arrival, as the node judged it) -- never earlier than a message processed before.
  So the image-age check sees zero transport delay (not the recorder's own lag, which a log time
  would add), and a future stamp is still a future stamp;
* frames go through the node's :class:`~minipamayo_ros.policy.scheduler.LatestFrameScheduler` on
  bag time (the rate cap drops the same frames every run) and then
  :class:`~minipamayo_ros.policy.pipeline.PolicyPipeline` -- the code the node deploys -- and each
  frame's outputs are collected before the next message is read;
* optionally the follower core runs at its configured rate on bag time, receiving each
  trajectory ``follower_latency`` s after its image stamp (a modelled, fixed delivery delay);
* optionally the text node's core (``text.events.EventDetector`` + ``text.generator``) explains
  every event at once, on the policy's context vector (no drop policy, no deadline: lock-step
  judges content; the node drops explanations under load by design).

With ONNX Runtime on CPU (one intra-op thread) the outputs are bit-identical run to run.
Measured latencies (``*_ms``) are wall-clock and are only used by the latency gates.
"""

from __future__ import annotations

import heapq
import itertools
import math
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from minipamayo_ros.control.config import FollowerConfig
from minipamayo_ros.control.follower import Follower
from minipamayo_ros.nodes.conversions import odometry_to_fields
from minipamayo_ros.params import build_config, config_dir, load_node_yaml, param_specs
from minipamayo_ros.policy.config import PolicyConfig
from minipamayo_ros.policy.pipeline import PolicyPipeline, Skip, create_pipeline
from minipamayo_ros.policy.scheduler import LatestFrameScheduler
from minipamayo_ros.replay.bagio import BagReader, stamp_ns
from minipamayo_ros.replay.inputs import InputTopics, camera_frame, resolve_topics
from minipamayo_ros.replay.progress import Progress
from minipamayo_ros.replay.records import (
    ControlRecord,
    ExplanationRecord,
    Meta,
    Outputs,
    SkipRecord,
    TrajectoryRecord,
)
from minipamayo_ros.safety.context_input import check_context
from minipamayo_ros.trajectory import PlannedTrajectory

NS = 1_000_000_000


def load_node_config(
    cls: type,
    node: str,
    base_file: str,
    config_file: str = "drive.yaml",
    overrides: dict[str, Any] | None = None,
) -> Any:
    """A node's config exactly as the stack builds it: ``base_file``, then ``config_file``, then overrides."""
    cfg = config_dir()
    values: dict[str, Any] = {}
    for name in (base_file, config_file):
        path = Path(name) if Path(name).is_absolute() else cfg / name
        if path.exists():
            values.update(load_node_yaml(path, node, [s.name for s in param_specs(cls)]))
    values.update(overrides or {})
    values.pop("use_sim_time", None)
    return build_config(cls, values)


@dataclass(frozen=True)
class LockstepSettings:
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    follower: FollowerConfig | None = None  # run the follower core too (None = policy only)
    follower_latency: float = 0.1  # [s] image stamp -> trajectory at the follower
    text: Any = None  # TextConfig: run the text node's core too (event detector + captions)
    reorder_window: float = 1.0  # [s] of log time to sort header stamps within
    start_offset: float = 0.0  # [s] after the bag start
    end_offset: float = math.inf  # [s] after the bag start
    namespace: str = ""  # the recorded stack's namespace: where the policy's relative topic names resolve


def settings_from_config(
    config_file: str = "drive.yaml",
    policy_overrides: dict[str, Any] | None = None,
    follower: bool = False,
    text: bool = False,
    **kwargs: Any,
) -> LockstepSettings:
    """Settings from the stack's parameter files (``<node>.yaml``, then ``config_file``, then overrides)."""
    policy = load_node_config(PolicyConfig, "policy", "policy.yaml", config_file, policy_overrides)
    fcfg = tcfg = None
    if follower:
        fcfg = load_node_config(FollowerConfig, "follower", "follower.yaml", config_file)
    if text:
        from minipamayo_ros.text.config import TextConfig

        tcfg = load_node_config(TextConfig, "text", "text.yaml", config_file)
    return LockstepSettings(policy=policy, follower=fcfg, text=tcfg, **kwargs)


def build_pipeline(cfg: PolicyConfig, logger: object | None = None) -> PolicyPipeline:
    """The policy node's pipeline for ``cfg`` (the one constructor: same loader, checks, warm-up)."""
    return create_pipeline(cfg, logger)


def build_text(cfg: Any) -> tuple[Any, Any]:
    """The text node's core for ``cfg`` (TextConfig): its event detector and caption generator,
    loaded like the node loads them."""
    from minipamayo_ros.inference import BackendOptions
    from minipamayo_ros.text.events import EventDetector
    from minipamayo_ros.text.generator import load_text_generator

    options = BackendOptions(
        backend=cfg.backend,
        intra_op_threads=cfg.intra_op_threads,
        inter_op_threads=cfg.inter_op_threads,
        warmup_runs=1,
    )
    return EventDetector(cfg.detector_settings()), load_text_generator(
        cfg.manifest_path, options, cfg.verify_model_hash
    )


@dataclass
class LockstepStats:
    frames: int = 0
    processed: int = 0
    trajectories: int = 0
    dropped_rate: int = 0
    skips: dict[str, int] = field(default_factory=dict)
    odometry: int = 0
    odometry_rejected: int = 0
    #: samples dropped at the node's input checks, per input ("image", "odometry") and kind
    #: (``safety.rejection``): what the node counts in /diagnostics as ``rejected.<kind>``
    rejected: dict[str, dict[str, int]] = field(default_factory=dict)
    late_messages: int = 0  # header stamp older than already-processed ones (beyond the window)
    controls: int = 0
    explanations: int = 0
    bag_seconds: float = 0.0  # header-stamp span of the replayed frames [s]
    wall_seconds: float = 0.0
    skipped_topics: list[str] = field(default_factory=list)

    @property
    def frames_per_s(self) -> float:
        return self.frames / self.wall_seconds if self.wall_seconds > 0 else 0.0

    @property
    def x_real_time(self) -> float:
        return self.bag_seconds / self.wall_seconds if self.wall_seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.__dict__,
            "frames_per_s": round(self.frames_per_s, 2),
            "x_real_time": round(self.x_real_time, 2),
        }


@dataclass
class LockstepResult:
    outputs: Outputs
    stats: LockstepStats
    topics: InputTopics


def git_commit(path: Path | None = None) -> str:
    """HEAD of the repository holding this file ('' outside a git checkout)."""
    import subprocess

    root = path or Path(__file__).resolve().parents[2]
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
        commit = out.stdout.strip()
        if commit:
            dirty = subprocess.run(
                ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                capture_output=True,
                text=True,
                timeout=5,
                check=False,
            ).stdout.strip()
            return commit + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        pass
    return ""


def run_lockstep(
    bag: Path | str | list[Path],
    settings: LockstepSettings | None = None,
    pipeline: PolicyPipeline | None = None,
    progress: bool = True,
    text: Any = None,
) -> LockstepResult:
    """Replay ``bag`` through the policy pipeline (built from ``settings.policy`` unless given).

    ``text``: a prebuilt ``(EventDetector, CaptionGenerator)`` for ``settings.text`` (else built here).
    """
    st = settings or LockstepSettings()
    cfg = st.policy
    with BagReader(bag) as reader:
        info = reader.info
        assert info is not None
        topics = resolve_topics(info, cfg.image_topic, cfg.odom_topic, st.namespace)
        pipe = pipeline or build_pipeline(cfg)
        pipe.restart()  # a reused pipeline starts like a fresh node
        desc = pipe.backend.describe()
        meta = Meta(
            mode="lockstep",
            bag=", ".join(str(p) for p in info.paths),
            model_id=pipe.manifest.model_id,
            backend=str(desc.get("backend", "")),
            device=str(desc.get("device", "")),
            precision=str(desc.get("precision", cfg.precision)),
            git_commit=git_commit(),
            created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            image_topic=topics.image,
            odom_topic=topics.odom,
            extra={
                "onnxruntime": desc.get("onnxruntime", ""),
                "threads": desc.get("threads", ""),
                "max_rate_hz": cfg.max_rate_hz,
                "rate_slack": cfg.rate_slack,
                "follower": st.follower is not None,
                "follower_latency": st.follower_latency,
                "text": st.text is not None,
            },
        )
        out = Outputs(meta)
        stats = LockstepStats(skipped_topics=list(topics.skipped))
        start_ns = info.start_ns + int(st.start_offset * NS)
        end_ns = None if math.isinf(st.end_offset) else info.start_ns + int(st.end_offset * NS) + 1
        bar = Progress(info.estimate_count(topics.image, start_ns, end_ns), "replay", enabled=progress)
        sched: LatestFrameScheduler[Any] | None = None
        follower = Follower(st.follower) if st.follower is not None else None
        text_core = text or (build_text(st.text) if st.text is not None else None)
        if text_core is not None:
            text_core[0].reset()
            meta.extra["text_model_id"] = text_core[1].model_id
        tick = 1.0 / st.follower.rate_hz if st.follower is not None else math.inf
        next_tick: float | None = None
        pending: deque[tuple[float, PlannedTrajectory]] = deque()
        heap: list[tuple[int, int, int, int, str, Any]] = []
        counter = itertools.count()
        window_ns = int(st.reorder_window * NS)
        last_ns = -1
        now = -math.inf  # [s] the injected ROS clock (see the module doc)
        first_frame_ns: int | None = None
        last_frame_ns = 0
        t_wall = time.perf_counter()

        def run_follower_until(t: float) -> None:
            nonlocal next_tick
            if follower is None:
                return
            if next_tick is None:
                next_tick = t
            while next_tick <= t + 1e-12:
                while pending and pending[0][0] <= next_tick + 1e-12:
                    follower.set_trajectory(pending.popleft()[1], next_tick)
                cmd = follower.update(next_tick)
                out.add(
                    ControlRecord(
                        stamp_ns=round(next_tick * NS),
                        status=int(cmd.status),
                        speed=cmd.speed,
                        steering_angle=cmd.steering_angle,
                        curvature=cmd.curvature,
                        trajectory_stamp_ns=round(cmd.trajectory_stamp * NS),
                    )
                )
                stats.controls += 1
                next_tick += tick

        def reject(source: str, kind: str) -> None:
            counts = stats.rejected.setdefault(source, {})
            counts[kind] = counts.get(kind, 0) + 1

        def process(item: tuple[int, int, int, int, str, Any]) -> None:
            nonlocal sched, last_ns, first_frame_ns, last_frame_ns, now
            order_ns, rank, log_ns, _, msgtype, msg = item
            if order_ns < last_ns:
                stats.late_messages += 1
            last_ns = max(last_ns, order_ns)
            now = max(now, order_ns / NS)  # the receiving node's ROS clock: never backwards
            run_follower_until(now)
            if rank == 0:  # odometry: the node's conversion and gate (safety.odometry_input)
                fields = odometry_to_fields(msg)
                stats.odometry += 1
                bad = pipe.add_odometry(fields, now)
                if bad is not None:
                    stats.odometry_rejected += 1
                    reject("odometry", bad.kind)
                if follower is not None:
                    follower.add_odometry(fields, now)
                return
            frame, bad = camera_frame(
                msg, msgtype, now, cfg.max_stamp_future, cfg.max_image_age, cfg.encoding_override
            )
            s_ns = stamp_ns(msg.header)
            stats.frames += 1
            bar.update()
            first_frame_ns = s_ns if first_frame_ns is None else first_frame_ns
            last_frame_ns = s_ns
            if sched is None:
                sched = LatestFrameScheduler(cfg.max_rate_hz, cfg.rate_slack, now=now)
            if bad is not None:  # the node drops it in the callback, before the scheduler
                reject("image", bad.kind)
                stats.skips[bad.kind] = stats.skips.get(bad.kind, 0) + 1
                out.add(SkipRecord(s_ns, bad.kind, str(bad)))
                return
            if not sched.offer(frame, now):
                stats.dropped_rate += 1
                out.add(SkipRecord(s_ns, "dropped_rate", f"over the {cfg.max_rate_hz:g} Hz rate cap"))
                return
            chosen, _ = sched.next_item(now)
            assert chosen is frame
            t0 = time.perf_counter()
            try:
                result = pipe.run(frame, lambda: now)
            finally:
                sched.done()
            total_ms = (time.perf_counter() - t0) * 1e3
            stats.processed += 1
            if isinstance(result, Skip):
                stats.skips[result.category] = stats.skips.get(result.category, 0) + 1
                out.add(SkipRecord(s_ns, result.category, result.reason))
                return
            traj = result.output.trajectory
            stats.trajectories += 1
            out.add(
                TrajectoryRecord(
                    stamp_ns=s_ns,
                    sequence=traj.sequence,
                    x=[float(v) for v in traj.points[:, 0]],
                    y=[float(v) for v in traj.points[:, 1]],
                    speed=[float(v) for v in traj.speeds],
                    uncertainty=float(traj.uncertainty),
                    model_id=traj.model_id,
                    inference_ms=float(traj.inference_latency_ms),
                    preprocess_ms=float(result.preprocess_ms),
                    total_ms=total_ms,
                )
            )
            if follower is not None:
                pending.append((frame.stamp + st.follower_latency, traj))
            if text_core is not None:
                explain(traj, result.output.context, s_ns)

        def explain(traj: PlannedTrajectory, context: Any, s_ns: int) -> None:
            """The text node's core on this trajectory: every event explained at once (lock-step
            has no wall-clock drop policy and no generation deadline: content, not timing)."""
            assert text_core is not None
            detector, generator = text_core
            t = s_ns / NS
            ctx = np.asarray(context, np.float32)
            # the text node's arrival rule for context vectors (shape, finite; stamp = now here)
            dim = generator.context_dim
            bad = check_context(t, t, st.text.max_stamp_future, st.text.max_event_age, ctx, dim)
            for ev in detector.update(traj):
                if bad is not None:
                    stats.skips["bad_context"] = stats.skips.get("bad_context", 0) + 1
                    continue
                cap = generator.generate(ctx, int(ev.situation), st.text.max_tokens)
                out.add(
                    ExplanationRecord(
                        stamp_ns=s_ns,
                        event=int(ev.kind),
                        text=cap.text,
                        token_ids=[int(v) for v in cap.token_ids],
                        sequence=ev.sequence,
                        situation=int(ev.situation),
                        generation_ms=cap.latency_ms,
                    )
                )
                stats.explanations += 1

        for topic, msgtype, log_ns, msg in reader.messages(
            [topics.image, topics.odom], start_ns=start_ns, end_ns=end_ns
        ):
            rank = 1 if topic == topics.image else 0
            heapq.heappush(heap, (_order_ns(msg, log_ns), rank, log_ns, next(counter), msgtype, msg))
            while heap and heap[0][0] < log_ns - window_ns:
                process(heapq.heappop(heap))
        while heap:
            process(heapq.heappop(heap))
        if follower is not None and pending:
            run_follower_until(pending[-1][0])
        stats.wall_seconds = time.perf_counter() - t_wall
        stats.bag_seconds = (last_frame_ns - first_frame_ns) / NS if first_frame_ns is not None else 0.0
        bar.close()
        if pipeline is None:
            pipe.backend.close()
        if text is None and text_core is not None:
            text_core[1].backend.close()
    return LockstepResult(out, stats, topics)


def _order_ns(msg: Any, log_ns: int) -> int:
    """[ns] processing order: the header stamp (what the node uses), but never after the log time
    (a message cannot be handled before it arrived: a future-stamped one is handled at arrival)."""
    return min(stamp_ns(msg.header), log_ns)

