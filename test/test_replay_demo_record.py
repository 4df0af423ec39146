"""`scripts/demo.sh --record`: the closed-loop demo over real DDS records a bag that the lock-step
replay reads; the stack's own trajectories in it are matched to the replay by image stamp."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from minipamayo_ros.policy.config import PolicyConfig
from minipamayo_ros.replay import compare, lockstep
from minipamayo_ros.replay.bagio import BagReader, bag_info, stamp_ns
from minipamayo_ros.replay.score_bag import read_bag, score_bag
from minipamayo_ros.scoring.frames import SCENE_FILE, load_frames

pytestmark = [pytest.mark.ros, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]


def test_demo_records_a_replayable_bag(ros_env: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "demo"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "minipamayo_ros.bringup.demo",
            "--duration",
            "5",
            "--out",
            str(out),
            "--record",
            "--no-enable-text",
            "--domain-id",
            ros_env["ROS_DOMAIN_ID"],
        ],
        cwd=REPO,
        env=ros_env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    assert "[demo] recorded" in done.stderr
    info = bag_info(out / "bag")
    counts = {t.name: t.count for t in info.topics}
    assert info.storage == "mcap" and info.versions == (9,)
    assert counts["/camera/image_raw/compressed"] >= 40 and counts["/odom"] >= 100
    assert counts["/vla/trajectory"] >= 10 and counts["/vla/control"] >= 100 and counts["/clock"] > 0
    # odometry from the simulator's first tick on (the recorder did not wait to discover it): the
    # ground truth, published in the same tick, starts no earlier
    with BagReader(out / "bag") as bag:
        first = {}
        for topic, _, _, msg in bag.messages(["/odom", "/sim/ground_truth/odom"]):
            first.setdefault(topic, stamp_ns(msg.header))
            if len(first) == 2:
                break
    assert first["/odom"] <= first["/sim/ground_truth/odom"] + 20_000_000, first

    # the bag scores what the demo reported live (same frames, same window, same code): the report's
    # frames are the bag's (one subscription) and its window ends on one of them
    live_score = json.loads((out / "metrics.json").read_text())["score"]
    start, end = live_score.pop("score_window")
    frames = read_bag(out / "bag")[0]
    assert load_frames(out / SCENE_FILE) == frames and end in {f.stamp for f in frames}
    (bagged,) = score_bag(frames, start=start, end=end)
    assert counts["/sim/ground_truth/scene"] >= 80 and bagged.frames == live_score["frames"]
    assert json.loads(json.dumps(bagged.as_dict())) == live_score

    # every frame through the pipeline: the live node's rate cap picked its frames on the wall clock
    # (which ones depends on the machine's load), so the replay must have an output for each of them
    every_frame = lockstep.LockstepSettings(policy=PolicyConfig(max_rate_hz=60.0))
    result = lockstep.run_lockstep(out / "bag", every_frame, progress=False)
    assert result.stats.frames == counts["/camera/image_raw/compressed"]
    assert result.stats.trajectories >= 10
    assert {"/vla/trajectory", "/vla/control", "/clock"} <= set(result.topics.skipped)
    # the live stack's outputs (in the bag) vs the lock-step replay, frame by frame
    live = compare.load_outputs(out / "bag")
    cmp = compare.compare_outputs(
        result.outputs, live, compare.load_table(), profile="int8", latency_gates=False, match_only=True
    )
    matched = [i for i in cmp.items if i.kind == "trajectory" and i.metrics]
    assert len(matched) >= 5
    assert live.meta.model_id == result.outputs.meta.model_id
