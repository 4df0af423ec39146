"""The PDM-style score of one run, from its scene frames (docs/closed-loop-evaluation.md).

After NAVSIM's PDM score (``navsim/evaluate/pdm_score.py``, ``pdm_scorer.py``; the extended
EPDMS adds traffic-light compliance, lane keeping and driving direction) and nuPlan's closed-loop
score, applied to a whole closed-loop run rather than a 4 s open-loop proposal::

    score = NC * DAC * TRC * MP * (5 EP + 5 TTC + 2 LK + 2 C + 2 DDC) / 16

Multipliers (a run that breaks one scores 0, or half for NC against a static object):

* NC, no at-fault collision: 0 after an at-fault contact with a road user (vehicle, pedestrian),
  0.5 after one with a static obstacle only, else 1. Fault: the simulator's rules
  (``sim.agents.fault``), decided at the physics rate and carried by the frames' incidents.
* DAC, drivable-area compliance: 0 if the ego's footprint ever left the carriageway, i.e. went
  over the road's right edge (our lane's right line; the left one is the centre line). From the
  frames: the ego is out of its lane (``in_own_lane`` false) on the right of its lane centre.
* TRC, traffic-rule compliance (NAVSIM's traffic-light compliance, with stop signs): 0 after a
  red-light or a stop-line violation.
* MP, making progress (nuPlan's closed-loop multiplier): 0 if EP < 0.2 -- without it a car that
  never drives breaks nothing and scores 11/16.

Weighted average (each in [0, 1]):

* EP, ego progress: route distance driven over the scored window / the expert's in the same time
  on the same seed (``scoring.reference``), capped at 1; 1 when the expert itself gets < 5 m.
* TTC within bound: share of the run's 4 s windows without a NAVSIM time-to-collision conflict
  (:func:`ttc_conflicts`: the ego, keeping its velocity, overlapping a road user's actual future
  footprint within 1 s). The world's ``min_ttc_s`` (both at constant velocity) is reported beside
  it; extrapolating the other's velocity too reads a drifting oncoming car as a head-on crash.
* LK, lane keeping: 1 without a lane departure (a footprint corner over a lane line), else 0.
* C, comfort: share of the run's 4 s windows in which longitudinal / lateral acceleration,
  longitudinal jerk, jerk magnitude, yaw rate and yaw acceleration stay within NAVSIM's bounds.
* DDC, driving-direction compliance: NAVSIM's rule on the route distance driven with the ego's
  rear axle in the oncoming lane within any 1 s: < 2 m -> 1, < 6 m -> 0.5, else 0.

Each sub-metric is its own function of the frames; :func:`pdm_score` is the one place that
combines them. A run is *clean* by ``sim.metrics.clean_checks`` (the world's rule: no at-fault
collision, lane departure, stop-line or red-light violation, no stall > 10 s while the expert
would drive), which the demo report, the soak and the evaluator share.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from minipamayo_ros.scoring.frames import DECIMALS, SceneFrame
from minipamayo_ros.scoring.reference import expert_progress
from minipamayo_ros.sim.metrics import MAX_STALL_S, Incident, clean_checks

#: the combination (NAVSIM names in comments)
MULTIPLIERS = ("no_at_fault_collision", "drivable_area_compliance", "traffic_rule_compliance",
               "making_progress")
WEIGHTS: dict[str, float] = {
    "ego_progress": 5.0,          # EP
    "ttc_within_bound": 5.0,      # TTC
    "lane_keeping": 2.0,          # LK (EPDMS)
    "comfort": 2.0,               # C
    "driving_direction": 2.0,     # DDC (a weighted metric in NAVSIM v1, a multiplier in EPDMS)
}

TTC_HORIZON = (0.0, 0.3, 0.6, 0.9)  # [s] NAVSIM's TTC: the ego's footprint this far ahead in time
TTC_AHEAD_DEG = 30.0              # nuPlan's is_agent_ahead / is_agent_behind cone half-angle [deg]
TTC_MOVING_MPS = 5e-3             # [m/s] NAVSIM: a standing ego has no TTC conflict
MIN_PROGRESS_RATIO = 0.2          # nuPlan's ego_is_making_progress multiplier
PROGRESS_MIN_REFERENCE = 5.0      # [m] below this the expert did not move: EP = 1 (NAVSIM)
DDC_WINDOW = 1.0                  # [s]
DDC_THRESHOLDS = (2.0, 6.0)       # [m] compliant below the first, half below the second
SCORE_WINDOW = 4.0                # [s] NAVSIM's horizon: TTC and comfort are judged per window
COMFORT_SAMPLE = 0.1              # [s] signals resampled at NAVSIM's 10 Hz
#: [s] Savitzky-Golay windows (5 and 9 samples): of the accelerations; of the jerks and yaw rates.
#: NAVSIM smooths its 4 s plans over 0.8 / 1.5 s, which here hides a 1 Hz +-0.6 m/s speed wobble
#: (jerk 24 m/s^3 read as 1.7); these pass it (read as 7) and still leave the expert's drive
#: comfortable in most windows (docs/closed-loop-evaluation.md)
SMOOTHING_ACCEL, SMOOTHING_JERK = 0.5, 0.8
#: NAVSIM's bounds (``pdm_comfort_metrics.py``, from nuPlan)
LON_ACCEL = (-4.05, 2.40)         # [m/s^2]
MAX_LAT_ACCEL = 4.89              # [m/s^2]
MAX_LON_JERK = 4.13               # [m/s^3]
MAX_JERK = 8.37                   # [m/s^3] of the acceleration magnitude
MAX_YAW_RATE = 0.95               # [rad/s]
MAX_YAW_ACCEL = 1.93              # [rad/s^2]


# --------------------------------------------------------------------------- the frames' facts
def final_metrics(frames: Sequence[SceneFrame]) -> Mapping[str, float]:
    """The world's cumulative per-run facts at the last frame (``EpisodeMetrics``)."""
    return frames[-1].metrics if frames else {}


