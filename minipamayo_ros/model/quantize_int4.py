"""INT4 weight-only variants of the policy (block-wise, symmetric), in the two forms the runtimes read.

Usage::

    python -m minipamayo_ros.model.quantize_int4 --policy engines/minipamayo-tiny-policy.onnx \
        --eval-data <validation dataset dir> [--block-size 32]

The design notes assume INT4 weights on the Jetson. Both files come from ONNX Runtime's own 4-bit
quantizer (``onnxruntime.quantization.matmul_nbits_quantizer``, round-to-nearest, one fp32 scale
per ``block_size`` input channels of each output column, symmetric: no zero point):

* ``<stem>-int4.onnx``: ``com.microsoft::MatMulNBits`` nodes, ONNX Runtime's fused 4-bit MatMul
  (what a CPU runs here; the policy node's ``onnxruntime`` backend loads it);
* ``<stem>-int4-qdq.onnx``: an INT4 ``DequantizeLinear`` with ``block_size`` (opset 21) in front
  of each weight MatMul: the block-quantized Q/DQ form TensorRT 10 builds weight-only INT4 GEMMs
  from (symmetric, as TensorRT requires; build it with ``--precision fp16``: activations stay fp16).

Only weight MatMuls of the transformer and the connector are quantized: the nodes the INT8 recipe
keeps float (``quantize._float_nodes``: the unicycle roll-out, the output heads, the activation x
activation attention MatMuls) stay float, and so do convolutions (weight-only INT4 is a GEMM
technique; the tiny model's CNN is 0.34 M parameters). Activations are never quantized. As in the
INT8 recipe, the MatMuls whose quantization alone costs most ADE on training-road samples stay
float until the whole model's ADE change there is <= ``--target`` (``sensitive_int4_nodes``); the
file is accepted only if validation ADE grows by <= ``--max-ade-change`` (3 %).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

#: ONNX Runtime's MatMulNBits (CPU) and the opset-21 block Q/DQ graph (TensorRT 10)
FORMATS = ("matmulnbits", "qdq")
SUFFIX = {"matmulnbits": "-int4", "qdq": "-int4-qdq"}


def quantize_int4(fp32_path: str | Path, out_path: str | Path, fmt: str = "matmulnbits",
                  block_size: int = 16, exclude: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
    """Write the INT4 weight-only variant of ``fp32_path``; returns what was quantized.

    ``block_size`` input channels share one scale (a power of two >= 16 dividing the widths: 96
    and 384 in the tiny model); ``exclude``: more MatMul nodes to keep float. Raises ValueError if
    no MatMul was quantized.
    """
    import logging

    import onnx
    from onnxruntime.quantization import QuantFormat
    from onnxruntime.quantization.matmul_nbits_quantizer import (
        DefaultWeightOnlyQuantConfig,
        MatMulNBitsQuantizer,
    )

    from minipamayo_ros.model.quantize import _float_nodes

    if fmt not in FORMATS:
        raise ValueError(f"INT4 format must be one of {FORMATS}, got {fmt!r}")
    logging.getLogger("onnxruntime.quantization.matmul_nbits_quantizer").setLevel(logging.WARNING)
    model = onnx.load(str(fp32_path))
    keep = _float_nodes(Path(fp32_path)) + list(exclude)
    cfg = DefaultWeightOnlyQuantConfig(
        block_size=block_size, is_symmetric=True,
        quant_format=QuantFormat.QOperator if fmt == "matmulnbits" else QuantFormat.QDQ,
        op_types_to_quantize=("MatMul",))
    q = MatMulNBitsQuantizer(model, block_size=block_size, is_symmetric=True, nodes_to_exclude=keep,
                             algo_config=cfg)
    q.process()
    out = q.model.model
    quantized = [n.name for n in out.graph.node
                 if n.op_type == "MatMulNBits" or (n.op_type == "DequantizeLinear" and "_DQ_Q4" in n.name)]
    if not quantized:
        raise ValueError(f"no weight MatMul of {fp32_path} was quantized to INT4")
    onnx.checker.check_model(out)
    Path(out_path).parent.mkdir(parents=True, exist_ok=True)
    onnx.save(out, str(out_path))
    opset = max(o.version for o in out.opset_import if o.domain in ("", "ai.onnx"))
    return {"format": fmt, "block_size": block_size, "quantized_nodes": len(quantized),
            "kept_float_nodes": len(keep), "opset": opset, "file_mb": Path(out_path).stat().st_size / 2**20}


def int4_candidates(fp32_path: str | Path) -> list[str]:
    """The weight MatMuls the INT4 recipe may quantize (all but ``quantize._float_nodes``)."""
    import onnx

    from minipamayo_ros.model.quantize import _float_nodes

    g = onnx.load(str(fp32_path)).graph
    weights = {i.name for i in g.initializer}
    keep = set(_float_nodes(Path(fp32_path)))
    return [n.name for n in g.node if n.op_type == "MatMul" and n.name not in keep
            and len(n.input) > 1 and n.input[1] in weights]


def sensitive_int4_nodes(fp32_path: str | Path, calib: Any, block_size: int = 16, n_score: int = 400,
                         target: float = 0.015, seed: int = 0, log: Any = print) -> dict[str, float]:
    """MatMuls to keep float so that INT4 raises ADE by <= ``target`` (relative), scored on
    ``n_score`` samples of ``calib`` (training roads, never validation): the INT8 recipe's greedy
    fallback (``quantize.keep_float_until``) with the MatMulNBits form (same weights as the Q/DQ one)."""
    import tempfile

    from minipamayo_ros.model.evaluate import evaluate, onnx_policy_fn
    from minipamayo_ros.model.quantize import keep_float_until, score_subset

    n = len(calib.images)
    idx = np.sort(np.random.default_rng(seed).permutation(n)[: min(n_score, n)])
    sub = score_subset(calib, idx)
    base = evaluate(sub, onnx_policy_fn(str(fp32_path)))["policy"]["ade_m"]
    with tempfile.TemporaryDirectory() as tmp:
        q = Path(tmp) / "q.onnx"

        def change(excluded: list[str]) -> float:
            quantize_int4(fp32_path, q, "matmulnbits", block_size, excluded)
            return (evaluate(sub, onnx_policy_fn(str(q)))["policy"]["ade_m"] - base) / base

        return keep_float_until(int4_candidates(fp32_path), change, target, log)


def weight_bytes(path: str | Path) -> dict[str, int]:
    """Bytes of the graph's initializers by element type (INT4 packed two per byte)."""
    import onnx
    from onnx import TensorProto

    sizes: dict[str, int] = {}
    for t in onnx.load(str(path)).graph.initializer:
        n = int(np.prod(t.dims)) if t.dims else 1
        name = TensorProto.DataType.Name(t.data_type).lower()
        bits = {"int4": 4, "uint4": 4, "uint8": 8, "int8": 8, "float16": 16, "float": 32,
                "int64": 64, "int32": 32}.get(name, 32)
        if t.name.endswith("_Q4") and name == "uint8":  # MatMulNBits packs 4-bit blocks into uint8
            name = "int4 (packed)"
        sizes[name] = sizes.get(name, 0) + (n * bits + 7) // 8
    return sizes


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="INT4 weight-only variants of the minipamayo policy")
    ap.add_argument("--policy", default="engines/minipamayo-tiny-policy.onnx")
    ap.add_argument("--eval-data", required=True, help="validation dataset dir (ADE of each file)")
    ap.add_argument("--calib-data", required=True,
                    help="training dataset dir: per-node sensitivity (which MatMuls stay float)")
    ap.add_argument("--block-size", type=int, default=16)
    ap.add_argument("--target", type=float, default=0.015,
                    help="relative ADE change allowed on the training-road samples (float fallback)")
    ap.add_argument("--limit", type=int, help="validation samples to score")
    ap.add_argument("--max-ade-change", type=float, default=0.03)
    a = ap.parse_args(argv)
    from minipamayo_ros.manifest import load_manifest
    from minipamayo_ros.model.evaluate import evaluate, onnx_policy_fn
    from minipamayo_ros.model.export import write_engine_manifest
    from minipamayo_ros.model.quantize import latency_ms
    from minipamayo_ros.model.release import _seed_span
    from minipamayo_ros.sim.dataset import load_dataset

    fp32 = Path(a.policy)
    src = load_manifest(fp32.with_name(fp32.stem + ".manifest.json"))
    ds = load_dataset(a.eval_data)
    ref = evaluate(ds, onnx_policy_fn(str(fp32)), limit=a.limit)["policy"]
    lat32 = latency_ms(fp32)
    report: dict[str, Any] = {"fp32": {**ref, "latency_ort_cpu_1thread": lat32,
                                       "file_mb": fp32.stat().st_size / 2**20}}
    sensitive = sensitive_int4_nodes(fp32, load_dataset(a.calib_data), a.block_size, target=a.target,
                                     log=lambda m: print(m, flush=True))
    for fmt in FORMATS:
        out = fp32.with_name(fp32.stem + SUFFIX[fmt] + ".onnx")
        info = quantize_int4(fp32, out, fmt, a.block_size, list(sensitive))
        res = evaluate(ds, onnx_policy_fn(str(out)), limit=a.limit)["policy"]
        change = (res["ade_m"] - ref["ade_m"]) / ref["ade_m"]
        lat = latency_ms(out)
        metrics = {**res, "ade_change_rel_vs_fp32": change, "latency_ort_cpu_1thread": lat,
                   "latency_fp32_ort_cpu_1thread": lat32,
                   "cpu_speedup_p50_vs_fp32": lat32["p50_ms"] / lat["p50_ms"],
                   "weight_bytes_by_type": weight_bytes(out), "evaluated_on": _seed_span(ds.episode_seeds),
                   "quantization": f"onnxruntime MatMulNBitsQuantizer ({fmt}): INT4 weight-only, symmetric, "
                                   f"block {a.block_size} along the input channels, RTN; activations float",
                   "tensorrt_precision": "fp16" if fmt == "qdq" else "n/a (onnxruntime only)",
                   "kept_float_sensitive_nodes": sensitive, "calibration_data": str(a.calib_data), **info}
        if change > a.max_ade_change:
            raise SystemExit(f"INT4 ({fmt}) ADE change {change:+.1%} exceeds {a.max_ade_change:.0%}")
        path = write_engine_manifest(out, src.name + SUFFIX[fmt], "policy", src.config,
                                     {**src.training, "quantized_from": src.model_id}, metrics)
        report[fmt] = metrics
        print(f"wrote {out} and {path}: ADE {res['ade_m']:.4f} m ({change:+.2%}), "
              f"p50 {lat['p50_ms']:.2f} ms vs fp32 {lat32['p50_ms']:.2f} ms", flush=True)
    print(json.dumps(report, indent=1, default=float))


if __name__ == "__main__":
    main()
