"""The text node's ROS-free core: event detection, the one-slot drop policy, token-by-token generation,
process priority, parameters. No rclpy here."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO_ROOT
from minipamayo_ros import language
from minipamayo_ros.events import Event
from minipamayo_ros.inference import BackendOptions
from minipamayo_ros.params import ParameterError, build_config, load_node_yaml
from minipamayo_ros.text.config import TextConfig
from minipamayo_ros.text.events import DetectorSettings, EventDetector, Threshold, features
from minipamayo_ros.text.generator import TextModelError, load_text_generator
from minipamayo_ros.text.scheduler import ExplanationRequest, ExplanationSlot, ExplanationWorker
from minipamayo_ros.trajectory import NUM_WAYPOINTS, WAYPOINT_DT, PlannedTrajectory

STEP_MANIFEST = REPO_ROOT / "engines" / "minipamayo-tiny-text-step.manifest.json"
FULL_MANIFEST = REPO_ROOT / "engines" / "minipamayo-tiny-text.manifest.json"


def arc(stamp: float, curvature: float = 0.0, v0: float = 5.0, v1: float | None = None,
        uncertainty: float = 0.05, seq: int = 0) -> PlannedTrajectory:
    """A plan along a circular arc of ``curvature`` with speed going linearly v0 -> v1."""
    v1 = v0 if v1 is None else v1
    t = WAYPOINT_DT * np.arange(1, NUM_WAYPOINTS + 1)
    speeds = v0 + (v1 - v0) * t / t[-1]
    s = np.cumsum(speeds * WAYPOINT_DT)
    if abs(curvature) < 1e-9:
        pts = np.stack((s, np.zeros_like(s)), axis=1)
    else:
        pts = np.stack((np.sin(curvature * s) / curvature, (1 - np.cos(curvature * s)) / curvature), axis=1)
    return PlannedTrajectory(stamp=stamp, points=pts, speeds=speeds, uncertainty=uncertainty, sequence=seq)


def default_detector() -> EventDetector:
    return EventDetector(TextConfig().detector_settings())


def run(detector: EventDetector, plans: list[PlannedTrajectory]) -> list:
    return [e for p in plans for e in detector.update(p)]


# --- event detection ------------------------------------------------------------------------------
def test_features_of_synthetic_plans() -> None:
    f = features(arc(0.0, curvature=0.05, v0=5.0, v1=3.0, uncertainty=0.2))
    assert f[Event.CURVE] == pytest.approx(0.05, rel=1e-3)  # a circle's chord gives its curvature
    assert f[Event.BRAKE] == pytest.approx((4.9 - 3.0) / 2.0)  # first waypoint is 0.1 s in
    assert f[Event.STOP] == pytest.approx(0.5 - 3.0)
    assert f[Event.UNCERTAIN] == pytest.approx(0.2)
    assert features(arc(0.0, curvature=0.3, v0=0.05))[Event.CURVE] == 0.0  # crawling: no curvature


@pytest.mark.parametrize(("kind", "calm", "hot"), [
    (Event.CURVE, {}, {"curvature": 0.05}),
    (Event.BRAKE, {}, {"v0": 5.0, "v1": 2.0}),
    (Event.STOP, {"v0": 1.5}, {"v0": 1.5, "v1": 0.0}),  # gentle: no brake event
    (Event.UNCERTAIN, {}, {"uncertainty": 0.3}),
])
def test_each_event_fires_once_per_episode(kind: Event, calm: dict, hot: dict) -> None:
    d = default_detector()
    stream = ([arc(0.1 * i, seq=i, **calm) for i in range(20)]
              + [arc(0.1 * i, seq=i, **hot) for i in range(20, 60)]
              + [arc(0.1 * i, seq=i, **calm) for i in range(60, 80)])
    events = run(d, stream)
    assert [(e.kind, e.sequence) for e in events] == [(kind, 20)]
    assert events[0].stamp == pytest.approx(2.0)
    assert not d.active(kind)


def test_hysteresis_holds_for_a_feature_hovering_around_the_threshold() -> None:
    d = default_detector()
    # curvature alternates 0.025 / 0.035 around curve_on=0.03 but stays above curve_off=0.015
    stream = [arc(0.1 * i, curvature=0.035 if i % 2 else 0.025, seq=i) for i in range(1, 200)]
    assert [e.kind for e in run(d, stream)] == [Event.CURVE]
    # without the band (off == on) the same stream fires at every other frame (limited by min_interval=0)
    flappy = EventDetector(DetectorSettings({Event.CURVE: Threshold(0.03, 0.03)}, min_interval=0.0))
    assert len(run(flappy, stream)) == 100  # every odd frame of 1..199


def test_min_interval_per_kind() -> None:
    bands = {Event.CURVE: Threshold(0.03, 0.015), Event.BRAKE: Threshold(1.0, 0.4)}
    d = EventDetector(DetectorSettings(bands, min_interval=3.0))
    curve_at = {10, 20, 45}  # onsets at 1.0 s, 2.0 s (suppressed: 1 s later), 4.5 s (3.5 s later: fires)
    stream = []
    for i in range(60):
        hot = any(0 <= i - c < 3 for c in curve_at)
        brake = i in (21, 22)  # another kind is not limited by the curve's interval
        stream.append(arc(0.1 * i, curvature=0.05 if hot else 0.0, v0=5.0, v1=2.0 if brake else 5.0, seq=i))
    events = run(d, stream)
    assert [(e.kind, e.sequence) for e in events] == [(Event.CURVE, 10), (Event.BRAKE, 21), (Event.CURVE, 45)]
    assert d.counts()["suppressed_curve"] == 1 and d.counts()["events_curve"] == 2


def test_replayed_or_reordered_trajectories_do_not_fire_again() -> None:
    d = default_detector()
    hot = arc(1.0, curvature=0.05, seq=10)
    assert len(d.update(hot)) == 1
    assert d.update(hot) == [] and d.update(arc(0.5, curvature=0.05, seq=5)) == []


def test_situation_priority_conditions_the_caption() -> None:
    d = default_detector()
    (curve,) = d.update(arc(1.0, curvature=0.05, seq=1))
    assert curve.situation == Event.CURVE
    events = d.update(arc(1.1, curvature=0.05, v0=3.0, v1=0.0, seq=2))  # stop (and brake) while curving
    assert {e.kind for e in events} == {Event.STOP, Event.BRAKE}
    assert all(e.situation == Event.STOP for e in events)  # STOP > CURVE > BRAKE
    (unc,) = d.update(arc(1.2, v0=5.0, uncertainty=0.5, seq=3))
    assert unc.kind == Event.UNCERTAIN and unc.situation == Event.NONE  # uncertainty is no situation


# --- drop policy -----------------------------------------------------------------------------------
def _req(stamp: float, seq: int = 0) -> ExplanationRequest:
    return ExplanationRequest(Event.CURVE, stamp, seq, Event.CURVE)


def test_event_storm_counts_add_up_and_the_slot_never_holds_more_than_one() -> None:
    rng = np.random.default_rng(0)
    slot: ExplanationSlot[ExplanationRequest] = ExplanationSlot(0.5, lambda r: r.stamp)
    now, taken = 0.0, []
    for i in range(5000):
        now += rng.exponential(0.004)  # ~250 events/s
        slot.offer(_req(now - rng.uniform(0.0, 0.7), i))
        assert slot.waiting <= 1
        if slot.running and rng.random() < 0.05:
            slot.finished(rng.choice(["generated", "generated", "abandoned", "failed", "no_context"]))
        if rng.random() < 0.3:
            r = slot.take(now)
            if r is not None:
                taken.append(r.sequence)
        c = slot.counts
        assert c.requested == c.replaced + c.dropped_stale + c.started + slot.waiting
        assert c.started == c.generated + c.abandoned + c.failed + int(slot.running)
        assert c.no_context <= c.failed
    c = slot.counts
    assert c.replaced > 1000 and c.dropped_stale > 10 and c.generated > 10 and c.abandoned > 0
    assert 0 < c.no_context < c.failed
    assert taken == sorted(taken)  # latest wins: nothing older than a started request starts later


def test_latest_wins_and_stale_requests_are_dropped_before_generation() -> None:
    slot: ExplanationSlot[ExplanationRequest] = ExplanationSlot(1.0, lambda r: r.stamp)
    slot.offer(_req(10.0, 1))
    assert slot.take(10.1).sequence == 1  # type: ignore[union-attr]
    slot.offer(_req(10.2, 2))
    assert slot.offer(_req(10.3, 3)) is True  # coalesced while running: 3 replaces 2
    assert slot.take(10.4) is None  # still running
    slot.finished("generated")
    assert slot.take(11.31) is None  # 3 is 1.01 s old now: dropped, not started
    assert slot.counts.as_dict() == {"requested": 3, "replaced": 1, "dropped_stale": 1, "started": 1,
                                     "generated": 1, "abandoned": 0, "failed": 0, "no_context": 0}
    with pytest.raises(RuntimeError):
        slot.finished("generated")


def test_max_rate_spaces_generation_starts_and_the_latest_request_still_wins() -> None:
    slot: ExplanationSlot[ExplanationRequest] = ExplanationSlot(1.0, lambda r: r.stamp, min_period=0.2)
    starts, now = [], 0.0
    for i in range(1000):  # requests every 1 ms, generations of 2 ms: back-to-back without the limit
        now = i * 0.001
        slot.offer(_req(now, i))
        if slot.running and now - starts[-1][0] >= 0.002:
            slot.finished("generated")
        r = slot.take(now)
        if r is not None:
            starts.append((now, r.sequence))
    gaps = np.diff([t for t, _ in starts])
    assert len(starts) == 5 and np.all(gaps >= 0.2 - 1e-9) and np.all(gaps < 0.2 + 0.0011)
    assert all(seq == round(t * 1000) for t, seq in starts)  # the newest request at each start
    assert slot.next_start(now) == starts[-1][0] + 0.2
    c = slot.counts
    assert c.requested == c.replaced + c.dropped_stale + c.started + slot.waiting and c.started == 5
    with pytest.raises(ValueError, match="min_period"):
        ExplanationSlot(1.0, lambda r: r.stamp, min_period=-1.0)


def test_rate_limit_runs_on_the_steady_clock_event_ages_on_the_ros_clock() -> None:
    """Under use_sim_time at 10x real time: the cap still spaces starts by min_period of the steady
    clock (it bounds CPU, not sim time), while an event's age is its stamp -> now on the ROS clock."""
    ros = {"now": 100.0}
    slot: ExplanationSlot[ExplanationRequest] = ExplanationSlot(
        1.0, lambda r: r.stamp, min_period=0.2, ros_clock=lambda: ros["now"])
    starts = []
    for i in range(100):  # 1 s of steady time in 10 ms steps; sim time runs 10x faster
        steady = i * 0.01
        ros["now"] = 100.0 + 10.0 * steady
        slot.offer(_req(ros["now"] - 0.05, i))  # a fresh event (50 ms old in sim time)
        if slot.running:
            slot.finished("generated")
        r, _ = slot.next_item(steady)
        if r is not None:
            starts.append(steady)
    assert len(starts) == 5 and np.all(np.diff(starts) >= 0.2 - 1e-9)  # 5/s of wall time, not 50
    slot.offer(_req(ros["now"] - 1.01, 999))  # 1.01 s old on the ROS clock: dropped, never started
    assert slot.next_item(starts[-1] + 0.2)[0] is None and slot.counts.dropped_stale == 1