def incidents(frames: Sequence[SceneFrame]) -> list[Incident]:
    """Every incident of the frames, in time order."""
    return [i for f in frames for i in f.incidents]


def at_fault_collisions(frames: Sequence[SceneFrame]) -> list[Incident]:
    """The contacts that were the ego's fault (who: ``agent_kind`` / ``agent_role`` / id)."""
    return [i for i in incidents(frames) if i.kind == "collision" and i.at_fault]


def missing_incidents(frames: Sequence[SceneFrame]) -> int:
    """Collisions and red-light violations the world counted but no frame carried (a frame lost in
    transport; 0 on a complete record)."""
    m = final_metrics(frames)
    counted = int(m.get("collisions", 0) or 0) + int(m.get("red_light_violations", 0) or 0)
    got = sum(1 for i in incidents(frames) if i.kind in ("collision", "red_light"))
    return max(0, counted - got)


def off_road(frame: SceneFrame) -> bool:
    """The ego's footprint is over the road's right edge (out of its lane on the right)."""
    ego = frame.scene.ego
    return not ego.in_own_lane and ego.d < 0.0


def drivable_area_departures(frames: Sequence[SceneFrame]) -> int:
    """Excursions over the road's edge (consecutive off-road frames count once)."""
    out, before = 0, False
    for f in frames:
        now = off_road(f)
        out += now and not before
        before = now
    return out


def oncoming_lane_distance(frames: Sequence[SceneFrame], window: float = DDC_WINDOW) -> float:
    """[m] the most route distance driven within any ``window`` s with the rear axle in the
    oncoming lane (``d`` over the centre line)."""
    if len(frames) < 2:
        return 0.0
    t = np.array([f.time for f in frames])
    s = np.array([f.scene.ego.s for f in frames])
    d = np.array([f.scene.ego.d for f in frames])
    lw = frames[0].scene.lane_width
    step = np.abs(np.diff(s)) * (d[1:] > lw / 2)
    cum = np.concatenate(([0.0], np.cumsum(step)))
    start = np.searchsorted(t, t - window - 1e-9)
    return float(np.max(cum - cum[start])) if len(cum) else 0.0


