"""GPU: the 0.5B policy's latency with its text decoder generating back-to-back in the same process.

    PYTHONPATH=. python3 -m bench.bench_text_gpu --out $OUT [--quick]     (on the lent GPU machine)

``minipamayo-0.5b`` (random init: latency does not depend on the weights' values), 320 px, batch 1,
fp16, CUDA graphs, through :class:`TorchBackend` with ``extra["cuda_stream_priority"]``: the policy's
graph captured and replayed on a highest-priority stream, the text decoder's (32 tokens, fixed
33-step greedy graph) on a lowest-priority stream, generating back-to-back in a second Python thread.
Cases, all in one process and one run (``n`` policy ``infer()`` calls each, paced at 10 Hz and
back-to-back; an idle GPU clocks down between paced calls, so paced is compared with paced):

* ``alone``: the policy only;
* ``text_lowprio``: + text back-to-back on the low-priority stream (the design);
* ``text_samepri``: control: + text back-to-back on its own stream of the policy's priority;
* ``alone_end``: the policy alone again (drift check).

Policy p50/p95/p99/max of ``infer()`` wall time (H2D copy, graph replay, D2H copy, stream sync),
ratios against ``alone``, text generation latency and explanations per second. Under
``scripts/bench.sh`` on a machine without CUDA it summarises the committed
result ``bench/results_gpu/text_gpu_<card>.json`` instead of measuring (``bench/gpu_cards.py``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import threading
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np

from bench.gpu_cards import newest_result, result_path, stamp
from bench.result import BenchResult
from minipamayo_ros.latency import summarize

BENCH = "text_gpu"  # result file: text_gpu_<card>.json (bench/gpu_cards.py)
IMAGE_PX = 320
HIGH, LOW = -5, 0          # CUDA stream priorities (lower = higher priority; clamped to the device range)
GOAL_P95_RATIO, GOAL_P99_RATIO, DESIGN_P95_RATIO = 1.15, 1.3, 1.5


def _stats(ms: list[float]) -> dict[str, float]:
    s = summarize(ms)
    return {"p50_ms": round(s.p50, 4), "p95_ms": round(s.p95, 4), "p99_ms": round(s.p99, 4),
            "max_ms": round(s.max, 4), "n": s.count}


def _build(kind: str, priority: int) -> Any:
    from minipamayo_ros.inference.backend import BackendOptions
    from minipamayo_ros.inference.torch_backend import TorchBackend
    from minipamayo_ros.model.config import load_config

    cfg = dataclasses.replace(load_config("minipamayo-0.5b"), image_size=(IMAGE_PX, IMAGE_PX))
    opts = BackendOptions(backend="torch", device="cuda:0", precision="fp16", cuda_graphs=True,
                          warmup_runs=10, extra={"cuda_stream_priority": priority})
    b = TorchBackend.from_config(cfg, kind, opts)
    b.warm_up()
    return b


def _inputs(backend: Any, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out = {}
    for s in backend.manifest.inputs:
        shape = tuple(d if isinstance(d, int) else 1 for d in s.shape)
        out[s.name] = (rng.integers(0, 256, shape, dtype=np.uint8) if s.dtype == "uint8"
                       else np.array([3], np.int64) if s.name == "event"
                       else rng.normal(0, 1, shape).astype(s.dtype))
    return out


class TextLoop(threading.Thread):
    """Back-to-back generation (one ``infer()`` = one 32-token explanation) until stopped."""

    def __init__(self, backend: Any, x: dict[str, np.ndarray]) -> None:
        super().__init__(daemon=True)
        self.backend, self.x = backend, x
        self.stop_evt = threading.Event()
        self.ms: list[float] = []
        self.error = ""

    def run(self) -> None:
        try:
            while not self.stop_evt.is_set():
                t0 = time.perf_counter()
                self.backend.infer(self.x)
                self.ms.append((time.perf_counter() - t0) * 1e3)
        except Exception:
            self.error = traceback.format_exc()[-2000:]


def _policy_loop(backend: Any, x: dict[str, np.ndarray], n: int, hz: float) -> list[float]:
    wall = []
    period = 1.0 / hz if hz else 0.0
    nxt = time.perf_counter()
    for _ in range(n):
        if period:
            d = nxt - time.perf_counter()
            if d > 0:
                time.sleep(d)
            nxt = max(nxt + period, time.perf_counter())
        t0 = time.perf_counter()
        backend.infer(x)
        wall.append((time.perf_counter() - t0) * 1e3)
    return wall


def measure(n: int, hz: float) -> dict[str, Any]:
    import torch

    res: dict[str, Any] = {"measured_at": stamp(), "gpu": torch.cuda.get_device_name(0),
                           "torch": torch.__version__,
                           "cuda": torch.version.cuda, "stream_priority_range": None,
                           "setup": {"config": "minipamayo-0.5b", "image_px": IMAGE_PX, "precision": "fp16",
                                     "cuda_graphs": True, "text_tokens": 32, "n": n, "paced_hz": hz,
                                     "policy_priority": HIGH, "text_priority": LOW},
                           "cases": {}}
    try:
        res["stream_priority_range"] = list(torch.cuda.Stream.priority_range())  # type: ignore[attr-defined]
    except Exception:
        pass
    policy = _build("policy", HIGH)
    text_low = _build("text_decoder", LOW)
    text_same = _build("text_decoder", HIGH)
    res["describe"] = {"policy": policy.describe(), "text_low": text_low.describe()}
    px, tx = _inputs(policy), _inputs(text_low)
    t_alone = []
    for _ in range(50):
        t0 = time.perf_counter()
        text_low.infer(tx)
        t_alone.append((time.perf_counter() - t0) * 1e3)
    res["text_alone"] = _stats(t_alone)
    for case, text in (("alone", None), ("text_lowprio", text_low), ("text_samepri", text_same),
                       ("alone_end", None)):
        for mode, rate in (("paced", hz), ("b2b", 0.0)):
            if case == "alone_end" and mode == "paced":
                continue
            loop = TextLoop(text, tx) if text is not None else None
            if loop is not None:
                loop.start()
                while len(loop.ms) < 20 and not loop.error:
                    time.sleep(0.01)
            _policy_loop(policy, px, 10, 0.0)
            t0 = time.monotonic()
            wall = _policy_loop(policy, px, n, rate)
            dur = time.monotonic() - t0
            entry: dict[str, Any] = {"policy": _stats(wall)}
            if loop is not None:
                k = len(loop.ms)
                loop.stop_evt.set()
                loop.join(60)
                if loop.error:
                    raise RuntimeError(loop.error)
                entry["text"] = _stats(loop.ms[20:k])
                entry["explanations_per_s"] = round((k - 20) / dur, 1)
            res["cases"][f"{case}_{mode}"] = entry
            print(f"[text_gpu] {case}_{mode}: {entry}", flush=True)
    for mode in ("paced", "b2b"):
        base = res["cases"][f"alone_{mode}"]["policy"]
        for case in ("text_lowprio", "text_samepri"):
            p = res["cases"][f"{case}_{mode}"]["policy"]
            res["cases"][f"{case}_{mode}"]["ratio_vs_alone"] = {
                q: round(p[f"{q}_ms"] / base[f"{q}_ms"], 3) for q in ("p50", "p95", "p99")}
    return res


def _summarize(res: dict[str, Any], source: str) -> BenchResult:
    metrics: dict[str, Any] = {}
    rows = ["| case | policy p50 / p95 / p99 / max [ms] | p95 / p99 ratio vs alone | text [ms] p50 / p95 "
            "| explanations/s |", "|---|---|---|---|---|"]
    for name, c in res["cases"].items():
        p = c["policy"]
        for q in ("p50", "p95", "p99", "max"):
            metrics[f"{name}_policy_{q}_ms"] = p[f"{q}_ms"]
        r = c.get("ratio_vs_alone", {})
        for q, v in r.items():
            metrics[f"{name}_{q}_ratio"] = v
        t = c.get("text", {})
        rows.append(f"| {name} | {p['p50_ms']:.3f} / {p['p95_ms']:.3f} / {p['p99_ms']:.3f} / "
                    f"{p['max_ms']:.3f} | "
                    f"{r.get('p95', '—')} / {r.get('p99', '—')} | "
                    f"{t.get('p50_ms', '—')} / {t.get('p95_ms', '—')} | {c.get('explanations_per_s', '—')} |")
    goals = {}
    for mode in ("paced", "b2b"):
        r = res["cases"][f"text_lowprio_{mode}"]["ratio_vs_alone"]
        goals[f"{mode}: low-priority text, policy p95 ratio <= {DESIGN_P95_RATIO} (design)"] = (
            r["p95"] <= DESIGN_P95_RATIO)
        goals[f"{mode}: p95 ratio <= {GOAL_P95_RATIO} and p99 ratio <= {GOAL_P99_RATIO} (goal)"] = (
            r["p95"] <= GOAL_P95_RATIO and r["p99"] <= GOAL_P99_RATIO)
    pri = {k: v.get("cuda_stream_priority", "?") for k, v in res.get("describe", {}).items()}
    md = (f"{source}: {res['gpu']}, torch {res['torch']} (CUDA {res['cuda']}), minipamayo-0.5b policy "
          f"(stream priority {pri.get('policy', HIGH)}) + 32-token text decoder back-to-back (priority "
          f"{pri.get('text_low', LOW)}; device range {res.get('stream_priority_range')}), one process, "
          f"fp16 CUDA graphs captured on their streams; text alone {res['text_alone']['p50_ms']:.2f} ms "
          "p50.\n\n"
          + "\n".join(rows))
    return BenchResult(metrics=metrics, summary_md=md, goals=goals)


def run(out_dir: Path, quick: bool) -> BenchResult:
    """bench.run entry: measure where CUDA works, else summarise the committed GPU results."""
    try:
        import torch

        cuda = torch.cuda.is_available()
    except ImportError:
        cuda = False
    if cuda:
        res = measure(60 if quick else 300, 10.0)
        result_path(out_dir, BENCH, res["gpu"]).write_text(json.dumps(res, indent=1))
        return _summarize(res, "measured now")
    found = newest_result(BENCH)
    if found is None:
        return BenchResult(metrics={}, summary_md=f"no CUDA here and no committed {BENCH}_<card>.json")
    return _summarize(found[1], f"committed result bench/results_gpu/{found[0].name} "
                                "(no CUDA on this machine)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    res = measure(60 if a.quick else 300, 10.0)
    result_path(a.out, BENCH, res["gpu"]).write_text(json.dumps(res, indent=1))
    print(_summarize(res, "measured").summary_md)


if __name__ == "__main__":
    main()