def test_worker_coalesces_a_storm_never_runs_two_and_survives_errors() -> None:
    """The threaded worker: requests offered from another thread during slow generations are
    coalesced (the latest wins), one generation at a time, an exception counts as failed."""
    import threading
    import time

    slot: ExplanationSlot[ExplanationRequest] = ExplanationSlot(10.0, lambda r: r.stamp)
    running, overlap, done, errors = [0], [0], [], []
    lock = threading.Lock()

    def process(req: ExplanationRequest) -> str:
        with lock:
            running[0] += 1
            overlap[0] = max(overlap[0], running[0])
        time.sleep(0.02)
        with lock:
            running[0] -= 1
        done.append(req.sequence)
        if req.sequence % 7 == 0:
            raise RuntimeError("bad context")
        return "abandoned" if req.sequence % 5 == 0 else "generated"

    worker = ExplanationWorker(process, slot, lambda: 0.0, errors.append).start()
    for i in range(1, 301):
        worker.offer(_req(0.0, i))
        time.sleep(0.001)
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline and (worker.counts()[1] or worker.counts()[2]):
        time.sleep(0.01)
    worker.close()
    c, waiting, running_now = worker.counts()
    assert overlap[0] == 1 and waiting == 0 and not running_now
    assert c.requested == 300 and c.replaced > 200 and done[-1] == 300 and done == sorted(done)
    assert c.requested == c.replaced + c.dropped_stale + c.started and c.started == len(done)
    assert c.started == c.generated + c.abandoned + c.failed
    assert c.failed == sum(1 for s in done if s % 7 == 0) == len(errors)
    assert c.abandoned == sum(1 for s in done if s % 5 == 0 and s % 7)


