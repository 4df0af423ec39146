"""Closed-loop report: metrics from a :class:`~minipamayo_ros.bringup.recorder.Recording` and plots.

ROS-free (numpy + matplotlib + OpenCV): the recorder hands over plain data.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import cv2
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from minipamayo_ros.geometry import Pose2D
from minipamayo_ros.latency import summarize
from minipamayo_ros.scoring.frames import SceneFrame, from_json
from minipamayo_ros.scoring.score import score_frames, score_window
from minipamayo_ros.sim.camera import CameraConfig, project
from minipamayo_ros.sim.metrics import MAX_STALL_S, clean_checks
from minipamayo_ros.sim.road import Road

STATUS_NAMES = {0: "TRACKING", 1: "STALE_TRAJECTORY_STOP", 2: "NO_ODOMETRY", 3: "NO_TRAJECTORY",
                4: "SHUTDOWN"}


def _num(value: str | None) -> float | str | None:
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return value


#: the driving figures of a run report (``sim.metrics.EpisodeMetrics`` fields)
DRIVING_KEYS = ("distance_m", "mean_speed_mps", "cross_track_rms_m", "cross_track_max_m", "lane_departures",
                "lane_departure_time_s", "collisions", "at_fault_collisions", "stop_line_violations",
                "stops_completed", "red_light_violations", "min_ttc_s", "max_lateral_accel_mps2",
                "max_long_jerk_mps3", "longest_standstill_s", "longest_stall_s")


def scene_frames(rec: Any) -> list[SceneFrame]:
    """The recorded scene frames, decoded (a frame that does not decode is left out)."""
    out = []
    for text in getattr(rec, "scene_frames", []):
        try:
            out.append(from_json(text))
        except ValueError:
            continue
    return out


def closed_loop_metrics(rec: Any, *, max_rate_hz: float, follower_rate_hz: float,
                        warmup_s: float = 2.0) -> dict[str, Any]:
    """Driving quality (from the simulator's ground truth) and stack timing.

    Rates are measured in sim time over the run after ``warmup_s`` (the stack needs a moment to
    connect and warm up before the first trajectory). With scene frames the driving figures are
    those of the last frame and ``score`` is the run's score (``scoring.score``) from the first
    trajectory's receipt (or the first frame, if later) to the last frame recorded by the end
    (``score_window``, node clock, the window the score covers: a bag of the run holding those
    frames scores the same with ``replay.score_bag --start/--end``); else the figures of the latest
    /sim/metrics.
    """
    t0 = (rec.first_sim_time or 0.0) + warmup_s
    t1 = rec.last_sim_time
    span = max(t1 - t0, 1e-9)
    trajs = [t for t in rec.trajectories if t0 <= t.stamp <= t1]
    in_window = [t0 <= c[0] <= t1 for c in rec.controls]
    controls = np.array([c for c, keep in zip(rec.controls, in_window, strict=True) if keep]).reshape(-1, 5)
    periods_ms = np.diff(controls[:, 0]) * 1e3 if len(controls) > 1 else np.array([])
    receipts = np.array([t for t, keep in zip(_control_receipts(rec), in_window, strict=False) if keep])
    receive_periods_ms = np.diff(receipts) * 1e3 if len(receipts) > 1 else np.array([])
    statuses = {name: int(np.sum(controls[:, 1] == code)) for code, name in STATUS_NAMES.items()}
    frames = [f for f in scene_frames(rec) if f.stamp <= t1 + 1e-6]
    sim = dict(frames[-1].metrics) if frames else {k: _num(v) for k, v in rec.sim_metrics.items()}
    score = None
    if frames:
        receipt = rec.trajectory_receive_times[0] if rec.trajectory_receive_times else None
        window = score_window(frames, receipt, t1)
        score = {"score_window": list(window), **score_frames(frames, *window).as_dict()}
    diag = rec.policy_diagnostics
    policy_rate = len(trajs) / span
    follower_rate = len(controls) / span
    return {
        "sim_seconds": round(t1 - (rec.first_sim_time or t1), 2),
        "driving": {k: sim.get(k) for k in DRIVING_KEYS},
        "score": score,
        "policy": {
            "rate_hz": policy_rate,
            "max_rate_hz": max_rate_hz,
            "rate_ratio": policy_rate / max_rate_hz,
            "trajectories": len(trajs),
            "end_to_end_ms": summarize([t.end_to_end_latency_ms for t in trajs]).as_dict(),
            "inference_ms": summarize([t.inference_latency_ms for t in trajs]).as_dict(),
            "latency_clock": diag.get("latency_clock", ""),
            "frames_received": _num(diag.get("frames_received")),
            "frames_skipped_rate_cap": _num(diag.get("frames_skipped_rate_cap")),
            "frames_dropped_busy": _num(diag.get("frames_dropped_busy")),
            "model_id": trajs[-1].model_id if trajs else "",
            "backend": diag.get("backend_backend", ""),
        },
        "follower": {
            "rate_hz": follower_rate,
            "configured_rate_hz": follower_rate_hz,
            "rate_ratio": follower_rate / follower_rate_hz,
            "period_ms": summarize(periods_ms).as_dict(),
            "receive_period_ms": summarize(receive_periods_ms).as_dict(),
            "status_ticks": statuses,
        },
        "plans": plan_rejections(diag, rec.follower_trajectory_diagnostics, len(trajs)),
        "clocks": CLOCKS,
    }


def is_follower_trajectory_input(status_name: str) -> bool:
    """The follower's ``/diagnostics`` status of its trajectory input (``follower: input
    /vla/trajectory``, the topic resolved in its namespace)."""
    name, _, topic = status_name.partition(": input ")
    return name.endswith("follower") and topic.endswith("trajectory")


def plan_rejections(policy_diag: dict[str, str], follower_diag: dict[str, str],
                    published: int) -> dict[str, Any]:
    """The policy's plans that were rejected, from the nodes' last ``/diagnostics``: withheld by
    the policy's output check (``skipped_invalid_output``) and refused by the follower (its
    ``/vla/trajectory`` input: ``rejected`` and per kind). The bar: both 0."""
    kinds = {k.removeprefix("rejected."): int(_num(v) or 0) for k, v in follower_diag.items()
             if k.startswith("rejected.")}
    return {"published": published,
            "rejected_output_check": int(_num(policy_diag.get("skipped_invalid_output")) or 0),
            "rejected_by_follower": int(_num(follower_diag.get("rejected")) or 0),
            "rejected_by_follower_kinds": kinds}


#: which clock each timing figure of :func:`closed_loop_metrics` is on (written into metrics.json)
CLOCKS = {
    "rates (policy.rate_hz, follower.rate_hz)": "sim time (message stamps over the run)",
    "policy.end_to_end_ms": "steady clock inside the policy node: camera callback -> publish "
                            "(Trajectory.end_to_end_latency_ms; the transport delay is not measurable "
                            "under sim time and not included)",
    "policy.inference_ms": "steady clock: engine time only (Trajectory.inference_latency_ms)",
    "follower.period_ms": "sim time: differences of /vla/control stamps (quantised by the 10 ms sim step)",
    "follower.receive_period_ms": "steady clock: intervals between /vla/control receipts in the "
                                  "recorder (the follower's timer plus DDS delivery jitter)",
    "sim_seconds / wall_seconds": "sim time / steady clock",
}


def _control_receipts(rec: Any) -> list[float]:
    return list(getattr(rec, "control_receive_steady", []))


def text_metrics(rec: Any) -> dict[str, Any] | None:
    """The text node's explanations (stamp = the explained trajectory's) and counters, or None
    when no text node ran."""
    if not rec.explanations and not rec.text_diagnostics:
        return None
    ex = rec.explanations
    d = rec.text_diagnostics
    counters: dict[str, Any] = {k: int(d[k]) for k in ("requested", "replaced", "dropped_stale", "started",
                                                       "generated", "abandoned", "failed") if k in d}
    counters["cpu_priority"] = d.get("cpu_priority", "")
    return {"explanations": ex, "count": len(ex),
            "generation_ms": summarize([e["generation_ms"] for e in ex]).as_dict(),
            "event_age_ms": summarize([e["event_age_ms"] for e in ex]).as_dict(),
            "counters": counters}


#: [s] a standstill longer than this while the expert would drive is a stall (the expert stands
#: 0.8 s at a stop line, 3 s behind an obstacle): e.g. a policy/follower deadlock at a stop line
MAX_STANDSTILL_S = MAX_STALL_S


def driving_checks(d: dict[str, Any]) -> dict[str, bool]:
    """The driving checks of one run (simulator ground truth): every one must hold for a clean run.
    The world's rule, ``sim.metrics.clean_checks``: the evaluator, the demo and the soak share it."""
    return clean_checks(d)


