"""Roofline costing and GPU-result bookkeeping of the benchmarks (no GPU needed)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from bench.bench_inference_gpu import MODES, full_plan, parse_spec, run_name
from bench.bench_inference_roofline import (
    HARDWARE,
    VARIANTS,
    breakdown,
    count,
    fusion_key,
    gpu_efficiency,
    roofline_ms,
    variant_config,
    weight_bytes,
)
from bench.gpu_cards import card_slug, newest_result, result_path
from minipamayo_ros.model.config import VisionConfig, load_config


def test_result_files_are_named_by_the_card(tmp_path: Path) -> None:
    assert card_slug("NVIDIA H100 80GB HBM3") == "h100-80gb-hbm3"
    assert card_slug("NVIDIA H200") == "h200"
    assert result_path(tmp_path, "inference_gpu", "NVIDIA H200").name == "inference_gpu_h200.json"


def test_newest_committed_result_wins(tmp_path: Path) -> None:
    files = {"inference_gpu_h100-80gb-hbm3.json": {"measured_at": "2026-12-01T10:00:00Z", "runs": {}},
             "inference_gpu_h200.json": {"measured_at": "2026-12-07T10:00:00Z", "runs": {}},
             "inference_gpu_h100.json": {"policy_fp16_graph": {}},   # older format: no stamp
             "inference_gpu_h200_run9.json": {"measured_at": "2027-01-01T00:00:00Z", "runs": {}},
             "text_gpu_h100.json": {"measured_at": "2030-01-01T00:00:00Z"}}
    for name, data in files.items():
        (tmp_path / name).write_text(json.dumps(data))
    path, _ = newest_result("inference_gpu", tmp_path)
    assert path.name == "inference_gpu_h200.json"
    assert newest_result("inference_gpu", tmp_path, require="nothing_has_this") is None


def _gpu_run(variant: str, p95: float, fusion: dict | None = None) -> dict:
    return {"kind": "policy", "precision": "fp16", "image_px": 320, "mode": "compile_io", "p95_ms": p95,
            "p99_ms": p95, "roofline_ms": 0.3, "fusion": fusion or fusion_key(variant_config(variant))}


def test_gpu_efficiency_is_the_variants_own_best_run_newest_result_first(tmp_path: Path) -> None:
    host = {"gpu": "NVIDIA H100 80GB HBM3"}
    old_key = {k: v for k, v in fusion_key(variant_config("pool2")).items() if "parallel" not in k}
    files = {  # the newest committed result has no pool2 run; an older _run file has one
        "inference_gpu_h100-80gb-hbm3.json": {"measured_at": "2026-12-07T17:00:00Z", "host": host, "runs": {
            "a": _gpu_run("committed", 1.5), "b": _gpu_run("committed", 1.2)}},
        "inference_gpu_h100-80gb-hbm3_run3.json": {"measured_at": "2026-12-07T05:00:00Z", "host": host,
                                                   "runs": {"old": _gpu_run("pool2", 2.0, old_key)}},
        "inference_gpu_h100-80gb-hbm3_run2.json": {"measured_at": "2026-12-06T05:00:00Z", "host": host,
                                                   "runs": {"older": _gpu_run("pool2", 1.0)}}}
    for name, data in files.items():
        (tmp_path / name).write_text(json.dumps(data))
    eff = gpu_efficiency("committed", tmp_path)
    assert (eff["file"], eff["run"], eff["fraction_p95"]) == ("inference_gpu_h100-80gb-hbm3.json", "b", 0.25)
    # results written before parallel blocks existed ran sequential blocks: pool2 still matches
    eff = gpu_efficiency("pool2", tmp_path)
    assert (eff["file"], eff["run"]) == ("inference_gpu_h100-80gb-hbm3_run3.json", "old")
    assert "error" in gpu_efficiency("pool4-par-vitpar", tmp_path)
    assert gpu_efficiency("committed", tmp_path / "nothing") == {}


def test_gpu_run_specs() -> None:
    assert parse_spec("policy:pool4:320:fp16:compile_io") == ("policy", "pool4", 320, "fp16", "compile_io")
    assert run_name("policy:pool4:320:fp16:graph") == "policy_pool4_320_fp16_graph"
    for bad in ("policy:pool4:320:fp16", "policy:nope:320:fp16:graph", "policy:pool4:320:int8:graph"):
        with pytest.raises(ValueError, match="run"):
            parse_spec(bad)
    plan = full_plan()
    assert {parse_spec(s)[1] for s in plan} == set(VARIANTS)
    assert {parse_spec(s)[4] for s in plan if s.startswith("policy")} == set(MODES)


def test_costing_per_precision() -> None:
    c = {"flops": 100e9, "flops_linear": 80e9, "flops_conv": 10e9, "flops_other": 10e9,
         "parameters": 500e6, "linear_weights": 400e6, "conv_weights": 1e6, "weight_reads": 1.0,
         "activation_bytes_fp32": 0.0}
    assert weight_bytes(c, "fp16") == 1000e6
    assert weight_bytes(c, "int8") == pytest.approx(401e6 + 2 * 99e6)
    assert weight_bytes(c, "int4w") == pytest.approx(400e6 * (0.5 + 2 / 32) + 2 * 100e6)
    orin = HARDWARE["orin_nano_8gb"]
    fp16, int8, int4w = (roofline_ms(c, orin, p) for p in ("fp16", "int8", "int4w"))
    assert fp16["compute_ms"] == pytest.approx(10.0) and fp16["bound"] == "memory"   # 1 GB / 68 GB/s
    assert int8["compute_ms"] == pytest.approx(90e9 / 20e12 * 1e3 + 10e9 / 10e12 * 1e3)
    assert int4w["compute_ms"] == fp16["compute_ms"]  # weight-only: the GEMMs still run in fp16
    assert int4w["memory_weights_ms"] < int8["memory_weights_ms"] < fp16["memory_weights_ms"]


def test_counts_split_by_op_class_and_per_block_table_adds_up() -> None:
    cfg = dataclasses.replace(load_config("tiny"), vision=VisionConfig(kind="vit", patch_size=16, width=64,
                                                                        depth=2, heads=2))
    c = count(cfg, "policy")
    assert c["flops_linear"] > 0 and c["flops_conv"] > 0 and c["flops_other"] > 0
    assert c["flops_linear"] + c["flops_conv"] + c["flops_other"] == pytest.approx(c["flops"])
    rows = breakdown(cfg)
    assert sum(r["gflops_total"] for r in rows) == pytest.approx(c["flops"] / 1e9, rel=1e-6)
    vit = next(r for r in rows if r["part"] == "vision: ViT block")
    assert vit["count"] == 2 and vit["tokens"] == (128 // 16) ** 2


def test_token_cut_variant_quarters_the_backbone_tokens() -> None:
    pool2, pool4 = variant_config("pool2", 320), variant_config("pool4", 320)
    assert (pool2.vision_tokens, pool4.vision_tokens) == (100, 25)
    assert pool4.fusion.width == pool2.fusion.width and pool4.fusion.depth == pool2.fusion.depth
