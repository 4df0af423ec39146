"""Real-time replay over DDS: the golden drive published with /clock into a real policy node process
(use_sim_time); its trajectories are recorded, matched to the frames, and counted honestly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers.replay_bags import copy_bag

from minipamayo_ros.bringup.processes import ros_args
from minipamayo_ros.policy.config import PolicyConfig
from minipamayo_ros.replay import compare, lockstep
from minipamayo_ros.replay.bagio import BagReader
from minipamayo_ros.replay.realtime import run_realtime
from minipamayo_ros.replay.replay import main as replay_main

pytestmark = pytest.mark.ros

REPO = Path(__file__).resolve().parents[1]
GOLDEN_BAG = REPO / "test" / "data" / "replay" / "sim_seed20008"
CAMERA = {"image_topic": "/camera/image_raw/compressed", "image_transport": "compressed"}


@pytest.fixture()
def bag(tmp_path: Path) -> Path:
    with BagReader(GOLDEN_BAG) as r:
        assert r.info is not None
        t0 = r.info.start_ns
    return copy_bag(GOLDEN_BAG, tmp_path / "bag", "mcap", start_ns=t0, end_ns=t0 + 3_000_000_000)


def test_realtime_replay_into_a_policy_node(spawn, rclpy_context: object, bag: Path, tmp_path: Path) -> None:
    spawn(
        module="minipamayo_ros.nodes.policy_node",
        name="policy",
        args=ros_args(
            {"use_sim_time": True, "backend": "onnxruntime", **CAMERA}, [REPO / "config" / "policy.yaml"]
        ),
    )
    policy = lockstep.load_node_config(PolicyConfig, "policy", "policy.yaml", "drive.yaml", CAMERA)
    outputs, stats = run_realtime(
        bag,
        policy,
        tmp_path,
        rate=1.0,
        settle=2.0,
        wait_subscribers=60.0,
        progress=False,
        context=rclpy_context,
    )
    print(json.dumps(stats, indent=1))
    assert stats["frames_published"] == 30
    assert stats["published"]["/odom"] == 150 and "/clock" in stats["not_replayed"]
    # every trajectory belongs to a frame we sent, once, in order
    assert stats["trajectories_unmatched"] == 0 and stats["trajectory_duplicates"] == 0
    assert stats["trajectory_out_of_order"] == 0
    # the first 1 s has no state history (9 frames); most of the rest must come back on loopback
    assert stats["trajectories_matched_to_frames"] >= 12
    assert all(t.total_ms > 0 for t in outputs.trajectories)
    assert outputs.meta.model_id.startswith("minipamayo-tiny-policy@")

    # the same frames in lock-step: outputs of frames both produced are close (DDS timing may
    # hand the node an image before the odometry of the same instant: not bit-identical)
    locked = lockstep.run_lockstep(bag, lockstep.LockstepSettings(policy=policy), progress=False).outputs
    cmp = compare.compare_outputs(
        outputs, locked, compare.load_table(), profile="int8", latency_gates=False, match_only=True
    )
    matched = [i for i in cmp.items if i.kind == "trajectory" and i.metrics]
    assert len(matched) >= 12
    assert max(i.metrics["ade_m"] for i in matched) < 0.5


def test_realtime_without_a_stack_says_what_to_do(
    rclpy_context: object, bag: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = replay_main(
        [
            str(bag),
            "--mode",
            "realtime",
            "--out",
            str(tmp_path / "o"),
            "--wait-subscribers",
            "1",
            "--image-topic",
            "/camera/image_raw/compressed",
            "--remap",
            "/camera/image_raw/compressed:=/nobody/listens",
            "--no-progress",
        ]
    )
    assert rc == 2
    err = capsys.readouterr().err
    assert "nobody subscribes to /nobody/listens" in err and "start the stack first" in err