def quality_verdict(m: dict[str, Any]) -> dict[str, bool]:
    """The per-run checks of the closed-loop quality bar."""
    return {
        **driving_checks(m["driving"]),
        "policy_rate_within_10pct": abs(m["policy"]["rate_ratio"] - 1.0) <= 0.10,
        "follower_rate_within_10pct": abs(m["follower"]["rate_ratio"] - 1.0) <= 0.10,
    }


def _trajectory_in_world(traj: Any, truth: np.ndarray) -> np.ndarray | None:
    """Predicted waypoints in the odom frame, using the true pose at the trajectory's stamp."""
    i = int(np.searchsorted(truth[:, 0], traj.stamp))
    if i <= 0 or i >= len(truth):
        return None
    pose = Pose2D(*truth[i, 1:4])
    return pose.transform_points(np.asarray(traj.points))


def plot_birdseye(road: Road, rec: Any, path: Path, n_predictions: int = 12) -> None:
    """Road (lane edges, centre line), the driven path and some predicted trajectories."""
    truth = np.array(rec.truth)
    fig, ax = plt.subplots(figsize=(9, 9))
    s = np.arange(0.0, road.length, 1.0)
    half = road.lane_width / 2.0
    for d, style in ((-half, "k-"), (half, "k--"), (3 * half, "k-")):
        pts = road.points_at(s, d)
        ax.plot(pts[:, 0], pts[:, 1], style, lw=0.8)
    centre = road.points_at(s, 0.0)
    ax.plot(centre[:, 0], centre[:, 1], ":", color="0.6", lw=0.8, label="lane centre")
    if len(truth):
        ax.plot(truth[:, 1], truth[:, 2], "b-", lw=1.5, label="driven path (ground truth)")
        idx = np.linspace(0, len(rec.trajectories) - 1, min(n_predictions, len(rec.trajectories)))
        first = True
        for i in idx.astype(int) if len(rec.trajectories) else []:
            world = _trajectory_in_world(rec.trajectories[i], truth)
            if world is not None:
                ax.plot(world[:, 0], world[:, 1], "r.-", ms=2, lw=0.8,
                        label="predicted trajectories" if first else None)
                first = False
        pad = 15.0
        ax.set_xlim(truth[:, 1].min() - pad, truth[:, 1].max() + pad)
        ax.set_ylim(truth[:, 2].min() - pad, truth[:, 2].max() + pad)
    explanations = getattr(rec, "explanations", [])
    if len(truth) and explanations:
        t = truth[:, 0]
        for k, e in enumerate(explanations):
            x, y = np.interp(e["stamp"], t, truth[:, 1]), np.interp(e["stamp"], t, truth[:, 2])
            ax.plot(x, y, "o", color="purple", ms=5, label="explanation (at its trajectory's stamp)"
                    if k == 0 else None)
            ax.annotate(f"{e['stamp'] - t[0]:.1f}s {e['text']}", (x, y), xytext=(6, 6 - 9 * (k % 3)),
                        textcoords="offset points", fontsize=6, color="purple")
    for obstacle in road.obstacles:
        p = np.asarray(road.points_at(obstacle.s, obstacle.d)).reshape(2)
        ax.plot(p[0], p[1], "s", color="orange", ms=6)
    for s_stop in road.stop_lines:
        line = np.asarray(road.points_at(np.array([s_stop, s_stop]), np.array([-half, half]))).reshape(2, 2)
        ax.plot(line[:, 0], line[:, 1], "-", color="red", lw=2)
    ax.set_aspect("equal")
    ax.set_xlabel("x [m] (odom)")
    ax.set_ylabel("y [m] (odom)")
    ax.legend(loc="best", fontsize=8)
    ax.set_title("Bird's-eye view: driven path and predicted 2 s trajectories")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def draw_trajectory(image: np.ndarray, traj: Any, camera: CameraConfig) -> np.ndarray:
    """The camera image with the predicted waypoints (on the ground plane) drawn in."""
    out = image.copy()
    pts = np.asarray(traj.points)
    ground = np.concatenate((pts, np.zeros((len(pts), 1))), axis=1)
    uv, valid = project(camera, ground)
    uv = uv[valid]
    if len(uv) >= 2:
        cv2.polylines(out, [np.round(uv).astype(np.int32).reshape(-1, 1, 2)], False, (255, 40, 40), 2,
                      cv2.LINE_AA)
    for u, v in np.round(uv).astype(int):
        cv2.circle(out, (int(u), int(v)), 2, (255, 255, 0), -1, cv2.LINE_AA)
    return out


