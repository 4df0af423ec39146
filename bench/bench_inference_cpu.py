"""CPU inference benchmark: ONNX Runtime on the shipped tiny models, as the demo / CI run them.

Metrics (all from one run on this machine; the dev box is shared, so figures are "under load"):

* ``policy_*_ms``: ``infer()`` of ``engines/minipamayo-tiny-policy`` with the default options
  (1 intra-op + 1 inter-op thread) — p50/p95/p99/max; also with 2 intra-op threads; the
  quantized variants where they ship (``policy_int8_*``: Q/DQ INT8; ``policy_int4_*``: INT4
  weight-only MatMulNBits; ``policy_int4qdq_*``: the INT4 Q/DQ file made for TensorRT, run by
  ONNX Runtime), timed interleaved call by call with fp32 so that all see the same load, with
  ``<variant>_speedup_p50_ratio`` against fp32 and the file sizes ``*_file_mb``;
* ``text32_*_ms``: one 32-token caption (``engines/minipamayo-tiny-text``, fixed-length greedy);
* ``rss_peak_mb``: peak RSS of a fresh Python process that imports the inference package, loads
  both models through ``create_backend`` and runs them (torch must stay unimported: reported);
* ``load_ms``: create_backend + warm_up of the policy model in that fresh process.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from bench.result import BenchResult
from minipamayo_ros.inference import BackendOptions, create_backend, load_manifest
from minipamayo_ros.inference.backend import concrete_shape
from minipamayo_ros.latency import summarize

REPO = Path(__file__).resolve().parents[1]
ENGINES = REPO / "engines"
#: quantized policy variants timed against fp32 where they ship (docs/model.md)
QUANTIZED = {"policy_int8": "minipamayo-tiny-policy-int8", "policy_int4": "minipamayo-tiny-policy-int4",
             "policy_int4qdq": "minipamayo-tiny-policy-int4-qdq"}

_FRESH = r"""
import json, resource, sys, time
import numpy as np
t0 = time.perf_counter()
from minipamayo_ros.inference import BackendOptions, create_backend, load_manifest
from minipamayo_ros.inference.backend import concrete_shape
pol = create_backend(load_manifest("engines/minipamayo-tiny-policy.manifest.json"), BackendOptions())
pol.warm_up()
load_ms = (time.perf_counter() - t0) * 1e3
txt = create_backend(load_manifest("engines/minipamayo-tiny-text.manifest.json"), BackendOptions())
txt.warm_up()
x = {s.name: np.zeros(s.shape, s.dtype) for s in pol.manifest.inputs}
for _ in range(20):
    pol.infer(x)
print(json.dumps({"rss_peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "load_ms": load_ms, "torch_imported": "torch" in sys.modules,
                  "backend": pol.describe()["backend"]}))
"""


def _time(backend: Any, inputs: dict[str, np.ndarray], n: int) -> dict[str, float]:
    ms = []
    for _ in range(n):
        backend.infer(inputs)
        ms.append(backend.last_infer_ms)
    s = summarize(ms)
    return {"p50_ms": s.p50, "p95_ms": s.p95, "p99_ms": s.p99, "max_ms": s.max}


def run(out_dir: Path, quick: bool) -> BenchResult:
    rng = np.random.default_rng(0)
    pol_m = load_manifest(ENGINES / "minipamayo-tiny-policy.manifest.json")
    txt_m = load_manifest(ENGINES / "minipamayo-tiny-text.manifest.json")
    image_shape = concrete_shape(pol_m.input("image").shape)
    pol_x: dict[str, np.ndarray] = {
        "image": rng.integers(0, 256, image_shape).astype(np.uint8),
        "state": rng.normal(0, 1, concrete_shape(pol_m.input("state").shape)).astype(np.float32)}
    txt_x: dict[str, np.ndarray] = {
        "context": rng.normal(0, 1, concrete_shape(txt_m.input("context").shape)).astype(np.float32),
        "event": np.array([2], np.int64)}
    n_pol, n_txt = (30, 10) if quick else (300, 60)
    metrics: dict[str, Any] = {}
    b2 = create_backend(pol_m, BackendOptions(backend="onnxruntime", intra_op_threads=2))
    b2.warm_up()
    metrics.update({f"policy_2threads_{k}": round(v, 3) for k, v in _time(b2, pol_x, n_pol).items()})
    # fp32 and the quantized variants that ship, interleaved call by call: same load for all
    variants = {"policy": pol_m}
    for tag, stem in QUANTIZED.items():
        if (ENGINES / f"{stem}.manifest.json").is_file():
            variants[tag] = load_manifest(ENGINES / f"{stem}.manifest.json")
    backends = {tag: create_backend(m, BackendOptions(backend="onnxruntime")) for tag, m in variants.items()}
    ms: dict[str, list[float]] = {tag: [] for tag in backends}
    for b in backends.values():
        b.warm_up()
    for _ in range(n_pol):
        for tag, b in backends.items():
            b.infer(pol_x)
            ms[tag].append(b.last_infer_ms)
    for tag, v in ms.items():
        st = summarize(v)
        metrics.update({f"{tag}_{k}": round(x, 3) for k, x in
                        (("p50_ms", st.p50), ("p95_ms", st.p95), ("p99_ms", st.p99), ("max_ms", st.max))})
        if tag != "policy":
            metrics[f"{tag}_speedup_p50_ratio"] = round(metrics["policy_p50_ms"] / st.p50, 3)
            metrics[f"{tag}_file_mb"] = round(variants[tag].model_path.stat().st_size / 2**20, 2)
    metrics["policy_file_mb"] = round(pol_m.model_path.stat().st_size / 2**20, 2)
    t = create_backend(txt_m, BackendOptions(backend="onnxruntime"))
    t.warm_up()
    metrics.update({f"text32_{k}": round(v, 3) for k, v in _time(t, txt_x, n_txt).items()})
    res = subprocess.run([sys.executable, "-c", _FRESH], cwd=REPO, capture_output=True, text=True,
                         timeout=120)
    if res.returncode != 0:
        raise RuntimeError(f"fresh-process measurement failed: {res.stderr[-2000:]}")
    fresh = json.loads(res.stdout.strip().splitlines()[-1])
    metrics["rss_peak_mb"] = round(fresh["rss_peak_mb"], 1)
    metrics["load_ms"] = round(fresh["load_ms"], 1)
    metrics["torch_imported"] = fresh["torch_imported"]
    metrics["model_ids"] = [pol_m.model_id, txt_m.model_id]
    goals = {"runtime process does not import torch": not fresh["torch_imported"]}
    md = "\n".join([
        f"ONNX Runtime CPU, models {pol_m.model_id} / {txt_m.model_id} "
        "(box shared with other jobs: under load)",
        "",
        "| what | p50 ms | p95 ms | p99 ms | max ms |", "|---|---|---|---|---|",
        *(f"| {tag} | {metrics[f'{tag}_p50_ms']} | {metrics[f'{tag}_p95_ms']} | {metrics[f'{tag}_p99_ms']} "
          f"| {metrics[f'{tag}_max_ms']} |" for tag in ("policy", "policy_2threads", *QUANTIZED, "text32")
          if f"{tag}_p50_ms" in metrics),
        "",
        f"fresh process (inference package + both models loaded, 20 runs): peak RSS "
        f"{metrics['rss_peak_mb']} MB, policy load+warm-up {metrics['load_ms']} ms, "
        f"torch imported: {fresh['torch_imported']}",
    ])
    return BenchResult(metrics=metrics, summary_md=md, goals=goals)