# --- generation -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def generator():
    return load_text_generator(STEP_MANIFEST, BackendOptions(backend="onnxruntime"))


def test_step_generation_equals_the_fixed_length_graph_and_is_deterministic(generator) -> None:
    from minipamayo_ros.inference import create_backend, load_manifest

    full = create_backend(load_manifest(FULL_MANIFEST), BackendOptions(backend="onnxruntime"))
    rng = np.random.default_rng(1)
    for i in range(6):
        ctx = rng.normal(0.0, 1.0, generator.context_dim).astype(np.float32)
        event = [0, 1, 3, 4][i % 4]
        cap = generator.generate(ctx, event, max_tokens=32)
        again = generator.generate(ctx, event, max_tokens=32)
        want = full.infer({"context": ctx[None], "event": np.array([event], np.int64)})
        n = int(want["length"][0])
        assert cap.token_ids == again.token_ids and cap.text == again.text
        assert list(cap.token_ids) == want["tokens"][0, :n].tolist()
        assert cap.text == language.decode(want["tokens"][0]) and not cap.truncated and not cap.abandoned


def test_max_tokens_truncates_and_flags_it(generator) -> None:
    ctx = np.random.default_rng(2).normal(0.0, 1.0, generator.context_dim).astype(np.float32)
    full = generator.generate(ctx, 1, max_tokens=32)
    assert len(full.token_ids) >= 3 and not full.truncated
    cut = generator.generate(ctx, 1, max_tokens=2)
    assert cut.token_ids == full.token_ids[:2] and cut.truncated
    exact = generator.generate(ctx, 1, max_tokens=len(full.token_ids))  # ends exactly at the limit
    assert exact.token_ids == full.token_ids and not exact.truncated
    worst = generator.generate(ctx, 1, max_tokens=16, ignore_eos=True)  # benchmarks: always 16 steps
    assert len(worst.token_ids) == 16 and worst.token_ids[: len(full.token_ids)] == full.token_ids


