"""INT8 variant of the policy (ONNX Runtime static QDQ quantization), its ADE change and speed-up.

Usage::

    python -m minipamayo_ros.model.quantize --policy engines/minipamayo-tiny-policy.onnx \
        --calib-data <train dataset dir> --eval-data <held-out dataset dir>

QDQ format (QuantizeLinear/DequantizeLinear pairs) is what TensorRT consumes for explicit INT8
on the Jetson as well, so the same file serves ONNX Runtime on a CPU and ``trtexec --int8``.
Weights are quantized per channel (int8, symmetric), activations per tensor (uint8) from
calibration on training images (never the held-out ones). Conv and weight MatMul/Gemm
are quantized; the unicycle roll-out, the small output heads and the attention score MatMuls
(activation x activation) stay in float (see ``_float_nodes``), and so does any node whose
quantization alone raises ADE by > 1 % on training-road samples (``sensitive_nodes``: for the
shipped tiny model, the first convolution and one attention output projection).
The quantized file is accepted only if held-out ADE grows by <= ``--max-ade-change`` (3 %).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from minipamayo_ros.manifest import load_manifest
from minipamayo_ros.model.evaluate import Dataset, evaluate, onnx_policy_fn
from minipamayo_ros.model.export import ort_session, write_engine_manifest


class _Reader:
    """CalibrationDataReader over dataset samples (duck-typed: ``get_next`` -> dict | None)."""

    def __init__(self, ds: Dataset, indices: np.ndarray) -> None:
        self._it = iter([{"image": ds.images[i:i + 1], "state": np.asarray(ds.state[i:i + 1], np.float32)}
                         for i in indices])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._it, None)


#: kept in float: the unicycle roll-out (cumulative-sum MatMuls at the graph's top level, which the
#: pre-processor may fuse into Gemm) and the small heads whose outputs are the published numbers.
_FLOAT_PARTS = ("action_head", "state_proj", "context_head", "uncertainty_head")


def _float_nodes(model_path: Path) -> list[str]:
    """Nodes left in float: roll-out, heads, and the activation x activation attention MatMuls
    (quantizing those costs more in Q/DQ than it saves at these widths)."""
    import onnx

    g = onnx.load(str(model_path)).graph
    weights = {i.name for i in g.initializer}
    keep = []
    for n in g.node:
        rollout = n.op_type in ("MatMul", "Gemm") and n.name.startswith("/policy/MatMul")
        act_act = n.op_type == "MatMul" and not any(i in weights for i in n.input)
        if rollout or act_act or any(p in n.name for p in _FLOAT_PARTS):
            keep.append(n.name)
    return keep


def _quantize(pre: Path, out: Path, calib: Dataset, calib_idx: np.ndarray, exclude: list[str]) -> None:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    quantize_static(
        str(pre), str(out), _Reader(calib, calib_idx), quant_format=QuantFormat.QDQ,
        per_channel=True, weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8,
        calibrate_method=CalibrationMethod.MinMax, op_types_to_quantize=["Conv", "MatMul", "Gemm"],
        nodes_to_exclude=exclude, extra_options={"WeightSymmetric": True},
    )


def keep_float_until(cands: list[str], change: Any, target: float, log: Any = print) -> dict[str, float]:
    """Greedy float fallback shared by the INT8 and INT4 recipes.

    ``change(excluded)`` quantizes every candidate except ``excluded`` and returns the relative ADE
    change. Each node's sensitivity is the change when it alone is quantized; nodes are then kept
    in float, most sensitive first, until quantizing all the others stays within ``target``.
    Returns the kept nodes with their sensitivity.
    """
    sens: dict[str, float] = {}
    for i, c in enumerate(cands):
        sens[c] = change([n for n in cands if n != c])
        log(f"  sensitivity {i + 1}/{len(cands)} {sens[c]:+.4f} {c}")
    order = sorted(cands, key=lambda c: -sens[c])
    kept: list[str] = []
    total = change(kept)
    while total > target and len(kept) < len(order):
        kept.append(order[len(kept)])
        total = change(kept)
        log(f"  keeping {len(kept)} node(s) float: ADE change {total:+.4f} (training roads)")
    return {c: sens[c] for c in kept}


def score_subset(calib: Dataset, score_idx: np.ndarray) -> Dataset:
    """The samples ``score_idx`` of ``calib`` as a dataset (sensitivity scoring)."""
    from minipamayo_ros.model.train import ArrayDataset

    return ArrayDataset(*(np.asarray(getattr(calib, k))[score_idx] for k in
                          ("images", "state", "waypoints", "speeds", "events", "caption_tokens")))


def sensitive_nodes(pre: Path, calib: Dataset, calib_idx: np.ndarray, score_idx: np.ndarray,
                    target: float = 0.015, log: Any = print) -> dict[str, float]:
    """Nodes to keep in float so that the quantized model's ADE rises by <= ``target`` (relative).

    See :func:`keep_float_until`. Scored on training-road samples (``score_idx``, disjoint from the
    calibration samples), never on held-out data: the held-out set only measures the final file.
    """
    import onnx

    float_nodes = _float_nodes(pre)
    cands = [n.name for n in onnx.load(str(pre)).graph.node
             if n.op_type in ("Conv", "MatMul", "Gemm") and n.name not in float_nodes]
    sub = score_subset(calib, score_idx)
    base = evaluate(sub, onnx_policy_fn(str(pre)))["policy"]["ade_m"]
    with tempfile.TemporaryDirectory() as tmp:
        q = Path(tmp) / "q.onnx"

        def change(excluded: list[str]) -> float:
            _quantize(pre, q, calib, calib_idx, excluded + float_nodes)
            return (evaluate(sub, onnx_policy_fn(str(q)))["policy"]["ade_m"] - base) / base

        return keep_float_until(cands, change, target, log)


def quantize_policy(fp32_path: str | Path, int8_path: str | Path, calib: Dataset, n_calib: int = 256,
                    n_score: int = 400, target: float = 0.015, seed: int = 0,
                    log: Any = print) -> dict[str, float]:
    """Static INT8 QDQ quantization of the policy, calibrated on ``n_calib`` samples of ``calib``;
    the nodes :func:`sensitive_nodes` selects stay float. Returns them with their sensitivity."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    int8_path = Path(int8_path)
    n = len(calib.images)
    perm = np.random.default_rng(seed).permutation(n)
    calib_idx = np.sort(perm[: min(n_calib, n)])
    score_idx = np.sort(perm[min(n_calib, n): min(n_calib, n) + n_score])
    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(fp32_path), str(pre), skip_symbolic_shape=True)
        sensitive = sensitive_nodes(pre, calib, calib_idx, score_idx, target, log) if len(score_idx) else {}
        log(f"kept in float (most sensitive): {sensitive}")
        _quantize(pre, int8_path, calib, calib_idx, _float_nodes(pre) + list(sensitive))
    import onnx

    onnx.checker.check_model(onnx.load(str(int8_path)))
    return sensitive


