"""Model family: configs load and validate, shapes, parameter counts (0.5B counted on meta)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F  # noqa: N812 - the universal torch idiom

from minipamayo_ros.model.config import (
    ConfigError,
    ModelConfig,
    VisionConfig,
    available_configs,
    load_config,
)
from minipamayo_ros.model.network import build_model, parameter_breakdown
from minipamayo_ros.model.text import BOS, EOS, PAD, greedy_generate
from minipamayo_ros.model.vision import PatchEmbed

pytestmark = pytest.mark.usefixtures("one_torch_thread")



def test_both_configs_ship() -> None:
    assert {"tiny", "minipamayo-0.5b"} <= set(available_configs())


@pytest.mark.parametrize("name", ["tiny", "minipamayo-0.5b"])
def test_config_round_trips_through_dict(name: str) -> None:
    cfg = load_config(name)
    assert ModelConfig.from_dict(cfg.as_dict()) == cfg


def test_0p5b_parameter_allocation_follows_design_notes() -> None:
    with torch.device("meta"):  # counted, never allocated
        model = build_model("minipamayo-0.5b")
    p = parameter_breakdown(model)
    assert 470e6 <= p["total"] <= 530e6, p
    assert p["vision"] <= 200e6, p
    assert p["fusion"] > 0.5 * p["total"], "most parameters belong in the fusion backbone"
    assert p["heads"] + p["text"] < 0.05 * p["total"], "trajectory and text heads stay light"
    assert sum(v for k, v in p.items() if k != "total") == p["total"]


def test_tiny_is_small_enough_to_ship() -> None:
    p = parameter_breakdown(build_model("tiny"))
    assert p["total"] < 1.5e6, p  # a few MB of fp32 ONNX in engines/


def test_policy_and_text_shapes_for_both_configs_on_meta() -> None:
    for name in ("tiny", "minipamayo-0.5b"):
        cfg = load_config(name)
        with torch.device("meta"):
            model = build_model(cfg)
            h, w = cfg.image_size
            wp, sp, unc, ctx = model.policy(torch.zeros(2, h, w, 3, dtype=torch.uint8), torch.zeros(2, 10, 4))
            logits = model.text(ctx, torch.zeros(2, dtype=torch.long), torch.zeros(2, 5, dtype=torch.long))
        assert wp.shape == (2, cfg.num_waypoints, 2) and sp.shape == (2, cfg.num_waypoints)
        assert unc.shape == (2,) and ctx.shape == (2, cfg.context_dim)
        assert logits.shape == (2, 5, cfg.text.vocab_size)


def test_tiny_outputs_are_physical() -> None:
    torch.manual_seed(0)
    model = build_model("tiny").eval()
    torch.nn.init.normal_(model.policy.action_head.weight, std=0.05)
    state = torch.zeros(3, 10, 4)
    state[:, :, 0] = torch.tensor([0.0, 1.0, 2.5])[:, None]
    with torch.no_grad():
        wp, sp, unc, _ = model.policy(torch.randint(0, 256, (3, 128, 128, 3), dtype=torch.uint8), state)
    assert torch.all(sp >= 0) and torch.all(unc >= 0)
    # waypoint spacing equals the integrated speed (unicycle roll-out is self-consistent)
    step = torch.linalg.norm(torch.diff(torch.cat([torch.zeros(3, 1, 2), wp], 1), dim=1), dim=-1)
    v_prev = torch.cat([state[:, -1:, 0], sp[:, :-1]], 1)
    assert torch.allclose(step, 0.5 * (v_prev + sp) * 0.1, atol=1e-4)


def test_untrained_head_drives_straight_at_current_speed() -> None:
    model = build_model("tiny").eval()  # action head initialised to zero
    state = torch.zeros(1, 10, 4)
    state[0, :, 0] = 2.0
    with torch.no_grad():
        wp, sp, _, _ = model.policy(torch.zeros(1, 128, 128, 3, dtype=torch.uint8), state)
    np.testing.assert_allclose(sp.numpy(), 2.0, atol=1e-5)
    np.testing.assert_allclose(wp[0, :, 0].numpy(), 2.0 * 0.1 * np.arange(1, 21), atol=1e-4)
    np.testing.assert_allclose(wp[0, :, 1].numpy(), 0.0, atol=1e-5)


def test_greedy_generation_format() -> None:
    torch.manual_seed(0)
    model = build_model("tiny").eval()
    with torch.no_grad():
        tokens, length, conf = greedy_generate(model.text, torch.zeros(2, 96), torch.tensor([1, 2]))
    assert tokens.shape == (2, 32) and tokens.dtype == torch.int32
    assert length.shape == (2,) and conf.shape == (2,)
    assert torch.all((conf > 0) & (conf <= 1))
    for row, n in zip(tokens, length, strict=True):
        assert torch.all(row[n:] == PAD) and not torch.any(row[:n] == PAD)
        assert not torch.any((row == BOS) | (row == EOS))


def test_bad_configs_fail_with_field_name() -> None:
    cfg = load_config("tiny")
    with pytest.raises(ConfigError, match="fusion.width"):
        ModelConfig.from_dict({**cfg.as_dict(), "fusion": {**cfg.as_dict()["fusion"], "heads": 7}})
    with pytest.raises(ConfigError, match="image_size"):
        dataclasses.replace(cfg, image_size=(100, 128))
    with pytest.raises(ConfigError, match="unknown"):
        ModelConfig.from_dict({**cfg.as_dict(), "colour": "red"})
    with pytest.raises(ConfigError, match="not found"):
        load_config("no-such-model")


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_path_runs(dtype: torch.dtype) -> None:
    """The PyTorch backend runs the model in fp16/bf16 on CUDA; the same code must work in half."""
    torch.manual_seed(0)
    model = build_model("tiny").eval()
    torch.nn.init.normal_(model.policy.action_head.weight, std=0.05)
    state = torch.zeros(1, 10, 4)
    state[0, :, 0] = 3.0
    image = torch.randint(0, 256, (1, 128, 128, 3), dtype=torch.uint8)
    with torch.no_grad():
        ref = model.policy(image, state)
        half = model.to(dtype)
        out = half.policy(image, state)
        tokens, length, conf = greedy_generate(half.text, out[3], torch.tensor([1]))
    assert all(o.dtype == dtype and torch.all(torch.isfinite(o)) for o in out)
    assert torch.allclose(out[0].float(), ref[0], atol=0.15)  # 6 m path: half-precision rounding
    assert tokens.shape == (1, 32) and torch.isfinite(conf).all()


def _small_vit_config() -> ModelConfig:
    return dataclasses.replace(load_config("tiny"), vision=VisionConfig(kind="vit", patch_size=16, width=32,
                                                                        depth=1, heads=2))


def test_vit_patch_embedding_is_the_strided_convolution() -> None:
    """PatchEmbed's matmul (issue 24: cuDNN's 3-channel convolution was slow) = the convolution."""
    torch.manual_seed(0)
    pe = PatchEmbed(3, 32, 16)
    for h, w in ((64, 48), (70, 53)):  # the convolution drops rows/columns past the last patch
        x = torch.randn(2, 3, h, w)
        ref = F.conv2d(x, pe.weight, pe.bias, stride=16).flatten(2).transpose(1, 2)
        torch.testing.assert_close(pe(x), ref, atol=1e-5, rtol=1e-5)
    assert set(pe.state_dict()) == {"weight", "bias"} and pe.weight.shape == (32, 3, 16, 16)


def test_vit_policy_exports_and_matches_onnx_runtime(tmp_path) -> None:
    from minipamayo_ros.model.export import export_policy, policy_parity

    torch.manual_seed(0)
    model = build_model(_small_vit_config()).eval()
    torch.nn.init.normal_(model.policy.action_head.weight, std=0.05)
    assert policy_parity(model, export_policy(model, tmp_path / "vit.onnx")) <= 1e-4


def test_parallel_block_is_attention_plus_mlp_of_one_layernorm_with_the_blocks_weights() -> None:
    from minipamayo_ros.model.layers import Block, ParallelBlock, attention, set_fused_attention

    torch.manual_seed(0)
    blk = Block(32, 4).eval()
    torch.nn.init.normal_(blk.ln1.weight)
    torch.nn.init.normal_(blk.ln2.weight)  # ln2 must not be used: told apart from ln1
    par = ParallelBlock.from_block(blk).eval()
    x = torch.randn(2, 7, 32)
    with torch.no_grad():
        h = blk.ln1(x)
        expect = x + blk.proj(attention(blk.qkv(h), 4)) + blk.fc2(F.gelu(blk.fc1(h)))
        assert torch.allclose(par(x), expect, atol=1e-5)
        assert not torch.allclose(blk(x), expect, atol=1e-3)  # a different wiring than Block's
        assert set_fused_attention(par) == 1
        assert torch.allclose(par(x), expect, atol=1e-5)  # SDPA: same math
    n_block = sum(p.numel() for p in blk.parameters())
    assert sum(p.numel() for p in par.parameters()) == n_block - 2 * 32 - 32  # one LayerNorm, one bias less


def test_parallel_blocks_are_a_config_switch_for_backbone_and_vit() -> None:
    from minipamayo_ros.model.layers import Block, ParallelBlock

    cfg = load_config("minipamayo-0.5b")
    seq = dataclasses.replace(cfg, fusion=dataclasses.replace(cfg.fusion, parallel_blocks=False))
    both = dataclasses.replace(cfg, vision=dataclasses.replace(cfg.vision, parallel_blocks=True))
    assert ModelConfig.from_dict(both.as_dict()) == both
    with torch.device("meta"):
        for c in (seq, cfg, both):
            p = build_model(c).policy
            assert all(isinstance(b, ParallelBlock if c.fusion.parallel_blocks else Block) for b in p.blocks)
            assert all(isinstance(b, ParallelBlock if c.vision.parallel_blocks else Block)
                       for b in p.vision.blocks)
