"""Closed-loop quality over many seeds: the bar a policy must meet, offline or over DDS.

    python -m minipamayo_ros.evaluation.evaluate [--split validation|test] [--episodes 20] \
        [--seeds SPEC] [--via offline|dds] [--duration 60] [--latency 0.02,0.1] [--out reports/eval] \
        [--scenario TYPE | --scenario-mix MIX] [--no-expert] [--workers N]

``--via offline`` (default, ~6 s per episode on one core): the ROS-free closed loop
(``evaluation.closed_loop``) with the policy node's own pipeline (ONNX Runtime). ``--via dds``
(~60 s per seed): the whole stack (simulator + policy + follower nodes over real DDS,
``bringup.demo``), which adds the real scheduling, transport and rates. Offline, each seed runs
once per ``--latency`` (image stamp -> trajectory at the follower [s]): 0.02 s is the deployed stack
on this machine (end-to-end p95 ~14 ms plus the next 50 Hz follower tick), 0.1 s a slower computer.
The policy's behaviour must not hinge on it (seed 20035 waits for ever at its stop line at 0.02 s,
not at 0.1 s: ``docs/closed-loop-evaluation.md``).

Seeds: ``--seeds`` (seed spec) or the first ``--episodes`` seeds of ``--split``. Every decision
(checkpoints, DAgger rounds, tuning) uses **validation** seeds; **test** seeds are for the final
report of a released model only (``minipamayo_ros/seeds.py``).

World: ``--scenario-mix`` (a mix of ``config/scenarios.yaml``; default ``classic``, the world
the shipped policy was trained in) or ``--scenario TYPE`` (every seed gets that type). Every run
is scored from its scene frames (``scoring.score``: the PDM-style score and its sub-scores) and,
unless ``--no-expert``, the expert drives the same seed through the same closed loop at the same
latency (over DDS: offline at 0.02 s), so each scenario type's table row shows the policy beside
the expert (``evaluation.scenario_table``).

Writes ``summary.json``, ``summary.md`` (per-run table, per-type table, verdict), ``summary.png``
(per-seed error), ``scores.png`` (mean score / clean fraction per type), ``ttc.png`` (minimum
time-to-collision per run) and ``failures/*.png`` (a bird's-eye snapshot of every failure).
The bar: >= 95 % of the policy's runs clean (``sim.metrics.clean_checks``: no at-fault collision,
lane departure, stop-line or red-light violation, no stall over ``MAX_STALL_S`` while the expert
would drive), median cross-track RMS <= 0.25 m, and no plan of the policy rejected
(``plans_rejected``: withheld by the policy's output check or refused by the follower, e.g. by the
consistency / physics checks of ``safety.plan_checks``); over DDS also the policy rate within
10 % of max_rate_hz and the follower at its configured rate. Offline, the summary also gives how
close the plans came to each plan check's limit (``plan_limit_use``: the worst value / the limit,
1 = at it). Exit status 0 = pass, 1 = fail.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from minipamayo_ros import seeds as seedsplit
from minipamayo_ros.bringup.demo import episode_road_length, run_closed_loop
from minipamayo_ros.bringup.report import driving_checks
from minipamayo_ros.bringup.runner import add_stack_arguments
from minipamayo_ros.evaluation import scenario_table
from minipamayo_ros.evaluation.closed_loop import (
    ClosedLoopSettings,
    ExpertPolicy,
    add_scenario_arguments,
    load_policy,
    run_episode,
    scenario_world,
)
from minipamayo_ros.policy.config import DEFAULT_MANIFEST
from minipamayo_ros.scoring.frames import SCENE_FILE, SceneFrame, from_json, load_frames
from minipamayo_ros.scoring.score import score_frames
from minipamayo_ros.sim.world import WorldConfig

#: the bar (bringup issue): share of clean runs, median cross-track RMS [m]
MIN_CLEAN_FRACTION = 0.95
MAX_MEDIAN_RMS_M = 0.25
EXPERT_LATENCY = 0.02  # [s] the deployed stack's: the expert beside a DDS run drives offline at it


def verdict(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Pass/fail of the policy's ``runs`` (per-run dicts with ``checks`` and ``driving``); rate checks
    where present."""
    clean = [r for r in runs if all(driving_checks(r["driving"]).values())]
    rms = [r["driving"]["cross_track_rms_m"] for r in runs if r["driving"]["cross_track_rms_m"] is not None]
    median_rms = statistics.median(rms) if rms else float("nan")
    clean_frac = len(clean) / max(len(runs), 1)
    plans = [r["plans"] for r in runs if "plans" in r]
    rejected = sum(p["rejected_output_check"] + p["rejected_by_follower"] for p in plans)
    out: dict[str, Any] = {"runs": len(runs), "clean_fraction": clean_frac,
                           "median_cross_track_rms_m": median_rms,
                           "plans_published": sum(p["published"] for p in plans),
                           "plans_rejected": rejected}
    use = [p["limit_use"] for p in plans if p.get("limit_use")]
    if use:
        out["plan_limit_use"] = {k: round(max(u.get(k, 0.0) for u in use), 4) for k in use[0]}
    ok = clean_frac >= MIN_CLEAN_FRACTION and median_rms <= MAX_MEDIAN_RMS_M and rejected == 0
    for check, key in (("policy_rate_within_10pct", "policy_rate_ok_all_runs"),
                       ("follower_rate_within_10pct", "follower_rate_ok_all_runs")):
        values = [r["checks"][check] for r in runs if check in r["checks"]]
        if values:
            out[key] = all(values)
            ok = ok and all(values)
    out["pass"] = bool(ok)
    return out


