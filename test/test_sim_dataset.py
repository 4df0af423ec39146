"""Dataset generation and loading (no ROS): round trip, shapes, labels consistent with the world."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from minipamayo_ros import language
from minipamayo_ros.events import Event
from minipamayo_ros.safety.trajectory_input import trajectory_error
from minipamayo_ros.sim.dataset import (
    GENERATOR_VERSION,
    INDEX_FILE,
    Perturbation,
    concatenate,
    generate_dataset,
    generate_episode,
    load_dataset,
)
from minipamayo_ros.sim.road import RoadConfig
from minipamayo_ros.sim.world import WorldConfig
from minipamayo_ros.trajectory import PlannedTrajectory

REPO = Path(__file__).resolve().parents[1]
SMALL = WorldConfig(road=RoadConfig(length=160.0, end_margin=40.0, stop_lines=(1, 1)), end_margin=40.0)


def test_round_trip(tmp_path: Path) -> None:
    out = generate_dataset(tmp_path / "ds", [3, 4], episode_seconds=6.0, sample_period=0.5,
                           image_size=(64, 64), world_config=SMALL, progress=False)
    ds = load_dataset(out)
    n = len(ds)
    assert n > 10
    assert ds.images.shape == (n, 64, 64, 3) and ds.images.dtype == np.uint8
    assert ds.state.shape == (n, 10, 4) and ds.state.dtype == np.float32
    assert ds.waypoints.shape == (n, 20, 2) and ds.waypoints.dtype == np.float32
    assert ds.speeds.shape == (n, 20) and ds.speeds.dtype == np.float32
    assert ds.events.shape == (n,) and ds.events.dtype == np.int64
    assert ds.caption_tokens.shape == (n, 32) and ds.caption_tokens.dtype == np.int32
    assert ds.caption_lengths.dtype == np.int32 and ds.episode_seeds.dtype == np.int64
    assert set(ds.episode_seeds.tolist()) == {3, 4}
    # identical to a fresh generation of the same seed (determinism, lossless storage)
    ep = generate_episode(3, 6.0, 0.5, (64, 64), SMALL)
    mask = ds.episode_seeds == 3
    np.testing.assert_array_equal(ds.images[mask], ep["images"])
    np.testing.assert_array_equal(ds.waypoints[mask], ep["waypoints"])
    np.testing.assert_array_equal(ds.state[mask], ep["state"])
    only4 = load_dataset(out, seeds=[4])
    assert set(only4.episode_seeds.tolist()) == {4} and len(only4) == n - int(mask.sum())
    index = json.loads((out / INDEX_FILE).read_text())
    assert index["samples"] == n and index["image_size"] == [64, 64]
    assert index["generator_version"] == GENERATOR_VERSION
    assert not list(out.rglob("*.pkl")) and not list(out.rglob("*.tmp*"))
    # a dataset of the old input contract (state without the standing time) is refused by name
    index["version"] = 1
    (out / INDEX_FILE).write_text(json.dumps(index))
    with pytest.raises(ValueError, match="v1, this code reads v2"):
        load_dataset(out)


def test_labels_are_valid(tmp_path: Path) -> None:
    ds = load_dataset(generate_dataset(tmp_path, [7], episode_seconds=8.0, sample_period=0.25,
                                       image_size=(48, 48), world_config=SMALL, progress=False))
    for i in range(len(ds)):
        traj = PlannedTrajectory(stamp=0.0, points=ds.waypoints[i], speeds=ds.speeds[i])
        assert trajectory_error(traj) is None
        caption = ds.caption(i)
        assert language.in_vocabulary(caption) and caption
        assert int(ds.caption_lengths[i]) == len(language.encode(caption))
        assert np.all(ds.caption_tokens[i, ds.caption_lengths[i]:] == language.PAD)
        assert Event(int(ds.events[i])) in Event
    # speed feature of the state history matches the planned speeds' starting point
    assert np.all(np.abs(ds.state[:, -1, 0] - ds.speeds[:, 0]) < 1.0)
    assert np.all(np.isfinite(ds.state))


def test_rejects_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="distinct"):
        generate_dataset(tmp_path, [1, 1], progress=False)
    with pytest.raises(FileNotFoundError, match="generate"):
        load_dataset(tmp_path / "missing")


def test_cli_runs_without_ros(tmp_path: Path) -> None:
    """The CLI must work with only numpy/OpenCV: the ROS message package is made unimportable."""
    blocker = tmp_path / "block"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(
        "import sys\nfor m in ('rclpy', 'minipamayo_ros.msg'):\n    sys.modules[m] = None\n")
    env = {"PYTHONPATH": f"{blocker}:{REPO}", "PATH": "/usr/bin:/bin"}
    res = subprocess.run([sys.executable, "-m", "minipamayo_ros.sim.dataset", "--out", str(tmp_path / "d"),
                          "--seeds", "0:2", "--episode-seconds", "3", "--image-size", "32"],
                         env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "episodes" in res.stderr  # progress bar
    assert len(load_dataset(tmp_path / "d")) > 0


def test_unexplained_stops_teach_to_go_again() -> None:
    """Standing still on a clear road must come with 'go' labels (no copying of one's standstill)."""
    ep = generate_episode(5, 12.0, 0.2, (32, 32), SMALL,
                          Perturbation(stop_rate=0.5, start_standstill=1.0, start_offset=0.0))
    standing = ep["state"][:, -1, 0] < 0.1
    assert np.any(standing & (ep["speeds"][:, -1] > 1.0))


def test_driver_in_the_index_and_concatenation(tmp_path: Path) -> None:
    expert = load_dataset(generate_dataset(tmp_path / "e", [3], episode_seconds=4.0, image_size=(32, 32),
                                           world_config=SMALL, progress=False))
    assert expert.meta["driver"] == "expert"
    both = concatenate([expert, expert])
    assert len(both) == 2 * len(expert) and len(both.meta["parts"]) == 2
    np.testing.assert_array_equal(both.images[len(expert):], expert.images)
    small = load_dataset(generate_dataset(tmp_path / "s", [3], episode_seconds=4.0, image_size=(16, 16),
                                          world_config=SMALL, progress=False))
    with pytest.raises(ValueError, match="image sizes"):
        concatenate([expert, small])