def ego_progress(frames: Sequence[SceneFrame], start: float | None = None) -> float:
    """[m] route distance of the ego from ``start`` (episode time; default the first frame) to
    the last frame."""
    if not frames:
        return 0.0
    t = np.array([f.time for f in frames])
    s = np.array([f.scene.ego.s for f in frames])
    s0 = float(np.interp(start, t, s)) if start is not None else float(s[0])
    return max(0.0, float(s[-1]) - s0)


def failures(frames: Sequence[SceneFrame]) -> list[dict[str, Any]]:
    """When each clean-run check first failed (and why), in time order: ``{"time", "check",
    "what"}``; the moments a failure's bird's-eye snapshot shows."""
    out: list[dict[str, Any]] = []
    for i in incidents(frames):
        if i.kind == "collision" and i.at_fault:
            out.append({"time": i.time, "check": "no_at_fault_collision",
                        "what": f"at-fault collision with {i.agent_role or i.agent_kind} {i.agent_id} "
                                f"at {i.ego_speed:.1f} m/s"})
        elif i.kind == "red_light":
            out.append({"time": i.time, "check": "no_red_light_violation",
                        "what": f"red light run at {i.ego_speed:.1f} m/s"})
    counters = (("lane_departures", "no_lane_departure", "lane departure"),
                ("stop_line_violations", "no_stop_line_violation", "stop line crossed without stopping"))
    for key, check, what in counters:
        before = 0.0
        for f in frames:
            now = float(f.metrics.get(key, 0) or 0)
            if now > before:
                out.append({"time": f.time, "check": check, "what": what})
            before = now
    stall = next((f for f in frames if float(f.metrics.get("longest_stall_s", 0) or 0) > MAX_STALL_S), None)
    if stall is not None:
        out.append({"time": stall.time - MAX_STALL_S, "check": "no_stall",
                    "what": f"standing for > {MAX_STALL_S:g} s while the expert would drive"})
    return sorted(out, key=lambda x: x["time"])


def _box_overlaps(box: tuple[float, float, float, float, float], others: NDArray[np.float64]
                  ) -> NDArray[np.bool_]:
    """Separating-axis test of one box ``(x, y, yaw, length, width)`` against ``others`` (N, 5)."""
    x, y, yaw, length, width = box
    c, s = math.cos(yaw), math.sin(yaw)
    oc, os_ = np.cos(others[:, 2]), np.sin(others[:, 2])
    dx, dy = others[:, 0] - x, others[:, 1] - y
    ohl, ohw = others[:, 3] / 2, others[:, 4] / 2
    separated = np.zeros(len(others), dtype=bool)
    for ax, ay, own in ((c, s, length / 2), (-s, c, width / 2)):          # the ego's axes
        reach = own + ohl * np.abs(oc * ax + os_ * ay) + ohw * np.abs(-os_ * ax + oc * ay)
        separated |= np.abs(dx * ax + dy * ay) > reach
    for bx, by, theirs in ((oc, os_, ohl), (-os_, oc, ohw)):              # the others' axes
        reach2 = theirs + length / 2 * np.abs(c * bx + s * by) + width / 2 * np.abs(-s * bx + c * by)
        separated |= np.abs(dx * bx + dy * by) > reach2
    return ~separated


