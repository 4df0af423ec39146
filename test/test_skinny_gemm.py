"""The split-K linear of the fusion backbone (minipamayo_ros.inference.skinny_gemm) on CPU.

What runs here is the torch path, which slices K exactly as the Triton kernel does; the kernel
itself needs a CUDA GPU (or Triton's interpreter, not installed by setup.sh): bench_inference_gpu's
``skinny_tune`` checks it against cuBLAS on the GPU machine and records the error in its JSON.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from minipamayo_ros.inference import skinny_gemm as sg
from minipamayo_ros.inference.backend import BackendError, BackendOptions
from minipamayo_ros.inference.torch_backend import TorchBackend
from minipamayo_ros.model.config import ModelConfig, load_config
from minipamayo_ros.model.layers import Block
from minipamayo_ros.model.network import build_model


@pytest.mark.parametrize("cfg", [sg.SplitKConfig(32, 128, 4), sg.SplitKConfig(16, 64, 1),
                                 sg.SplitKConfig(64, 256, 2)])
@pytest.mark.parametrize("rows", [1, 56, 64])
def test_split_k_linear_equals_nn_linear(cfg: sg.SplitKConfig, rows: int) -> None:
    torch.manual_seed(rows)
    lin = nn.Linear(512, 256)
    x = torch.randn(1, rows, 512)
    parts = sg.splitk_partials(x[0], lin.weight, cfg)
    assert parts.shape == (cfg.splits, rows, 256) and parts.dtype == torch.float32
    torch.testing.assert_close(sg.skinny_linear(x[0], lin.weight, lin.bias, cfg), lin(x[0]),
                               rtol=1e-5, atol=1e-5)


def test_configs_that_do_not_divide_the_weight_are_refused_and_candidates_fit() -> None:
    assert "block_n" in (sg.SplitKConfig(48, 128, 1).check(1024, 1024) or "")
    assert "splits" in (sg.SplitKConfig(32, 128, 3).check(1024, 1024) or "")
    with pytest.raises(ValueError, match="block_n"):  # qkv of a 128-wide block: (384, 128)
        sg.SkinnyBlock(Block(128, 4), {(384, 128): sg.SplitKConfig(256, 64, 1)})
    for n, k in ((3072, 1024), (1024, 1024), (4096, 1024), (1024, 4096)):
        cands = sg.candidate_configs(n, k)
        assert cands and all(c.check(n, k) is None for c in cands)
    assert sg.config_for(96, 96).check(96, 96) is None  # no candidate: the smallest tile that fits


def test_tuning_result_becomes_the_table() -> None:
    result = {"3072x1024": {"best": {"block_n": 64, "block_k": 128, "splits": 2, "num_warps": 4,
                                     "num_stages": 3}},
              "1024x1024": {"configs": []}}  # no config ran: not in the table
    assert sg.configs_from_tuning(result) == {(3072, 1024): sg.SplitKConfig(64, 128, 2, 4, 3)}


def _small_backbone_config() -> ModelConfig:
    d = load_config("tiny").as_dict()
    d["fusion"].update(width=128, connector_pool=2)  # 1 + 16 + 10 + 20 = 47 backbone tokens
    return ModelConfig.from_dict(d)


def test_policy_with_the_split_k_backbone_gives_the_same_outputs() -> None:
    cfg = _small_backbone_config()
    torch.manual_seed(0)
    policy = build_model(cfg).policy.eval()
    for p in policy.parameters():  # the action head starts at zero: give every output a signal
        p.data.add_(torch.randn_like(p) * 0.02)
    rng = np.random.default_rng(0)
    image = torch.from_numpy(rng.integers(0, 256, (1, *cfg.image_size, 3), dtype=np.uint8))
    state = torch.from_numpy(rng.normal(0, 1, (1, cfg.state_steps, cfg.state_features)).astype(np.float32))
    with torch.no_grad():
        before = policy(image, state)
        assert sg.use_skinny_gemm(policy.blocks) == 4 * cfg.fusion.depth
        assert all(isinstance(b, sg.SkinnyBlock) and isinstance(b.block, Block) for b in policy.blocks)
        after = policy(image, state)
    assert float(before[0].abs().max()) > 1e-3
    for a, b in zip(before, after, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_attention_from_partials_equals_the_block_attention() -> None:
    """Summing the qkv GEMM's slices + bias inside the attention step = SDPA on qkv(x) (fp32)."""
    torch.manual_seed(1)
    blk = Block(128, 4).eval()
    x = torch.randn(2, 20, 128)
    cfg = sg.SplitKConfig(16, 64, 2)
    parts = sg.splitk_partials(blk.ln1(x).reshape(40, 128), blk.qkv.weight, cfg)
    got = sg.attention_from_partials(parts, blk.qkv.bias, 2, 4, torch.float32)
    q, k, v = blk.qkv(blk.ln1(x)).reshape(2, 20, 3, 4, 32).permute(2, 0, 3, 1, 4)
    want = torch.nn.functional.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(40, 128)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_a_masked_or_long_input_runs_the_wrapped_block() -> None:
    from minipamayo_ros.model.layers import causal_mask

    torch.manual_seed(2)
    blk = Block(64, 4).eval()
    wrapped = sg.SkinnyBlock(blk)
    x = torch.randn(1, 70, 64)  # 70 rows > MAX_ROWS
    with torch.no_grad():
        torch.testing.assert_close(wrapped(x), blk(x))
        m = causal_mask(10)
        torch.testing.assert_close(wrapped(x[:, :10], m), blk(x[:, :10], m))


def test_torch_backend_refuses_skinny_gemm_off_cuda_naming_it() -> None:
    opts = BackendOptions(backend="torch", device="cpu", cuda_graphs=False, extra={"skinny_gemm": True})
    with pytest.raises(BackendError, match="skinny_gemm is for the policy's fusion backbone on CUDA"):
        TorchBackend.from_config(_small_backbone_config(), "policy", opts)