def latest_explanation(explanations: list[dict[str, Any]], stamp: float, window: float = 3.0
                       ) -> dict[str, Any] | None:
    """The newest explanation of a trajectory at most ``window`` s older than ``stamp`` (none newer)."""
    before = [e for e in explanations if stamp - window <= e["stamp"] <= stamp + 1e-6]
    return max(before, key=lambda e: e["stamp"]) if before else None


def draw_explanation(image: np.ndarray, e: dict[str, Any], stamp: float) -> np.ndarray:
    """The explanation's text in a dark band at the top of the frame, with its age and event."""
    out = image.copy()
    cv2.rectangle(out, (0, 0), (out.shape[1], 30), (0, 0, 0), -1)
    cv2.putText(out, e["text"][:48], (4, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (255, 255, 255), 1, cv2.LINE_AA)
    cv2.putText(out, f"{e['event'].lower()}, explains t-{stamp - e['stamp']:.1f} s", (4, 25),
                cv2.FONT_HERSHEY_SIMPLEX, 0.33, (200, 200, 120), 1, cv2.LINE_AA)
    return out


def save_camera_frames(rec: Any, camera: CameraConfig, out_dir: Path) -> list[Path]:
    paths = []
    explanations = getattr(rec, "explanations", [])
    for k, (image, traj) in enumerate(rec.snapshots):
        p = out_dir / f"camera_{k:02d}.png"
        frame = draw_trajectory(image, traj, camera)
        e = latest_explanation(explanations, traj.stamp)
        if e is not None:
            frame = draw_explanation(frame, e, traj.stamp)
        cv2.imwrite(str(p), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        paths.append(p)
    return paths


def plot_latency(rec: Any, path: Path) -> None:
    """Histograms, all on the steady (wall) clock: policy end-to-end and inference latency, and the
    follower's command interval as received (sim-time differences would be quantised to 10 ms)."""
    e2e = [t.end_to_end_latency_ms for t in rec.trajectories]
    inf = [t.inference_latency_ms for t in rec.trajectories]
    receipts = np.array(_control_receipts(rec))
    periods = np.diff(receipts) * 1e3 if len(receipts) > 1 else np.array([])
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    for ax, data, title in ((axes[0], e2e, "policy end-to-end [ms], steady clock\n"
                                           "(in node: receive -> publish)"),
                            (axes[1], inf, "policy inference [ms], steady clock"),
                            (axes[2], periods, "follower command interval [ms], steady clock\n"
                                               "(as received by the recorder)")):
        data = np.asarray(data, dtype=float)
        if data.size:
            ax.hist(data, bins=40, color="steelblue")
            s = summarize(data)
            for q, style in ((s.p50, "-"), (s.p95, "--"), (s.p99, ":")):
                ax.axvline(q, color="k", ls=style, lw=0.8)
            ax.set_title(f"{title}\np50 {s.p50:.1f}  p95 {s.p95:.1f}  p99 {s.p99:.1f}  max {s.max:.1f}",
                         fontsize=9)
        else:
            ax.set_title(f"{title}\n(no data)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_json(path: Path, data: dict[str, Any]) -> None:
    def clean(v: Any) -> Any:
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, list):
            return [clean(x) for x in v]
        return v

    path.write_text(json.dumps(clean(data), indent=2) + "\n")


#: bird's-eye colours per agent kind (AgentKind names)
_KIND_COLOURS = {"VEHICLE": "0.45", "PEDESTRIAN": "darkorange", "OBSTACLE": "saddlebrown"}
_LIGHT_COLOURS = {"GREEN": "limegreen", "AMBER": "orange", "RED": "red"}


def plot_scene(road: Road | None, frames: list[SceneFrame], time: float, path: Path, title: str,
               highlight: int | None = None, radius: float = 35.0) -> None:
    """Bird's-eye snapshot of the scene frame nearest ``time`` [s, episode time]: lane lines
    (when the road is known), the ego's path 6 s before to 2 s after, the ego (blue) and every
    agent as its footprint (agent ``highlight`` red), lights as coloured stop lines, stop lines,
    crosswalks."""
    f = min(frames, key=lambda x: abs(x.time - time))
    sc, ego = f.scene, f.scene.ego
    fig, ax = plt.subplots(figsize=(6.4, 6.4))
    half = sc.lane_width / 2
    if road is not None:
        s = np.arange(max(0.0, ego.s - radius - 10), min(road.length, ego.s + radius + 10), 0.5)
        for d, style in ((-half, "k-"), (half, "k--"), (3 * half, "k-")):
            pts = road.points_at(s, d)
            ax.plot(pts[:, 0], pts[:, 1], style, lw=0.8)
        for s_stop in sc.stop_lines:
            p = np.asarray(road.points_at(np.array([s_stop, s_stop]), np.array([-half, half]))).reshape(2, 2)
            ax.plot(p[:, 0], p[:, 1], "-", color="red", lw=2)
        for cw in sc.crosswalks:
            for k in np.linspace(-cw.width / 2, cw.width / 2, 4):
                p = np.asarray(road.points_at(np.array([cw.s + k] * 2), np.array([-half, 3 * half])))
                p = p.reshape(2, 2)
                ax.plot(p[:, 0], p[:, 1], "-", color="0.7", lw=1)
    trail = np.array([(x.scene.ego.x, x.scene.ego.y) for x in frames if time - 6.0 <= x.time <= time + 2.0])
    if len(trail):
        ax.plot(trail[:, 0], trail[:, 1], "b-", lw=1, alpha=0.6, label="ego path (-6 s .. +2 s)")
    for light in sc.lights:
        c, s_ = np.cos(light.heading + np.pi / 2), np.sin(light.heading + np.pi / 2)
        ax.plot([light.x - c * half, light.x + c * half], [light.y - s_ * half, light.y + s_ * half], "-",
                color=_LIGHT_COLOURS.get(light.state.name, "k"), lw=3)
    for a in (*sc.agents, ego):
        poly = np.array(a.corners() + a.corners()[:1])
        is_ego = a is ego
        colour = ("tab:blue" if is_ego else "red" if a.id == highlight
                  else _KIND_COLOURS.get(a.kind.name, "0.5"))
        ax.fill(poly[:, 0], poly[:, 1], color=colour, alpha=0.85 if is_ego or a.id == highlight else 0.6)
        ax.arrow(a.x, a.y, 0.6 * a.length * np.cos(a.yaw) * 0.5, 0.6 * a.length * np.sin(a.yaw) * 0.5,
                 head_width=0.4, color="k", lw=0.5)
        if not is_ego:
            ax.annotate(f"{a.role.name.lower()} {a.id}\n{a.speed:.1f} m/s", (a.x, a.y), fontsize=6,
                        xytext=(4, 4), textcoords="offset points")
    ax.set_xlim(ego.x - radius, ego.x + radius)
    ax.set_ylim(ego.y - radius, ego.y + radius)
    ax.set_aspect("equal")
    ax.set(xlabel="x [m] (odom)", ylabel="y [m] (odom)")
    ax.set_title(f"{title}\nt = {f.time:.2f} s, ego {ego.speed:.1f} m/s", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
