"""One frame through the policy: decode -> model inputs -> inference -> parsed trajectory. No ROS.

The node hands frames to :class:`PolicyPipeline` from its worker thread; odometry arrives from the
executor thread through :meth:`PolicyPipeline.add_odometry` (validated by
``safety.odometry_input``, the history is guarded by a lock). Runtime-changeable parameters are one
immutable :class:`PipelineSettings` snapshot, swapped by :meth:`PolicyPipeline.configure` and read
once when a frame starts: a frame runs entirely on the settings it started with. A frame that cannot produce a
trajectory returns a :class:`Skip` saying why (shown in /diagnostics); nothing raises for bad input.
The output passes ``safety.trajectory_input.check_trajectory`` with the follower's limits before it
is returned: the node never publishes a trajectory the follower would reject.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import NDArray

from minipamayo_ros.image_preprocess import resize_to_model
from minipamayo_ros.inference import BackendOptions, InferenceBackend, Tensors
from minipamayo_ros.io_contract import IMAGE, STATE
from minipamayo_ros.manifest import ModelManifest
from minipamayo_ros.policy.config import PolicyConfig
from minipamayo_ros.policy.image_decode import ImageError
from minipamayo_ros.policy.model_loader import PolicyIO, load_policy
from minipamayo_ros.policy.outputs import OutputError, PolicyOutput, parse_policy_outputs
from minipamayo_ros.pose_history import OdometrySample
from minipamayo_ros.safety.odometry_input import OdometryFields, OdometryGate, OdometryLimits
from minipamayo_ros.safety.plan_source import new_instance_id
from minipamayo_ros.safety.rejection import Rejection
from minipamayo_ros.safety.stamps import ClockJumpDetector, check_stamp
from minipamayo_ros.safety.trajectory_input import TrajectoryFields, TrajectoryLimits, check_trajectory
from minipamayo_ros.state_features import REQUIRED_HISTORY, StateHistory, state_history

#: Trajectory.producer of offline pipelines: the policy node's name without a namespace
DEFAULT_PRODUCER = "/policy"


@dataclass(frozen=True)
class Frame:
    """A camera frame waiting for inference; decoding is deferred to the worker (dropped frames
    are never decoded)."""

    stamp: float                                   # [s] image stamp on the ROS clock
    decode: Callable[[], NDArray[np.uint8]]        # -> (h, w, 3) uint8 RGB; may raise ImageError
    description: str = ""                          # e.g. "640x480 bgr8" for log messages
    received: float = float("nan")                 # [s] ROS clock when the callback got it
    received_steady: float = float("nan")          # [s] time.monotonic() when the callback got it


@dataclass(frozen=True)
class Skip:
    """Why a frame produced no trajectory: ``category`` is a diagnostics counter key."""

    category: str   # bad_image | bad_stamp | wrong_size | stale_image | no_odometry | invalid_output
    reason: str


@dataclass(frozen=True)
class PipelineSettings:
    """The pipeline's runtime-changeable parameters as one immutable snapshot.

    Why a snapshot: a parameter change arrives on the executor thread while the worker runs a
    frame. Rewriting the fields one by one let that frame check its age against the old
    ``max_image_age`` and its output against the new ``plan_max_speed`` (or half of a new image
    size); now a change takes effect from the next frame on, whole.
    """

    max_image_age: float = 0.5                    # [s] image age at inference start, older: skipped
    max_extrapolation: float = 0.1                # [s] odometry extrapolated to the image stamp at most
    expected_size: tuple[int, int] | None = None  # (height, width) [px] the camera must deliver; None = any
    odometry_limits: OdometryLimits = OdometryLimits()
    trajectory_limits: TrajectoryLimits = TrajectoryLimits()  # the output check (the follower's rules)

    @staticmethod
    def from_config(cfg: PolicyConfig) -> PipelineSettings:
        return PipelineSettings(
            max_image_age=cfg.max_image_age, max_extrapolation=cfg.odom_max_extrapolation,
            expected_size=expected_size(cfg), odometry_limits=cfg.odometry_limits(),
            trajectory_limits=cfg.trajectory_limits(cfg.base_frame))


@dataclass(frozen=True)
class Result:
    output: PolicyOutput
    inputs: Tensors        # exactly what the model was fed (batch 1), e.g. for DAgger samples
    preprocess_ms: float   # decode + resize + state history [ms]
    queue_ms: float        # callback -> worker start (steady clock) [ms]; NaN if not known


class PolicyPipeline:
    """Frame + odometry history -> :class:`Result` or :class:`Skip`.

    ``frame_id`` (the body frame of the output) and ``odom_history`` [s] are fixed for its life;
    the rest is :class:`PipelineSettings` (default: the defaults of its fields).
    """

    def __init__(
        self,
        manifest: ModelManifest,
        backend: InferenceBackend,
        io: PolicyIO,
        settings: PipelineSettings | None = None,
        odom_history: float = 2.0,
        frame_id: str = "base_link",
        producer: str = DEFAULT_PRODUCER,
    ) -> None:
        self.manifest = manifest
        self.backend = backend
        self.io = io
        self.frame_id = frame_id
        self.sequence = 0  # of the last published trajectory
        self.producer = producer  # the publishing node's fully qualified name (Trajectory.producer)
        self.instance = new_instance_id()  # Trajectory.producer_instance: new at each (re)start
        self._history = StateHistory(max_age=odom_history, max_samples=max(100, int(odom_history * 500)))
        self._gate = OdometryGate(OdometryLimits(max_age=odom_history))
        self.clock = ClockJumpDetector()
        self.odometry_rejected = 0
        self._rejected_since_accepted = 0
        self.last_odometry_rejection: Rejection | None = None
        self._lock = threading.Lock()
        self._settings = PipelineSettings(trajectory_limits=TrajectoryLimits(frame_id=frame_id))
        self.configure(settings or self._settings)

    @property
    def settings(self) -> PipelineSettings:
        """The snapshot the next frame starts with."""
        with self._lock:
            return self._settings

    def configure(self, settings: PipelineSettings) -> None:
        """Runtime parameter change: ``settings`` replace the current ones whole, from the next frame
        on (a frame in progress finishes on the settings it started with). The output check keeps
        this pipeline's ``frame_id``; the odometry history window stays ``odom_history``."""
        if settings.trajectory_limits.frame_id != self.frame_id:
            settings = replace(settings, trajectory_limits=replace(settings.trajectory_limits,
                                                                   frame_id=self.frame_id))
        with self._lock:
            self._settings = settings
            self._gate.limits = replace(settings.odometry_limits, max_age=self._history.max_age)

    def observe_clock(self, now: float) -> bool:
        """Feed the ROS clock; True (and the odometry history cleared) if it jumped back by more
        than 1 s (simulator restart, looped bag). One outlier stamp cannot trigger this: only the
        clock itself counts, and future/old stamps are rejected at input."""
        with self._lock:
            if not self.clock.update(now):
                return False
            self._history.clear()
            self._gate.reset()
            self._rejected_since_accepted = 0
            return True

    def add_odometry(self, odom: OdometrySample | OdometryFields,
                     now: float | None = None) -> Rejection | None:
        """Validate and buffer one odometry sample; returns why it was dropped, or None if stored.

        ``now``: the ROS clock [s] (omitted: the stamp is the clock, for offline callers).
        """
        fields = odom if isinstance(odom, OdometryFields) else OdometryFields.from_sample(odom)
        if now is None:
            now = fields.stamp
        else:
            self.observe_clock(now)
        with self._lock:
            result = self._gate.check(fields, now, self._history.latest)
            if isinstance(result, Rejection):
                self.odometry_rejected += 1
                self._rejected_since_accepted += 1
                self.last_odometry_rejection = result
                return result
            self._rejected_since_accepted = 0
            self._history.add(result)
            return None

    def restart(self) -> None:
        """A new drive on a restarted clock (an offline episode): no history, sequence from 0 of a
        new producer instance."""
        with self._lock:
            self.instance = new_instance_id()
            self._history.clear()
            self._gate.reset()
            self.clock = ClockJumpDetector()
            self._rejected_since_accepted = 0
            self.sequence = 0

    def state(self, stamp: float, max_extrapolation: float | None = None) -> NDArray[np.float32] | Skip:
        """The (10, 4) state history at ``stamp``, or why there is none (``max_extrapolation`` [s]:
        default the current settings')."""
        with self._lock:
            if max_extrapolation is None:
                max_extrapolation = self._settings.max_extrapolation
            feats = state_history(self._history, stamp, max_extrapolation)
            if feats is not None:
                return feats
            first, last = self._history.oldest, self._history.latest
            rejected, bad = self._rejected_since_accepted, self.last_odometry_rejection
        # blame the input when it is the input: samples arrived but were rejected
        why = f"; the {rejected} sample(s) since were rejected at input (last: {bad})" if rejected else ""
        if last is None or first is None:
            if bad is not None:
                return Skip("no_odometry", f"no valid odometry: {self.odometry_rejected} sample(s) "
                                           f"rejected at input (last: {bad})")
            return Skip("no_odometry", "no odometry received yet")
        return Skip(
            "no_odometry",
            f"odometry covers [{first.stamp:.3f}, {last.stamp:.3f}] s but the state history needs "
            f"[{stamp - REQUIRED_HISTORY:.3f}, {stamp:.3f}] s (newest sample "
            f"{1e3 * (stamp - last.stamp):.0f} ms before the image; at most "
            f"{1e3 * max_extrapolation:.0f} ms is extrapolated){why}",
        )

    def run(self, frame: Frame, now: Callable[[], float]) -> Result | Skip:
        """Process ``frame``; ``now()`` is the ROS clock [s] (for the image age check). The whole
        frame runs on the settings current when it starts (:meth:`configure`)."""
        t0 = time.perf_counter()
        started_steady = time.monotonic()
        s = self.settings
        started = now()
        self.observe_clock(started)
        bad = check_stamp(frame.stamp, started, s.odometry_limits.max_future, float("inf"))
        if bad is not None:
            return Skip("bad_stamp", f"{frame.description or 'image'}: {bad}")
        age = started - frame.stamp
        if age > s.max_image_age:
            return Skip("stale_image", f"image is {1e3 * age:.0f} ms old at inference start "
                                       f"(max_image_age {1e3 * s.max_image_age:.0f} ms)")
        try:
            rgb = frame.decode()
        except ImageError as exc:
            return Skip("bad_image", f"{frame.description}: {exc}")
        if s.expected_size is not None and rgb.shape[:2] != s.expected_size:
            h, w = s.expected_size
            return Skip("wrong_size", f"image is {rgb.shape[1]}x{rgb.shape[0]} px, expected {w}x{h} px "
                                      "(parameters expected_width/expected_height)")
        with np.errstate(all="ignore"):  # checked explicitly below: nothing may go to stderr
            state = self.state(frame.stamp, s.max_extrapolation)
        if isinstance(state, Skip):
            return state
        if not np.all(np.isfinite(state)):  # validated odometry cannot do this; never blame the model
            return Skip("no_odometry", "state history from odometry is not finite (odometry input)")
        inputs: dict[str, np.ndarray] = {IMAGE: resize_to_model(rgb, self.io.image_size)[None],
                                         STATE: state[None]}
        preprocess_ms = (time.perf_counter() - t0) * 1e3
        outputs = self.backend.infer(inputs)
        try:
            with np.errstate(all="ignore"):
                out = parse_policy_outputs(outputs, frame.stamp, self.sequence + 1, self.manifest.model_id,
                                           self.backend.last_infer_ms, self.frame_id)
            out = replace(out, trajectory=replace(out.trajectory, producer=self.producer,
                                                  producer_instance=self.instance))
        except OutputError as exc:
            return Skip("invalid_output", str(exc))
        published = TrajectoryFields.from_trajectory(out.trajectory).as_published()  # float32 on the wire
        bad = check_trajectory(published, s.trajectory_limits)
        if bad is not None:  # what the follower would reject is never published
            return Skip("invalid_output", f"model output rejected by the output check: {bad}")
        self.sequence += 1
        return Result(out, inputs, preprocess_ms, (started_steady - frame.received_steady) * 1e3)


