"""ONNX export: checker, ORT vs PyTorch parity (fp32 <= 1e-4), manifests, and the shipped engines."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from minipamayo_ros.manifest import ManifestError, load_manifest, sha256_of
from minipamayo_ros.model.config import FusionConfig, TextConfig, VisionConfig, load_config
from minipamayo_ros.model.export import (
    PARITY_TOL,
    export_all,
    ort_session,
    policy_example_inputs,
    policy_parity,
    run_onnx,
    text_parity,
)
from minipamayo_ros.model.network import build_model, load_model, save_weights
from minipamayo_ros.seeds import TEST, TRAINING, VALIDATION, first, require_split

pytestmark = pytest.mark.usefixtures("one_torch_thread")


ENGINES = Path(__file__).resolve().parents[1] / "engines"
POLICY_IO = {
    "image": ((1, 128, 128, 3), "uint8"), "state": ((1, 10, 4), "float32"),
    "waypoints": ((1, 20, 2), "float32"), "speeds": ((1, 20), "float32"),
    "uncertainty": ((1,), "float32"),
}


def _micro_model() -> torch.nn.Module:
    """Same code paths as tiny, smaller so the export test stays fast."""
    cfg = load_config("tiny")
    cfg = dataclasses.replace(
        cfg, image_size=(64, 64), context_dim=32, vision=VisionConfig(kind="cnn", channels=(8, 16, 32),
                                                                       blocks_per_stage=1),
        fusion=FusionConfig(width=32, depth=2, heads=2), text=TextConfig(width=32, depth=1, heads=2,
                                                                         max_tokens=8))
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    torch.nn.init.normal_(model.policy.action_head.weight, std=0.05)  # non-trivial trajectories
    model.policy.state_mean.fill_(1.0)
    return model


def test_export_round_trip(tmp_path: Path) -> None:
    model = _micro_model()
    files = export_all(model, tmp_path, "micro", {"data_seeds": [1, 2]}, {"policy": {"ade_m": 0.1}})
    assert policy_parity(model, files["policy"], range(2)) <= PARITY_TOL
    ctx = np.random.default_rng(1).normal(0, 2, (4, 32)).astype(np.float32)
    diff, same = text_parity(model, files["text"], ctx, np.array([0, 1, 3, 5]))
    assert same and diff <= PARITY_TOL
    pm = load_manifest(files["policy_manifest"])
    assert pm.kind == "policy" and pm.model_id == f"micro-policy@{sha256_of(files['policy'])[:12]}"
    assert pm.training["data_seeds"] == [1, 2] and pm.metrics["ade_m"] == 0.1
    assert pm.config["image_size"] == [64, 64]
    tm = load_manifest(files["text_manifest"])
    assert tm.kind == "text_decoder"
    assert [s.name for s in tm.inputs] == ["context", "event"]
    assert tm.output("tokens").shape == (1, 8) and tm.output("tokens").dtype == "int32"


def test_manifest_detects_replaced_file(tmp_path: Path) -> None:
    model = _micro_model()
    files = export_all(model, tmp_path, "micro", {}, {})
    files["policy"].write_bytes(files["policy"].read_bytes() + b"\0")
    with pytest.raises(ManifestError, match="corrupt or was replaced"):
        load_manifest(files["policy_manifest"])


QUANTIZED = ["minipamayo-tiny-policy-int8", "minipamayo-tiny-policy-int4", "minipamayo-tiny-policy-int4-qdq"]
SHIPPED = ["minipamayo-tiny-policy", "minipamayo-tiny-text", *QUANTIZED]


@pytest.mark.parametrize("stem", SHIPPED)
def test_shipped_manifest_hash_matches_file(stem: str) -> None:
    m = load_manifest(ENGINES / f"{stem}.manifest.json")  # verifies sha256
    assert m.model_path.stat().st_size < 5_000_000, "shipped engines are committed: keep them small"
    assert m.training.get("data_seeds") is not None


@pytest.mark.parametrize("stem", ["minipamayo-tiny-policy", *QUANTIZED])
def test_shipped_policy_io_contract(stem: str) -> None:
    m = load_manifest(ENGINES / f"{stem}.manifest.json")
    assert m.kind == "policy"
    for name, (shape, dtype) in POLICY_IO.items():
        spec = m.input(name) if name in ("image", "state") else m.output(name)
        assert (spec.shape, spec.dtype) == (shape, dtype), name
    ctx = m.output("context")
    assert ctx.shape == (1, m.config["context_dim"]) and ctx.dtype == "float32"


def test_shipped_text_io_contract() -> None:
    m = load_manifest(ENGINES / "minipamayo-tiny-text.manifest.json")
    pol = load_manifest(ENGINES / "minipamayo-tiny-policy.manifest.json")
    assert m.input("context").shape == pol.output("context").shape
    assert (m.input("event").shape, m.input("event").dtype) == ((1,), "int64")
    assert (m.output("tokens").shape, m.output("tokens").dtype) == ((1, 32), "int32")


def test_shipped_onnx_matches_shipped_weights() -> None:
    """engines/minipamayo-tiny.safetensors and the shipped fp32 ONNX are the same model."""
    model = load_model(ENGINES / "minipamayo-tiny.safetensors")
    assert policy_parity(model, ENGINES / "minipamayo-tiny-policy.onnx", range(2)) <= PARITY_TOL
    sess = ort_session(ENGINES / "minipamayo-tiny-policy.onnx")
    ctx = run_onnx(sess, policy_example_inputs(model))["context"]
    diff, same = text_parity(model, ENGINES / "minipamayo-tiny-text.onnx", ctx, np.array([1]))
    assert same and diff <= PARITY_TOL


def test_weights_round_trip(tmp_path: Path) -> None:
    model = _micro_model()
    save_weights(model, tmp_path / "w.safetensors")
    again = load_model(tmp_path / "w.safetensors")
    ex = policy_example_inputs(model)
    args = (torch.from_numpy(ex["image"]), torch.from_numpy(ex["state"]))
    with torch.no_grad():
        for a, b in zip(model.policy(*args), again.policy(*args), strict=True):
            assert torch.equal(a, b)


def test_shipped_manifest_seeds_respect_the_split() -> None:
    """What the shipped model was trained / selected on lies in the training / validation splits."""
    seeds = load_manifest(ENGINES / "minipamayo-tiny-policy.manifest.json").training["data_seeds"]
    require_split(seeds["train"], TRAINING, "shipped training seeds")
    require_split(seeds["validation"], VALIDATION, "shipped validation seeds")


@pytest.mark.parametrize("seed", first(TEST, 1))
def test_shipped_engines_meet_the_bars_on_a_test_road(seed: int) -> None:
    """The bars (ADE <= 0.30 m, FDE <= 0.80 m, int8 within ~3 %, int4 within ~5 %) measured live on
    fresh samples of a test seed, which no training or selection decision saw (not read back from
    the manifest).
    Captions: the 0.9 exact-match bar holds over a split; one road's ~100 samples get 0.75."""
    from minipamayo_ros.model.evaluate import evaluate, onnx_policy_fn, onnx_text_fn
    from minipamayo_ros.model.train import ArrayDataset
    from minipamayo_ros.sim.dataset import generate_episode

    ep = generate_episode(seed, episode_seconds=20.0)
    ds = ArrayDataset(ep["images"], ep["state"], ep["waypoints"], ep["speeds"], ep["events"],
                      ep["caption_tokens"])
    res = evaluate(ds, onnx_policy_fn(str(ENGINES / "minipamayo-tiny-policy.onnx")),
                   onnx_text_fn(str(ENGINES / "minipamayo-tiny-text.onnx")))
    assert res["policy"]["samples"] >= 50
    assert res["policy"]["ade_m"] <= 0.30 and res["policy"]["fde_m"] <= 0.80, res["policy"]
    assert res["text"]["caption_exact_match"] >= 0.75, res["text"]
    q = evaluate(ds, onnx_policy_fn(str(ENGINES / "minipamayo-tiny-policy-int8.onnx")))["policy"]
    assert q["ade_m"] <= 1.03 * res["policy"]["ade_m"] + 0.005, (q, res["policy"])
    q4 = evaluate(ds, onnx_policy_fn(str(ENGINES / "minipamayo-tiny-policy-int4.onnx")))["policy"]
    assert q4["ade_m"] <= 1.05 * res["policy"]["ade_m"] + 0.005, (q4, res["policy"])