def test_deadline_is_checked_between_tokens(generator) -> None:
    ticks = iter(np.arange(0.0, 10.0, 0.010))  # every clock read advances 10 ms
    slow = type(generator)(generator.backend, generator.context_dim, clock=lambda: float(next(ticks)))
    ctx = np.zeros(generator.context_dim, np.float32)
    cap = slow.generate(ctx, 1, max_tokens=32, max_generation_ms=25.0)
    assert cap.abandoned and not cap.truncated and 1 <= cap.steps <= 3
    assert math.isclose(cap.latency_ms, 10.0 * (cap.steps + 1), abs_tol=10.01)
    with pytest.raises(ValueError, match="context"):
        generator.generate(np.zeros(5, np.float32), 1, 24)


def test_wrong_model_kind_is_refused() -> None:
    with pytest.raises(TextModelError, match="text_step"):
        load_text_generator(FULL_MANIFEST, BackendOptions(backend="onnxruntime"))


# --- priority and parameters -------------------------------------------------------------------------
def test_lower_thread_priority_lowers_the_calling_thread_only() -> None:
    """The generation thread goes to SCHED_IDLE (else nice 19); the threads that exist already (the
    DDS threads in the node) keep their priority (docs/latency.md: a starved DDS thread stalls others)."""
    code = ("import threading, time, os\n"
            "t = threading.Thread(target=time.sleep, args=(1,)); t.start()\n"
            "from minipamayo_ros.realtime import lower_thread_priority\n"
            "r = lower_thread_priority()\n"
            "me = threading.get_native_id()\n"
            "others = [int(x) for x in os.listdir('/proc/self/task') if int(x) != me]\n"
            "def low(x):\n"
            "    idle = os.sched_getscheduler(x) == os.SCHED_IDLE\n"
            "    return idle or os.getpriority(os.PRIO_PROCESS, x) == 19\n"
            "print(r.policy.replace(' ', '_'), r.threads, low(me), any(low(x) for x in others),\n"
            "      len(others))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": f"{REPO_ROOT}:{os.environ.get('PYTHONPATH', '')}"})
    policy, changed, me_low, others_low, n_others = out.stdout.split()[-5:]
    assert policy in ("SCHED_IDLE", "nice_19") and changed == "1" and me_low == "True"
    assert others_low == "False" and int(n_others) >= 1


