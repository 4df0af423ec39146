"""Soak-test analysis: RSS growth, windowed latency percentiles, verdict, plot, summary (ROS-free).

The soak (``bringup.soak``) hands over plain samples; everything here is numpy/matplotlib so it
is unit-tested without ROS. Times are wall-clock seconds since the start of the soak.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from minipamayo_ros.bringup.report import MAX_STANDSTILL_S
from minipamayo_ros.latency import summarize

RSS_GROWTH_LIMIT = 0.05    # target: RSS after warm-up grows by at most 5 %
P99_DRIFT_LIMIT = 0.10     # target: p99 of the last window within 10 % of the first
MIN_WINDOW_SAMPLES = 20    # a window with fewer latency samples has no p99


@dataclass(frozen=True)
class RssGrowth:
    """RSS of one node after warm-up: mean of the first and of the last samples, relative growth."""

    start_mb: float
    end_mb: float
    growth: float          # (end - start) / start
    samples: int


def rss_growth(times: Sequence[float], rss_mb: Sequence[float], warmup_s: float,
               tail_fraction: float = 0.1, min_samples: int = 3) -> RssGrowth | None:
    """Growth of RSS after ``warmup_s``: mean of the first ``min_samples`` samples after warm-up vs
    the mean of the last ``tail_fraction`` of them (at least ``min_samples``). None if too few."""
    t = np.asarray(times, float)
    r = np.asarray(rss_mb, float)
    after = r[t >= warmup_s]
    if len(after) < 2 * min_samples:
        return None
    n_tail = max(min_samples, int(round(tail_fraction * len(after))))
    start = float(np.mean(after[:min_samples]))
    end = float(np.mean(after[-n_tail:]))
    return RssGrowth(start, end, (end - start) / start if start > 0 else float("nan"), len(after))


def windowed_percentiles(times: Sequence[float], values: Sequence[float], window_s: float,
                         start_s: float, end_s: float) -> list[dict[str, Any]]:
    """p50/p95/p99/max of ``values`` per window ``[start_s + k*window_s, ...)`` up to ``end_s``.

    The last window may be shorter; a window with fewer than MIN_WINDOW_SAMPLES samples gets
    ``p99 = None`` (not enough data to call a percentile).
    """
    t = np.asarray(times, float)
    v = np.asarray(values, float)
    windows = []
    k = 0
    while start_s + k * window_s < end_s - 1e-9:
        lo, hi = start_s + k * window_s, min(start_s + (k + 1) * window_s, end_s)
        sel = v[(t >= lo) & (t < hi)]
        row: dict[str, Any] = {"start_s": round(lo, 1), "end_s": round(hi, 1), "n": int(len(sel))}
        if len(sel) >= MIN_WINDOW_SAMPLES:
            s = summarize(sel)
            row.update(p50=s.p50, p95=s.p95, p99=s.p99, max=s.max)
        else:
            row.update(p50=None, p95=None, p99=None, max=None)
        windows.append(row)
        k += 1
    return windows


def p99_drift(windows: list[dict[str, Any]], min_fraction: float = 0.5,
              window_s: float | None = None) -> float | None:
    """(p99 last - p99 first) / p99 first over full windows (a last window shorter than
    ``min_fraction`` of ``window_s`` is left out). None with fewer than two usable windows."""
    usable = [w for w in windows if w["p99"] is not None
              and (window_s is None or w["end_s"] - w["start_s"] >= min_fraction * window_s)]
    if len(usable) < 2:
        return None
    first, last = usable[0]["p99"], usable[-1]["p99"]
    return (last - first) / first if first > 0 else None


#: latencies judged by the p99 drift target: measured on the steady clock inside the node
#: (end-to-end = image received -> trajectory published, whatever clock stamps the message).
#: Latencies on the simulated clock are quantised to its 10 ms /clock tick (a 30 -> 40 ms step is
#: one tick), so they are reported but not judged.
DRIFT_JUDGED = ("policy end-to-end latency", "policy inference latency")


class CounterTotals:
    """Totals of counters a node reports cumulatively (``/diagnostics``) across its restarts: a
    counter that goes down means a new process, whose counts add to the previous ones."""

    def __init__(self) -> None:
        self._base: dict[str, float] = {}
        self._last: dict[str, float] = {}

    def update(self, values: dict[str, str]) -> None:
        for key, text in values.items():
            try:
                value = float(text)
            except ValueError:
                continue
            if value < self._last.get(key, 0.0):
                self._base[key] = self._base.get(key, 0.0) + self._last[key]
            self._last[key] = value

    def totals(self) -> dict[str, str]:
        return {k: f"{self._base.get(k, 0.0) + v:g}" for k, v in self._last.items()}


def verdict(report: dict[str, Any]) -> dict[str, bool | None]:
    """The soak's targets (None = not enough data to judge)."""
    growths = [g["growth"] for g in report["rss"].values() if g is not None]
    drifts = [lat["p99_drift"] for name, lat in report["latency"].items() if name in DRIFT_JUDGED]
    return {
        "no_crash": report["crashes"] == [],
        "rss_growth_within_5pct": (all(g <= RSS_GROWTH_LIMIT for g in growths)
                                   if growths else None),
        "p99_last_window_within_10pct": (all(abs(d) <= P99_DRIFT_LIMIT for d in drifts if d is not None)
                                         if any(d is not None for d in drifts) else None),
        **driving_checks(report),
    }