def latency_ms(path: str | Path, threads: int = 1, runs: int = 200, warmup: int = 20) -> dict[str, float]:
    """Policy latency with ONNX Runtime on the CPU (p50/p95/p99/max, ms, batch 1)."""
    sess = ort_session(path, threads)
    rng = np.random.default_rng(0)
    def example(i: Any) -> np.ndarray:
        if i.type == "tensor(uint8)":
            return rng.integers(0, 256, i.shape, dtype=np.uint8)
        if i.type == "tensor(int64)":
            return rng.integers(0, 4, i.shape, dtype=np.int64)
        return rng.normal(0, 1, i.shape).astype(np.float32)

    inp = {i.name: example(i) for i in sess.get_inputs()}
    for _ in range(warmup):
        sess.run(None, inp)
    t = []
    for _ in range(runs):
        t0 = time.perf_counter()
        sess.run(None, inp)
        t.append((time.perf_counter() - t0) * 1e3)
    a = np.array(t)
    return {"p50_ms": float(np.percentile(a, 50)), "p95_ms": float(np.percentile(a, 95)),
            "p99_ms": float(np.percentile(a, 99)), "max_ms": float(a.max())}


def compare(fp32_path: str | Path, int8_path: str | Path, held_out: Dataset, limit: int | None = None,
            threads: int = 1, fp32_metrics: dict[str, Any] | None = None) -> dict[str, Any]:
    """Held-out ADE/FDE of both files (``fp32_metrics``: already measured on the same samples),
    relative ADE change, and CPU latencies / speed-up."""
    r32 = fp32_metrics or evaluate(held_out, onnx_policy_fn(str(fp32_path), threads), limit=limit)["policy"]
    r8 = evaluate(held_out, onnx_policy_fn(str(int8_path), threads), limit=limit)["policy"]
    l32, l8 = latency_ms(fp32_path, threads), latency_ms(int8_path, threads)
    return {
        "fp32": r32, "int8": r8,
        "ade_change_rel": (r8["ade_m"] - r32["ade_m"]) / r32["ade_m"],
        "latency_fp32_ms": l32, "latency_int8_ms": l8,
        "cpu_speedup_p50": l32["p50_ms"] / l8["p50_ms"], "threads": threads,
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="INT8 (QDQ) quantization of the minipamayo policy")
    ap.add_argument("--policy", default="engines/minipamayo-tiny-policy.onnx")
    ap.add_argument("--out", help="default: <policy stem>-int8.onnx beside it")
    ap.add_argument("--calib-data", required=True, help="training dataset dir (calibration)")
    ap.add_argument("--eval-data", required=True, help="held-out dataset dir")
    ap.add_argument("--limit", type=int, help="held-out samples to score")
    ap.add_argument("--max-ade-change", type=float, default=0.03)
    a = ap.parse_args(argv)
    from minipamayo_ros.sim.dataset import load_dataset

    fp32 = Path(a.policy)
    out = Path(a.out) if a.out else fp32.with_name(fp32.stem + "-int8.onnx")
    sensitive = quantize_policy(fp32, out, load_dataset(a.calib_data))
    res = compare(fp32, out, load_dataset(a.eval_data), a.limit)
    print(json.dumps(res, indent=2))
    if res["ade_change_rel"] > a.max_ade_change:
        raise SystemExit(f"INT8 ADE change {res['ade_change_rel']:+.1%} exceeds {a.max_ade_change:.0%}")
    src = load_manifest(fp32.with_name(fp32.stem + ".manifest.json"))
    metrics = {**res["int8"], "ade_change_rel_vs_fp32": res["ade_change_rel"],
               "cpu_speedup_p50_vs_fp32": res["cpu_speedup_p50"], "latency_int8_ms": res["latency_int8_ms"],
               "latency_fp32_ms": res["latency_fp32_ms"], "threads": res["threads"],
               "kept_float_sensitive_nodes": sensitive,
               "quantization": "onnxruntime static QDQ, per-channel int8 weights, uint8 activations, "
                               "MinMax calibration on 256 training samples"}
    path = write_engine_manifest(out, src.name + "-int8", "policy", src.config,
                                 {**src.training, "quantized_from": src.model_id}, metrics)
    print(f"wrote {out} and {path}")


if __name__ == "__main__":
    main()