def test_config_yaml_equals_dataclass_defaults() -> None:
    values = load_node_yaml(REPO_ROOT / "config" / "text.yaml", "text")
    assert build_config(TextConfig, values) == TextConfig()
    assert set(values) == set(TextConfig.__dataclass_fields__)


@pytest.mark.parametrize(("values", "match"), [
    ({"curve_off": 0.05}, "curve_off"),
    ({"cpu_affinity": "1,x"}, "cpu_affinity"),
    ({"events": ["curve", "obstacle"]}, "events"),
    ({"max_tokens": 40}, "max_tokens"),
    ({"max_tokens": 8}, "max_tokens"),
])
def test_config_errors_name_the_parameter(values: dict, match: str) -> None:
    with pytest.raises(ParameterError, match=match):
        build_config(TextConfig, values)


# --- closed-loop quality scoring ------------------------------------------------------------------------
def test_quality_score_counts_exact_captions_within_one_second() -> None:
    from minipamayo_ros.evaluation.text_quality import EpisodeLog, ground_truth_events, score, token_accuracy

    curve, stop = "following gentle left curve", "stopping at stop line ahead"
    log = EpisodeLog(0)
    for i in range(100):  # 10 Hz: cruise, curve from 2.0 s, cruise, stop line from 6.0 s
        t = 0.1 * i
        label = (1, curve) if 20 <= i < 40 else (3, stop) if i >= 60 else (0, "keeping lane at cruise speed")
        log.expert.append((t, *label))
    assert [(round(t, 1), k) for t, k, _ in ground_truth_events(log.expert)] == [(2.0, 1), (6.0, 3)]
    log.explanations = [  # the curve explained 0.8 s late and right; the stop 1.5 s late (too late)
        {"stamp": 0.1 * 28, "event": "CURVE", "text": curve, "tokens": language.encode(curve)},
        {"stamp": 0.1 * 75, "event": "STOP", "text": stop, "tokens": language.encode(stop)},
        {"stamp": 0.1 * 30, "event": "BRAKE", "text": "braking to cruise speed",
         "tokens": language.encode("braking to cruise speed")}]
    log.explanations[1]["delay_s"] = 1.2  # ready too late
    s = score([log])
    # per event: curve right and in time, stop right but late, brake wrong (the expert said curve)
    assert s["events"] == 3 and s["exact_within_1s"] == pytest.approx(1 / 3)
    assert s["token_accuracy"] == pytest.approx(1 / 3)  # late: 0; "braking to cruise speed": no word in place
    assert s["per_expert_label"]["CURVE"]["events"] == 2
    assert s["per_event_kind"]["STOP"]["exact_within_1s"] == 0
    assert log.explanations[2]["expert_caption"] == curve and not log.explanations[2]["correct"]
    # recall of the expert's onsets: the curve (2.0 s) was explained at 2.8 s, the stop line (6.0 s) at 7.5 s
    r = s["expert_onsets"]
    assert r["events"] == 2 and r["exact_within_1s"] == 0.5
    assert r["per_kind"]["CURVE"]["exact_within_1s"] == 1.0
    assert token_accuracy([5, 6, 7], [5, 6, 8, 9]) == 0.5