def create_pipeline(cfg: PolicyConfig, logger: object | None = None,
                    producer: str = DEFAULT_PRODUCER) -> PolicyPipeline:
    """The policy node's pipeline from its parameters: model loaded, checked and warmed up.

    The one constructor for every user (the node, the offline closed loop, DAgger rollouts, bag
    replay), so that a frame gives the same trajectory wherever it comes from. ``producer``: the
    node's fully qualified name (offline: the policy node's default, ``/policy``). Raises
    :class:`~minipamayo_ros.policy.model_loader.PolicyModelError` on any model problem.
    """
    options = BackendOptions(backend=cfg.backend, intra_op_threads=cfg.intra_op_threads,
                             precision=cfg.precision, engine_cache_dir=cfg.engine_cache_dir,
                             warmup_runs=cfg.warmup_runs)
    manifest, backend, io = load_policy(cfg.manifest_path, options, cfg.verify_model_hash, logger=logger)
    return PolicyPipeline(manifest, backend, io, PipelineSettings.from_config(cfg),
                          odom_history=cfg.odom_history, frame_id=cfg.base_frame, producer=producer)


def expected_size(cfg: PolicyConfig) -> tuple[int, int] | None:
    """(height, width) [px] the camera must deliver, or None (any size)."""
    return (cfg.expected_height, cfg.expected_width) if cfg.expected_width else None
