"""Turn a training run into the shipped engines: export, measure on validation data, quantize, manifests.

Usage (after ``train.py`` wrote ``<run>/weights.safetensors`` and ``training.json``)::

    python -m minipamayo_ros.sim.dataset --out /tmp/val --seeds 1000:1060     # validation roads
    python -m minipamayo_ros.sim.dataset --out /tmp/calib --seeds 0:10        # training roads
    nice -n 10 python -m minipamayo_ros.model.release --run runs/tiny \
        --eval-data /tmp/val --calib-data /tmp/calib --out engines

Every metric written into a manifest is measured here on the exported file itself with ONNX
Runtime (CPU, 1 thread), not taken from the PyTorch run.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path
from typing import Any

from minipamayo_ros.manifest import sha256_of
from minipamayo_ros.model.evaluate import evaluate, onnx_policy_fn, onnx_text_fn
from minipamayo_ros.model.export import export_all, write_engine_manifest
from minipamayo_ros.model.network import load_model
from minipamayo_ros.model.quantize import compare, latency_ms, quantize_policy
from minipamayo_ros.seeds import format_seeds, split_of

#: quality bars of the shipped tiny model (issue 5), recorded beside the measured values
BARS = {"ade_m_max": 0.30, "fde_m_max": 0.80, "caption_exact_match_min": 0.90,
        "int8_ade_change_rel_max": 0.03}


def _seed_span(seeds: Any) -> str:
    """The seeds the metrics were measured on, with their split (``minipamayo_ros/seeds.py``)."""
    unique = sorted({int(s) for s in seeds.tolist()})
    splits = "/".join(sorted({str(split_of(s)) for s in unique}))
    return f"{splits} seeds {format_seeds(unique)} ({len(unique)} roads)"


def manifest_training(run_dir: Path) -> dict[str, Any]:
    t = json.loads((run_dir / "training.json").read_text())
    keep = {k: v for k, v in t.items() if k != "history"}
    keep["best_val_ade_m_torch"] = t.get("history", {}).get("best_val_ade_m")
    # runs before train.py recorded its command line: the shipped tiny's recipe (docs/model.md)
    keep.setdefault("command", "python -m minipamayo_ros.model.train --config tiny --train-seeds 0-449 "
                    "--val-seeds 1000-1059 --workers 16 --epochs 60 --batch-size 256 --lr 2e-3 "
                    "--time-budget-s 220  (on one H100)")
    return keep


def release(run_dir: Path, eval_data: Path, calib_data: Path, out: Path, name: str,
            limit: int | None = None) -> dict[str, Any]:
    from minipamayo_ros.sim.dataset import load_dataset

    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(run_dir / "weights.safetensors", out / f"{name}.safetensors")
    if (run_dir / "loss_curves.png").is_file():
        shutil.copyfile(run_dir / "loss_curves.png", out / f"{name}-loss-curves.png")
    model = load_model(out / f"{name}.safetensors")
    training = manifest_training(run_dir)
    files = export_all(model, out, name, training, {})
    held_out = load_dataset(eval_data)
    print(f"evaluating {files['policy'].name} + {files['text'].name} on {len(held_out)} held-out samples",
          flush=True)
    # cached per (policy, text) file hash: the held-out pass takes minutes on a 2-core CPU
    key = sha256_of(files["policy"])[:12] + "-" + sha256_of(files["text"])[:12] + f"-{limit}"
    cache = Path(eval_data) / f".release-eval-{key}.json"
    if cache.is_file():
        res = json.loads(cache.read_text())
    else:
        res = evaluate(held_out, onnx_policy_fn(str(files["policy"])), onnx_text_fn(str(files["text"])),
                       limit=limit, progress=True)
        cache.write_text(json.dumps(res))
    parity = {k: json.loads(files[f"{k}_manifest"].read_text())["metrics"]["onnx_parity_max_abs"]
              for k in ("policy", "text")}
    pol_metrics = {**res["policy"], "latency_ort_cpu_1thread": latency_ms(files["policy"]),
                   "onnx_parity_max_abs": parity["policy"], "bars": BARS,
                   "evaluated_on": _seed_span(held_out.episode_seeds)}
    text_metrics = {**res["text"], "onnx_parity_max_abs": parity["text"], "bars": BARS,
                    "latency_ort_cpu_1thread": latency_ms(files["text"], runs=50)}
    cfg = model.cfg.as_dict()
    write_engine_manifest(files["policy"], f"{name}-policy", "policy", cfg, training, pol_metrics)
    write_engine_manifest(files["text"], f"{name}-text", "text_decoder", cfg, training, text_metrics)
    print(json.dumps({"policy": res["policy"], "text": res["text"]["caption_exact_match"]}, indent=1),
          flush=True)

    int8 = out / f"{name}-policy-int8.onnx"
    sensitive = quantize_policy(files["policy"], int8, load_dataset(calib_data),
                                log=lambda m: print(m, flush=True))
    q = compare(files["policy"], int8, held_out, limit, fp32_metrics=res["policy"])
    int8_metrics = {**q["int8"], "ade_change_rel_vs_fp32": q["ade_change_rel"],
                    "cpu_speedup_p50_vs_fp32": q["cpu_speedup_p50"],
                    "latency_ort_cpu_1thread": q["latency_int8_ms"],
                    "latency_fp32_ort_cpu_1thread": q["latency_fp32_ms"], "bars": BARS,
                    "quantization": "onnxruntime static QDQ: per-channel int8 weights, uint8 activations, "
                                    "MinMax calibration on 256 samples of training seeds (calib data)",
                    "kept_float_sensitive_nodes": sensitive}
    int8_training = {**training, "quantized_from": f"{name}-policy", "calibration_data": str(calib_data)}
    write_engine_manifest(int8, f"{name}-policy-int8", "policy", cfg, int8_training, int8_metrics)
    summary = {"policy": pol_metrics, "text": text_metrics, "int8": int8_metrics}
    print(json.dumps({"int8_ade_change_rel": q["ade_change_rel"], "cpu_speedup_p50": q["cpu_speedup_p50"]}),
          flush=True)
    return summary


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", required=True, type=Path)
    ap.add_argument("--eval-data", required=True, type=Path)
    ap.add_argument("--calib-data", required=True, type=Path)
    ap.add_argument("--out", default=Path("engines"), type=Path)
    ap.add_argument("--name", default="minipamayo-tiny")
    ap.add_argument("--limit", type=int)
    a = ap.parse_args(argv)
    s = release(a.run, a.eval_data, a.calib_data, a.out, a.name, a.limit)
    ok = (s["policy"]["ade_m"] <= BARS["ade_m_max"] and s["policy"]["fde_m"] <= BARS["fde_m_max"]
          and s["text"]["caption_exact_match"] >= BARS["caption_exact_match_min"]
          and s["int8"]["ade_change_rel_vs_fp32"] <= BARS["int8_ade_change_rel_max"])
    print("quality bars met" if ok else "QUALITY BARS MISSED (see manifests)")


if __name__ == "__main__":
    main()