def ttc_conflicts(frames: Sequence[SceneFrame]) -> list[tuple[float, int]]:
    """(time, agent id) of each frame at which the ego, keeping its velocity, would overlap a road
    user's *actual* footprint within ~1 s (NAVSIM's time-to-collision test: the ego at +0, 0.3, 0.6,
    0.9 s against the agents of the frames at those times). Counted for agents ahead (within 30 deg
    of the ego's heading), or not behind while the ego is out of its lane; never for a standing
    ego or an agent it already touched (that is NC's)."""
    if not frames:
        return []
    t = np.array([f.time for f in frames])
    touched: set[int] = set()
    out = []
    cone = math.cos(math.radians(TTC_AHEAD_DEG))
    for f in frames:
        touched |= {i.agent_id for i in f.incidents if i.kind == "collision"}
        ego = f.scene.ego
        if ego.speed < TTC_MOVING_MPS:
            continue
        c, s = math.cos(ego.yaw), math.sin(ego.yaw)
        hit = None
        for dt in TTC_HORIZON:
            later = frames[int(np.clip(np.searchsorted(t, f.time + dt - 1e-6), 0, len(frames) - 1))]
            agents = [a for a in later.scene.agents if a.id not in touched]
            if not agents:
                continue
            boxes = np.array([(a.x, a.y, a.yaw, a.length, a.width) for a in agents])
            ego_box = (ego.x + c * ego.speed * dt, ego.y + s * ego.speed * dt, ego.yaw, ego.length, ego.width)
            rel = boxes[:, :2] - (ego.x, ego.y)
            along = (rel[:, 0] * c + rel[:, 1] * s) / np.maximum(np.hypot(rel[:, 0], rel[:, 1]), 1e-9)
            counted = (along > cone) if ego.in_own_lane else (along > -cone)
            overlap = _box_overlaps(ego_box, boxes) & counted
            if overlap.any():
                hit = agents[int(np.argmax(overlap))].id
                break
        if hit is not None:
            out.append((f.time, hit))
    return out


def window_share(times: NDArray[np.float64], ok: NDArray[np.bool_], start: float,
                 window: float = SCORE_WINDOW) -> float:
    """Share of the ``window``-s windows from ``start`` (the last one if it holds >= 1 s of
    samples) in which every sample is ``ok`` (NAVSIM judges 4 s scenes; a run is many)."""
    keep = times >= start - 1e-9
    if keep.sum() < 2:
        return 1.0
    t, ok = times[keep], ok[keep]
    step = float(np.median(np.diff(t))) if len(t) > 1 else 1.0
    index = np.floor((t - t[0]) / window + 1e-9).astype(int)
    verdicts = [bool(ok[index == k].all()) for k in range(int(index[-1]) + 1)
                if (index == k).sum() * step >= min(1.0, window) - 1e-9]
    return float(np.mean(verdicts)) if verdicts else 1.0


def ttc_within_bound(frames: Sequence[SceneFrame], start: float | None = None) -> float:
    """TTC: share of the run's 4 s windows without a time-to-collision conflict."""
    if not frames:
        return 1.0
    t = np.array([f.time for f in frames])
    bad = {round(x, 6) for x, _ in ttc_conflicts(frames)}
    ok = np.array([round(x, 6) not in bad for x in t])
    return window_share(t, ok, t[0] if start is None else start)


