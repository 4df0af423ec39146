"""Policy core without ROS: decoding, latest-frame scheduling, model contract, output parsing, stats."""

from __future__ import annotations

import math
from dataclasses import replace

import cv2
import numpy as np
import pytest
from helpers.image_bytes import raw_bytes

from conftest import REPO_ROOT
from minipamayo_ros.geometry import Pose2D
from minipamayo_ros.inference import BackendOptions
from minipamayo_ros.io_contract import CONTRACT_VERSION
from minipamayo_ros.manifest import TensorSpec
from minipamayo_ros.params import ParameterError, build_config, load_node_yaml, param_specs
from minipamayo_ros.policy.config import PolicyConfig
from minipamayo_ros.policy.image_decode import (
    ENCODINGS,
    ImageError,
    compressed_to_rgb,
    raw_to_rgb,
)
from minipamayo_ros.policy.model_loader import PolicyModelError, check_policy_contract, load_policy
from minipamayo_ros.policy.outputs import OutputError, parse_policy_outputs
from minipamayo_ros.policy.pipeline import Frame, PipelineSettings, PolicyPipeline, Skip
from minipamayo_ros.policy.probe_model import build_probe_model, expected_outputs
from minipamayo_ros.policy.scheduler import LatestFrameScheduler, RateBudget
from minipamayo_ros.policy.stats import OK, WARN, PolicyStats, trajectory_latency
from minipamayo_ros.pose_history import OdometrySample
from minipamayo_ros.safety.trajectory_input import TrajectoryFields, TrajectoryLimits, check_trajectory
from minipamayo_ros.state_features import MAX_STANDING_TIME, StandstillClock


def _rgb(h: int = 48, w: int = 64) -> np.ndarray:
    rng = np.random.default_rng(1)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


# --- image decoding -------------------------------------------------------------------------------
#: a second, independent writer of each layout: OpenCV's own conversion from RGB (alpha 255)
_OPENCV_FROM_RGB = {"rgb8": None, "bgr8": cv2.COLOR_RGB2BGR, "rgba8": cv2.COLOR_RGB2RGBA,
                    "bgra8": cv2.COLOR_RGB2BGRA}


def _opencv_bytes(rgb: np.ndarray, encoding: str) -> bytes:
    code = _OPENCV_FROM_RGB[encoding]
    return (rgb if code is None else cv2.cvtColor(rgb, code)).tobytes()


@pytest.mark.parametrize("writer", [raw_bytes, _opencv_bytes], ids=["by-definition", "opencv"])
@pytest.mark.parametrize("encoding", [e for e in ENCODINGS if e != "mono8"])
def test_colour_encodings_decode_to_rgb(encoding: str, writer) -> None:
    """Bytes laid out per the encoding's definition (test/helpers/image_bytes.py, written without
    the decoder's table) or by OpenCV's own RGB -> encoding conversion decode to the original RGB
    pixels."""
    img = _rgb()
    out = raw_to_rgb(writer(img, encoding), 48, 64, encoding)
    assert out.shape == (48, 64, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, img)


@pytest.mark.parametrize(("encoding", "pixel"), [
    ("rgb8", b"\xff\x00\x00"), ("bgr8", b"\x00\x00\xff"),
    ("rgba8", b"\xff\x00\x00\x10"), ("bgra8", b"\x00\x00\xff\x10"),
])
def test_a_red_pixel_in_each_encoding_is_red(encoding: str, pixel: bytes) -> None:
    """One pure red pixel, bytes spelled out by hand: the model must see R=255, G=B=0."""
    np.testing.assert_array_equal(raw_to_rgb(pixel, 1, 1, encoding), [[[255, 0, 0]]])


def test_mono8_becomes_three_equal_channels() -> None:
    gray = _rgb()[..., 0].copy()
    out = raw_to_rgb(gray.tobytes(), 48, 64, "mono8")
    assert out.shape == (48, 64, 3)
    for c in range(3):
        np.testing.assert_array_equal(out[..., c], gray)