def driving_checks(report: dict[str, Any]) -> dict[str, bool]:
    """Every episode's clean-run checks (``sim.metrics.clean_checks`` of its score) must hold; a
    report without scene frames falls back to the summed counters of the episode summaries."""
    scores = report.get("scores")
    if scores:
        return {k: all(s["checks"][k] for s in scores) for k in scores[0]["checks"]}
    return {
        "no_lane_departure": report["driving"]["lane_departures"] == 0,
        "no_collision": report["driving"]["collisions"] == 0,
        "no_stop_line_violation": report["driving"]["stop_line_violations"] == 0,
        "no_stall": report["driving"].get("longest_standstill_s", 0.0) <= MAX_STANDSTILL_S,
        "no_plan_rejected": (report["plans"]["rejected_output_check"] == 0
                             and report["plans"]["rejected_by_follower"] == 0) if "plans" in report else None,
    }


def plot(report: dict[str, Any], rss_series: dict[str, tuple[list[float], list[float]]],
         latency_series: dict[str, tuple[list[float], list[float]]], path: Path) -> None:
    """RSS per node over time (warm-up shaded) and each latency's per-window p50/p99."""
    fig, axes = plt.subplots(1 + len(latency_series), 1, figsize=(10, 3.2 * (1 + len(latency_series))),
                             squeeze=False)
    ax = axes[0][0]
    warm = report["warmup_s"] / 60.0
    for name, (t, r) in sorted(rss_series.items()):
        ax.plot(np.asarray(t) / 60.0, r, label=name)
    ax.axvspan(0, warm, color="0.9", label="warm-up")
    ax.set_xlabel("wall time [min]")
    ax.set_ylabel("RSS [MB]")
    ax.set_title("resident memory per node")
    ax.legend(fontsize=8, loc="best")
    for ax, (name, (t, v)) in zip((a[0] for a in axes[1:]), sorted(latency_series.items()), strict=True):
        ax.plot(np.asarray(t) / 60.0, v, ".", ms=1.5, color="0.6", label="samples")
        wins = report["latency"][name]["windows"]
        mids = [(w["start_s"] + w["end_s"]) / 120.0 for w in wins if w["p99"] is not None]
        ax.plot(mids, [w["p99"] for w in wins if w["p99"] is not None], "ro-", label="p99 per window")
        ax.plot(mids, [w["p50"] for w in wins if w["p50"] is not None], "bo-", label="p50 per window")
        ax.set_xlabel("wall time [min]")
        ax.set_ylabel("ms")
        ax.set_title(name)
        ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def summary_markdown(report: dict[str, Any]) -> str:
    """A readable one-page summary (summary.md)."""
    def pct(x: float | None) -> str:
        return "n/a" if x is None else f"{100 * x:+.1f} %"

    d = report["driving"]
    lines = [
        f"# Soak: {report['minutes']:g} min closed loop (seed {report['seed']}, "
        f"backend {report['backend']})",
        "",
        f"- started {report['started_utc']}, wall {report['wall_s']:.0f} s, sim {d['sim_seconds']:.0f} s, "
        f"episodes {d['episodes']}, distance {d['distance_m']:.0f} m",
        f"- crashes: {len(report['crashes'])} {report['crashes'] or ''}; restarts: {report['restarts']}",
        f"- stopped early: {report['stopped_early']}" if report.get("stopped_early") else "- ran to the end",
        f"- ROS domain {report.get('domain_id')}",
        f"- lane departures {d['lane_departures']}, collisions {d['collisions']}, "
        f"stop-line violations {d['stop_line_violations']}, longest standstill "
        f"{d.get('longest_standstill_s', 0.0)} s (a stall above {MAX_STANDSTILL_S:g} s)",
        f"- machine: {report['machine']}",
        *([f"- plans published {report['plans']['published']}; rejected: by the policy's output check "
           f"{report['plans']['rejected_output_check']}, by the follower "
           f"{report['plans']['rejected_by_follower']} {report['plans']['rejected_by_follower_kinds'] or ''}"]
          if "plans" in report else []),
        "",
        f"## RSS per node (growth after the {report['warmup_s']:.0f} s warm-up; target <= 5 %)",
        "",
        "| node | after warm-up [MB] | end [MB] | growth |",
        "|---|---|---|---|",
    ]
    for name, g in sorted(report["rss"].items()):
        if g is None:
            lines.append(f"| {name} | n/a | n/a | n/a |")
        else:
            lines.append(f"| {name} | {g['start_mb']:.1f} | {g['end_mb']:.1f} | {pct(g['growth'])} |")
    for name, lat in sorted(report["latency"].items()):
        lines += ["", f"## {name} [ms] per {report['window_s'] / 60:.1f}-min window "
                      "(target: p99 of the last full window within 10 % of the first)", "",
                  "| window [min] | n | p50 | p95 | p99 | max |", "|---|---|---|---|---|---|"]
        for w in lat["windows"]:
            cells = " | ".join("n/a" if w[k] is None else f"{w[k]:.1f}" for k in ("p50", "p95", "p99", "max"))
            lines.append(f"| {w['start_s'] / 60:.1f}-{w['end_s'] / 60:.1f} | {w['n']} | {cells} |")
        judged = "" if name in DRIFT_JUDGED else " (sim clock, 10 ms ticks: reported, not judged)"
        lines.append(f"\np99 last vs first window: {pct(lat['p99_drift'])}{judged}")
    if report.get("scores"):
        lines += ["", "## Score per episode (scoring.score, docs/closed-loop-evaluation.md)", "",
                  "| episode | seed | type | score | clean | failures |", "|---|---|---|---|---|---|"]
        for s in report["scores"]:
            fails = "; ".join(f"{f['check']} @ {f['time']:.1f} s" for f in s["failures"]) or "-"
            lines.append(f"| {s['episode']} | {s['seed']} | {s['scenario']} | {s['score']:.3f} | "
                         f"{'yes' if s['clean'] else 'no'} | {fails} |")
    lines += ["", "## Verdict", ""]
    lines += [f"- {k}: {'n/a' if v is None else ('ok' if v else 'FAIL')}"
              for k, v in report["checks"].items()]
    lines += ["", "Files: soak.json (all figures), soak.png (RSS and latency over time), logs/ (node logs)."]
    return "\n".join(lines) + "\n"
