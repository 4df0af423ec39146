"""Replay benchmark: deterministic lock-step throughput and the corpus speed-up on local workers.

* ``lockstep``: the golden bag (``test/data/replay/sim_seed20008``: 10 s, 100 PNG frames at
  10 Hz, 50 Hz odometry) replayed through the shipped policy (ONNX Runtime CPU, 1 thread),
  model loaded once, ``runs`` times -> frames/s and x real time (bag seconds / wall seconds) per
  run, per-frame pipeline time (PNG decode + preprocess + inference) p50/p95/p99/max, and the
  flake rate (runs whose outputs differ from the first run's). Same with the follower core, and
  with the follower and text cores (what the golden test replays).
* ``corpus``: 4 drives of 30 s (test seeds, 10 Hz PNG, made with ``replay.simbag``) replayed and
  compared by ``replay.corpus`` in this process, then by a pool of 1 and of 2 worker processes,
  in the same run -> speed-up = wall(pool 1) / wall(pool 2) (process start and model load
  included: what a user waits for).
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import numpy as np

from bench.result import BenchResult
from minipamayo_ros.latency import summarize
from minipamayo_ros.replay import corpus, lockstep

REPO = Path(__file__).resolve().parents[1]
GOLDEN_BAG = REPO / "test" / "data" / "replay" / "sim_seed20008"
GOAL_X_REAL_TIME = 5.0


def _lockstep(runs: int, follower: bool, text: bool = False) -> dict[str, object]:
    settings = lockstep.settings_from_config("drive.yaml", follower=follower, text=text)
    pipeline = lockstep.build_pipeline(settings.policy)
    text_core = lockstep.build_text(settings.text) if text else None
    fps, xrt, totals, first, flakes = [], [], [], None, 0
    for _ in range(runs):
        r = lockstep.run_lockstep(GOLDEN_BAG, settings, pipeline=pipeline, text=text_core, progress=False)
        fps.append(r.stats.frames_per_s)
        xrt.append(r.stats.x_real_time)
        totals += [t.total_ms for t in r.outputs.trajectories]
        lines = r.outputs.deterministic_lines()
        if first is None:
            first = lines
        elif lines != first:
            flakes += 1
    s = summarize(np.array(totals))
    return {
        "frames_per_s": float(np.median(fps)),
        "x_real_time": float(np.median(xrt)),
        "x_real_time_min": float(np.min(xrt)),
        "frames": r.stats.frames,
        "runs": runs,
        "flakes": flakes,
        "frame_p50_ms": s.p50,
        "frame_p95_ms": s.p95,
        "frame_p99_ms": s.p99,
        "frame_max_ms": s.max,
    }


def _corpus(work: Path, bags: int, seconds: float) -> dict[str, float]:
    from minipamayo_ros.replay.simbag import record_sim_bag

    root = work / "corpus_bags"
    shutil.rmtree(root, ignore_errors=True)
    for k in range(bags):
        record_sim_bag(
            root / f"seed{20100 + k}",
            20100 + k,
            seconds,
            images="png",
            storage="mcap",
            overrides={"camera_rate_hz": 10.0},
            ground_truth=False,
        )
    found = corpus.find_bags([root])
    jobs = [
        corpus.CorpusJob(
            bag=str(b),
            golden=str(corpus.golden_for(b, None)),
            out=str(work / "golden" / b.name),
            update_golden=True,
            plots=False,
        )
        for b in found
    ]
    corpus.run_corpus(jobs, workers=1, progress=False)
    walls: dict[str, float] = {}
    for name, w, pool in (("serial", 1, False), ("pool1", 1, True), ("pool2", 2, True)):
        jobs = [
            corpus.CorpusJob(
                bag=str(b),
                golden=str(corpus.golden_for(b, None)),
                out=str(work / name / b.name),
                latency_gates=False,
                plots=False,
            )
            for b in found
        ]
        s = corpus.run_corpus(jobs, workers=w, progress=False, pool=pool)
        assert s["passed"], s
        walls[name] = s["wall_seconds"]
        walls[name + "_cpu_share"] = sum(r["cpu_seconds"] for r in s["results"]) / max(
            1e-9, sum(r["wall_seconds"] for r in s["results"])
        )
    return {
        "bags": bags,
        "bag_seconds": seconds,
        "wall_serial_s": walls["serial"],
        "wall_1_worker_s": walls["pool1"],
        "wall_2_workers_s": walls["pool2"],
        "speedup_2_workers": walls["pool1"] / walls["pool2"],
        "speedup_2_workers_vs_serial": walls["serial"] / walls["pool2"],
        # CPU seconds / wall seconds of the tasks: ~1 = each task had a core to itself
        "task_cpu_share_1_worker": walls["pool1_cpu_share"],
        "task_cpu_share_2_workers": walls["pool2_cpu_share"],
    }


def run(out_dir: Path, quick: bool) -> BenchResult:
    runs = 2 if quick else 5
    load = os.getloadavg()[0]
    plain = _lockstep(runs, follower=False)
    withf = _lockstep(2 if quick else 3, follower=True)
    withft = _lockstep(2 if quick else 3, follower=True, text=True)
    load_corpus = os.getloadavg()[0]
    # 30 s drives: each task's work (~3 s) is well above a worker's start + model load (~1.5 s)
    cor = _corpus(out_dir / "replay_work", bags=2 if quick else 4, seconds=3.0 if quick else 30.0)
    load_end = os.getloadavg()[0]
    shutil.rmtree(out_dir / "replay_work", ignore_errors=True)
    metrics = {f"lockstep_{k}": v for k, v in plain.items()}
    metrics |= {f"lockstep_follower_{k}": v for k, v in withf.items()}
    metrics |= {f"lockstep_follower_text_{k}": v for k, v in withft.items()}
    metrics |= {f"corpus_{k}": v for k, v in cor.items()}
    metrics["load_average_at_start"] = load
    metrics["load_average_at_corpus_start"] = load_corpus
    metrics["load_average_at_end"] = load_end
    metrics["cpu_count"] = os.cpu_count() or 0
    goals = {
        f"lock-step replay >= {GOAL_X_REAL_TIME:g}x real time (median)": plain["x_real_time"]
        >= GOAL_X_REAL_TIME,
        "deterministic: flake rate 0": plain["flakes"] == 0
        and withf["flakes"] == 0
        and withft["flakes"] == 0,
    }
    md = [
        f"Golden bag {GOLDEN_BAG.name} ({plain['frames']} frames, 10 s), shipped policy, ONNX Runtime CPU "
        f"1 thread; {os.cpu_count()} CPUs, load average at start {load:.2f}, at the corpus "
        f"{load_corpus:.2f}, at the end {load_end:.2f} (a shared box reads slower: lower bounds).",
        "",
        "| replay | runs | frames/s | x real time (median / min) | frame p50 / p95 / p99 / max [ms] "
        "| flakes |",
        "|---|---|---|---|---|---|",
    ]
    for name, d in (("policy", plain), ("policy + follower", withf), ("policy + follower + text", withft)):
        md.append(
            f"| {name} | {d['runs']} | {d['frames_per_s']:.0f} | {d['x_real_time']:.1f} / "
            f"{d['x_real_time_min']:.1f} | {d['frame_p50_ms']:.1f} / {d['frame_p95_ms']:.1f} / "
            f"{d['frame_p99_ms']:.1f} / {d['frame_max_ms']:.1f} | {d['flakes']}/{d['runs'] - 1} |"
        )
    md += [
        "",
        f"Corpus ({cor['bags']} bags x {cor['bag_seconds']:g} s, replay + compare): worker pool of 1 "
        f"{cor['wall_1_worker_s']:.1f} s, of 2 {cor['wall_2_workers_s']:.1f} s -> speed-up "
        f"{cor['speedup_2_workers']:.2f}x (in-process serial {cor['wall_serial_s']:.1f} s: "
        f"{cor['speedup_2_workers_vs_serial']:.2f}x); process start + model load included. The tasks got "
        f"{cor['task_cpu_share_1_worker']:.0%} / {cor['task_cpu_share_2_workers']:.0%} of a core "
        "(CPU s / wall s) with 1 / 2 workers: well below 100 % means the cores were busy with other "
        "work, and the speed-up then measures the machine, not the tool.",
    ]
    return BenchResult(metrics=metrics, summary_md="\n".join(md), goals=goals)


if __name__ == "__main__":
    res = run(Path("results") / time.strftime("replay-%Y%m%d-%H%M%S"), quick=False)
    print(res.summary_md)
