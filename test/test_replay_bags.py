"""Bag interop: what the tools write is read by ``rosbags`` and by ``mcap``'s own ROS 2 reader; the
tools read rosbag2 metadata versions 4-9 (sqlite3 and mcap), split bags, empty bags, bags with
services, Image and CompressedImage; bags without what the replay needs fail with a clear message.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers.replay_bags import add_service_events, copy_bag, downgrade, split_bag

from minipamayo_ros.policy.config import PolicyConfig
from minipamayo_ros.replay import lockstep
from minipamayo_ros.replay.bagio import TRAJECTORY, BagReader, BagWriter, bag_info, stamp_ns, typestore
from minipamayo_ros.replay.inputs import MissingTopicError
from minipamayo_ros.replay.messages import clock_msg, trajectory_msg
from minipamayo_ros.replay.records import TrajectoryRecord
from minipamayo_ros.replay.replay import main as replay_main
from minipamayo_ros.replay.simbag import record_sim_bag

GOLDEN_BAG = Path(__file__).resolve().parent / "data" / "replay" / "sim_seed20008"


@pytest.fixture(scope="module")
def pipeline() -> object:
    return lockstep.build_pipeline(_policy())


def _policy(**overrides: object) -> PolicyConfig:
    return lockstep.load_node_config(PolicyConfig, "policy", "policy.yaml", "drive.yaml", overrides)


@pytest.fixture(scope="module")
def short_bag(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2.5 s of the golden bag (mcap, CompressedImage PNG + odometry + clock + ground truth)."""
    out = tmp_path_factory.mktemp("bags") / "short"
    with BagReader(GOLDEN_BAG) as r:
        assert r.info is not None
        start = r.info.start_ns
    return copy_bag(GOLDEN_BAG, out, "mcap", start_ns=start, end_ns=start + 2_500_000_000)


def _replay(bag: Path, pipeline: object, **overrides: object) -> lockstep.LockstepResult:
    settings = lockstep.LockstepSettings(policy=_policy(**overrides))
    return lockstep.run_lockstep(bag, settings, pipeline=pipeline, progress=False)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def reference(short_bag: Path, pipeline: object) -> list[str]:
    return _replay(short_bag, pipeline).outputs.deterministic_lines()


@pytest.mark.parametrize(
    "storage,version", [("sqlite3", v) for v in range(4, 10)] + [("mcap", v) for v in range(5, 10)]
)
def test_reads_every_metadata_version(
    tmp_path: Path, short_bag: Path, pipeline: object, reference: list[str], storage: str, version: int
) -> None:
    bag = downgrade(copy_bag(short_bag, tmp_path / f"v{version}", storage), version)
    info = bag_info(bag)
    assert info.versions == (version,) and info.storage == storage
    assert _replay(bag, pipeline).outputs.deterministic_lines() == reference


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_reads_split_bags(
    tmp_path: Path, short_bag: Path, pipeline: object, reference: list[str], storage: str
) -> None:
    bag = split_bag(short_bag, tmp_path / "split", storage)
    assert len(list(bag.glob("*.mcap" if storage == "mcap" else "*.db3"))) == 2
    assert _replay(bag, pipeline).outputs.deterministic_lines() == reference


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_bag_with_services_replays_and_lists_them(
    tmp_path: Path, short_bag: Path, pipeline: object, reference: list[str], storage: str
) -> None:
    bag = add_service_events(short_bag, tmp_path / "srv", storage)
    result = _replay(bag, pipeline)
    assert "/reset_sim/_service_event" in result.topics.skipped
    assert result.outputs.deterministic_lines() == reference


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_empty_bag_says_so(tmp_path: Path, storage: str) -> None:
    with BagWriter(tmp_path / "empty", storage) as w:
        w.add_topic("/camera/image_raw", "sensor_msgs/msg/Image")
        w.add_topic("/odom", "nav_msgs/msg/Odometry")
    with pytest.raises(MissingTopicError, match="contains no messages"):
        _replay(tmp_path / "empty", None, warmup_runs=1)


