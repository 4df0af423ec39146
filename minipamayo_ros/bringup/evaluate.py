"""Closed-loop quality over many held-out seeds (the bar of the bringup issue).

    python -m minipamayo_ros.bringup.evaluate [--seeds 1000:1020] [--duration 60] [--out reports/eval]

Runs the whole stack (simulator + policy + follower over real DDS) once per seed, writes each
run's report folder, then ``summary.json`` and ``summary.md`` with the table and the verdict:
>= 95 % of runs without lane departure or collision, median cross-track RMS <= 0.25 m, policy
rate within 10 % of max_rate_hz, follower at its configured rate.
Seeds 1000+ are never used for training data (see docs/model.md).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from minipamayo_ros.bringup.demo import run_closed_loop
from minipamayo_ros.bringup.runner import add_stack_arguments


def parse_seeds(text: str) -> list[int]:
    """``"a:b"`` (b exclusive) or ``"1,5,7"``."""
    if ":" in text:
        a, b = (int(x) for x in text.split(":"))
        return list(range(a, b))
    return [int(x) for x in text.split(",") if x]


def verdict(runs: list[dict[str, Any]]) -> dict[str, Any]:
    clean = [r for r in runs if r["checks"]["no_lane_departure"] and r["checks"]["no_collision"]]
    rms = [r["driving"]["cross_track_rms_m"] for r in runs if r["driving"]["cross_track_rms_m"] is not None]
    median_rms = statistics.median(rms) if rms else float("nan")
    clean_frac = len(clean) / max(len(runs), 1)
    policy_ok = all(r["checks"]["policy_rate_within_10pct"] for r in runs)
    follower_ok = all(r["checks"]["follower_rate_within_10pct"] for r in runs)
    return {
        "runs": len(runs),
        "clean_fraction": clean_frac,
        "median_cross_track_rms_m": median_rms,
        "policy_rate_ok_all_runs": policy_ok,
        "follower_rate_ok_all_runs": follower_ok,
        "pass": clean_frac >= 0.95 and median_rms <= 0.25 and policy_ok and follower_ok,
    }


def table(runs: list[dict[str, Any]]) -> str:
    head = ("| seed | distance m | xtrack RMS m | xtrack max m | departures | collisions | stop viol. "
            "| policy Hz | e2e p95 ms | follower Hz |\n|---|---|---|---|---|---|---|---|---|---|")
    rows = []
    for r in runs:
        d, p, f = r["driving"], r["policy"], r["follower"]
        rows.append(
            f"| {r['seed']} | {d['distance_m']:.0f} | {d['cross_track_rms_m']:.3f} | "
            f"{d['cross_track_max_m']:.3f} | {d['lane_departures']:.0f} | {d['collisions']:.0f} | "
            f"{d['stop_line_violations']:.0f} | {p['rate_hz']:.2f} | {p['end_to_end_ms']['p95']:.1f} | "
            f"{f['rate_hz']:.1f} |")
    return "\n".join([head, *rows])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--seeds", default="1000:1020")
    parser.add_argument("--duration", type=float, default=60.0, help="sim seconds per run")
    parser.add_argument("--out", type=Path, default=None)
    add_stack_arguments(parser)
    parser.set_defaults(backend="onnxruntime", stack="sim")
    args = parser.parse_args(argv)
    seeds = parse_seeds(args.seeds)
    out = args.out or Path("reports") / time.strftime("eval-%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    runs = []
    for i, seed in enumerate(seeds):
        print(f"[eval] run {i + 1}/{len(seeds)}: seed {seed}", file=sys.stderr, flush=True)
        m = run_closed_loop(seed, args.duration, out / f"seed{seed}", args, snapshot_count=2,
                            progress=False)
        runs.append(m)
        d = m["driving"]
        print(f"[eval]   distance {d['distance_m']} m, xtrack RMS {d['cross_track_rms_m']} m, "
              f"departures {d['lane_departures']}, collisions {d['collisions']}", file=sys.stderr)
    v = verdict(runs)
    (out / "summary.json").write_text(json.dumps({"verdict": v, "runs": runs}, indent=2, default=str))
    md = f"# Closed-loop evaluation\n\n{table(runs)}\n\nverdict: `{json.dumps(v)}`\n"
    (out / "summary.md").write_text(md)
    print(md)
    return 0 if v["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
