"""INT4 weight-only variants (MatMulNBits for ONNX Runtime, block Q/DQ opset 21 for TensorRT), the
shared float-fallback rule, and the token-cut derivation of a trained model."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from minipamayo_ros.model.arch_cut import cut_model, kept_layers
from minipamayo_ros.model.config import FusionConfig, TextConfig, VisionConfig, load_config
from minipamayo_ros.model.export import (
    export_policy,
    ort_session,
    policy_example_inputs,
    policy_parity,
    run_onnx,
)
from minipamayo_ros.model.layers import ParallelBlock
from minipamayo_ros.model.network import build_model
from minipamayo_ros.model.quantize import _float_nodes, keep_float_until
from minipamayo_ros.model.quantize_int4 import int4_candidates, quantize_int4, weight_bytes

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _micro(width: int = 32) -> torch.nn.Module:
    cfg = dataclasses.replace(
        load_config("tiny"), image_size=(64, 64), context_dim=32,
        vision=VisionConfig(kind="cnn", channels=(8, 16, 32), blocks_per_stage=1),
        fusion=FusionConfig(width=width, depth=2, heads=2), text=TextConfig(width=32, depth=1, heads=2))
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    torch.nn.init.normal_(model.policy.action_head.weight, std=0.05)  # non-trivial trajectories
    return model


@pytest.fixture(scope="module")
def micro_onnx(tmp_path_factory: pytest.TempPathFactory) -> tuple[torch.nn.Module, Path]:
    model = _micro()
    return model, export_policy(model, tmp_path_factory.mktemp("int4") / "micro-policy.onnx")


def _nodes(path: Path) -> dict[str, onnx.NodeProto]:
    return {n.name: n for n in onnx.load(str(path)).graph.node}


def test_int4_forms_quantize_the_transformer_weights_only(micro_onnx, tmp_path: Path) -> None:
    model, fp32 = micro_onnx
    cands = int4_candidates(fp32)
    assert len(cands) == 2 * 4 + 1  # 4 linear layers per block + the connector
    before = _nodes(fp32)
    keep = {n for n in _float_nodes(fp32) if before[n].op_type in ("MatMul", "Gemm")}
    assert any("MatMul" in n for n in keep)  # the roll-out's cumulative sums
    ex = policy_example_inputs(model)
    ref = run_onnx(ort_session(fp32), ex)
    for fmt in ("matmulnbits", "qdq"):
        out = tmp_path / f"{fmt}.onnx"
        info = quantize_int4(fp32, out, fmt, block_size=16, exclude=[cands[0]])
        assert info["quantized_nodes"] == len(cands) - 1
        nodes = _nodes(out)
        # the roll-out, heads, attention score MatMuls and the excluded node are untouched
        for name in keep | {cands[0]}:
            assert name in nodes and nodes[name].op_type == before[name].op_type, name
        g = onnx.load(str(out))
        if fmt == "matmulnbits":
            q = [n for n in g.graph.node if n.op_type == "MatMulNBits"]
            assert q and all(n.domain == "com.microsoft" for n in q)
            assert {a.name: a.i for a in q[0].attribute}["bits"] == 4
        else:
            dq = [n for n in g.graph.node if n.op_type == "DequantizeLinear"]
            inits = {i.name: i for i in g.graph.initializer}
            assert len(dq) == len(cands) - 1
            assert all(inits[n.input[0]].data_type == onnx.TensorProto.INT4 for n in dq)
            assert all({a.name: a.i for a in n.attribute}["block_size"] == 16 for n in dq)
            assert all(len(n.input) == 2 for n in dq)  # symmetric: no zero point (TensorRT needs it)
            assert max(o.version for o in g.opset_import if o.domain in ("", "ai.onnx")) >= 21
            onnx.checker.check_model(g, full_check=True)
        assert "int4" in " ".join(weight_bytes(out))
        got = run_onnx(ort_session(out), ex)
        scale = float(np.abs(ref["waypoints"]).max())
        err = float(np.abs(got["waypoints"] - ref["waypoints"]).max())
        assert 0 < err <= 0.1 * scale, (fmt, err, scale)  # changed (quantized) but close


def test_int4_block_must_divide_the_widths(tmp_path: Path) -> None:
    model = _micro(width=48)  # 48 = 3 x 16: block 32 pads, block 16 fits
    fp32 = export_policy(model, tmp_path / "p.onnx")
    info = quantize_int4(fp32, tmp_path / "q.onnx", "qdq", block_size=16)
    assert info["quantized_nodes"] == len(int4_candidates(fp32))


def test_keep_float_until_keeps_the_most_sensitive_first() -> None:
    cost = {"a": 0.01, "b": 0.05, "c": 0.002, "d": 0.03}
    calls: list[list[str]] = []

    def change(excluded: list[str]) -> float:  # additive toy: each quantized node adds its cost
        calls.append(excluded)
        return sum(v for k, v in cost.items() if k not in excluded)

    kept = keep_float_until(list(cost), change, target=0.02, log=lambda m: None)
    assert list(kept) == ["b", "d"]  # 0.092 -> 0.042 -> 0.012 <= 0.02
    assert kept["b"] == pytest.approx(0.05)
    assert keep_float_until(list(cost), change, target=1.0, log=lambda m: None) == {}


def test_token_cut_pools_the_vision_positions_and_nothing_else() -> None:
    src = _micro()
    same = cut_model(src, 1, "control")
    example = policy_example_inputs(src)
    x, s = torch.from_numpy(example["image"]), torch.zeros_like(torch.from_numpy(example["state"]))
    with torch.no_grad():
        for a, b in zip(src.policy(x, s), same.policy(x, s), strict=True):
            assert torch.equal(a, b)
    cut = cut_model(src, 2, "cut")
    assert cut.cfg.vision_tokens == src.cfg.vision_tokens // 4
    assert cut.cfg.fusion.connector_pool == 2 * src.cfg.fusion.connector_pool
    gh, gw = src.cfg.vision.grid(src.cfg.image_size)
    pos = src.policy.vision_pos.detach().reshape(gh, gw, -1)
    expect = pos[:2, :2].mean(dim=(0, 1))  # first pooled token = mean of the top-left 2x2 cell
    assert torch.allclose(cut.policy.vision_pos[0, 0], expect, atol=1e-6)
    for name, p in src.state_dict().items():
        if name != "policy.vision_pos":
            assert torch.equal(p, cut.state_dict()[name]), name
    with torch.no_grad():
        wp = cut.policy(x, s)[0]
    assert wp.shape == (1, 20, 2) and torch.isfinite(wp).all()


def test_arch_cut_parallel_blocks_carry_the_weights_and_depth_keeps_evenly_spaced_layers(
        tmp_path: Path) -> None:
    assert kept_layers(4, 2) == [0, 3] and kept_layers(4, 3) == [0, 2, 3]
    assert kept_layers(4, 4) == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="--depth"):
        kept_layers(4, 5)
    src = _micro()  # 2 fusion blocks
    for blk in src.policy.blocks:  # LayerNorms told apart (both start at ones)
        torch.nn.init.normal_(blk.ln1.weight)
        torch.nn.init.normal_(blk.ln2.weight)
    cut = cut_model(src, 1, "par-d1", parallel=True, depth=1)
    assert cut.cfg.fusion.parallel_blocks and cut.cfg.fusion.depth == 1
    assert all(isinstance(b, ParallelBlock) for b in cut.policy.blocks)
    for new_i, old_i in enumerate(kept_layers(src.cfg.fusion.depth, 1)):
        old, new = src.policy.blocks[old_i], cut.policy.blocks[new_i]
        # the parallel block is the old block's linears side by side: same outputs on the same input
        h = torch.randn(3, old.qkv.weight.shape[1])
        qkv, fc1 = new.in_proj(h).split([old.qkv.weight.shape[0], old.fc1.weight.shape[0]], dim=-1)
        assert torch.allclose(qkv, old.qkv(h), atol=1e-6) and torch.allclose(fc1, old.fc1(h), atol=1e-6)
        y, m = torch.randn(3, old.proj.weight.shape[1]), torch.randn(3, old.fc2.weight.shape[1])
        assert torch.allclose(new.out_proj(torch.cat([y, m], -1)), old.proj(y) + old.fc2(m), atol=1e-5)
        assert torch.equal(new.ln.weight, old.ln1.weight)
    for name, p in src.state_dict().items():  # everything outside the fusion blocks is unchanged
        if not name.startswith("policy.blocks."):
            assert torch.equal(p, cut.state_dict()[name]), name
    example = policy_example_inputs(src)
    with torch.no_grad():
        expect = cut.policy(torch.from_numpy(example["image"]), torch.from_numpy(example["state"]))
    assert expect[0].shape == (1, 20, 2) and torch.isfinite(expect[0]).all()
    # the parallel block exports to plain ONNX ops (Split, Concat) that ONNX Runtime runs alike
    assert policy_parity(cut, export_policy(cut, tmp_path / "par-policy.onnx")) < 1e-4