# --------------------------------------------------------------------------- comfort
def _savgol(y: NDArray[np.float64], dt: float, half: int, deriv: int, order: int = 2) -> NDArray[np.float64]:
    """``deriv``-th derivative of ``y`` by a local polynomial fit over +-``half`` samples
    (Savitzky-Golay; the first and last ``half`` samples from the fit of the first / last full
    window, like scipy's ``mode="interp"``: padding would put a kink, i.e. jerk, at the ends)."""
    half = min(half, (len(y) - 1) // 2)
    if half < 1 or order >= 2 * half + 1:
        return np.zeros_like(y)
    k = np.arange(-half, half + 1, dtype=np.float64)
    pinv = np.linalg.pinv(np.vander(k, order + 1, increasing=True))   # (order+1, window)
    out = np.convolve(y, (pinv[deriv] * math.factorial(deriv))[::-1], mode="same")
    for ends, centre in ((slice(0, half), half), (slice(len(y) - half, len(y)), len(y) - 1 - half)):
        poly = pinv @ y[centre - half:centre + half + 1]                # coefficients in k
        at = np.arange(ends.start, ends.stop) - centre
        out[ends] = sum(poly[j] * math.perm(j, deriv) * at ** (j - deriv)
                        for j in range(deriv, order + 1))
    return out / dt**deriv


@dataclass(frozen=True)
class ComfortSignals:
    """Ego motion at ``COMFORT_SAMPLE`` (arrays over time)."""

    t: NDArray[np.float64]
    lon_accel: NDArray[np.float64]
    lat_accel: NDArray[np.float64]
    lon_jerk: NDArray[np.float64]
    jerk: NDArray[np.float64]
    yaw_rate: NDArray[np.float64]
    yaw_accel: NDArray[np.float64]

    def within_bounds(self) -> NDArray[np.bool_]:
        """Per sample: every signal within NAVSIM's bounds."""
        return ((self.lon_accel > LON_ACCEL[0]) & (self.lon_accel < LON_ACCEL[1])
                & (np.abs(self.lat_accel) < MAX_LAT_ACCEL) & (np.abs(self.lon_jerk) < MAX_LON_JERK)
                & (np.abs(self.jerk) < MAX_JERK) & (np.abs(self.yaw_rate) < MAX_YAW_RATE)
                & (np.abs(self.yaw_accel) < MAX_YAW_ACCEL))


def comfort_signals(frames: Sequence[SceneFrame]) -> ComfortSignals:
    """Accelerations, jerks and yaw rates of the ego from its speed and heading in the frames."""
    t_f = np.array([f.time for f in frames])
    if len(t_f) < 2:
        z = np.zeros(len(t_f))
        return ComfortSignals(t_f, z, z, z, z, z, z)
    t = np.arange(t_f[0], t_f[-1] + 1e-9, COMFORT_SAMPLE)
    v = np.interp(t, t_f, [f.scene.ego.speed for f in frames])
    yaw = np.interp(t, t_f, np.unwrap([f.scene.ego.yaw for f in frames]))
    dt = COMFORT_SAMPLE
    h1, h2 = (int(round(w / dt / 2)) for w in (SMOOTHING_ACCEL, SMOOTHING_JERK))
    lon = _savgol(v, dt, h1, 1)
    yaw_rate = _savgol(yaw, dt, h2, 1)
    lat = v * yaw_rate
    return ComfortSignals(t, lon, lat, _savgol(lon, dt, h2, 1), _savgol(np.hypot(lon, lat), dt, h2, 1),
                          yaw_rate, _savgol(yaw, dt, h2, 2, order=3))


def comfort(frames: Sequence[SceneFrame], start: float | None = None) -> float:
    """C: share of the run's 4 s windows from ``start`` (episode time; default the first frame)
    with every signal within bounds. The signals are derived from all the frames, so that the
    window's edges are not edges of the derivatives."""
    sig = comfort_signals(frames)
    if len(sig.t) < 2:
        return 1.0
    return window_share(sig.t, sig.within_bounds(), sig.t[0] if start is None else start)


# --------------------------------------------------------------------------- sub-scores
def no_at_fault_collision(at_fault: Sequence[Incident]) -> float:
    """NC: 0 after hitting a road user at fault, 0.5 after only static obstacles, else 1."""
    if any(i.agent_kind != "obstacle" for i in at_fault):
        return 0.0
    return 0.5 if at_fault else 1.0


def drivable_area_compliance(frames: Sequence[SceneFrame]) -> float:
    """DAC: 0 if the ego ever left the carriageway."""
    return 0.0 if drivable_area_departures(frames) else 1.0


def traffic_rule_compliance(metrics: Mapping[str, float]) -> float:
    """TRC: 0 after a red-light or stop-line violation."""
    broken = (metrics.get("red_light_violations") or 0) + (metrics.get("stop_line_violations") or 0)
    return 0.0 if broken else 1.0


def progress_ratio(progress: float, reference: float) -> float:
    """EP: the ego's progress over the expert's, capped at 1 (1 if the expert got < 5 m)."""
    if reference < PROGRESS_MIN_REFERENCE:
        return 1.0
    return float(min(1.0, max(0.0, progress / reference)))


def making_progress(ratio: float) -> float:
    """nuPlan's multiplier: 0 if the ego made less than ``MIN_PROGRESS_RATIO`` of the expert's
    progress (a car that crawls or waits scores nothing, whatever else it did not break)."""
    return 1.0 if ratio >= MIN_PROGRESS_RATIO else 0.0


def lane_keeping(metrics: Mapping[str, float]) -> float:
    """LK: 1 without a lane departure."""
    return 0.0 if (metrics.get("lane_departures") or 0) else 1.0


def driving_direction(oncoming_m: float) -> float:
    """DDC from the worst 1-s distance in the oncoming lane (NAVSIM's thresholds)."""
    if oncoming_m < DDC_THRESHOLDS[0]:
        return 1.0
    return 0.5 if oncoming_m < DDC_THRESHOLDS[1] else 0.0


def pdm_score(sub: Mapping[str, float]) -> float:
    """The combination: product of the multipliers times the weighted average (module doc)."""
    multiplier = math.prod(sub[k] for k in MULTIPLIERS)
    weighted = sum(w * sub[k] for k, w in WEIGHTS.items()) / sum(WEIGHTS.values())
    return multiplier * weighted


# --------------------------------------------------------------------------- one run
@dataclass(frozen=True)
class RunScore:
    """Everything the score of one run rests on (JSON-ready through :meth:`as_dict`)."""

    seed: int
    scenario: str
    episode: int
    start_s: float                 # [s] episode time the scored window starts (the stack took over)
    end_s: float                   # [s] episode time of the last frame
    frames: int
    # facts
    collisions: int                # every contact (at fault or not)
    at_fault: list[dict[str, Any]]  # the at-fault contacts: time, agent id / kind / role, reason
    not_at_fault: list[dict[str, Any]]
    lane_departures: int
    drivable_area_departures: int
    red_light_violations: int
    stop_line_violations: int
    min_ttc_s: float               # the world's (both at constant velocity), for the TTC histogram
    ttc_conflicts: list[dict[str, Any]]  # NAVSIM TTC conflicts: the first frame per agent (time, id)
    progress_m: float
    reference_progress_m: float    # the expert's in the same time (scoring.reference)
    oncoming_lane_max_m: float     # [m] worst 1 s in the oncoming lane
    longest_stall_s: float
    longest_standstill_s: float
    missing_incidents: int         # counted by the world, not carried by any frame (transport loss)
    failures: list[dict[str, Any]]  # when each clean-run check failed (``failures``)
    # sub-scores and the score
    subscores: dict[str, float] = field(default_factory=dict)
    score: float = 0.0
    checks: dict[str, bool] = field(default_factory=dict)   # sim.metrics.clean_checks

    @property
    def clean(self) -> bool:
        return all(self.checks.values())

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "clean": self.clean}


