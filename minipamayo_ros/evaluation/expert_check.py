"""The expert's clean-run rate per scenario type: the ceiling of every table, and the world's check.

    python -m minipamayo_ros.evaluation.expert_check [--episodes 100] [--latency 0.02] \
        [--types lead_vehicle,cut_in] [--duration 60] [--workers 2] [--json out.json]

For each scenario type the first ``--episodes`` validation seeds are driven by the expert's plan
through the real follower (``closed_loop.ExpertPolicy``, trajectories delivered ``--latency`` s
after their image stamp, the deployed 0.02 s by default) on the DDS evaluation's road. A run is
clean when every ``sim.metrics.clean_checks`` holds (no at-fault collision, no lane departure, no
stop-line or red-light violation, no stall). The bar (issue 21): >= 99 % clean in every type.
Exit status 0 = bar met.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import time
from dataclasses import replace
from typing import Any

from minipamayo_ros import seeds as seedsplit
from minipamayo_ros.evaluation.closed_loop import ClosedLoopSettings, ExpertPolicy, run_episode
from minipamayo_ros.sim.metrics import clean_checks
from minipamayo_ros.sim.scenario import load_catalog
from minipamayo_ros.sim.world import WorldConfig

MIN_CLEAN = 0.99


def _run(job: tuple[str, int, float, float, float]) -> dict[str, Any]:
    scenario, seed, latency, duration, road_length = job
    cfg = replace(WorldConfig(), scenarios=load_catalog().mix(scenario=scenario))
    cfg = replace(cfg, road=replace(cfg.road, length=road_length))
    r = run_episode(seed, ExpertPolicy(), world_config=cfg,
                    settings=ClosedLoopSettings(max_seconds=duration, latency=latency))
    m = r.metrics.as_dict()
    checks = clean_checks(m)
    return {"scenario": scenario, "seed": seed, "clean": all(checks.values()),
            "failed": [k for k, ok in checks.items() if not ok], "metrics": m,
            "incidents": list(r.incidents), "finished": r.finished}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--episodes", type=int, default=100, help="validation seeds per scenario type")
    parser.add_argument("--first-seed", type=int, default=0, help="skip this many validation seeds")
    parser.add_argument("--latency", type=float, default=0.02, help="image stamp -> trajectory [s]")
    parser.add_argument("--duration", type=float, default=60.0, help="sim seconds per run")
    parser.add_argument("--types", default="", help="comma-separated scenario types (default: all)")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--json", default="", help="write every run here")
    args = parser.parse_args(argv)
    cat = load_catalog()
    types = [t for t in args.types.split(",") if t] or list(cat.types)
    for t in types:
        if t not in cat.types:
            parser.error(f"unknown scenario type {t!r}; allowed: {', '.join(cat.types)}")
    seeds = seedsplit.first(seedsplit.VALIDATION, args.first_seed + args.episodes)[args.first_seed:]
    from minipamayo_ros.bringup.demo import sim_overrides

    road_length = float(sim_overrides(args.duration)["road_length"])  # type: ignore[arg-type]
    jobs = [(t, s, args.latency, args.duration, road_length) for t in types for s in seeds]
    t0 = time.monotonic()
    runs: list[dict[str, Any]] = []
    with multiprocessing.get_context("spawn").Pool(max(args.workers, 1)) as pool:
        for i, r in enumerate(pool.imap(_run, jobs)):
            runs.append(r)
            if not r["clean"]:
                print(f"[expert] {r['scenario']} seed {r['seed']}: {', '.join(r['failed'])} "
                      f"{r['incidents'][:2]}", file=sys.stderr, flush=True)
            if (i + 1) % 20 == 0:
                print(f"[expert] {i + 1}/{len(jobs)} runs, {time.monotonic() - t0:.0f} s", file=sys.stderr,
                      flush=True)
    ok = True
    lines = ["| scenario type | runs | clean | clean % | failures |", "|---|---|---|---|---|"]
    for t in types:
        rs = [r for r in runs if r["scenario"] == t]
        clean = sum(r["clean"] for r in rs)
        frac = clean / max(len(rs), 1)
        ok = ok and frac >= MIN_CLEAN
        fails: dict[str, int] = {}
        for r in rs:
            for f in r["failed"]:
                fails[f] = fails.get(f, 0) + 1
        lines.append(f"| {t} | {len(rs)} | {clean} | {100 * frac:.1f} | "
                     f"{', '.join(f'{k} {v}' for k, v in sorted(fails.items())) or '-'} |")
    print("\n".join(lines))
    print(f"latency {args.latency} s, {args.duration:.0f} s runs, validation seeds "
          f"{seedsplit.format_seeds(seeds)}; bar >= {100 * MIN_CLEAN:.0f} % clean per type: "
          f"{'met' if ok else 'NOT met'}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"runs": runs, "pass": ok}, f, indent=1, default=str)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
