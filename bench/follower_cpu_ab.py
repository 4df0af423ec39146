"""Follower CPU before / after in one run: the bare rclpy timer, the follower node of a git revision
(default ``main``) and the working tree's, interleaved over rounds (a shared machine's load drifts).

    python -m bench.follower_cpu_ab [--rev main] [--rounds 3] [--seconds 10] [--out FILE.json]

Each case is ``bench_follower.measure_timer`` (rounds: ``interleaved_cpu``): the node at 100 Hz in
its own process, same feed (odometry 50 Hz, trajectories 10 Hz) and subscribers on all three
outputs; CPU = the process's user + system time per second over the window. The revision's
``follower_node.py`` runs as a module from a temporary folder against this tree's other modules
(the two differ only there).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.bench_follower import FOLLOWER_MODULE, interleaved_cpu, mean_cpu

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rev", default="main")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--out", type=Path)
    a = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        src = subprocess.run(["git", "show", f"{a.rev}:minipamayo_ros/nodes/follower_node.py"], cwd=REPO,
                             check=True, capture_output=True, text=True).stdout
        (Path(tmp) / "follower_node_at_rev.py").write_text(src)
        os.environ["PYTHONPATH"] = os.pathsep.join([tmp, os.environ.get("PYTHONPATH", "")])
        cases = {"bare_timer": "bench.bench_follower", f"follower@{a.rev}": "follower_node_at_rev",
                 "follower@tree": FOLLOWER_MODULE}
        runs = interleaved_cpu(cases, a.rounds, a.seconds, Path(tmp), progress=True)
    mean = {k: mean_cpu(v) for k, v in runs.items()}
    ratios = {k: round(mean[k] / mean["bare_timer"], 3) for k in cases if k != "bare_timer"}
    print("mean CPU [ms/s]:", {k: round(v, 1) for k, v in mean.items()}, "ratio to bare_timer:", ratios)
    if a.out:
        a.out.write_text(json.dumps({"rev": a.rev, "seconds": a.seconds, "rounds": a.rounds,
                                     "mean_cpu_ms_per_s": mean, "ratio_to_bare_timer": ratios,
                                     "runs": runs}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
