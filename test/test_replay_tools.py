"""The replay suite's tools: each has a ``python -m`` entry and a ``ros2 run`` executable, and the
long-running ones show a progress line with frames/s and ETA.

(The installed executables' ``--help`` is run by ``test_executables.py`` for every entry of the
CMake list; here: the four tools are in that list, and their modules answer ``--help``.)
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from test_executables import cmake_executables

from minipamayo_ros.replay.progress import Progress
from minipamayo_ros.replay.replay import main as replay_main

REPO = Path(__file__).resolve().parents[1]
TOOLS = {
    "record": "minipamayo_ros.replay.record",
    "replay": "minipamayo_ros.replay.replay",
    "compare": "minipamayo_ros.replay.compare",
    "replay_corpus": "minipamayo_ros.replay.corpus",
    "score_bag": "minipamayo_ros.replay.score_bag",
}
GOLDEN_BAG = REPO / "test" / "data" / "replay" / "sim_seed20008"


def test_every_tool_is_a_ros2_run_executable() -> None:
    exes = cmake_executables()
    assert {name: exes.get(name) for name in TOOLS} == TOOLS


@pytest.mark.parametrize("module", [*TOOLS.values(), "minipamayo_ros.replay.simbag"])
def test_python_m_help(module: str) -> None:
    """``python -m <module> --help``: usage, exit 0, and no node started (it would never return)."""
    done = subprocess.run(
        [sys.executable, "-m", module, "--help"], capture_output=True, text=True, timeout=60, cwd=REPO
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("usage:") and "--out" in done.stdout


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_progress_line_has_rate_and_eta() -> None:
    clock, stream = FakeClock(), io.StringIO()
    bar = Progress(100, "replay", stream=stream, interval_s=1.0, clock=clock)
    clock.t += 2.0
    bar.update(20)  # 20 frames in 2 s: 10 frames/s, 80 left -> 8 s
    assert stream.getvalue().splitlines() == ["[replay] 20/100 frames ( 20 %)  10.0 frames/s  ETA 8 s"]
    clock.t += 0.5
    bar.update(10)  # within the interval: no new line
    assert len(stream.getvalue().splitlines()) == 1
    clock.t += 0.5
    bar.update(10)  # 40 frames in 3 s, 60 left -> 4.5 s
    assert stream.getvalue().splitlines()[-1] == "[replay] 40/100 frames ( 40 %)  13.3 frames/s  ETA 4 s"
    bar.close()
    assert len(stream.getvalue().splitlines()) == 3


def test_progress_is_silent_when_disabled_and_honest_without_a_total() -> None:
    clock, stream = FakeClock(), io.StringIO()
    Progress(10, stream=stream, enabled=False, clock=clock).update(5)
    assert stream.getvalue() == ""
    bar = Progress(0, stream=stream, clock=clock)
    assert bar.line() == "[replay] 0/? frames  0.0 frames/s  ETA ?"


def test_replay_cli_shows_progress_and_lists_skipped_topics(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = replay_main([str(GOLDEN_BAG), "--out", str(tmp_path), "--end", "2"])
    assert rc == 0
    err = capsys.readouterr().err
    progress = [x for x in err.splitlines() if x.startswith("[replay] ") and "frames/s  ETA" in x]
    frames = json.loads((tmp_path / "replay_stats.json").read_text())["frames"]
    # the total is the frames of the replayed range [0, 2] s (10 Hz camera), not of the whole bag
    assert progress and progress[-1].startswith(f"[replay] {frames}/{frames} frames (100 %)")
    assert 19 <= frames <= 21
    assert "topics not replayed: /clock, /sim/ground_truth/odom" in err