def offline_run(seed: int, policy: Any, duration: float, latency: float = 0.1,
                world: WorldConfig | None = None, driver: str = "policy"
                ) -> tuple[dict[str, Any], list[SceneFrame]]:
    """One ROS-free episode as a run record (the DDS report's ``driving`` / ``checks`` / ``score``
    keys) and its scene frames; ``latency`` [s]: image stamp -> trajectory at the follower;
    ``world``: the scenario mix (default classic) on the DDS evaluation's road length."""
    cfg = dds_world(duration)
    if world is not None:
        cfg = replace(cfg, scenarios=world.scenarios)
    r = run_episode(seed, policy, world_config=cfg,
                    settings=ClosedLoopSettings(max_seconds=duration, latency=latency), record_frames=True)
    frames = [from_json(text) for text in r.frames or []]
    score = score_frames(frames, start_stamp=r.first_trajectory_s).as_dict()
    m = dict(frames[-1].metrics)
    plans = {"published": r.trajectories, "rejected_output_check": r.skipped.get("invalid_output", 0),
             "rejected_by_follower": r.rejected_trajectories, "limit_use": r.plan_limit_use}
    return {"seed": seed, "scenario": r.scenario, "latency_s": latency, "driver": driver, "driving": m,
            "finished": r.finished, "incidents": list(r.incidents),
            "policy_calls": r.policy_calls, "skipped": r.skipped,
            "rejected_trajectories": r.rejected_trajectories, "plans": plans, "checks": driving_checks(m),
            "score": score}, frames


_WORKER_POLICY: dict[str, Any] = {}


def _offline_job(job: tuple[int, float, float, str, WorldConfig, bool]
                 ) -> list[tuple[dict[str, Any], list[SceneFrame]]]:
    """``--workers``: one (seed, latency) offline, the policy (loaded once per process) and the expert."""
    seed, lat, duration, engine, world, expert = job
    if engine not in _WORKER_POLICY:
        _WORKER_POLICY[engine] = load_policy(engine)
    records = [offline_run(seed, _WORKER_POLICY[engine], duration, lat, world)]
    if expert:
        records.append(offline_run(seed, ExpertPolicy(), duration, lat, world, driver="expert"))
    return records


def dds_world(duration: float) -> WorldConfig:
    """The world the DDS evaluation drives (``bringup.demo.sim_overrides``): one long road."""
    cfg = WorldConfig()
    return replace(cfg, road=replace(cfg.road, length=episode_road_length(duration)))


