"""Parameters of the text node (declared once; defaults shipped in ``config/text.yaml``)."""

from __future__ import annotations

from dataclasses import dataclass

from minipamayo_ros.events import Event
from minipamayo_ros.params import ParameterError, param
from minipamayo_ros.realtime import parse_cpus
from minipamayo_ros.text.events import DetectorSettings, Threshold

DEFAULT_MANIFEST = "engines/minipamayo-tiny-text-step.manifest.json"
EVENT_NAMES = {"curve": Event.CURVE, "brake": Event.BRAKE, "stop": Event.STOP, "uncertain": Event.UNCERTAIN}


@dataclass(frozen=True)
class TextConfig:
    # --- topics / services (relative names resolve in the node's namespace) ---------------------
    trajectory_topic: str = param("vla/trajectory", "trajectories to watch for events "
                                  "(minipamayo_ros/Trajectory)", read_only=True)
    context_topic: str = param("vla/context", "the policy's context vectors (minipamayo_ros/PolicyContext)",
                               read_only=True)
    explanation_topic: str = param("vla/explanation", "output (minipamayo_ros/Explanation)", read_only=True)
    request_service: str = param("vla/explain", "std_srvs/Trigger service: explain the latest trajectory "
                                 "('' = off)", read_only=True)
    request_topic: str = param("vla/explain_request", "std_msgs/Empty topic with the same effect as the "
                               "service, for tools that cannot call services ('' = off)", read_only=True)
    # --- model ------------------------------------------------------------------------------------
    manifest_path: str = param(DEFAULT_MANIFEST, "text step model manifest (kind text_step); relative "
                               "paths: working directory, then the package share directory", read_only=True)
    backend: str = param("onnxruntime", "inference backend (CPU: the text node's isolation is its own "
                         "low-priority process, see docs/text.md)", choices=("onnxruntime",), read_only=True)
    intra_op_threads: int = param(1, "ONNX Runtime intra-op threads", min=1, max=8, read_only=True)
    inter_op_threads: int = param(1, "ONNX Runtime inter-op threads", min=1, max=8, read_only=True)
    verify_model_hash: bool = param(True, "check the model file's sha256 against the manifest at startup",
                                    read_only=True)
    # --- process priority -------------------------------------------------------------------------
    lower_priority: bool = param(True, "run the generation thread at the lowest CPU priority available: "
                                 "SCHED_IDLE where permitted, else nice 19 (logged); the DDS and executor "
                                 "threads keep normal priority (docs/text.md)", read_only=True)
    cpu_affinity: str = param("", "comma-separated CPU ids this process may run on ('' = any)",
                              read_only=True)
    # --- generation and drop policy ---------------------------------------------------------------
    max_tokens: int = param(24, "caption words generated at most (a caption cut here is flagged "
                            "truncated)", min=16, max=32)
    max_generation_ms: float = param(500.0, "a generation running longer is abandoned (checked between "
                                     "tokens; steady clock)", "ms", min=10.0, max=10000.0)
    max_rate_hz: float = param(5.0, "generations started per second at most (steady clock); bounds "
                               "the text node's duty cycle, which SCHED_IDLE alone does not "
                               "(docs/text.md; 0 = back-to-back)", "Hz", min=0.0, max=1000.0)
    max_event_age: float = param(1.0, "an event older than this when generation would start is dropped "
                                 "(event stamp -> now, ROS clock)", "s", min=0.05, max=30.0)
    context_wait: float = param(0.2, "how long generation waits for the explained trajectory's context "
                                "vector to arrive (steady clock)", "s", min=0.0, max=2.0)
    max_stamp_future: float = param(0.1, "trajectories and context vectors stamped further ahead of the "
                                    "ROS clock than this are dropped (clock mismatch)", "s",
                                    min=0.0, max=5.0)
    context_buffer: int = param(20, "recent context vectors kept to pair with trajectories",
                                min=2, max=1000, read_only=True)
    # --- event detection --------------------------------------------------------------------------
    events: list[str] = param(["curve", "brake", "stop", "uncertain"], "event kinds detected on the "
                              f"trajectory stream (subset of {sorted(EVENT_NAMES)})", read_only=True)
    min_interval: float = param(3.0, "minimum time between two events of one kind (stamp time)", "s",
                                min=0.0, max=600.0)
    curve_on: float = param(0.03, "largest curvature along the plan that starts a curve event", "1/m",
                            min=0.001, max=2.0)
    curve_off: float = param(0.015, "curvature below which the curve has ended (hysteresis)", "1/m",
                             min=0.0, max=2.0)
    brake_on: float = param(1.0, "planned deceleration over the horizon that starts a brake event",
                            "m/s^2", min=0.05, max=20.0)
    brake_off: float = param(0.4, "planned deceleration below which braking has ended", "m/s^2",
                             min=0.0, max=20.0)
    stop_speed: float = param(0.5, "a last planned speed below this is a planned stop (stop event)",
                              "m/s", min=0.01, max=5.0)
    stop_release: float = param(0.5, "the stop has ended once the last planned speed exceeds "
                                "stop_speed by this much (hysteresis)", "m/s", min=0.0, max=5.0)
    uncertainty_on: float = param(0.15, "model uncertainty that starts an uncertainty event", "m",
                                  min=0.01, max=10.0)
    uncertainty_off: float = param(0.1, "uncertainty below which the spike has ended", "m",
                                   min=0.0, max=10.0)
    min_path_length: float = param(2.0, "plans shorter than this have no curvature (crawling)", "m",
                                   min=0.1, max=20.0)
    # --- diagnostics ------------------------------------------------------------------------------
    diagnostics_period: float = param(1.0, "/diagnostics publish period", "s", min=0.1, max=60.0,
                                      read_only=True)
    diagnostics_window: int = param(100, "generation latency samples in the /diagnostics percentiles",
                                    min=10, max=10000, read_only=True)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.events) - set(EVENT_NAMES))
        if unknown:
            raise ParameterError(f"parameter 'events' has unknown kinds {unknown}; choose from "
                                 f"{sorted(EVENT_NAMES)}")
        for on, off in (("curve_on", "curve_off"), ("brake_on", "brake_off"),
                        ("uncertainty_on", "uncertainty_off")):
            if getattr(self, off) > getattr(self, on):
                raise ParameterError(f"parameter '{off}' ({getattr(self, off)}) must be <= '{on}' "
                                     f"({getattr(self, on)}): the hysteresis band is off <= on")
        self.affinity()  # raises on a malformed list
        if not self.manifest_path:
            raise ParameterError("parameter 'manifest_path' is empty: give the text step model manifest")

    @property
    def min_generation_period(self) -> float:
        """[s] between two generation starts (0 = no limit)."""
        return 1.0 / self.max_rate_hz if self.max_rate_hz > 0.0 else 0.0

    def affinity(self) -> list[int]:
        """``cpu_affinity`` as CPU ids (empty = no pinning)."""
        return parse_cpus(self.cpu_affinity)

    def detector_settings(self) -> DetectorSettings:
        """Detector thresholds for the enabled kinds (STOP's feature is stop_speed - last speed)."""
        bands = {
            Event.CURVE: Threshold(self.curve_on, self.curve_off),
            Event.BRAKE: Threshold(self.brake_on, self.brake_off),
            Event.STOP: Threshold(0.0, -self.stop_release),
            Event.UNCERTAIN: Threshold(self.uncertainty_on, self.uncertainty_off),
        }
        return DetectorSettings({EVENT_NAMES[n]: bands[EVENT_NAMES[n]] for n in self.events},
                                self.min_interval, self.min_path_length, self.stop_speed)
