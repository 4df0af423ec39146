"""Per-scenario-type results: success rate and mean score, the expert beside the policy.

Input: run records of ``evaluation.evaluate`` (``{"driver": "policy" | "expert", "score":
RunScore.as_dict(), ...}``). Output: :func:`by_type` (the numbers, for ``summary.json``),
:func:`table` (markdown, printed and in ``summary.md``), and the plots: mean score per type
(:func:`plot_scores`), minimum time-to-collision per run (:func:`plot_ttc`) and a bird's-eye
snapshot of every failure (:func:`snapshot_failures`, ``bringup.report.plot_scene``).

One table from several evaluations (e.g. one ``--scenario`` run per type)::

    python -m minipamayo_ros.evaluation.scenario_table reports/eval-*/summary.json [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from minipamayo_ros.bringup.report import plot_scene
from minipamayo_ros.scoring.frames import SceneFrame
from minipamayo_ros.scoring.reference import world_config
from minipamayo_ros.scoring.score import MULTIPLIERS, WEIGHTS
from minipamayo_ros.sim.world import World

DRIVERS = ("policy", "expert")
SUBSCORES = (*MULTIPLIERS, *WEIGHTS)
#: short column names of the sub-scores (NAVSIM's abbreviations)
ABBREVIATIONS = {"no_at_fault_collision": "NC", "drivable_area_compliance": "DAC",
                 "traffic_rule_compliance": "TRC", "making_progress": "MP", "ego_progress": "EP",
                 "ttc_within_bound": "TTC",
                 "lane_keeping": "LK", "comfort": "C", "driving_direction": "DDC"}


def _stats(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    scores = [r["score"] for r in runs]
    failed: Counter[str] = Counter(k for s in scores for k, ok in s["checks"].items() if not ok)
    ttc = [s["min_ttc_s"] for s in scores]
    return {
        "runs": len(runs),
        "clean": sum(s["clean"] for s in scores),
        "clean_fraction": sum(s["clean"] for s in scores) / max(len(scores), 1),
        "mean_score": statistics.fmean(s["score"] for s in scores) if scores else math.nan,
        "subscores": {k: statistics.fmean(s["subscores"][k] for s in scores) for k in SUBSCORES}
        if scores else {},
        "failed_checks": dict(failed),
        "at_fault_collisions": sum(len(s["at_fault"]) for s in scores),
        "median_min_ttc_s": statistics.median(ttc) if ttc else math.nan,
    }


def by_type(runs: Sequence[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """``{scenario type: {driver: stats}}`` plus the row ``all``; types sorted by name (runs
    without a score are left out)."""
    runs = [r for r in runs if r.get("score")]
    out: dict[str, dict[str, dict[str, Any]]] = {}
    types = sorted({r["score"]["scenario"] for r in runs})
    for name in [*types, "all"]:
        rows = {}
        for driver in DRIVERS:
            mine = [r for r in runs if r["driver"] == driver and name in ("all", r["score"]["scenario"])]
            if mine:
                rows[driver] = _stats(mine)
        out[name] = rows
    return out


def _cell(stats: dict[str, Any] | None, key: str) -> str:
    if stats is None:
        return "-"
    if key == "clean":
        return f"{stats['clean']}/{stats['runs']} ({100 * stats['clean_fraction']:.0f} %)"
    return f"{stats['mean_score']:.3f}"


def table(summary: dict[str, dict[str, dict[str, Any]]]) -> str:
    """Markdown: per type the runs, clean runs and mean score of the policy and the expert, the
    policy's mean sub-scores and what failed."""
    head = ("| type | policy clean | policy score | expert clean | expert score | "
            + " | ".join(f"{ABBREVIATIONS[k]}" for k in SUBSCORES) + " | policy failures |\n"
            + "|---" * (6 + len(SUBSCORES)) + "|")
    rows = []
    for name, d in summary.items():
        p, e = d.get("policy"), d.get("expert")
        subs = " | ".join(f"{p['subscores'][k]:.2f}" if p else "-" for k in SUBSCORES)
        fails = ", ".join(f"{k} {n}" for k, n in sorted(p["failed_checks"].items())) if p else ""
        label = f"**{name}**" if name == "all" else name
        rows.append(f"| {label} | {_cell(p, 'clean')} | {_cell(p, 'score')} | {_cell(e, 'clean')} | "
                    f"{_cell(e, 'score')} | {subs} | {fails or '-'} |")
    note = ("\nclean = no at-fault collision, lane departure, stop-line or red-light violation, no stall "
            "(sim.metrics.clean_checks); score = NC x DAC x TRC x MP x (5 EP + 5 TTC + 2 LK + 2 C + 2 DDC) "
            "/ 16 (docs/closed-loop-evaluation.md); sub-score columns: the policy's means.")
    return "\n".join([head, *rows]) + "\n" + note


