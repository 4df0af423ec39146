"""Run a model on TensorRT and on ONNX Runtime with the same inputs and report the differences.

    ros2 run minipamayo_ros verify_engine --manifest engines/minipamayo-tiny-policy.manifest.json
    ros2 run minipamayo_ros verify_engine --manifest ... --precision int8 --samples 32 --json out.json

For users to run on the Jetson after building an engine: ONNX Runtime (CPU, fp32) is the
reference. Inputs are random but valid (uint8 images, unit-normal state/context, event ids in
range) plus an all-zero sample. Per output: max and mean absolute difference (float outputs) or the
fraction of samples that match exactly (integer outputs such as caption tokens). Passes when every
float output is within ``--atol`` (default by precision: fp32 1e-3, fp16 5e-2, bf16 1e-1, int8 2e-1;
waypoints are metres) and integer outputs match in >= ``--min-int-match`` of the samples.
``--backend torch`` compares the PyTorch backend instead (workstations).
Exit status: 0 pass, 1 differences too large, 2 a backend could not run.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import numpy as np

from minipamayo_ros.inference.backend import BackendError, BackendOptions, concrete_shape
from minipamayo_ros.inference.factory import create_backend
from minipamayo_ros.manifest import ManifestError, ModelManifest, load_manifest

DEFAULT_ATOL = {"fp32": 1e-3, "fp16": 5e-2, "bf16": 1e-1, "int8": 2e-1}


def sample_inputs(manifest: ModelManifest, n: int, seed: int = 0) -> list[dict[str, np.ndarray]]:
    """``n`` valid input sets (the first all zeros) for a policy or text manifest."""
    rng = np.random.default_rng(seed)
    num_events = int(manifest.config.get("text", {}).get("num_events", 7))
    samples = []
    for i in range(n):
        x = {}
        for s in manifest.inputs:
            shape = concrete_shape(s.shape)
            if i == 0:
                x[s.name] = np.zeros(shape, s.dtype)
            elif s.dtype == "uint8":
                x[s.name] = rng.integers(0, 256, shape, dtype=np.uint8)
            elif np.issubdtype(np.dtype(s.dtype), np.integer):
                x[s.name] = rng.integers(0, num_events, shape).astype(s.dtype)
            else:
                x[s.name] = rng.normal(0, 1, shape).astype(s.dtype)
        samples.append(x)
    return samples


def compare(manifest: ModelManifest, ref: list[dict[str, np.ndarray]], got: list[dict[str, np.ndarray]],
            atol: float, min_int_match: float) -> dict[str, Any]:
    """Per-output differences of ``got`` vs ``ref`` and the verdict."""
    report: dict[str, Any] = {"outputs": {}, "pass": True}
    for spec in manifest.outputs:
        a = np.stack([r[spec.name] for r in ref])
        b = np.stack([g[spec.name] for g in got])
        if np.issubdtype(a.dtype, np.integer):
            match = float(np.mean([np.array_equal(x, y) for x, y in zip(a, b, strict=True)]))
            ok = match >= min_int_match
            report["outputs"][spec.name] = {"exact_match_fraction": match, "pass": ok}
        else:
            d = np.abs(a.astype(np.float64) - b.astype(np.float64))
            ok = bool(np.all(np.isfinite(b))) and float(d.max()) <= atol
            report["outputs"][spec.name] = {"max_abs_diff": float(d.max()), "mean_abs_diff": float(d.mean()),
                                            "atol": atol, "pass": ok}
        report["pass"] = report["pass"] and ok
    return report


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="verify_engine", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--manifest", required=True)
    p.add_argument("--backend", default="tensorrt", choices=["tensorrt", "torch"])
    p.add_argument("--precision", default="fp16", choices=list(DEFAULT_ATOL))
    p.add_argument("--samples", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--atol", type=float, default=None,
                   help="max abs difference allowed (default by precision)")
    p.add_argument("--min-int-match", type=float, default=None,
                   help="fraction of samples whose integer outputs must match exactly (default 1.0 for fp32, "
                        "else 0.9)")
    p.add_argument("--cache-dir", default="")
    p.add_argument("--device", default=None, help="default cuda:0 (torch: cuda:0 if available else cpu)")
    p.add_argument("--json", help="also write the report to this file")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        manifest = load_manifest(args.manifest)
    except ManifestError as exc:
        print(f"verify_engine: {exc}", file=sys.stderr)
        return 2
    device = args.device or "cuda:0"
    if args.backend == "torch" and args.device is None:
        import torch

        device = "cuda:0" if torch.cuda.is_available() else "cpu"
    atol = args.atol if args.atol is not None else DEFAULT_ATOL[args.precision]
    min_int = args.min_int_match
    if min_int is None:
        min_int = 1.0 if args.precision == "fp32" else 0.9
    samples = sample_inputs(manifest, max(1, args.samples), args.seed)
    try:
        ref_backend = create_backend(manifest, BackendOptions(backend="onnxruntime"))
        test_backend = create_backend(manifest, BackendOptions(
            backend=args.backend, precision=args.precision, device=device, engine_cache_dir=args.cache_dir,
            extra={"build_log": print}))
        test_backend.warm_up()
        ref = [ref_backend.infer(x) for x in samples]
        got = [test_backend.infer(x) for x in samples]
    except BackendError as exc:
        print(f"verify_engine: {exc}", file=sys.stderr)
        return 2
    report = compare(manifest, ref, got, atol, min_int)
    report.update({"model_id": manifest.model_id, "samples": len(samples),
                   "reference": ref_backend.describe(), "tested": test_backend.describe()})
    print(f"{manifest.model_id}: {args.backend} ({args.precision}) vs onnxruntime fp32, "
          f"{len(samples)} samples")
    for name, r in report["outputs"].items():
        if "max_abs_diff" in r:
            print(f"  {name:12s} max|d| {r['max_abs_diff']:.3e}  mean|d| {r['mean_abs_diff']:.3e}  "
                  f"(atol {r['atol']:.1e})  {'ok' if r['pass'] else 'FAIL'}")
        else:
            print(f"  {name:12s} exact match in {100 * r['exact_match_fraction']:.0f}% of samples  "
                  f"{'ok' if r['pass'] else 'FAIL'}")
    print("PASS" if report["pass"] else "FAIL")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
    return 0 if report["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
