"""The churn benchmark held for 30 minutes: does the control path stay free of stalls, and does the
policy's latency drift, while tools keep coming and going (issue 23's soak bar)?

Same stack, camera, text storm and churn participants as ``bench_churn`` (one every 5 s, living
4 s), with no steady windows: ``MINUTES`` one-minute churn windows back to back (quick: 3 of 10 s).
Figures: every window's policy end-to-end p50/p99, the pooled stalls (policy sample > 100 ms,
``/vla/control`` gap > 50 ms, late ticks inside the follower), and the p99 drift: the pooled p99 of
the last third of the windows over that of the first third, minus one (the bar: <= 10 %; a leak, a
growing queue or a slowly fragmenting heap shows there). A plot of the per-window p99 and max.

    scripts/bench.sh --only churn_soak        # ~32 min; a run without --only skips it (bench.run.ON_REQUEST)
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.bench_churn import (
    CHURN_LIFE_S,
    CHURN_PERIOD_S,
    E2E_BAR_MS,
    GAP_BAR_MS,
    ChurnStack,
    case_figures,
    prepare,
    profile_facts,
)
from bench.result import BenchResult

MINUTES = 30
DRIFT_BAR = 0.10


def _plot(per_window: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [w["minute"] for w in per_window]
    fig, ax = plt.subplots(figsize=(8, 3.5))
    ax.plot(t, [w["p99_ms"] for w in per_window], "o-", label="policy end-to-end p99")
    ax.plot(t, [w["max_ms"] for w in per_window], "x--", label="max")
    ax.plot(t, [w["p50_ms"] for w in per_window], ".-", label="p50")
    ax.axhline(E2E_BAR_MS, color="r", lw=0.8, label=f"stall bar {E2E_BAR_MS:g} ms")
    ax.set_xlabel("minutes of churn")
    ax.set_ylabel("ms")
    ax.set_yscale("log")
    ax.legend(fontsize=8)
    ax.set_title("Policy latency per churn window (a participant every 5 s)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run(out_dir: Path, quick: bool) -> BenchResult:
    n, seconds = (3, 10.0) if quick else (MINUTES, 60.0)
    log_dir = out_dir / "churn_soak_logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    drive = prepare(out_dir)
    windows: list[dict[str, Any]] = []
    stack = ChurnStack(drive, log_dir)
    t0 = time.monotonic()
    try:
        for i in range(n):
            print(f"[bench churn_soak] window {i + 1}/{n} ({seconds:.0f} s of churn, "
                  f"{(time.monotonic() - t0) / 60:.1f} min so far) ...", flush=True)
            windows.append(stack.run_window(seconds, churn=True))
    finally:
        stack.close()
        drive.unlink(missing_ok=True)
    per_window = []
    for i, w in enumerate(windows):
        e2e = np.asarray([v for _, v in w["e2e"]])
        per_window.append({"minute": round((i + 1) * seconds / 60.0, 2), "samples": int(e2e.size),
                           "p50_ms": round(float(np.percentile(e2e, 50)), 2),
                           "p99_ms": round(float(np.percentile(e2e, 99)), 2),
                           "max_ms": round(float(e2e.max()), 2)})
    third = max(1, n // 3)
    first, last = case_figures(windows[:third]), case_figures(windows[-third:])
    pooled = case_figures(windows)
    drift = last["policy_e2e_p99_ms"] / first["policy_e2e_p99_ms"] - 1.0
    stalls = pooled["policy_e2e_over_100ms"] + pooled["control_gaps_over_50ms"]
    metrics: dict[str, Any] = {
        "loadavg_before": [round(v, 2) for v in load_before],
        "loadavg_after": [round(v, 2) for v in os.getloadavg()], "cpus": os.cpu_count(),
        "schedule": f"{n} churn windows x {seconds:g} s; a participant every {CHURN_PERIOD_S:g} s living "
                    f"{CHURN_LIFE_S:g} s",
        "follower_scheduling": windows[-1]["scheduling"], **profile_facts(),
        "per_window": per_window,
        "first_third_p99_ms": first["policy_e2e_p99_ms"], "last_third_p99_ms": last["policy_e2e_p99_ms"],
        "p99_drift": round(drift, 4), "stalls": stalls,
        **{f"pooled_{k}": v for k, v in pooled.items()},
    }
    _plot(per_window, out_dir / "churn_soak_p99.png")
    goals = {
        f"soak: 0 stalls (policy sample > {E2E_BAR_MS:g} ms, control gap > {GAP_BAR_MS:g} ms)": stalls == 0,
        "soak: follower 0 late ticks (in node)": pooled["follower_late_ticks_in_node"] == 0,
        f"soak: policy p99 drift (last third / first third) <= {DRIFT_BAR:.0%}": drift <= DRIFT_BAR,
    }
    stall_lines = [f"- {st['kind']} {st['ms']} ms, {st['when']}" for st in pooled["stalls"]]
    md = (f"{metrics['cpus']} CPUs, load average {metrics['loadavg_before']} before / "
          f"{metrics['loadavg_after']} after; {metrics['schedule']}; follower "
          f"{metrics['follower_scheduling']}; text node under a 1 kHz request storm.\n\n"
          f"| | policy e2e p50 / p99 / p99.9 / max [ms] | > 100 ms | control gap max [ms] | gaps > 50 ms "
          f"| late ticks (in follower) |\n|---|---|---|---|---|---|\n"
          + "\n".join(f"| {name} | {r['policy_e2e_p50_ms']} / {r['policy_e2e_p99_ms']} / "
                      f"{r['policy_e2e_p99_9_ms']} / {r['policy_e2e_max_ms']} | "
                      f"{r['policy_e2e_over_100ms']} | "
                      f"{r['control_gap_max_ms']} | {r['control_gaps_over_50ms']} | "
                      f"{r['follower_late_ticks_in_node']} |"
                      for name, r in (("all", pooled), ("first third", first), ("last third", last)))
          + f"\n\np99 drift (last third / first third - 1): {drift:+.1%} (bar: growth <= {DRIFT_BAR:.0%}); "
          f"per-window p99: `churn_soak_p99.png`.\n\nStalls:\n"
          + ("\n".join(stall_lines) if stall_lines else "none"))
    return BenchResult(metrics=metrics, summary_md=md, goals=goals)
