"""Model outputs (numpy) -> :class:`PlannedTrajectory` + context vector. Pure numpy, no ROS.

Kept apart from message filling (``nodes/conversions.py``) and from the loop (the node), as in
openpilot's modeld: this is the one place that knows the model's output layout (tensor names:
``minipamayo_ros.io_contract``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from minipamayo_ros.inference import Tensors
from minipamayo_ros.io_contract import CONTEXT, SPEEDS, UNCERTAINTY, WAYPOINTS
from minipamayo_ros.trajectory import NUM_WAYPOINTS, WAYPOINT_DT, PlannedTrajectory


class OutputError(ValueError):
    """The model produced something that is not a usable trajectory (reason in the message)."""


@dataclass(frozen=True)
class PolicyOutput:
    trajectory: PlannedTrajectory
    context: NDArray[np.float32]  # (C,), empty if the model has no context output


def parse_policy_outputs(
    outputs: Tensors,
    stamp: float,
    sequence: int,
    model_id: str,
    inference_ms: float,
    frame_id: str = "base_link",
) -> PolicyOutput:
    """Build the trajectory for the image taken at ``stamp`` [s] from one batch-1 inference.

    Speeds are clipped at 0 (a regression head's -0.01 m/s at standstill is not a reverse command)
    and the uncertainty at 0. Missing outputs, wrong sizes or a non-finite context vector raise
    :class:`OutputError`. The trajectory itself is *not* judged here: the pipeline's output check
    (``safety.trajectory_input``, with the node's limits, on the published float32 values) is the
    one place that decides what may be published. ``end_to_end_latency_ms`` is filled in at publish
    time.
    """
    try:
        wp = np.asarray(outputs[WAYPOINTS], dtype=np.float64).reshape(NUM_WAYPOINTS, 2)
        speeds = np.asarray(outputs[SPEEDS], dtype=np.float64).reshape(NUM_WAYPOINTS)
        unc = float(np.asarray(outputs[UNCERTAINTY], dtype=np.float64).reshape(-1)[0])
    except KeyError as exc:
        raise OutputError(f"model output {exc} missing") from exc
    except ValueError as exc:
        raise OutputError(f"model output has the wrong size: {exc}") from exc
    context = np.asarray(outputs.get(CONTEXT, np.zeros(0)), dtype=np.float32).reshape(-1)
    if not np.all(np.isfinite(context)):  # not part of the trajectory: checked here
        raise OutputError("context contains NaN or inf")
    return PolicyOutput(trajectory=PlannedTrajectory(
        stamp=stamp,
        points=wp,
        speeds=np.maximum(speeds, 0.0),
        dt=WAYPOINT_DT,
        uncertainty=max(unc, 0.0) if np.isfinite(unc) else unc,
        sequence=sequence,
        model_id=model_id,
        frame_id=frame_id,
        inference_latency_ms=float(inference_ms),
    ), context=context)
