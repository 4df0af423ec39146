"""One frame through the policy: decode -> model inputs -> inference -> parsed trajectory. No ROS.

The node hands frames to :class:`PolicyPipeline` from its worker thread; odometry arrives from the
executor thread through :meth:`PolicyPipeline.add_odometry` (the history is guarded by a lock).
A frame that cannot produce a trajectory returns a :class:`Skip` saying why (shown in
/diagnostics); nothing raises for bad input.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

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
from minipamayo_ros.pose_history import OdometrySample, PoseHistory
from minipamayo_ros.state_features import REQUIRED_HISTORY, state_history

#: [s] odometry this much older than the newest sample is a clock jump, not a late sample
CLOCK_JUMP_S = 1.0


@dataclass(frozen=True)
class Frame:
    """A camera frame waiting for inference; decoding is deferred to the worker (dropped frames
    are never decoded)."""

    stamp: float                                   # [s] image stamp on the node clock
    decode: Callable[[], NDArray[np.uint8]]        # -> (h, w, 3) uint8 RGB; may raise ImageError
    description: str = ""                          # e.g. "640x480 bgr8" for log messages
    received: float = float("nan")                 # [s] node clock when the callback got it


@dataclass(frozen=True)
class Skip:
    """Why a frame produced no trajectory: ``category`` is a diagnostics counter key."""

    category: str   # bad_image | wrong_size | stale_image | no_odometry | invalid_output
    reason: str


@dataclass(frozen=True)
class Result:
    output: PolicyOutput
    inputs: Tensors        # exactly what the model was fed (batch 1), e.g. for DAgger samples
    preprocess_ms: float   # decode + resize + state history [ms]
    queue_ms: float        # callback -> worker start (node clock) [ms]; NaN if not known


class PolicyPipeline:
    """Frame + odometry history -> :class:`Result` or :class:`Skip`."""

    def __init__(
        self,
        manifest: ModelManifest,
        backend: InferenceBackend,
        io: PolicyIO,
        odom_history: float = 2.0,
        max_extrapolation: float = 0.1,
        max_image_age: float = 0.5,
        expected_size: tuple[int, int] | None = None,
        frame_id: str = "base_link",
    ) -> None:
        self.manifest = manifest
        self.backend = backend
        self.io = io
        self.max_extrapolation = max_extrapolation
        self.max_image_age = max_image_age
        self.expected_size = expected_size  # (height, width) [px] or None = any
        self.frame_id = frame_id
        self.sequence = 0  # of the last published trajectory
        self._history = PoseHistory(max_age=odom_history, max_samples=max(100, int(odom_history * 500)))
        self._lock = threading.Lock()

    def add_odometry(self, sample: OdometrySample) -> bool:
        """Buffer one odometry sample; False if rejected (not newer than the last, non-finite).

        A sample more than :data:`CLOCK_JUMP_S` older than the newest one means the clock jumped
        back (simulator reset, looped bag): the history restarts from it instead of rejecting all
        odometry from then on.
        """
        with self._lock:
            last = self._history.latest
            if last is not None and sample.stamp < last.stamp - CLOCK_JUMP_S:
                self._history.clear()
            return self._history.add(sample)

    def restart(self) -> None:
        """A new drive on a restarted clock (an offline episode): no history, sequence from 0."""
        with self._lock:
            self._history.clear()
            self.sequence = 0

    def state(self, stamp: float) -> NDArray[np.float32] | Skip:
        """The (10, 3) state history at ``stamp``, or why there is none."""
        with self._lock:
            feats = state_history(self._history, stamp, self.max_extrapolation)
            if feats is not None:
                return feats
            first, last = self._history.oldest, self._history.latest
        if last is None or first is None:
            return Skip("no_odometry", "no odometry received yet")
        return Skip(
            "no_odometry",
            f"odometry covers [{first.stamp:.3f}, {last.stamp:.3f}] s but the state history needs "
            f"[{stamp - REQUIRED_HISTORY:.3f}, {stamp:.3f}] s (newest sample "
            f"{1e3 * (stamp - last.stamp):.0f} ms before the image; at most "
            f"{1e3 * self.max_extrapolation:.0f} ms is extrapolated)",
        )

    def run(self, frame: Frame, now: Callable[[], float]) -> Result | Skip:
        """Process ``frame``; ``now()`` is the node clock [s] (for the image age check)."""
        t0 = time.perf_counter()
        started = now()
        age = started - frame.stamp
        if age > self.max_image_age:
            return Skip("stale_image", f"image is {1e3 * age:.0f} ms old at inference start "
                                       f"(max_image_age {1e3 * self.max_image_age:.0f} ms)")
        try:
            rgb = frame.decode()
        except ImageError as exc:
            return Skip("bad_image", f"{frame.description}: {exc}")
        if self.expected_size is not None and rgb.shape[:2] != self.expected_size:
            h, w = self.expected_size
            return Skip("wrong_size", f"image is {rgb.shape[1]}x{rgb.shape[0]} px, expected {w}x{h} px "
                                      "(parameters expected_width/expected_height)")
        state = self.state(frame.stamp)
        if isinstance(state, Skip):
            return state
        inputs = {IMAGE: resize_to_model(rgb, self.io.image_size)[None], STATE: state[None]}
        preprocess_ms = (time.perf_counter() - t0) * 1e3
        outputs = self.backend.infer(inputs)
        try:
            out = parse_policy_outputs(outputs, frame.stamp, self.sequence + 1, self.manifest.model_id,
                                       self.backend.last_infer_ms, self.frame_id)
        except OutputError as exc:
            return Skip("invalid_output", str(exc))
        self.sequence += 1
        return Result(out, inputs, preprocess_ms, (started - frame.received) * 1e3)


def create_pipeline(cfg: PolicyConfig, logger: object | None = None) -> PolicyPipeline:
    """The policy node's pipeline from its parameters: model loaded, checked and warmed up.

    The one constructor for every user (the node, the offline closed loop, DAgger rollouts, bag
    replay), so that a frame gives the same trajectory wherever it comes from. Raises
    :class:`~minipamayo_ros.policy.model_loader.PolicyModelError` on any model problem.
    """
    options = BackendOptions(backend=cfg.backend, intra_op_threads=cfg.intra_op_threads,
                             precision=cfg.precision, engine_cache_dir=cfg.engine_cache_dir,
                             warmup_runs=cfg.warmup_runs)
    manifest, backend, io = load_policy(cfg.manifest_path, options, cfg.verify_model_hash, logger=logger)
    return PolicyPipeline(manifest, backend, io, odom_history=cfg.odom_history,
                          max_extrapolation=cfg.odom_max_extrapolation, max_image_age=cfg.max_image_age,
                          expected_size=expected_size(cfg), frame_id=cfg.base_frame)


def expected_size(cfg: PolicyConfig) -> tuple[int, int] | None:
    """(height, width) [px] the camera must deliver, or None (any size)."""
    return (cfg.expected_height, cfg.expected_width) if cfg.expected_width else None
