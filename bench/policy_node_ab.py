"""Policy node overhead before / after in one run: the node of a git revision (default ``main``)
and the working tree's, interleaved over rounds at ``max_rate_hz`` 10 (a shared machine's load drifts).

    python -m bench.policy_node_ab [--rev main] [--rounds 3] [--seconds 30] [--out FILE.json]

Each case is ``bench_policy_node.measure`` (the shipped model, 320x320 rgb8 at 30 Hz, odometry at
50 Hz, fed by this process over loopback DDS): overhead = end-to-end minus engine time per
trajectory. The revision's ``nodes/policy_node.py`` and ``policy/scheduler.py`` run as modules from a
temporary folder against this tree's other modules.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from bench.bench_policy_node import SHIPPED, measure
from minipamayo_ros.dds_env import lease_domain_id, use_loopback_dds

REPO = Path(__file__).resolve().parents[1]
KEYS = ("overhead_p50_ms", "overhead_p95_ms", "overhead_p99_ms", "inference_p50_ms", "end_to_end_p95_ms",
        "node_transport_p50_ms", "node_queue_p95_ms", "node_preprocess_p50_ms")


def _at_rev(rev: str, tmp: Path) -> str:
    """The revision's policy node as module ``policy_node_at_rev`` (with its own scheduler)."""
    def show(path: str) -> str:
        return subprocess.run(["git", "show", f"{rev}:{path}"], cwd=REPO, check=True, capture_output=True,
                              text=True).stdout

    (tmp / "scheduler_at_rev.py").write_text(show("minipamayo_ros/policy/scheduler.py"))
    node = show("minipamayo_ros/nodes/policy_node.py").replace(
        "from minipamayo_ros.policy.scheduler import", "from scheduler_at_rev import")
    (tmp / "policy_node_at_rev.py").write_text(node)
    return "policy_node_at_rev"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rev", default="main")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--out", type=Path)
    a = ap.parse_args(argv)
    use_loopback_dds(lease_domain_id())
    runs: dict[str, list[dict[str, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["PYTHONPATH"] = os.pathsep.join([tmp, os.environ.get("PYTHONPATH", "")])
        cases = {f"policy@{a.rev}": _at_rev(a.rev, Path(tmp)),
                 "policy@tree": "minipamayo_ros.nodes.policy_node"}
        for r in range(a.rounds):
            for name, module in cases.items():
                m = measure(str(SHIPPED), 10.0, a.seconds, Path(tmp) / f"{name}.log", module)
                row = {k: round(float(m[k]), 3) for k in KEYS if k in m}
                row["loadavg_1min"] = round(os.getloadavg()[0], 2)
                runs.setdefault(name, []).append(row)
                print(f"round {r} {name}: {row}", flush=True)
    mean = {name: {k: round(float(np.mean([x[k] for x in rows])), 3) for k in rows[0]}
            for name, rows in runs.items()}
    for name, m in mean.items():
        print(f"{name}: overhead p50/p95/p99 {m['overhead_p50_ms']:.2f}/{m['overhead_p95_ms']:.2f}/"
              f"{m['overhead_p99_ms']:.2f} ms (mean of {a.rounds} rounds)")
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        record = {"rev": a.rev, "seconds": a.seconds, "rounds": a.rounds, "cpu_count": os.cpu_count(),
                  "mean": mean, "runs": runs}
        a.out.write_text(json.dumps(record, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