def test_row_padding_is_removed() -> None:
    img = _rgb(4, 5)
    padded = np.zeros((4, 5 * 3 + 7), np.uint8)
    padded[:, :15] = img.reshape(4, 15)
    padded[:, 15:] = 255  # padding must never reach the model
    np.testing.assert_array_equal(raw_to_rgb(padded.tobytes(), 4, 5, "rgb8", step=22), img)


@pytest.mark.parametrize(("data", "h", "w", "enc", "step", "match"), [
    (b"\0" * 12, 2, 2, "yuv422", 0, "unsupported encoding"),
    (b"\0" * 11, 2, 2, "rgb8", 0, "expected step \\* height = 12 B"),
    (b"\0" * 13, 2, 2, "rgb8", 0, "data has 13 B"),  # issue 13 defect 6: longer data was accepted
    (b"\0" * 24, 2, 2, "rgb8", 0, "data has 24 B"),
    (b"\0" * 12, 2, 2, "rgb8", 4, "shorter than"),
    (b"", 0, 2, "rgb8", 0, "empty image"),
])
def test_bad_raw_images_raise_clear_errors(data, h, w, enc, step, match) -> None:
    with pytest.raises(ImageError, match=match):
        raw_to_rgb(data, h, w, enc, step)


def test_png_and_jpeg_decode_to_rgb() -> None:
    img = _rgb()
    ok, png = cv2.imencode(".png", cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    assert ok
    np.testing.assert_array_equal(compressed_to_rgb(png.tobytes(), "png"), img)
    flat = np.zeros((32, 32, 3), np.uint8)
    flat[..., 0] = 200  # red: a channel swap would show up as blue
    ok, jpg = cv2.imencode(".jpg", cv2.cvtColor(flat, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
    out = compressed_to_rgb(jpg.tobytes(), "jpeg")
    assert abs(int(out[..., 0].mean()) - 200) <= 3 and out[..., 2].mean() < 5
    with pytest.raises(ImageError, match="could not decode"):
        compressed_to_rgb(b"not an image", "jpeg")


# --- scheduling ------------------------------------------------------------------------------------
def test_rate_budget_long_run_rate_never_exceeds_cap() -> None:
    budget = RateBudget(10.0, slack=0.25, now=0.0)
    rng = np.random.default_rng(0)
    starts = 0
    t = 0.0
    for _ in range(3000):  # 30 Hz camera with +-5 ms jitter for 100 s
        t += 1 / 30 + rng.uniform(-0.005, 0.005)
        if budget.can_start(t):
            budget.consume(t)
            starts += 1
    assert starts <= 10.0 * t + 1
    assert starts >= 9.0 * t  # and the jitter does not cost whole frames


def test_scheduler_30hz_camera_at_10hz_cap_runs_every_third_frame_on_arrival() -> None:
    s: LatestFrameScheduler[int] = LatestFrameScheduler(10.0, slack=0.25, now=0.0)
    started_at = []
    for i in range(90):
        t = i / 30.0
        s.offer(i, t)
        frame, wait = s.next_item(t)
        if frame is not None:
            assert frame == i  # never an older frame: it starts the moment it arrives
            started_at.append(i)
            s.done()
    assert started_at == list(range(0, 90, 3))
    assert s.counts.dropped_rate == 60 and s.counts.dropped_busy == 0


def test_rate_change_at_runtime_takes_effect() -> None:
    s: LatestFrameScheduler[int] = LatestFrameScheduler(10.0, slack=0.25, now=0.0)
    started = []
    for i in range(180):
        t = i / 30.0
        if i == 90:
            s.budget.set_rate(5.0, 0.25, t)
        s.offer(i, t)
        frame, _ = s.next_item(t)
        if frame is not None:
            started.append(frame)
            s.done()
    assert started[:30] == list(range(0, 90, 3))
    gaps = np.diff([f for f in started if f >= 96])
    assert np.all(gaps == 6)  # 30 Hz camera at a 5 Hz cap: every sixth frame


def test_scheduler_keeps_only_latest_frame_while_busy() -> None:
    s: LatestFrameScheduler[int] = LatestFrameScheduler(100.0, now=0.0)
    s.offer(0, 0.0)
    assert s.next_item(0.0)[0] == 0  # worker busy with frame 0
    for i in range(1, 51):  # burst during inference
        assert s.offer(i, 0.001 * i)
        assert s.next_item(0.001 * i)[0] is None  # nothing starts while busy
    s.done()
    frame, _ = s.next_item(0.2)
    assert frame == 50  # the freshest frame runs next, no backlog
    s.done()
    assert s.next_item(0.3) == (None, float("inf"))
    c = s.counts
    assert (c.received, c.started, c.dropped_busy) == (51, 2, 49)


def test_pending_frame_waits_for_the_rate_budget_after_a_fast_inference() -> None:
    s: LatestFrameScheduler[int] = LatestFrameScheduler(10.0, slack=0.0, now=0.0)
    s.offer(0, 0.0)
    s.next_item(0.0)
    s.offer(1, 0.01)  # arrived while busy
    s.done()
    frame, wait = s.next_item(0.02)
    assert frame is None and wait == pytest.approx(0.08)
    assert s.next_item(0.1)[0] == 1


# --- model contract / loading -------------------------------------------------------------------
@pytest.fixture(scope="module")
def probe_manifest(tmp_path_factory) -> str:
    return str(build_probe_model(tmp_path_factory.mktemp("probe"), image_size=(96, 128)))


def test_probe_model_through_onnxruntime_matches_its_numpy_definition(probe_manifest) -> None:
    manifest, backend, io = load_policy(probe_manifest, BackendOptions(backend="onnxruntime"))
    assert io.image_size == (96, 128) and io.context_dim == 4 and backend.warmed_up
    rng = np.random.default_rng(3)
    img = rng.integers(0, 256, (1, 96, 128, 3), dtype=np.uint8)
    state = rng.normal(size=(1, 10, 4)).astype(np.float32)
    out = backend.infer({"image": img, "state": state})
    for k, v in expected_outputs(img, state).items():
        np.testing.assert_allclose(out[k], v, rtol=1e-5, atol=1e-6)


def test_contract_rejects_wrong_shapes(probe_manifest) -> None:
    from minipamayo_ros.inference import load_manifest

    m = load_manifest(probe_manifest)
    bad = replace(m, outputs=(TensorSpec("waypoints", (1, 10, 2), "float32"), *m.outputs[1:]))
    with pytest.raises(PolicyModelError, match="waypoints"):
        check_policy_contract(bad)
    no_state = replace(m, inputs=m.inputs[:1])
    with pytest.raises(PolicyModelError, match="state"):
        check_policy_contract(no_state)


def test_load_errors_say_what_to_fix(tmp_path) -> None:
    with pytest.raises(PolicyModelError, match="manifest_path"):
        load_policy(str(tmp_path / "missing.manifest.json"), BackendOptions())
    mismatch = build_probe_model(tmp_path / "mm", image_size=(96, 128), manifest_image_size=(64, 64))
    with pytest.raises(PolicyModelError, match="fix the manifest"):
        load_policy(str(mismatch), BackendOptions(backend="onnxruntime"))
    corrupt = build_probe_model(tmp_path / "c")
    (tmp_path / "c" / "probe-policy.onnx").write_bytes(b"garbage")
    with pytest.raises(PolicyModelError, match="corrupt"):
        load_policy(str(corrupt), BackendOptions())


def test_a_manifest_of_the_old_contract_is_refused_naming_both_versions(tmp_path) -> None:
    import json

    path = build_probe_model(tmp_path)
    d = json.loads(path.read_text())
    del d["contract_version"]  # written before versions existed: contract v1
    path.write_text(json.dumps(d))
    with pytest.raises(PolicyModelError) as err:
        load_policy(str(path), BackendOptions(backend="onnxruntime"))
    msg = str(err.value)
    assert "I/O contract v1" in msg and f"I/O contract v{CONTRACT_VERSION}" in msg and "standing_time" in msg
    d["contract_version"] = CONTRACT_VERSION + 1  # from a newer build
    path.write_text(json.dumps(d))
    with pytest.raises(PolicyModelError, match=f"v{CONTRACT_VERSION + 1}"):
        load_policy(str(path), BackendOptions(backend="onnxruntime"))


def test_the_shipped_manifests_carry_the_contract_version() -> None:
    from minipamayo_ros.inference import load_manifest
    from minipamayo_ros.manifest import SOURCE_ROOT

    for path in sorted((SOURCE_ROOT / "engines").glob("*.manifest.json")):
        assert load_manifest(path, verify_hash=False).contract_version == CONTRACT_VERSION, path.name


def test_pipeline_state_carries_the_standing_time(probe_manifest) -> None:
    """Driving, then standing from t = 3 s: the state's last column is the time stood at each step."""
    p = _pipeline(probe_manifest)
    _feed_odometry(p, 0.0, 3.52, lambda t: 2.0 if t < 3.0 else 0.0)
    early = p.state(3.5)
    _feed_odometry(p, 3.52, 25.0, lambda t: 0.0)
    late = p.state(24.9)
    assert not isinstance(early, Skip) and not isinstance(late, Skip)
    stood = np.clip(3.5 - 0.1 * np.arange(9, -1, -1) - 3.0, 0.0, None)
    np.testing.assert_allclose(early[:, 3], stood, atol=1e-5)
    np.testing.assert_allclose(late[:, 3], MAX_STANDING_TIME)  # 21.9 s stood: capped, not 1 s


def test_standstill_clock_knows_each_instant_of_the_window() -> None:
    """Stand 0.5 s, roll 0.2 s, stand again: every instant gets its own uninterrupted standing time."""
    clock = StandstillClock()
    for k in range(100):  # 50 Hz, until 12 s
        t = 10.0 + 0.02 * k
        clock.add(t, 0.0 if t < 10.5 or t >= 10.7 else 0.3)
    assert clock.standing_time(10.4) == pytest.approx(0.4)
    assert clock.standing_time(10.6) == 0.0
    assert clock.standing_time(11.9) == pytest.approx(1.2)
    assert clock.standing_time(9.0) == 0.0  # before any odometry: nothing known, not standing
    clock.clear()
    assert clock.standing_time(12.0) == 0.0


# --- output parsing --------------------------------------------------------------------------------
def _outputs(v: float = 2.0) -> dict[str, np.ndarray]:
    t = 0.1 * np.arange(1, 21)
    return {"waypoints": np.stack((v * t, 0 * t), 1)[None].astype(np.float32),
            "speeds": np.full((1, 20), v, np.float32), "uncertainty": np.array([0.2], np.float32),
            "context": np.arange(4, dtype=np.float32)[None]}


def test_parse_outputs_keeps_stamp_and_metadata() -> None:
    out = parse_policy_outputs(_outputs(), stamp=12.5, sequence=7, model_id="m@1", inference_ms=3.0)
    tr = out.trajectory
    assert tr.stamp == 12.5 and tr.sequence == 7 and tr.model_id == "m@1" and tr.frame_id == "base_link"
    assert tr.points.shape == (20, 2) and tr.speeds.shape == (20,) and tr.inference_latency_ms == 3.0
    assert tr.points[-1, 0] == pytest.approx(4.0) and tr.uncertainty == pytest.approx(0.2)
    np.testing.assert_array_equal(out.context, [0, 1, 2, 3])


def test_parse_outputs_clips_tiny_negative_speed_the_output_check_rejects_nan_and_backwards() -> None:
    """Parsing only parses; whether a trajectory may be published is the output check's one decision
    (the follower's rules with the node's limits, on the float32 values published)."""
    o = _outputs(0.0)
    o["speeds"][0, 3] = -0.01
    assert parse_policy_outputs(o, 0.0, 1, "m", 1.0).trajectory.speeds.min() == 0.0

    def output_check(outputs: dict[str, np.ndarray], limits: TrajectoryLimits | None = None) -> str:
        traj = parse_policy_outputs(outputs, 0.0, 1, "m", 1.0).trajectory
        published = TrajectoryFields.from_trajectory(traj).as_published()
        return str(check_trajectory(published, limits or TrajectoryLimits()))

    o = _outputs()
    o["waypoints"][0, 5, 1] = np.nan
    assert output_check(o) == "y[5] = nan: not finite"
    assert "the speeds cover only 0 m" in output_check(_outputs(-1.0))  # speeds clipped to 0: standing
    back = _outputs(5.0)
    back["waypoints"][0, :, 0] *= -1.0
    assert "x/y[0] = heading 180 deg" in output_check(back)
    # plan_max_speed above the follower's default: 45 m/s plans pass when the node allows them
    assert output_check(_outputs(45.0), TrajectoryLimits(max_speed=50.0)) == "None"
    assert "plan_max_speed 40" in output_check(_outputs(45.0))
    o = _outputs()
    o["context"][0, 1] = np.inf
    with pytest.raises(OutputError, match="context contains NaN"):
        parse_policy_outputs(o, 0.0, 1, "m", 1.0)
    o = _outputs()
    o["waypoints"] = o["waypoints"][:, :10]
    with pytest.raises(OutputError, match="wrong size"):
        parse_policy_outputs(o, 0.0, 1, "m", 1.0)


# --- pipeline (real ONNX Runtime on the probe model) ---------------------------------------------
def _pipeline(probe_manifest: str) -> PolicyPipeline:
    manifest, backend, io = load_policy(probe_manifest, BackendOptions(backend="onnxruntime"))
    return PolicyPipeline(manifest, backend, io, PipelineSettings(max_image_age=0.5))


def _feed_odometry(p: PolicyPipeline, t0: float, t1: float, speed_at) -> None:
    for t in np.arange(t0, t1, 0.02):
        sample = OdometrySample(float(t), Pose2D(0.0, 0.0, 0.0), speed_at(t), 0.0)
        assert p.add_odometry(sample, now=float(t)) is None


def test_pipeline_end_to_end_with_image_stamp_and_state(probe_manifest) -> None:
    p = _pipeline(probe_manifest)
    img = np.zeros((240, 320, 3), np.uint8)
    img[..., 0] = 255  # pure red: y offset = +t
    frame = Frame(stamp=10.0, decode=lambda: img)
    assert isinstance(p.run(frame, lambda: 10.01), Skip)  # no odometry yet
    _feed_odometry(p, 8.5, 10.0, lambda t: 1.0 + t)  # speed 11 m/s at the image stamp
    res = p.run(frame, lambda: 10.01)
    assert not isinstance(res, Skip)
    tr = res.output.trajectory
    assert tr.stamp == 10.0 and tr.sequence == 1
    np.testing.assert_allclose(tr.speeds, 11.0, atol=0.02)
    np.testing.assert_allclose(tr.points[:, 1], 0.1 * np.arange(1, 21), rtol=1e-5)
    assert p.run(frame, lambda: 10.01).output.trajectory.sequence == 2  # type: ignore[union-attr]


def test_pipeline_skips_with_reasons(probe_manifest) -> None:
    p = _pipeline(probe_manifest)
    _feed_odometry(p, 0.0, 10.0, lambda t: 1.0)
    good = np.zeros((96, 128, 3), np.uint8)
    stale = p.run(Frame(5.0, lambda: good), lambda: 9.0)
    assert isinstance(stale, Skip) and stale.category == "stale_image"
    short = p.run(Frame(10.5, lambda: good), lambda: 10.55)  # odometry ends 0.5 s before the image
    assert isinstance(short, Skip) and short.category == "no_odometry" and "extrapolated" in short.reason

    def bad() -> np.ndarray:
        raise ImageError("unsupported encoding 'yuv422'")

    res = p.run(Frame(9.9, bad, "64x48 'yuv422' image"), lambda: 9.95)
    assert isinstance(res, Skip) and res.category == "bad_image" and "yuv422" in res.reason
    p.configure(replace(p.settings, expected_size=(480, 640)))
    res = p.run(Frame(9.9, lambda: good), lambda: 9.95)
    assert isinstance(res, Skip) and res.category == "wrong_size"
    assert p.sequence == 0


def test_odometry_clock_jump_back_restarts_history(probe_manifest) -> None:
    p = _pipeline(probe_manifest)
    _feed_odometry(p, 100.0, 102.0, lambda t: 1.0)
    late = p.add_odometry(OdometrySample(101.9, Pose2D(0, 0, 0)), now=102.0)
    assert late is not None and late.kind == "out_of_order"
    _feed_odometry(p, 0.0, 1.5, lambda t: 3.0)  # the node clock itself jumped back (sim reset): accepted
    assert p.clock.jumps == 1 and not isinstance(p.state(1.4), Skip)


def test_one_future_stamped_odometry_neither_stored_nor_clearing_the_history(probe_manifest) -> None:
    """Issue 13 defect 3, policy side (failed before: the +20 s sample was stored, the next valid one
    looked like a clock jump and the whole history was dropped: 1 s without trajectories)."""
    p = _pipeline(probe_manifest)
    _feed_odometry(p, 8.0, 10.0, lambda t: 2.0)
    bad = p.add_odometry(OdometrySample(30.0, Pose2D(0, 0, 0), 2.0, 0.0), now=10.0)
    assert bad is not None and bad.kind == "future_stamp" and "header.stamp = 30" in str(bad)
    assert p.add_odometry(OdometrySample(10.01, Pose2D(0, 0, 0), 2.0, 0.0), now=10.01) is None
    assert not isinstance(p.state(10.0), Skip) and p.clock.jumps == 0


def test_nan_twist_is_rejected_at_input_and_the_skip_blames_odometry(probe_manifest) -> None:
    """Issue 13 defect 6 (failed before: NaN reached the model and the skip said "model output
    rejected: contains NaN or inf")."""
    p = _pipeline(probe_manifest)
    for t in np.arange(8.0, 10.0, 0.02):
        bad = p.add_odometry(OdometrySample(float(t), Pose2D(0, 0, 0), float("nan"), 0.0), now=float(t))
        assert bad is not None and bad.field == "twist.twist.linear.x"
    res = p.run(Frame(10.0, lambda: np.zeros((64, 64, 3), np.uint8)), lambda: 10.01)
    assert isinstance(res, Skip) and res.category == "no_odometry"
    assert "twist.twist.linear.x = nan" in res.reason and "model" not in res.reason


def test_output_check_withholds_what_the_follower_would_reject(probe_manifest) -> None:
    """Issue 13 defect 5: the probe plans x = v t; with v above plan_max_speed (odometry limits
    raised so that such speed gets in) nothing is published (failed before: 1e6 m/s plans)."""
    from minipamayo_ros.safety.odometry_input import OdometryLimits

    manifest, backend, io = load_policy(probe_manifest, BackendOptions(backend="onnxruntime"))
    p = PolicyPipeline(manifest, backend, io, PipelineSettings(
        odometry_limits=OdometryLimits(max_speed=1e7, max_accel=1e9),
        trajectory_limits=TrajectoryLimits(max_speed=40.0)))
    _feed_odometry(p, 8.0, 10.0, lambda t: 1e6)
    res = p.run(Frame(10.0, lambda: np.zeros((64, 64, 3), np.uint8)), lambda: 10.01)
    assert isinstance(res, Skip) and res.category == "invalid_output" and "plan_max_speed" in res.reason
    # and with the default limits the 1e6 m/s odometry never gets in at all
    q = _pipeline(probe_manifest)
    bad = q.add_odometry(OdometrySample(9.0, Pose2D(0, 0, 0), 1e6, 0.0), now=9.0)
    assert bad is not None and bad.kind == "out_of_range" and "odom_max_speed" in str(bad)


# --- statistics and config ------------------------------------------------------------------------
def test_trajectory_latency_is_steady_in_node_time_plus_measurable_transport() -> None:
    # wall clock: image stamped 30 ms before the callback, 12 ms in the node
    e2e, transport = trajectory_latency(received_steady=100.000, published_steady=100.012,
                                       received_ros=50.030, stamp=50.000, sim_time=False)
    assert transport == pytest.approx(30.0) and e2e == pytest.approx(42.0)
    # sim time: the stamp difference is sim time (here 0: same 10 ms step), so only the node's work
    e2e, transport = trajectory_latency(100.000, 100.012, received_ros=7.0, stamp=7.0, sim_time=True)
    assert math.isnan(transport) and e2e == pytest.approx(12.0)
    # camera clock ahead of ours: the transport is unknown, not negative
    e2e, transport = trajectory_latency(100.000, 100.012, received_ros=50.0, stamp=50.5, sim_time=False)
    assert math.isnan(transport) and e2e == pytest.approx(12.0)


def test_stats_report_levels_and_percentiles() -> None:
    s = PolicyStats(window=50)
    kw = dict(received=10, dropped_busy=2, dropped_rate=3, max_rate_hz=10.0, backend={"backend": "ort"},
              warmed_up=True)
    rep = s.report(0.0, **kw)
    assert rep.level == WARN
    for i in range(11):
        s.record_published(0.1 * i, inference_ms=5.0, end_to_end_ms=7.0 + (i == 10) * 10, preprocess_ms=1.0)
    rep = s.report(1.0, **kw)
    assert rep.level == OK and float(rep.values["achieved_rate_hz"]) == pytest.approx(10.0)
    assert rep.values["frames_skipped_rate_cap"] == "3" and rep.values["frames_dropped_busy"] == "2"
    assert "frames_dropped" not in rep.values  # by-design skips are never mixed with losses
    assert rep.values["backend_backend"] == "ort"
    assert "receive -> publish" in rep.values["latency_clock"]  # no transport recorded
    assert float(rep.values["overhead_p50_ms"]) == pytest.approx(2.0)
    assert float(rep.values["end_to_end_max_ms"]) == pytest.approx(17.0)
    s.record_skip("no_odometry", "no odometry received yet")
    rep = s.report(1.05, **kw)
    assert rep.level == WARN and "no odometry" in rep.message and rep.values["skipped_no_odometry"] == "1"
    assert s.achieved_rate_hz(20.0) == 0.0  # silence: no stale rate
    s.record_published(21.0, 5.0, 7.0, 1.0)
    assert s.report(21.5, **kw).level == OK
    rep = s.report(24.0, **kw)  # camera stopped: not OK any more
    assert rep.level == WARN and "no trajectory for 3.0 s" in rep.message


def test_config_yaml_equals_dataclass_defaults() -> None:
    values = load_node_yaml(REPO_ROOT / "config" / "policy.yaml", "policy")
    assert build_config(PolicyConfig, values) == PolicyConfig()
    assert set(values) == {s.name for s in param_specs(PolicyConfig)}


def test_config_cross_checks() -> None:
    with pytest.raises(ParameterError, match="odom_history"):
        build_config(PolicyConfig, {"odom_history": 0.8})
    with pytest.raises(ParameterError, match="expected_width"):
        build_config(PolicyConfig, {"expected_width": 640})
    with pytest.raises(ParameterError, match="max_rate_hz"):
        build_config(PolicyConfig, {"max_rate_hz": 0.0})


def test_future_stamped_image_is_skipped_as_bad_stamp(probe_manifest) -> None:
    p = _pipeline(probe_manifest)
    _feed_odometry(p, 8.0, 10.0, lambda t: 2.0)
    res = p.run(Frame(15.0, lambda: np.zeros((64, 64, 3), np.uint8), "64x64 'rgb8' image"), lambda: 10.0)
    assert isinstance(res, Skip) and res.category == "bad_stamp" and "ahead of the ROS clock" in res.reason
    assert not isinstance(p.run(Frame(9.99, lambda: np.zeros((64, 64, 3), np.uint8)), lambda: 10.0), Skip)
