"""Follower parameters: one frozen dataclass, declared as ROS parameters by the node.

Defaults match ``config/follower.yaml`` (a test checks) and the simulator's default vehicle
(``minipamayo_ros.sim.vehicle.VehicleParams``: 2.7 m wheelbase, 0.5 rad steering, 1 rad/s).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from minipamayo_ros.params import ParameterError, param
from minipamayo_ros.realtime import parse_cpus
from minipamayo_ros.safety.input_limits import InputLimitParams

CMD_VEL_TYPES = ("twist", "twist_stamped", "none")
SCHEDULING_POLICIES = ("other", "fifo", "rr")


@dataclass(frozen=True)
class FollowerConfig(InputLimitParams):
    """Parameters of the follower node and core (SI units, REP-103); input limits: the base class."""

    #: old name -> new name: a parameter file still using the old name is refused, naming the new one
    RENAMED: ClassVar[dict[str, str]] = {"odom_timeout": "odom_stop_after"}

    rate_hz: float = param(50.0, "control loop rate", "Hz", min=10.0, max=200.0, read_only=True)
    trajectory_timeout: float = param(
        0.5, "latest trajectory older than this (from its image stamp) -> controlled stop", "s",
        min=0.1, max=2.0)
    odom_stop_after: float = param(
        0.2, "latest odometry older than this -> controlled stop (NO_ODOMETRY); also the longest "
        "odometry extrapolation used for motion compensation", "s", min=0.02, max=1.0)
    lookahead_time: float = param(
        0.6, "lookahead distance = lookahead_time * measured speed (clamped); also how far ahead in "
        "time the speed profile is sampled", "s", min=0.0, max=5.0)
    min_lookahead: float = param(2.0, "smallest lookahead distance", "m", min=0.1, max=50.0)
    max_lookahead: float = param(15.0, "largest lookahead distance", "m", min=0.1, max=100.0)
    max_steer_rate: float = param(1.0, "steering angle rate limit", "rad/s", min=0.01, max=20.0)
    max_speed: float = param(15.0, "commanded speed limit", "m/s", min=0.0, max=60.0)
    max_lateral_accel: float = param(3.0, "speed cap v <= sqrt(a / |curvature|)", "m/s^2",
                                     min=0.1, max=20.0)
    max_accel: float = param(2.0, "commanded acceleration limit while tracking", "m/s^2",
                             min=0.01, max=20.0)
    max_decel: float = param(4.0, "commanded deceleration limit while tracking (positive)", "m/s^2",
                             min=0.01, max=20.0)
    planned_stop_speed: float = param(
        0.3, "a trajectory whose remaining planned speeds are all below this is a stop: command 0 "
        "instead of its crawl (0 disables)", "m/s", min=0.0, max=2.0)
    planned_stop_warn_after: float = param(
        10.0, "/diagnostics WARN when the vehicle has stood this long at a planned stop (the policy "
        "never plans to go: a stop-line deadlock); reported only, the follower never overrides a stop",
        "s", min=1.0, max=3600.0)
    stop_decel: float = param(3.0, "deceleration of the controlled stop (positive)", "m/s^2",
                              min=0.1, max=20.0)
    # --- input validation (docs/follower.md "Input validation") ---------------------------------
    base_frame: str = param("base_link", "frame trajectories must be expressed in (header.frame_id); "
                            "others are rejected", read_only=True)
    trajectory_producer: str = param(
        "", "the node whose plans are followed (Trajectory.producer); '' = 'policy' in the follower's "
        "own namespace, a relative name resolves in that namespace; other producers' plans are "
        "rejected", read_only=True)
    odom_min_rate_hz: float = param(10.0, "/diagnostics: /odom below this rate is RATE_TOO_LOW", "Hz",
                                    min=0.1, max=1000.0)
    trajectory_min_rate_hz: float = param(2.0, "/diagnostics: /vla/trajectory below this rate is "
                                          "RATE_TOO_LOW", "Hz", min=0.1, max=100.0)
    diagnostics_period: float = param(1.0, "/diagnostics publish period", "s", min=0.1, max=60.0,
                                      read_only=True)
    cmd_vel_type: str = param("twist", "what to publish on /cmd_vel (linear.x = speed, angular.z = "
                              "speed * curvature)", choices=CMD_VEL_TYPES, read_only=True)
    # --- real-time process (docs/follower.md "Real-time"; refused requests are logged, never fatal) --
    scheduling_policy: str = param(
        "other", "scheduling policy of every thread of the process: other (the default time sharing), "
        "fifo / rr (real-time, needs RLIMIT_RTPRIO >= scheduling_priority or CAP_SYS_NICE)",
        choices=SCHEDULING_POLICIES, read_only=True)
    scheduling_priority: int = param(50, "real-time priority for fifo / rr (higher runs first)",
                                     min=1, max=99, read_only=True)
    cpu_affinity: str = param("", "comma-separated CPU ids this process may run on ('' = any)",
                              read_only=True)
    lock_memory: bool = param(False, "mlockall(MCL_CURRENT | MCL_FUTURE): no page faults in the control "
                              "loop (needs RLIMIT_MEMLOCK or CAP_IPC_LOCK)", read_only=True)

    def __post_init__(self) -> None:
        if self.min_lookahead > self.max_lookahead:
            raise ParameterError(
                f"parameter 'min_lookahead' ({self.min_lookahead} m) must be <= 'max_lookahead' "
                f"({self.max_lookahead} m)")
        if self.odom_stop_after >= self.trajectory_timeout:
            raise ParameterError(
                f"parameter 'odom_stop_after' ({self.odom_stop_after} s) must be < 'trajectory_timeout' "
                f"({self.trajectory_timeout} s): odometry comes at >= 20 Hz, trajectories at 5-10 Hz")
        self.cpus()  # a malformed cpu_affinity is a configuration error

    def cpus(self) -> list[int]:
        """``cpu_affinity`` as CPU ids (empty = no pinning)."""
        return parse_cpus(self.cpu_affinity)

    @property
    def period(self) -> float:
        """[s] nominal control period."""
        return 1.0 / self.rate_hz

    def stop_time(self, speed: float) -> float:
        """[s] worst-case time from ``speed`` [m/s] to 0 once a stop begins (documented bound)."""
        return max(0.0, speed) / self.stop_decel