def plot_scores(summary: dict[str, dict[str, dict[str, Any]]], path: Path, title: str) -> bool:
    """Bars: mean score and clean fraction per type, policy beside expert; False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    names = list(summary)
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(names) + 2), 3.6))
    for k, (driver, colour) in enumerate((("policy", "tab:blue"), ("expert", "0.6"))):
        score = [summary[n].get(driver, {}).get("mean_score", np.nan) for n in names]
        clean = [summary[n].get(driver, {}).get("clean_fraction", np.nan) for n in names]
        ax.bar(x + (k - 0.5) * 0.38, score, 0.36, color=colour, label=f"{driver}: mean score")
        ax.plot(x + (k - 0.5) * 0.38, clean, "v", color="k" if k == 0 else "0.3", ms=6,
                label=f"{driver}: clean fraction")
    ax.set_xticks(list(x), names, rotation=20, fontsize=8)
    ax.set(ylim=(0, 1.05), ylabel="score / clean fraction", title=title)
    ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


def plot_ttc(runs: Sequence[dict[str, Any]], path: Path) -> bool:
    """Histogram of each run's minimum time-to-collision (the world's: both at constant velocity),
    policy and expert, with NAVSIM's 1 s horizon marked."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(6.0, 3.2))
    bins = [0.25 * i for i in range(21)]  # [s] 0..5
    for driver, colour in (("policy", "tab:blue"), ("expert", "0.6")):
        ttc = [min(r["score"]["min_ttc_s"], 5.0) for r in runs if r["driver"] == driver and r.get("score")]
        if ttc:
            ax.hist(ttc, bins=bins, color=colour, alpha=0.6, label=f"{driver} ({len(ttc)} runs)")
    ax.axvline(1.0, color="r", ls="--", lw=1, label="1 s")
    ax.set(xlabel="minimum time-to-collision of the run [s] (5 = none within the horizon)", ylabel="runs")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


def snapshot_failures(record: dict[str, Any], frames: Sequence[SceneFrame], out_dir: Path) -> list[Path]:
    """One bird's-eye PNG per failure of a run (its ``score["failures"]``); the paths."""
    s = record.get("score")
    if not s or not s["failures"] or not frames:
        return []
    out_dir.mkdir(parents=True, exist_ok=True)
    road = World(frames[0].world.seed, world_config(frames[0].world)).road
    partners = {round(i["time"], 3): i["agent_id"] for i in s["at_fault"]}
    paths = []
    tag = f"{record['driver']}_{s['scenario']}_seed{s['seed']}" + (
        f"_{record['latency_s']:g}s" if record.get("latency_s") is not None else "")
    for k, f in enumerate(s["failures"]):
        p = out_dir / f"{tag}_{k}_{f['check']}.png"
        plot_scene(road, list(frames), f["time"], p, f"{tag}: {f['what']}",
                   highlight=partners.get(round(f["time"], 3)))
        paths.append(p)
    return paths


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="One per-type table from evaluation summaries")
    p.add_argument("summaries", nargs="+", type=Path, help="summary.json files of evaluation.evaluate")
    p.add_argument("--out", type=Path, default=None,
                   help="also write DIR/by_type.json, table.md, scores.png, ttc.png")
    a = p.parse_args(argv)
    runs = [r for path in a.summaries for r in json.loads(path.read_text())["runs"]]
    types = by_type(runs)
    print(table(types))
    if a.out is not None:
        a.out.mkdir(parents=True, exist_ok=True)
        (a.out / "by_type.json").write_text(json.dumps(types, indent=2))
        (a.out / "table.md").write_text(table(types) + "\n")
        plot_scores(types, a.out / "scores.png", f"{len(runs)} runs from {len(a.summaries)} evaluations")
        plot_ttc(runs, a.out / "ttc.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
