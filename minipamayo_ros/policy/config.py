"""Parameters of the policy node (declared once; defaults shipped in ``config/policy.yaml``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from minipamayo_ros.params import ParameterError, param
from minipamayo_ros.policy.image_decode import ENCODINGS
from minipamayo_ros.safety.input_limits import InputLimitParams
from minipamayo_ros.state_features import REQUIRED_HISTORY

DEFAULT_MANIFEST = "engines/minipamayo-tiny-policy.manifest.json"


@dataclass(frozen=True)
class PolicyConfig(InputLimitParams):
    """Parameters of the policy node (SI units, REP-103); odometry/plan/stamp limits: the base class."""

    #: old name -> new name: a parameter file still using the old name is refused, naming the new one
    RENAMED: ClassVar[dict[str, str]] = {"odom_timeout": "odom_stale_after"}

    # --- topics (relative names resolve in the node's namespace: /<ns>/camera/image_raw) --------
    image_topic: str = param("camera/image_raw", "camera topic (sensor_msgs/Image, or "
                             "sensor_msgs/CompressedImage when image_transport is 'compressed')",
                             read_only=True)
    image_transport: str = param("raw", "camera message type: raw = sensor_msgs/Image, compressed = "
                                 "sensor_msgs/CompressedImage (JPEG/PNG, decoded with OpenCV)",
                                 choices=("raw", "compressed"), read_only=True)
    odom_topic: str = param("odom", "odometry topic (nav_msgs/Odometry; twist in the body frame)",
                            read_only=True)
    trajectory_topic: str = param("vla/trajectory", "output trajectory (minipamayo_ros/Trajectory)",
                                  read_only=True)
    path_topic: str = param("vla/path", "the same waypoints as nav_msgs/Path for RViz ('' = off)",
                            read_only=True)
    context_topic: str = param("vla/context", "context vector for the text node "
                               "(minipamayo_ros/PolicyContext; '' = off)", read_only=True)
    base_frame: str = param("base_link", "body frame the waypoints are expressed in", read_only=True)
    # --- model --------------------------------------------------------------------------------
    manifest_path: str = param(DEFAULT_MANIFEST, "policy model manifest (JSON beside the ONNX file); "
                               "relative paths: working directory, then the package share directory",
                               read_only=True)
    backend: str = param("auto", "inference backend", choices=("auto", "onnxruntime", "tensorrt", "torch"),
                         read_only=True)
    intra_op_threads: int = param(1, "ONNX Runtime intra-op threads (1 leaves a core to the follower "
                                  "on 2-core CPUs)", min=1, max=64, read_only=True)
    precision: str = param("fp16", "tensorrt/torch precision", choices=("fp32", "fp16", "bf16", "int8"),
                           read_only=True)
    engine_cache_dir: str = param("", "tensorrt engine cache directory ('' = beside the model)",
                                  read_only=True)
    warmup_runs: int = param(3, "inferences on zero inputs before the first trajectory is published",
                             min=1, max=100, read_only=True)
    verify_model_hash: bool = param(True, "check the model file's sha256 against the manifest at startup",
                                    read_only=True)
    # --- scheduling ---------------------------------------------------------------------------
    max_rate_hz: float = param(10.0, "upper bound on inferences per second (long-run average; steady "
                               "clock)", "Hz", min=0.5, max=60.0)
    rate_slack: float = param(0.25, "fraction of a period a frame may arrive early and still start at "
                              "once (absorbs camera jitter; the long-run rate never exceeds "
                              "max_rate_hz)", min=0.0, max=0.9)
    max_image_age: float = param(0.5, "frames older than this (image stamp -> inference start, ROS "
                                 "clock) are skipped", "s", min=0.01, max=10.0)
    # --- input handling -----------------------------------------------------------------------
    encoding_override: str = param("", "treat raw images as this encoding ('' = trust the message's "
                                   "encoding field)", choices=("", *ENCODINGS))
    expected_width: int = param(0, "camera width; other sizes are rejected with a warning (0 = any)",
                                "px", min=0, max=16384)
    expected_height: int = param(0, "camera height; other sizes are rejected with a warning (0 = any)",
                                 "px", min=0, max=16384)
    odom_history: float = param(2.0, "odometry kept for the state history", "s", min=0.5, max=30.0,
                                read_only=True)
    odom_max_extrapolation: float = param(0.1, "how far the newest odometry may be extrapolated to the "
                                          "image stamp", "s", min=0.0, max=0.5)
    # --- input / output validation (docs/policy.md "Validation"; limits in InputLimitParams) ----
    odom_stale_after: float = param(0.2, "/diagnostics watchdog: no accepted odometry for this long is "
                                    "STALE (reported only; frames are skipped by odom_max_extrapolation)",
                                    "s", min=0.02, max=10.0)
    odom_min_rate_hz: float = param(10.0, "/diagnostics: odometry below this rate is RATE_TOO_LOW", "Hz",
                                    min=0.1, max=1000.0)
    image_min_rate_hz: float = param(5.0, "/diagnostics: camera below this rate is RATE_TOO_LOW", "Hz",
                                     min=0.1, max=1000.0)
    # --- QoS / diagnostics --------------------------------------------------------------------
    image_qos_depth: int = param(1, "camera subscription depth (sensor-data QoS, best effort)",
                                 min=1, max=10, read_only=True)
    odom_qos_depth: int = param(50, "odometry subscription depth", min=1, max=1000, read_only=True)
    diagnostics_window: int = param(100, "latency samples in the /diagnostics percentiles",
                                    min=10, max=10000, read_only=True)
    diagnostics_period: float = param(1.0, "/diagnostics publish period", "s", min=0.1, max=60.0,
                                      read_only=True)

    def __post_init__(self) -> None:
        if self.odom_history < REQUIRED_HISTORY + 0.2:
            raise ParameterError(
                f"parameter 'odom_history' ({self.odom_history} s) must cover the policy's state "
                f"history ({REQUIRED_HISTORY:.1f} s) plus 0.2 s of margin"
            )
        if (self.expected_width == 0) != (self.expected_height == 0):
            raise ParameterError(
                "parameters 'expected_width' and 'expected_height' must both be 0 (any size) or both "
                f"be set (got {self.expected_width} x {self.expected_height} px)"
            )
        if not self.manifest_path:
            raise ParameterError("parameter 'manifest_path' is empty: give the policy model manifest")
        if not self.image_topic or not self.odom_topic or not self.trajectory_topic:
            raise ParameterError("parameters 'image_topic', 'odom_topic', 'trajectory_topic' must be set")
