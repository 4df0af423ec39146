"""The driving expert: lane-centre plan with curvature-aware speed, stops, labels and captions.

The expert knows the ground truth (road, true pose, scene). It produces

* the training target: 20 body-frame waypoints 0.1 s apart with speeds (:meth:`Expert.plan`),
  an :class:`~minipamayo_ros.events.Event` and a caption in the fixed vocabulary;
* its own driving command (:meth:`Expert.command`): pure pursuit on the same planned path.

Speed: ``v <= min(cruise, sqrt(max_lat_accel / |kappa|))`` along the road, zero beyond each stop
target (stop line or obstacle), propagated backwards with the comfortable deceleration.
Off-centre or misaligned states are planned back to the lane centre along the path the
expert's own steering law produces (:func:`recovery_offset`), so recovery data come with
targets the expert actually drives.

In the traffic world (``SceneView.traffic``, a ``scene.TrafficView``) it also stops for red and
amber lights, pedestrians and blocking parked vehicles (more stop targets in the same envelope),
follows the lead vehicle with IDM (time gap ``idm.time_gap``, predicted at its current
acceleration in the plan), and shifts its path sideways by the view's bumps (passing parked
vehicles, shying from a drifting oncoming car). Every plan names what it reacts to
(``events.Reason``). Without traffic everything is as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from minipamayo_ros.events import EVENT_REASON, Event, Reason
from minipamayo_ros.geometry import Pose2D, wrap_angle
from minipamayo_ros.sim.agents.behavior import IDM, Leader, idm_acceleration
from minipamayo_ros.sim.road import Obstacle, Projection, Road
from minipamayo_ros.sim.scene import TrafficView
from minipamayo_ros.sim.vehicle import VehicleBody
from minipamayo_ros.trajectory import NUM_WAYPOINTS, WAYPOINT_DT, PlannedTrajectory

FloatArray = NDArray[np.float64]
EXPERT_MODEL_ID = "sim_expert"


@dataclass(frozen=True)
class ExpertConfig:
    """Driving style of the expert (SI units)."""

    cruise_speed: float = 8.0       # [m/s]
    max_lat_accel: float = 2.0      # [m/s^2] sets the curve speed
    comfort_decel: float = 2.0      # [m/s^2] planned braking
    stop_time_constant: float = 0.8  # [s] final stop approach v <= distance / this
    hard_decel: float = 4.0         # [m/s^2] braking allowed when the plan must catch up
    max_accel: float = 1.5          # [m/s^2]
    stop_line_gap: float = 1.0      # [m] front bumper to stop line when stopped
    obstacle_gap: float = 3.0       # [m] front bumper to obstacle when stopped
    preview: float = 80.0           # [m] speed-profile horizon
    lookahead_min: float = 4.0      # [m] correction distance = clip(min + gain*v, min, max)
    lookahead_gain: float = 0.4     # [s]
    lookahead_max: float = 15.0     # [m]
    speed_lead: float = 0.3         # [s] speed command looks this far ahead (actuator lag)
    steer_lead: float = 0.15        # [s] curvature feed-forward this far ahead (actuator lag)
    wheelbase: float = 2.7          # [m] for the steering command
    idm: IDM = IDM(accel=1.5, decel=2.0, time_gap=1.5, min_gap=3.0)  # car-following (traffic)
    max_decel: float = 6.0          # [m/s^2] braking allowed for a braking lead vehicle


@dataclass(frozen=True)
class ExpertPlan:
    """Ground-truth plan at ``stamp``: body-frame waypoints, speeds, event, caption and reason."""

    stamp: float
    points: FloatArray       # (20, 2) [m] base_link at stamp
    speeds: FloatArray       # (20,) [m/s]
    event: Event
    caption: str
    reason: Reason = Reason.NONE   # what it reacts to (finer than ``event``)

    def to_trajectory(self, sequence: int = 0) -> PlannedTrajectory:
        return PlannedTrajectory(stamp=self.stamp, points=self.points, speeds=self.speeds,
                                 dt=WAYPOINT_DT, sequence=sequence, model_id=EXPERT_MODEL_ID)


@dataclass(frozen=True)
class SceneView:
    """What in the scene still constrains the expert (from the world's scenario state)."""

    stop_lines: Sequence[float] = ()          # [m] arc lengths of stop lines not yet cleared
    obstacles: Sequence[Obstacle] = ()        # obstacles still present
    last_cleared_stop: float | None = None    # [m] arc length of the last stop line passed
    traffic: TrafficView | None = None        # road users, lights (traffic world only)


def speed_envelope(road: Road, s0: float, targets: Sequence[float], cfg: ExpertConfig,
                   step: float = 0.5) -> tuple[FloatArray, FloatArray]:
    """Highest allowed speed [m/s] on a grid from ``s0`` over the preview (stop at ``targets``)."""
    grid = s0 + np.arange(0.0, cfg.preview + step, step)
    kappa = np.abs(road.curvature_at(np.minimum(grid, road.length)))
    vlim = np.minimum(cfg.cruise_speed, np.sqrt(cfg.max_lat_accel / np.maximum(kappa, 1e-6)))
    vlim[grid >= road.length - 1.0] = 0.0  # end of the road
    for t in targets:
        vlim[grid >= t] = 0.0
    # v[i]^2 = min_j>=i (vlim[j]^2 + 2 a (s_j - s_i)): reverse cumulative minimum
    a2 = 2.0 * cfg.comfort_decel
    key = vlim**2 + a2 * grid
    env = np.sqrt(np.maximum(np.minimum.accumulate(key[::-1])[::-1] - a2 * grid, 0.0))
    # final approach: v <= distance / stop_time_constant, so braking fades out instead of ending
    # at full deceleration (a jerk spike at standstill)
    for t in targets:
        ahead = grid < t
        env[ahead] = np.minimum(env[ahead], (t - grid[ahead]) / cfg.stop_time_constant)
    return grid, env


def recovery_offset(d0: float, slope0: float, ld: float, x: FloatArray) -> FloatArray:
    """Lateral offset [m] at distance ``x`` [m] ahead when returning to the lane centre.

    The expert's steering law makes the offset a critically damped second-order system in
    distance, ``d'' = -d / ld^2 - 2 d' / ld``; this is its solution from offset ``d0`` and slope
    ``slope0`` (tangent of the heading error), so the planned path is the path the expert drives.
    """
    x = np.asarray(x, dtype=np.float64)
    return (d0 + (slope0 + d0 / ld) * x) * np.exp(-x / ld)


class Expert:
    """Plans and drives on one road (stateless between calls: everything comes from the arguments)."""

    def __init__(self, road: Road, config: ExpertConfig | None = None,
                 body: VehicleBody | None = None) -> None:
        self.road = road
        self.cfg = config or ExpertConfig()
        self.body = body or VehicleBody()

    # --------------------------------------------------------------- shared pieces
    def stop_targets(self, scene: SceneView) -> tuple[list[float], list[float]]:
        """base_link arc lengths where the car must stop: (for stop lines, for obstacles)."""
        f = self.body.front
        lines = [s - f - self.cfg.stop_line_gap for s in scene.stop_lines]
        obs = [o.s - o.length / 2 - f - self.cfg.obstacle_gap for o in scene.obstacles]
        if scene.traffic is not None:
            lines += [t.s - f - self.cfg.stop_line_gap for t in scene.traffic.stops]
        return lines, obs

    def offset_profile(self, view: TrafficView | None, s: FloatArray) -> FloatArray:
        """[m] lateral offset of the planned path at route ``s`` (zeros without bumps)."""
        if view is None or not view.bumps:
            return np.zeros_like(np.asarray(s, dtype=np.float64))
        from minipamayo_ros.sim.traffic import bump_offset

        return bump_offset(view.bumps, s)

    def _lead_accel(self, view: TrafficView | None, s_front: float, speed: float,
                    t: float = 0.0) -> float | None:
        """[m/s^2] IDM acceleration behind the lead vehicle predicted ``t`` s ahead (None: no lead)."""
        if view is None or view.lead is None:
            return None
        ld = view.lead
        v_l, a_l = ld.speed, ld.accel
        if a_l < 0.0 and v_l + a_l * t < 0.0:   # it stops before t
            t_stop = v_l / -a_l
            pos, v_t = v_l * t_stop + 0.5 * a_l * t_stop**2, 0.0
        else:
            pos, v_t = v_l * t + 0.5 * a_l * t * t, v_l + a_l * t
        gap = ld.rear_s + pos - s_front
        return idm_acceleration(self.cfg.idm, speed, self.cfg.cruise_speed, Leader(gap, max(v_t, 0.0)))

    def correction_distance(self, speed: float) -> float:
        """[m] distance scale of the lateral correction (grows with speed)."""
        cfg = self.cfg
        return float(np.clip(cfg.lookahead_min + cfg.lookahead_gain * speed, cfg.lookahead_min,
                             cfg.lookahead_max))

    # --------------------------------------------------------------- driving
    def command(self, pose: Pose2D, speed: float, proj: Projection, scene: SceneView) -> tuple[float, float]:
        """(front-wheel angle [rad], speed [m/s]) command of the expert driver."""
        cfg = self.cfg
        # lane-keeping law on the lateral error dynamics d'' = v^2 (kappa_cmd - kappa_road):
        # curvature feed-forward (taken steer_lead s ahead: actuator lag) plus a critically
        # damped correction of offset and heading error over the preview distance ld
        ld = self.correction_distance(speed)
        kappa_ff = float(self.road.curvature_at(min(proj.s + cfg.steer_lead * speed, self.road.length)))
        heading_err = float(wrap_angle(pose.yaw - proj.heading))
        view = scene.traffic
        if view is not None and view.bumps:
            # track the shifted path: offset error, heading against the path's slope, its curvature
            s_ff = proj.s + cfg.steer_lead * speed
            off = self.offset_profile(view, np.array([proj.s, s_ff - 0.5, s_ff, s_ff + 0.5,
                                                      proj.s + 0.5]))
            slope = (off[4] - off[0]) / 0.5
            kappa_ff += (off[3] - 2 * off[2] + off[1]) / 0.25
            kappa = kappa_ff - (proj.d - off[0]) / ld**2 - 2.0 * np.sin(heading_err - np.arctan(slope)) / ld
        else:
            kappa = kappa_ff - proj.d / ld**2 - 2.0 * np.sin(heading_err) / ld
        steer = float(np.arctan(cfg.wheelbase * kappa))
        lines, obs = self.stop_targets(scene)
        grid, env = speed_envelope(self.road, proj.s, lines + obs, cfg)
        v_env = float(np.interp(proj.s + speed * cfg.speed_lead, grid, env))
        v_cmd = min(v_env, speed + cfg.max_accel * cfg.speed_lead)
        if view is not None:
            a = self._lead_accel(view, proj.s + self.body.front, speed)
            if a is not None:
                v_cmd = min(v_cmd, speed + max(a, -cfg.max_decel) * cfg.speed_lead)
            if view.speed_cap is not None:
                v_cmd = min(v_cmd, max(view.speed_cap, speed - cfg.comfort_decel * cfg.speed_lead))
        return steer, max(0.0, v_cmd)

    # --------------------------------------------------------------- planning
    def plan(self, stamp: float, pose: Pose2D, speed: float, proj: Projection,
             scene: SceneView) -> ExpertPlan:
        """The 2.0 s ground-truth plan from the current true state."""
        cfg = self.cfg
        lines, obs = self.stop_targets(scene)
        grid, env = speed_envelope(self.road, proj.s, lines + obs, cfg)
        sub = 5
        dt = WAYPOINT_DT / sub
        s, v = proj.s, speed
        s_out, v_out = np.empty(NUM_WAYPOINTS), np.empty(NUM_WAYPOINTS)
        view = scene.traffic
        front = self.body.front
        for k in range(NUM_WAYPOINTS * sub):
            v_max = float(np.interp(s, grid, env))
            v_new = float(np.clip(v_max, v - cfg.hard_decel * dt, v + cfg.max_accel * dt))
            if view is not None:
                a = self._lead_accel(view, s + front, v, (k + 1) * dt)
                if a is not None:
                    v_new = min(v_new, v + max(a, -cfg.max_decel) * dt)
                if view.speed_cap is not None:
                    v_new = min(v_new, max(view.speed_cap, v - cfg.comfort_decel * dt))
            v_new = max(0.0, v_new)
            s += 0.5 * (v + v_new) * dt
            v = v_new
            if (k + 1) % sub == 0:
                s_out[(k + 1) // sub - 1], v_out[(k + 1) // sub - 1] = s, v
        slope = float(np.tan(np.clip(wrap_angle(pose.yaw - proj.heading), -1.0, 1.0)))
        if view is not None and view.bumps:
            off = self.offset_profile(view, np.concatenate(([proj.s, proj.s + 0.5], s_out)))
            d = off[2:] + recovery_offset(proj.d - off[0], slope - (off[1] - off[0]) / 0.5,
                                          self.correction_distance(speed), s_out - proj.s)
        else:
            d = recovery_offset(proj.d, slope, self.correction_distance(speed), s_out - proj.s)
        world = self.road.points_at(np.minimum(s_out, self.road.length), d)
        c, sn = np.cos(pose.yaw), np.sin(pose.yaw)
        dx, dy = world[:, 0] - pose.x, world[:, 1] - pose.y
        points = np.stack((c * dx + sn * dy, -sn * dx + c * dy), axis=1)
        if view is None:
            event, caption = self.describe(proj, speed, lines, obs, scene, v_out)
            reason = EVENT_REASON.get(event, Reason.NONE)
        else:
            event, caption, reason = self.describe_traffic(proj, speed, lines, obs, scene, v_out)
        return ExpertPlan(stamp=stamp, points=points, speeds=v_out, event=event, caption=caption,
                          reason=reason)

    def describe(self, proj: Projection, speed: float, lines: Sequence[float], obs: Sequence[float],
                 scene: SceneView, planned_speeds: FloatArray) -> tuple[Event, str]:
        """Event label and caption of the current situation (priority: stop, obstacle, curve, ...)."""
        cfg = self.cfg
        react = speed**2 / (2.0 * cfg.comfort_decel) + 12.0
        stopped = speed < 0.3

        def nearest(targets: Sequence[float]) -> float | None:
            ahead = [t - proj.s for t in targets if t - proj.s > -2.0]
            return min(ahead) if ahead else None

        d_line, d_obs = nearest(lines), nearest(obs)
        if d_line is not None and (d_line < react or (stopped and d_line < 4.0)):
            if stopped and d_line < 4.0:
                return Event.STOP, "waiting at stop line"
            return Event.STOP, "stopping at stop line ahead"
        if d_obs is not None and (d_obs < react or (stopped and d_obs < 4.0)):
            if stopped and d_obs < 4.0:
                return Event.OBSTACLE, "stopped behind obstacle in lane"
            return Event.OBSTACLE, "slowing for obstacle in lane ahead"
        preview = max(15.0, 2.5 * speed + 10.0)
        ss = proj.s + np.arange(0.0, preview, 1.0)
        kappa = self.road.curvature_at(np.minimum(ss, self.road.length))
        k = int(np.argmax(np.abs(kappa)))
        kmax = float(kappa[k])
        if abs(kmax) > 0.025:
            side = "left" if kmax > 0 else "right"
            sharp = "sharp" if abs(kmax) > 0.06 else "gentle"
            if np.sqrt(cfg.max_lat_accel / abs(kmax)) < speed - 0.5:
                return Event.CURVE, f"slowing for {sharp} {side} curve"
            return Event.CURVE, f"following {sharp} {side} curve"
        decel = (speed - float(planned_speeds[-1])) / (NUM_WAYPOINTS * WAYPOINT_DT)
        if decel > 1.0:
            return Event.BRAKE, "braking to cruise speed"
        if abs(proj.d) > 0.5:
            return Event.NONE, "returning to lane centre"
        if speed < cfg.cruise_speed - 1.5:
            front = proj.s + self.body.front
            if scene.last_cleared_stop is not None and 0.0 <= front - scene.last_cleared_stop < 15.0:
                return Event.NONE, "proceeding after stop"
            return Event.NONE, "accelerating to cruise speed"
        return Event.NONE, "keeping lane at cruise speed"

    def describe_traffic(self, proj: Projection, speed: float, lines: Sequence[float], obs: Sequence[float],
                         scene: SceneView, planned_speeds: FloatArray) -> tuple[Event, str, Reason]:
        """Event, caption and reason in the traffic world (priority: the nearest stop cause, the
        lead vehicle, a path offset, a turn, a green light, then the classic labels)."""
        view = scene.traffic
        assert view is not None
        cfg = self.cfg
        react = speed**2 / (2.0 * cfg.comfort_decel) + 12.0
        stopped = speed < 0.3
        f = self.body.front
        causes: list[tuple[float, Reason]] = []
        for t in view.stops:
            causes.append((t.s - f - cfg.stop_line_gap - proj.s, Reason(t.reason)))
        causes += [(x - proj.s, Reason.STOP_LINE) for x in lines[: len(scene.stop_lines)]]
        causes += [(x - proj.s, Reason.OBSTACLE) for x in obs]
        causes = [c for c in causes if c[0] > -2.0 and (c[0] < react or (stopped and c[0] < 4.0))]
        decel = (speed - float(planned_speeds[-1])) / (NUM_WAYPOINTS * WAYPOINT_DT)
        lead = view.lead
        lead_gap = lead.rear_s - (proj.s + f) if lead is not None else np.inf
        # a lead vehicle nearer than the nearest stop cause explains the car's behaviour first
        if causes and not (lead is not None and lead_gap < min(c[0] for c in causes) + f):
            dist, why = min(causes, key=lambda c: c[0])
            waiting = stopped and dist < 4.0
            text = {
                Reason.RED_LIGHT: ("waiting at red light", "stopping at red light ahead"),
                Reason.AMBER_LIGHT: ("waiting at red light", "stopping for amber light"),
                Reason.PEDESTRIAN: ("waiting for pedestrian crossing",
                                    "yielding to pedestrian crossing ahead"),
                Reason.PARKED_VEHICLE: ("stopped behind parked vehicle", "slowing for parked vehicle ahead"),
                Reason.GREEN_LIGHT: ("waiting for traffic in intersection",
                                     "slowing for traffic in intersection"),
                Reason.STOP_LINE: ("waiting at stop line", "stopping at stop line ahead"),
                Reason.OBSTACLE: ("stopped behind obstacle in lane", "slowing for obstacle in lane ahead"),
            }[why]
            event = Event.OBSTACLE if why in (Reason.OBSTACLE, Reason.PARKED_VEHICLE) else Event.STOP
            if why == Reason.AMBER_LIGHT and waiting:
                why = Reason.RED_LIGHT
            return event, text[0] if waiting else text[1], why
        if lead is not None and (lead_gap < max(25.0, 3.0 * speed)):
            recent_cut = lead.cut_in_time is not None and scene_time_since(lead.cut_in_time, view) < 3.0
            if stopped and lead_gap < 12.0:
                return Event.STOP, "stopped behind lead vehicle", Reason.LEAD_VEHICLE
            if recent_cut and decel > 0.3:
                return Event.BRAKE, "braking for vehicle cutting in", Reason.CUT_IN
            if decel > 1.0:
                return Event.BRAKE, "braking for lead vehicle ahead", Reason.LEAD_BRAKING
            if decel > 0.3:
                return Event.BRAKE, "slowing for lead vehicle ahead", Reason.LEAD_VEHICLE
            return Event.NONE, "following lead vehicle at safe gap", Reason.LEAD_VEHICLE
        near = [b for b in view.bumps if b.s0 - 5.0 <= proj.s <= b.s3 and abs(b.amplitude) > 0.05]
        if near:
            b = min(near, key=lambda b: b.s0)
            if b.reason == int(Reason.ONCOMING):
                return Event.NONE, "moving right for oncoming vehicle", Reason.ONCOMING
            return Event.OBSTACLE, "passing parked vehicle on the right", Reason.PARKED_VEHICLE
        if view.turn is not None:
            side = "left" if view.turn[1] > 0 else "right"
            return Event.CURVE, f"turning {side} at intersection", Reason.TURN
        if view.green_light_s is not None and speed > 0.5:
            return Event.NONE, "proceeding on green light", Reason.GREEN_LIGHT
        event, caption = self.describe(proj, speed, lines, obs, scene, planned_speeds)
        return event, caption, EVENT_REASON.get(event, Reason.NONE)


def scene_time_since(stamp: float, view: TrafficView) -> float:
    """[s] since ``stamp`` at the view's time."""
    return view.time - stamp
