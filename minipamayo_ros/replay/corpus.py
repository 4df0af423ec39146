"""Corpus mode: replay + compare many bags, in parallel on the local cores or on a Ray cluster.

    python -m minipamayo_ros.replay.corpus BAG_OR_FOLDER_OR_LIST... --out OUT [--workers 2]
    python -m minipamayo_ros.replay.corpus ... --ray auto          # an existing Ray cluster
    python -m minipamayo_ros.replay.corpus ... --ray local         # a Ray cluster on this machine
    ros2 run minipamayo_ros replay_corpus ...

Inputs: bag folders, folders searched recursively for bags, or text files listing bag paths (one
per line, ``#`` comments). Each bag's golden is ``<bag>.golden.jsonl`` beside it (or
``--golden-dir/<bag name>.golden.jsonl``). One task per bag (a process of a local pool, or one
Ray task with ``num_cpus=1``) runs exactly what ``replay BAG --golden ...`` runs and writes the
same per-bag report into ``OUT/<bag name>/``; this process then writes ``OUT/corpus_summary.json``
and ``OUT/junit.xml`` (one test suite per bag). Exit code 1 if any bag regressed or failed.

Ray is an optional dependency (``requirements/dev.txt``, installed by ``scripts/setup.sh --dev``);
Ray's old ``local_mode`` is gone in current Ray, so tests use a small local cluster.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import xml.etree.ElementTree as ET
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from minipamayo_ros.replay.compare import EXIT_ERROR, EXIT_OK, EXIT_REGRESSION


@dataclass(frozen=True)
class CorpusJob:
    """Everything one task needs (plain data: it travels to another process or machine)."""

    bag: str
    golden: str
    out: str
    policy_overrides: dict[str, Any] = field(default_factory=dict)
    config_file: str = "drive.yaml"
    follower: bool = False
    text: bool = False
    profile: str = "auto"
    tolerances: str = ""
    latency_gates: bool = True
    update_golden: bool = False
    plots: bool = True


def find_bags(inputs: list[Path]) -> list[Path]:
    """Bag folders from bag paths, folders (searched recursively) and list files; sorted, unique."""
    bags: list[Path] = []
    for p in inputs:
        if (p / "metadata.yaml").is_file():
            bags.append(p)
        elif p.is_dir():
            bags.extend(sorted(m.parent for m in p.rglob("metadata.yaml")))
        elif p.is_file():
            for line in p.read_text().splitlines():
                line = line.split("#", 1)[0].strip()
                if line:
                    q = Path(line) if Path(line).is_absolute() else p.parent / line
                    bags.extend(find_bags([q]) if q.exists() else [q])
        else:
            bags.append(p)  # reported as a per-bag error ("does not exist")
    return list(dict.fromkeys(b.resolve() if b.exists() else b for b in bags))


def golden_for(bag: Path, golden_dir: Path | None) -> Path:
    return (
        (golden_dir / f"{bag.name}.golden.jsonl") if golden_dir else bag.parent / f"{bag.name}.golden.jsonl"
    )


def run_job(job: CorpusJob) -> dict[str, Any]:
    """Replay one bag through the policy pipeline and compare it; never raises (errors are results)."""
    from minipamayo_ros.replay import compare, lockstep

    t0, cpu0 = time.monotonic(), time.process_time()
    out = Path(job.out)
    result: dict[str, Any] = {
        "bag": job.bag,
        "golden": job.golden,
        "report": str(out),
        "host": os.uname().nodename,
        "pid": os.getpid(),
    }
    try:
        settings = lockstep.settings_from_config(
            job.config_file, job.policy_overrides, job.follower, job.text
        )
        replay = lockstep.run_lockstep(Path(job.bag), settings, progress=False)
        out.mkdir(parents=True, exist_ok=True)
        replay.outputs.write(out / "replayed.jsonl")
        stats = replay.stats.as_dict()
        (out / "replay_stats.json").write_text(json.dumps(stats, indent=2, default=str) + "\n")
        result["stats"] = {
            k: stats[k]
            for k in ("frames", "trajectories", "frames_per_s", "x_real_time", "bag_seconds", "wall_seconds")
        }
        code, cmp, text = compare.run_compare(
            out / "replayed.jsonl",
            Path(job.golden),
            out,
            job.profile,
            Path(job.tolerances) if job.tolerances else None,
            job.latency_gates,
            update=job.update_golden,
            bag=Path(job.bag),
            plots=job.plots,
            replayed=replay.outputs,
            name=Path(job.bag).name,
        )
        result.update(
            exit_code=code,
            text=text,
            verdict=("UPDATED" if job.update_golden else cmp.verdict()["verdict"] if cmp else "ERROR"),
            reason=cmp.verdict()["reason"] if cmp else text,
        )
    except Exception as exc:  # one broken bag must not stop the corpus
        result.update(exit_code=EXIT_ERROR, verdict="ERROR", reason=f"{type(exc).__name__}: {exc}", text="")
    result["wall_seconds"] = round(time.monotonic() - t0, 3)
    result["cpu_seconds"] = round(time.process_time() - cpu0, 3)  # < wall: waited for a core (or I/O)
    return result


def _one_thread() -> None:
    """A worker process uses one core: OpenCV's and BLAS's own thread pools would fight the other
    workers for the same cores (ONNX Runtime already runs 1 intra-op thread, ``policy.yaml``)."""
    os.environ["OMP_NUM_THREADS"] = "1"
    import cv2

    cv2.setNumThreads(1)


def _run_local(
    jobs: list[CorpusJob], workers: int, on_done: Any, pool: bool | None = None
) -> list[dict[str, Any]]:
    """``workers`` processes (``pool``: default when workers > 1), else in this process."""
    if not (workers > 1 if pool is None else pool):
        return [on_done(run_job(j)) for j in jobs]
    results = []
    # spawn: a clean interpreter per worker (no forked ONNX Runtime / DDS threads)
    with ProcessPoolExecutor(
        max_workers=workers, mp_context=get_context("spawn"), initializer=_one_thread
    ) as ex:
        futures = [ex.submit(run_job, j) for j in jobs]
        for f in as_completed(futures):
            results.append(on_done(f.result()))
    return results


def _run_ray(jobs: list[CorpusJob], address: str, workers: int, on_done: Any) -> list[dict[str, Any]]:
    try:
        import ray
    except ImportError as exc:
        raise RuntimeError(
            "--ray needs the 'ray' package (pip install 'ray>=2.9'; scripts/setup.sh --dev)"
        ) from exc
    root = str(Path(__file__).resolve().parents[2])
    pythonpath = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)
    runtime_env = {"env_vars": {"PYTHONPATH": pythonpath, "OMP_NUM_THREADS": "1"}}
    started_here = not ray.is_initialized()
    if started_here:
        if address == "local":
            ray.init(num_cpus=workers, include_dashboard=False, runtime_env=runtime_env, log_to_driver=False)
        else:
            ray.init(address=address, runtime_env=runtime_env, log_to_driver=False)
    try:
        task = ray.remote(num_cpus=1)(run_job)
        pending = {task.remote(j): j for j in jobs}  # one task per bag
        results = []
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                pending.pop(ref)
                results.append(on_done(ray.get(ref)))
        return results
    finally:
        if started_here:
            ray.shutdown()


def run_corpus(
    jobs: list[CorpusJob],
    workers: int = 2,
    ray_address: str = "",
    progress: bool = True,
    pool: bool | None = None,
) -> dict[str, Any]:
    """Run every job; returns the corpus summary (per-bag results in input order).

    ``pool``: local worker processes even for ``workers == 1`` (benchmarks compare like with like).
    """
    from minipamayo_ros.replay.progress import Progress

    bar = Progress(len(jobs), "corpus", unit="bags", enabled=progress, interval_s=0.0)

    def on_done(r: dict[str, Any]) -> dict[str, Any]:
        bar.update()
        return r

    t0 = time.monotonic()
    results = (
        _run_ray(jobs, ray_address, workers, on_done)
        if ray_address
        else _run_local(jobs, workers, on_done, pool)
    )
    wall = time.monotonic() - t0
    bar.close()
    order = {j.bag: k for k, j in enumerate(jobs)}
    results.sort(key=lambda r: order.get(r["bag"], 0))
    frames = sum(r.get("stats", {}).get("frames", 0) for r in results)
    bag_seconds = sum(r.get("stats", {}).get("bag_seconds", 0.0) for r in results)
    counts: dict[str, int] = {}
    for r in results:
        counts[r["verdict"]] = counts.get(r["verdict"], 0) + 1
    passed = all(r["exit_code"] == EXIT_OK for r in results)
    return {
        "kind": "corpus",
        "passed": passed,
        "verdict": "PASS" if passed else "REGRESSION",
        "bags": len(results),
        "verdicts": counts,
        "executor": f"ray:{ray_address}" if ray_address else f"local:{workers}",
        "workers": workers,
        "wall_seconds": round(wall, 3),
        "frames": frames,
        "frames_per_s": round(frames / wall, 2) if wall > 0 else 0.0,
        "x_real_time": round(bag_seconds / wall, 2) if wall > 0 else 0.0,
        "task_seconds_sum": round(sum(r["wall_seconds"] for r in results), 3),
        "results": results,
    }


def write_corpus_junit(summary: dict[str, Any], path: Path) -> None:
    """One ``<testsuite>`` per bag (its own junit.xml when it ran, else one error case)."""
    root = ET.Element("testsuites", name="replay corpus")
    for r in summary["results"]:
        per_bag = Path(r["report"]) / "junit.xml"
        if per_bag.is_file() and r["verdict"] in ("PASS", "REGRESSION"):
            root.append(ET.parse(per_bag).getroot())
            continue
        suite = ET.SubElement(
            root,
            "testsuite",
            name=Path(r["bag"]).name,
            tests="1",
            failures="0",
            errors="0" if r["verdict"] == "UPDATED" else "1",
        )
        case = ET.SubElement(suite, "testcase", classname="corpus", name="replay")
        if r["verdict"] != "UPDATED":
            ET.SubElement(case, "error", message=str(r["reason"])[:500])
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", type=Path, nargs="+", help="bags, folders of bags, or files listing bags")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument(
        "--workers",
        type=int,
        default=max(1, min(os.cpu_count() or 1, 2)),
        help="local processes (default: min(cores, 2)); with --ray local: cluster CPUs",
    )
    p.add_argument(
        "--ray",
        default="",
        metavar="ADDRESS",
        help="run on Ray: 'auto' (a running cluster), 'local' (start one here), or ray://host:port",
    )
    p.add_argument("--golden-dir", type=Path, default=None, help="goldens as <dir>/<bag name>.golden.jsonl")
    p.add_argument("--engine", default=None)
    p.add_argument("--backend", default=None)
    p.add_argument("--config-file", default="drive.yaml")
    p.add_argument("--follower", action="store_true", help="also run the follower core")
    p.add_argument("--text", action="store_true", help="also run the text node's core (explanations)")
    p.add_argument("--profile", default="auto")
    p.add_argument("--tolerances", default="")
    p.add_argument("--no-latency-gates", dest="latency_gates", action="store_false")
    p.add_argument("--update-golden", action="store_true")
    p.add_argument("--no-plots", dest="plots", action="store_false")
    a = p.parse_args(argv)

    bags = find_bags(a.inputs)
    if not bags:
        print(f"[corpus] no bags found in {', '.join(map(str, a.inputs))}", file=sys.stderr)
        return EXIT_ERROR
    names = [b.name for b in bags]
    dupes = {n for n in names if names.count(n) > 1}
    overrides = {k: v for k, v in (("manifest_path", a.engine), ("backend", a.backend)) if v}
    jobs = [
        CorpusJob(
            bag=str(b),
            golden=str(golden_for(b, a.golden_dir)),
            out=str(a.out / (f"{b.parent.name}_{b.name}" if b.name in dupes else b.name)),
            policy_overrides=overrides,
            config_file=a.config_file,
            follower=a.follower,
            text=a.text,
            profile=a.profile,
            tolerances=a.tolerances,
            latency_gates=a.latency_gates,
            update_golden=a.update_golden,
            plots=a.plots,
        )
        for b in bags
    ]
    print(
        f"[corpus] {len(jobs)} bags on {'ray ' + a.ray if a.ray else f'{a.workers} local workers'}",
        file=sys.stderr,
    )
    try:
        summary = run_corpus(jobs, a.workers, a.ray)
    except RuntimeError as exc:
        print(f"[corpus] error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "corpus_summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    write_corpus_junit(summary, a.out / "junit.xml")
    for r in summary["results"]:
        print(f"[corpus] {r['verdict']:10s} {Path(r['bag']).name}: {str(r['reason'])[:150]}")
    print(
        f"[corpus] {summary['verdict']}: {summary['verdicts']} in {summary['wall_seconds']:.1f} s "
        f"({summary['frames_per_s']:.0f} frames/s, {summary['x_real_time']:.1f}x real time); "
        f"report {a.out}/corpus_summary.json"
    )
    return EXIT_OK if summary["passed"] else EXIT_REGRESSION


if __name__ == "__main__":
    sys.exit(main())