def test_bag_without_camera_or_odometry_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with BagWriter(tmp_path / "clock_only", "mcap") as w:
        for k in range(5):
            w.write("/clock", "rosgraph_msgs/msg/Clock", 10**9 + k, clock_msg(10**9 + k))
    rc = replay_main([str(tmp_path / "clock_only"), "--out", str(tmp_path / "out"), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "no camera" in err and "no odometry" in err and "/clock (rosgraph_msgs/msg/Clock, 5 msgs)" in err


def test_missing_required_topic_names_it_and_lists_the_bag(
    tmp_path: Path, short_bag: Path, pipeline: object, reference: list[str]
) -> None:
    with BagReader(short_bag) as r:
        assert r.info is not None
        types = {t.name: t.msgtype for t in r.info.topics}
        renamed = tmp_path / "renamed"
        with BagWriter(renamed, "mcap") as w:
            for topic, msgtype, t, data in r.messages(list(types), raw=True):
                name = "/front/image/compressed" if topic == "/camera/image_raw/compressed" else topic
                w.write(name, msgtype, t, data, raw=True)
    with pytest.raises(MissingTopicError) as exc:
        _replay(renamed, pipeline)
    text = str(exc.value)
    assert "'/camera/image_raw'" in text and "/front/image/compressed" in text and "--image-topic" in text
    assert "/odom (nav_msgs/msg/Odometry" in text
    # ... and naming it replays the same
    assert (
        _replay(renamed, pipeline, image_topic="/front/image/compressed").outputs.deterministic_lines()
        == reference
    )


def test_bag_without_a_usable_frame_fails_with_the_skip_reasons(
    tmp_path: Path, short_bag: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 19: every camera frame unusable (not a PNG any more): exit 2 and why, not exit 0 with
    "0 trajectories" (before)."""
    store = typestore()
    broken = tmp_path / "broken"
    with BagReader(short_bag) as r, BagWriter(broken, "mcap") as w:
        assert r.info is not None
        for topic, msgtype, t, msg in r.messages([x.name for x in r.info.topics]):
            if msgtype == "sensor_msgs/msg/CompressedImage":
                msg.data = np.frombuffer(b"not an image", np.uint8)
            w.write(topic, msgtype, t, store.serialize_cdr(msg, msgtype), raw=True)
    rc = replay_main([str(broken), "--out", str(tmp_path / "out"), "--no-progress",
                      "--param", "warmup_runs=1"])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert "no frame of the bag produced a trajectory" in err and "bad_image x" in err
    assert (tmp_path / "out" / "replayed.jsonl").exists()  # the skips, for a closer look


def test_raw_image_bags_replay_like_compressed_ones(tmp_path: Path, pipeline: object) -> None:
    """Image (rgb8) and lossless CompressedImage (PNG) of the same drive give identical outputs."""
    raw = tmp_path / "raw"
    png = tmp_path / "png"
    record_sim_bag(raw, 20001, 1.6, images="raw", storage="sqlite3", ground_truth=False)
    record_sim_bag(png, 20001, 1.6, images="png", storage="mcap", ground_truth=False)
    a = _replay(raw, pipeline)
    b = _replay(png, pipeline)
    assert a.topics.image_type.endswith("/Image") and b.topics.image_type.endswith("/CompressedImage")
    assert a.stats.trajectories > 0
    assert a.outputs.deterministic_lines() == b.outputs.deterministic_lines()


def test_malformed_image_is_dropped_at_arrival_like_the_node(tmp_path: Path, pipeline: object) -> None:
    """A truncated raw frame is refused by the node's arrival check (``safety.image_input``) before
    the scheduler: a ``bad_shape`` skip naming the field, and it takes no slot of the rate cap."""
    good = tmp_path / "good"
    record_sim_bag(good, 20001, 1.6, images="raw", storage="mcap", ground_truth=False)
    a = _replay(good, pipeline)
    got_a = sorted(t.stamp_ns for t in a.outputs.trajectories)
    bad_ns = got_a[len(got_a) // 2]  # a frame that gets a trajectory
    store = typestore()
    bad = tmp_path / "bad"
    with BagReader(good) as r, BagWriter(bad, "mcap") as w:
        assert r.info is not None
        for topic, msgtype, t, msg in r.messages([x.name for x in r.info.topics]):
            if msgtype == "sensor_msgs/msg/Image" and stamp_ns(msg.header) == bad_ns:
                msg.data = msg.data[: len(msg.data) // 2]
            w.write(topic, msgtype, t, store.serialize_cdr(msg, msgtype), raw=True)
    b = _replay(bad, pipeline)
    skip = next(s for s in b.outputs.skips if s.stamp_ns == bad_ns)
    assert skip.category == "bad_shape" and "data" in skip.reason and "step * height" in skip.reason
    assert b.stats.skips.get("bad_shape") == 1 and b.stats.frames == a.stats.frames
    got_b = {t.stamp_ns for t in b.outputs.trajectories}
    assert {t for t in got_a if t < bad_ns} == {t for t in got_b if t < bad_ns} and bad_ns not in got_b
    # the next frame was over the 10 Hz cap (20 Hz camera); the refused frame took no slot, so now
    # the next one runs
    after = min((x for x in a.outputs.skips if x.stamp_ns > bad_ns), key=lambda x: x.stamp_ns)
    assert after.category == "dropped_rate" and after.stamp_ns in got_b


def _trajectories(n: int) -> list[TrajectoryRecord]:
    rng = np.random.default_rng(0)
    return [
        TrajectoryRecord(
            stamp_ns=10**9 + k * 10**8,
            sequence=k + 1,
            x=[float(v) for v in np.float32(np.cumsum(rng.uniform(0.1, 0.5, 20)))],
            y=[float(v) for v in np.float32(rng.normal(0, 0.1, 20))],
            speed=[float(v) for v in np.float32(rng.uniform(0, 8, 20))],
            uncertainty=float(np.float32(0.2)),
            model_id="m@1",
            inference_ms=4.0,
            total_ms=6.0,
        )
        for k in range(n)
    ]


def test_trajectories_recorded_before_the_producer_fields_still_decode(tmp_path: Path) -> None:
    """Issue 19 added Trajectory.producer / producer_instance: a bag recorded before (its own
    definition embedded) decodes with that definition, not ours (which would misread the CDR)."""
    from rosbags.rosbag2 import Writer
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    from minipamayo_ros.replay.compare import load_outputs

    text = (Path(__file__).resolve().parents[1] / "msg" / "Trajectory.msg").read_text()
    old_text = "\n".join(line for line in text.splitlines() if "producer" not in line)
    old = get_typestore(Stores.ROS2_HUMBLE)
    old.register(get_types_from_msg(old_text, TRAJECTORY))
    T, H, Time = (old.types[n] for n in (TRAJECTORY, "std_msgs/msg/Header", "builtin_interfaces/msg/Time"))
    recs = _trajectories(3)
    with Writer(tmp_path / "old", version=9) as w:
        conn = w.add_connection("/vla/trajectory", TRAJECTORY, typestore=old)
        for r in recs:
            stamp = Time(sec=r.stamp_ns // 10**9, nanosec=r.stamp_ns % 10**9)
            msg = T(header=H(stamp=stamp, frame_id="base_link"), sequence=r.sequence, dt=0.1, horizon=2.0,
                    x=np.float32(r.x), y=np.float32(r.y), speed=np.float32(r.speed),
                    uncertainty=r.uncertainty, model_id=r.model_id, inference_latency_ms=4.0,
                    end_to_end_latency_ms=6.0)
            w.write(conn, r.stamp_ns, old.serialize_cdr(msg, TRAJECTORY))
    got = load_outputs(tmp_path / "old").trajectories
    assert [t.x for t in got] == [r.x for r in recs] and [t.speed for t in got] == [r.speed for r in recs]
    assert [t.sequence for t in got] == [1, 2, 3]


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_written_bags_are_read_by_rosbags_without_our_types(tmp_path: Path, storage: str) -> None:
    """The definitions travel with the bag: a plain rosbags reader decodes our Trajectory."""
    from rosbags.highlevel import AnyReader

    recs = _trajectories(3)
    with BagWriter(tmp_path / "out", storage) as w:
        for r in recs:
            w.write("/vla/trajectory", TRAJECTORY, r.stamp_ns, trajectory_msg(r))
    with AnyReader([tmp_path / "out"]) as reader:  # its own (empty-of-ours) typestore
        got = [reader.deserialize(d, c.msgtype) for c, _, d in reader.messages()]
    assert [list(np.asarray(m.x, np.float64)) for m in got] == [r.x for r in recs]
    assert [m.header.stamp.sec * 10**9 + m.header.stamp.nanosec for m in got] == [r.stamp_ns for r in recs]


def test_written_mcap_is_read_by_mcaps_own_ros2_reader(tmp_path: Path, short_bag: Path) -> None:
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    def read_ros2_messages(path: str) -> list:
        with open(path, "rb") as f:
            reader = make_reader(f, decoder_factories=[DecoderFactory()])
            return [(ch.topic, msg) for _, ch, _, msg in reader.iter_decoded_messages()]

    recs = _trajectories(4)
    with BagWriter(tmp_path / "out", "mcap") as w:
        for r in recs:
            w.write("/vla/trajectory", TRAJECTORY, r.stamp_ns, trajectory_msg(r))
    files = list((tmp_path / "out").glob("*.mcap"))
    msgs = [m for _, m in read_ros2_messages(str(files[0]))]
    assert [list(np.float64(m.speed)) for m in msgs] == [r.speed for r in recs]
    assert [m.uncertainty for m in msgs] == pytest.approx([0.2] * 4)
    # standard messages too (the copied camera + odometry bag)
    seen = {topic for topic, _ in read_ros2_messages(str(next(short_bag.glob("*.mcap"))))}
    assert {"/camera/image_raw/compressed", "/odom", "/clock"} <= seen