def episode_frames(frames: Sequence[SceneFrame], episode: int | None = None) -> list[SceneFrame]:
    """The frames of one episode (default: the last one seen), in time order."""
    if not frames:
        return []
    ep = frames[-1].episode if episode is None else episode
    return sorted((f for f in frames if f.episode == ep), key=lambda f: f.time)


def score_run(frames: Sequence[SceneFrame], reference_progress: float, start: float | None = None,
              end: float | None = None) -> RunScore:
    """Score the frames of one episode in the window [``start``, ``end``] (episode time; default
    all). ``reference_progress`` [m]: the expert's route distance in ``end - start`` seconds
    (``scoring.reference.expert_progress``). Facts counted by the world hold for the episode up
    to the window's last frame."""
    if not frames:
        raise ValueError("no scene frames to score")
    fs = [f for f in episode_frames(frames) if end is None or f.time <= end + 1e-9]
    t0 = fs[0].time if start is None else max(start, fs[0].time)
    window = [f for f in fs if f.time >= t0 - 1e-9] or fs[-1:]
    m = final_metrics(fs)
    hits = [i for i in incidents(fs) if i.kind == "collision"]
    fault = [i for i in hits if i.at_fault]
    progress = ego_progress(fs, t0)
    oncoming = oncoming_lane_distance(window)
    ratio = progress_ratio(progress, reference_progress)
    conflicts: dict[int, float] = {}
    for time, agent in ttc_conflicts([f for f in fs if f.time >= t0 - 1e-9]):
        conflicts.setdefault(agent, time)
    sub = {
        "no_at_fault_collision": no_at_fault_collision(fault),
        "drivable_area_compliance": drivable_area_compliance(fs),
        "traffic_rule_compliance": traffic_rule_compliance(m),
        "making_progress": making_progress(ratio),
        "ego_progress": ratio,
        "ttc_within_bound": ttc_within_bound(fs, t0),
        "lane_keeping": lane_keeping(m),
        "comfort": comfort(fs, t0),
        "driving_direction": driving_direction(oncoming),
    }
    first = fs[0]
    return RunScore(
        seed=first.world.seed, scenario=first.world.scenario, episode=first.episode, start_s=t0,
        end_s=fs[-1].time, frames=len(window), collisions=int(m.get("collisions", len(hits)) or 0),
        at_fault=[i.as_dict() for i in fault], not_at_fault=[i.as_dict() for i in hits if not i.at_fault],
        lane_departures=int(m.get("lane_departures", 0) or 0),
        drivable_area_departures=drivable_area_departures(fs),
        red_light_violations=int(m.get("red_light_violations", 0) or 0),
        stop_line_violations=int(m.get("stop_line_violations", 0) or 0),
        min_ttc_s=float(m.get("min_ttc_s", math.inf)),
        ttc_conflicts=[{"time": t, "agent_id": a} for a, t in sorted(conflicts.items(), key=lambda x: x[1])],
        progress_m=progress,
        reference_progress_m=reference_progress, oncoming_lane_max_m=oncoming,
        longest_stall_s=float(m.get("longest_stall_s", 0.0) or 0.0),
        longest_standstill_s=float(m.get("longest_standstill_s", 0.0) or 0.0),
        missing_incidents=missing_incidents(fs), failures=failures(fs), subscores=sub, score=pdm_score(sub),
        checks=clean_checks(dict(m)))