def table(runs: list[dict[str, Any]]) -> str:
    head = ("| seed | split | type | driver | latency s | distance m | xtrack RMS m | xtrack max m "
            "| departures | collisions (at fault) | stop viol. | red lights | min TTC s | longest stall s "
            "| score | plans rejected "
            "| policy Hz (sim) | e2e p95 ms (steady) | follower Hz (sim) |\n"
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    rows = []
    for r in runs:
        d, p, f = r["driving"], r.get("policy"), r.get("follower")
        rates = (f"{p['rate_hz']:.2f} | {p['end_to_end_ms']['p95']:.1f} | {f['rate_hz']:.1f}" if p and f
                 else "- | - | -")
        s = r.get("score") or {}
        rows.append(
            f"| {r['seed']} | {seedsplit.split_of(r['seed'])} | {s.get('scenario', '-')} | "
            f"{r.get('driver', 'policy')} | {r.get('latency_s', 'live')} | {d['distance_m']:.0f} | "
            f"{d['cross_track_rms_m']:.3f} | {d['cross_track_max_m']:.3f} | {d['lane_departures']:.0f} | "
            f"{d['collisions']:.0f} ({d.get('at_fault_collisions') or 0:.0f}) | "
            f"{d['stop_line_violations']:.0f} | "
            f"{d.get('red_light_violations') or 0:.0f} | {d.get('min_ttc_s') or 0.0:.1f} | "
            f"{(d.get('longest_stall_s') or 0.0):.1f} | {s.get('score', float('nan')):.3f} | "
            f"{_rejected(r)} | {rates} |")
    note = ("\nRates are counted over sim time; e2e p95 is the steady-clock time inside the policy node "
            "from receiving the image to publishing (Trajectory.end_to_end_latency_ms; transport not "
            "measurable under sim time). Plans rejected: withheld by the policy's output check / "
            "refused by the follower.")
    return "\n".join([head, *rows]) + "\n" + note


def _rejected(run: dict[str, Any]) -> str:
    """``withheld by the output check / refused by the follower`` of one run's plans."""
    p = run.get("plans")
    return f"{p['rejected_output_check']} / {p['rejected_by_follower']}" if p else "-"


def plot(runs: list[dict[str, Any]], path: Path, title: str) -> bool:
    """Per-seed cross-track RMS / max bars (runs with a departure or collision in red); False
    without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    seeds = [f"{r['seed']}" + (f"@{r['latency_s']:g}s" if "latency_s" in r else "") for r in runs]
    rms = [r["driving"]["cross_track_rms_m"] or 0.0 for r in runs]
    mx = [r["driving"]["cross_track_max_m"] or 0.0 for r in runs]
    bad = [not all(driving_checks(r["driving"]).values()) for r in runs]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.25 * len(runs) + 2), 3.2))
    x = range(len(runs))
    ax.bar(x, mx, color="0.8", label="max")
    ax.bar(x, rms, color=["tab:red" if b else "tab:blue" for b in bad], label="RMS")
    ax.axhline(MAX_MEDIAN_RMS_M, ls="--", lw=0.8, color="k", label=f"bar: median RMS {MAX_MEDIAN_RMS_M} m")
    ax.set_xticks(list(x), seeds, rotation=90, fontsize=6)
    ax.set(ylabel="cross-track [m]", title=title)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


def _say(rec: dict[str, Any]) -> None:
    d, s = rec["driving"], rec.get("score")
    if s is None:  # a simulator without scene frames (publish_ground_truth false): no score
        print(f"[eval]   {rec['driver']:<6} NOT SCORED (no scene frames); checks {rec['checks']}",
              file=sys.stderr, flush=True)
        return
    failed = [f"{f['check']} @ {f['time']:.1f} s ({f['what']})" for f in s["failures"]]
    print(f"[eval]   {rec['driver']:<6} {s['scenario']}: distance {d['distance_m']:.0f} m, xtrack RMS "
          f"{d['cross_track_rms_m']:.3f} m, collisions {d['collisions']} (at fault "
          f"{d.get('at_fault_collisions') or 0}), min TTC {s['min_ttc_s']:.1f} s, progress "
          f"{s['progress_m']:.0f} / {s['reference_progress_m']:.0f} m, score {s['score']:.3f}"
          + (f"  FAILED: {'; '.join(failed)}" if failed else ""), file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--split", default=seedsplit.VALIDATION,
                        choices=(seedsplit.VALIDATION, seedsplit.TEST),
                        help="seed split to evaluate on (test: final reports only)")
    parser.add_argument("--episodes", type=int, default=20, help="first N seeds of --split")
    parser.add_argument("--seeds", default="", help="seed spec instead of --split/--episodes")
    parser.add_argument("--via", default="offline", choices=("offline", "dds"))
    parser.add_argument("--duration", type=float, default=60.0, help="sim seconds per run")
    parser.add_argument("--latency", default="0.02,0.1",
                        help="offline: image -> follower latencies [s], comma-separated (each seed at each)")
    parser.add_argument("--no-expert", action="store_true", help="do not drive the expert beside the policy")
    parser.add_argument("--workers", type=int, default=1,
                        help="offline: parallel processes (one run each; same results as 1, in seed order)")
    parser.add_argument("--out", type=Path, default=None)
    add_scenario_arguments(parser)
    add_stack_arguments(parser)
    parser.set_defaults(backend="onnxruntime", stack="sim")
    args = parser.parse_args(argv)
    world = scenario_world(parser, args)
    mix = args.scenario or args.scenario_mix
    seeds = (seedsplit.parse_seeds(args.seeds) if args.seeds else seedsplit.first(args.split, args.episodes))
    out = args.out or Path("reports") / time.strftime("eval-%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    if args.via == "offline" and args.workers <= 1:
        policy = load_policy(args.engine)
    latencies = [float(x) for x in args.latency.split(",") if x.strip()] if args.via == "offline" else [None]
    jobs = [(seed, lat) for seed in seeds for lat in latencies]
    runs: list[dict[str, Any]] = []
    snapshots: list[Path] = []
    done: Any = iter(())
    if args.via == "offline" and args.workers > 1:
        import multiprocessing

        pool = multiprocessing.get_context("spawn").Pool(args.workers)
        done = pool.imap(_offline_job, [(seed, float(lat or 0.0), args.duration, args.engine, world,
                                         not args.no_expert) for seed, lat in jobs])  # offline: lat set
    for i, (seed, lat) in enumerate(jobs):
        at = f", latency {lat:g} s" if lat is not None else ""
        kind = world.scenarios.for_seed(seed).name if world.scenarios else "classic"
        print(f"[eval] run {i + 1}/{len(jobs)}: seed {seed} ({args.via}{at}, {kind})", file=sys.stderr,
              flush=True)
        if lat is not None and args.workers > 1:
            for rec, fr in next(done):
                runs.append(rec)
                _say(rec)
                snapshots += scenario_table.snapshot_failures(rec, fr, out / "failures")
            continue
        if lat is not None:
            m, frames = offline_run(seed, policy, args.duration, lat, world)
        else:
            m = run_closed_loop(seed, args.duration, out / f"seed{seed}", args, snapshot_count=2,
                                progress=False)
            m["driver"] = "policy"
            frames = load_frames(out / f"seed{seed}" / SCENE_FILE)
        m["seed"] = seed
        records = [(m, frames)]
        if not args.no_expert:
            records.append(offline_run(seed, ExpertPolicy(), args.duration,
                                       EXPERT_LATENCY if lat is None else lat, world, driver="expert"))
        for rec, fr in records:
            runs.append(rec)
            _say(rec)
            snapshots += scenario_table.snapshot_failures(rec, fr, out / "failures")
    policy_runs = [r for r in runs if r["driver"] == "policy"]
    v = {**verdict(policy_runs), "via": args.via, "seeds": seedsplit.format_seeds(seeds),
         "splits": sorted({str(seedsplit.split_of(s)) for s in seeds}), "scenario_mix": mix,
         "model": args.engine or DEFAULT_MANIFEST}
    types = scenario_table.by_type(runs)
    (out / "summary.json").write_text(json.dumps({"verdict": v, "by_type": types, "runs": runs}, indent=2,
                                                 default=str))
    title = f"{args.via}: {len(policy_runs)} runs ({', '.join(v['splits'])}), {v['model']}"
    pngs = [f"![{name}]({name}.png)" for name, ok in (
        ("summary", plot(policy_runs, out / "summary.png", title)),
        ("scores", scenario_table.plot_scores(types, out / "scores.png", f"{args.via}, mix {mix}")),
        ("ttc", scenario_table.plot_ttc(runs, out / "ttc.png"))) if ok]
    fails = "".join(f"\n![{p.stem}](failures/{p.name})" for p in snapshots)
    md = (f"# Closed-loop evaluation ({args.via}, mix {mix})\n\n## Per scenario type\n\n"
          f"{scenario_table.table(types)}\n\n## Runs\n\n{table(runs)}\n\nverdict: `{json.dumps(v)}`\n\n"
          + "\n".join(pngs) + ("\n\n## Failures\n" + fails if fails else "") + "\n")
    (out / "summary.md").write_text(md)
    print(f"# Per scenario type ({args.via}, mix {mix})\n\n{scenario_table.table(types)}\n\n"
          f"verdict: `{json.dumps(v)}`\nreport: {out}/summary.md")
    return 0 if v["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
