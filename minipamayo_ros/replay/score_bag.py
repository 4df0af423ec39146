"""Score a recorded run from its bag: the same score as the live evaluation, from the ground truth.

    python -m minipamayo_ros.replay.score_bag BAG [--start S] [--end S] [--out DIR]

Reads the simulator's scene frames (``/sim/ground_truth/scene``, ``std_msgs/String``: recorded by
``record`` by default, by ``scripts/demo.sh --record`` and by ``replay.simbag``) and scores every
episode in the bag with ``scoring.score.score_frames`` -- the function the evaluator, the demo
report and the soak call, so a bag of a demo run scores exactly what the demo reported when given
its window (``metrics.json``: ``score.score_window``). The window [``--start``, ``--end``] is
in node-clock seconds (the frames' stamps, sim time); the default starts at the first
``/vla/trajectory`` of an episode (when the stack took over; a bag without trajectories: its
first frame) and ends at its last frame.

Prints one line per episode and the scores as JSON; ``--out DIR`` also writes ``scores.json``.
Exit status 0, or 2 when the bag has no scene frames.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from minipamayo_ros.replay.bagio import STRING, TRAJECTORY, BagError, BagReader
from minipamayo_ros.scoring.frames import TOPIC, SceneFrame, from_json
from minipamayo_ros.scoring.score import RunScore, episode_frames, score_frames


def read_bag(path: Path) -> tuple[list[SceneFrame], list[float]]:
    """(scene frames, log times [s] of the trajectories) of a bag."""
    with BagReader(path) as reader:
        assert reader.info is not None
        scene = [t.name for t in reader.info.topics if t.name.endswith(TOPIC) and t.msgtype == STRING]
        trajs = [t.name for t in reader.info.topics if t.msgtype == TRAJECTORY]
        frames: list[SceneFrame] = []
        starts: list[float] = []
        for topic, _, log_ns, msg in reader.messages([*scene, *trajs]):
            if topic in scene:
                frames.append(from_json(msg.data))
            else:
                starts.append(log_ns * 1e-9)
    return frames, starts


def score_bag(frames: Sequence[SceneFrame], trajectory_times: Sequence[float] = (),
              start: float | None = None, end: float | None = None) -> list[RunScore]:
    """The score of every episode of the frames (window as in the module doc)."""
    out = []
    for episode in sorted({f.episode for f in frames}):
        fs = episode_frames(frames, episode)
        first = start
        if first is None:
            first = next((t for t in sorted(trajectory_times) if fs[0].stamp <= t <= fs[-1].stamp), None)
        out.append(score_frames(fs, first, end))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("bag", type=Path)
    p.add_argument("--start", type=float, default=None, help="[s] node clock: window start")
    p.add_argument("--end", type=float, default=None, help="[s] node clock: window end")
    p.add_argument("--out", type=Path, default=None, help="also write DIR/scores.json")
    a = p.parse_args(argv)
    try:
        frames, trajs = read_bag(a.bag)
    except BagError as e:
        print(f"score_bag: {e}", file=sys.stderr)
        return 2
    if not frames:
        print(f"score_bag: {a.bag} has no scene frames ({TOPIC}, {STRING}); record it with the simulator's "
              "ground truth (replay.record's default topics)", file=sys.stderr)
        return 2
    scores = score_bag(frames, trajs, a.start, a.end)
    result: list[dict[str, Any]] = [s.as_dict() for s in scores]
    for s in scores:
        failed = ", ".join(f"{f['check']} @ {f['time']:.1f} s" for f in s.failures) or "clean"
        print(f"episode {s.episode} (seed {s.seed}, {s.scenario}): score {s.score:.3f}, "
              f"{s.progress_m:.0f} / {s.reference_progress_m:.0f} m, min TTC {s.min_ttc_s:.1f} s, "
              f"window {s.start_s:.2f}-{s.end_s:.2f} s: {failed}", file=sys.stderr)
    text = json.dumps(result, indent=1)
    print(text)
    if a.out is not None:
        a.out.mkdir(parents=True, exist_ok=True)
        (a.out / "scores.json").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