def score_window(frames: Sequence[SceneFrame], start_stamp: float | None = None,
                 end_stamp: float | None = None) -> tuple[float, float]:
    """[s] node clock: the window :func:`score_frames` covers in the last episode of ``frames`` for
    these bounds -- from ``start_stamp``, or the first frame if later (or None), to the last frame
    at or before ``end_stamp``. What a run states as its window: another recording holding these
    frames (a bag that began earlier or stopped later) scores the same over it, whereas the bounds
    given may leave out a frame one recording has and the other has not (the demo's end: its last
    ground-truth sample, whose tick's frame its recorder may not have taken yet)."""
    fs = episode_frames(frames)
    if not fs:
        raise ValueError("no scene frames to score")
    start = fs[0].stamp if start_stamp is None else max(fs[0].stamp, start_stamp)
    within = [f.stamp for f in fs if end_stamp is None or f.stamp <= end_stamp + 1e-9]
    return start, within[-1] if within else fs[0].stamp


def score_frames(frames: Sequence[SceneFrame], start_stamp: float | None = None,
                 end_stamp: float | None = None) -> RunScore:
    """The score of the last episode in ``frames``, in the window [``start_stamp``, ``end_stamp``]
    (node clock, as the frames' ``stamp``; default: all of it), against the expert's progress in
    the window's length: the one entry point of the evaluator, the demo report, the soak and a bag."""
    fs = episode_frames(frames)
    if not fs:
        raise ValueError("no scene frames to score")
    # node clock - episode time, and the start in episode time, at the frames' resolution: the same
    # numbers whichever frame a recording begins with (the differences of rounded stamps and times
    # vary in the last bit: 1.15 - 0.15 != 1.0)
    offset = round(fs[0].stamp - fs[0].time, DECIMALS)
    start = fs[0].time if start_stamp is None else max(fs[0].time, round(start_stamp - offset, DECIMALS))
    within = [f.time for f in fs if end_stamp is None or f.time <= end_stamp - offset + 1e-9]
    end = within[-1] if within else fs[0].time     # the window's last frame: what both paths see
    return score_run(fs, expert_progress(fs[0].world, max(0.0, end - start)), start, end)
