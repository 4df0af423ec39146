"""Training smoke run (seconds): the loss goes down, normalisation is fitted, metrics are sane."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from minipamayo_ros.model.config import FusionConfig, TextConfig, VisionConfig, load_config
from minipamayo_ros.model.evaluate import caption_exact_match, trajectory_metrics
from minipamayo_ros.model.network import build_model
from minipamayo_ros.model.text import BOS, EOS, PAD
from minipamayo_ros.model.train import TrainConfig, caption_io, synthetic_dataset, train

pytestmark = pytest.mark.usefixtures("one_torch_thread")



def test_short_training_run_reduces_loss() -> None:
    torch.manual_seed(0)
    # the tiny family at reduced width/resolution: same code paths, seconds on a loaded CPU
    cfg = dataclasses.replace(
        load_config("tiny"), image_size=(64, 64), context_dim=32,
        vision=VisionConfig(kind="cnn", channels=(8, 16, 32), blocks_per_stage=1),
        fusion=FusionConfig(width=32, depth=2, heads=2), text=TextConfig(width=32, depth=1, heads=2))
    ds = synthetic_dataset(96, cfg, seed=0)
    model = build_model(cfg)
    tc = TrainConfig(epochs=8, batch_size=24, lr=3e-3, warmup_steps=4, seed=0)
    hist = train(model, ds, None, tc, "cpu", log=lambda _m: None, max_steps=24)
    losses = hist["step_losses"]
    assert len(losses) == 24
    assert np.mean(losses[-3:]) < 0.7 * np.mean(losses[:3]), losses
    # state normalisation fitted from the data and stored in the model
    flat = ds.state.reshape(-1, ds.state.shape[-1])
    np.testing.assert_allclose(model.policy.state_mean.numpy(), flat.mean(0), rtol=1e-4, atol=1e-5)


def _small_cfg():
    return dataclasses.replace(
        load_config("tiny"), image_size=(64, 64), context_dim=32,
        vision=VisionConfig(kind="cnn", channels=(8, 16, 32), blocks_per_stage=1),
        fusion=FusionConfig(width=32, depth=2, heads=2), text=TextConfig(width=32, depth=1, heads=2))


def test_frozen_vision_training_runs_on_cached_tokens_and_keeps_the_encoder() -> None:
    torch.manual_seed(0)
    cfg = _small_cfg()
    model = build_model(cfg).eval()
    ds = synthetic_dataset(48, cfg, seed=1)
    img, state = torch.from_numpy(ds.images[:4]), torch.from_numpy(ds.state[:4])
    with torch.no_grad():  # the cached path computes exactly the full forward
        cached = model.policy.forward_tokens(model.policy.encode_image(img), state)
        for a, b in zip(model.policy(img, state), cached, strict=True):
            assert torch.equal(a, b)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    tc = TrainConfig(epochs=4, batch_size=16, lr=3e-3, warmup_steps=2, seed=0, freeze_vision=True)
    hist = train(model, ds, None, tc, "cpu", log=lambda _m: None, max_steps=8)
    after = model.state_dict()
    vision = [k for k in after if k.split(".")[1] in ("vision", "connector", "vision_pos")]
    assert vision and all(torch.equal(before[k], after[k]) for k in vision)
    assert not torch.equal(before["policy.blocks.0.fc1.weight"], after["policy.blocks.0.fc1.weight"])
    assert len(hist["step_losses"]) == 8


def test_caption_io_adds_bos_and_eos() -> None:
    caps = torch.tensor([[5, 6, 7, PAD], [9, PAD, PAD, PAD], [4, 5, 6, 7]])
    inp, tgt = caption_io(caps)
    assert inp.tolist() == [[BOS, 5, 6, 7, PAD], [BOS, 9, PAD, PAD, PAD], [BOS, 4, 5, 6, 7]]
    assert tgt.tolist() == [[5, 6, 7, EOS, PAD], [9, EOS, PAD, PAD, PAD], [4, 5, 6, 7, EOS]]


def test_metrics() -> None:
    true = np.zeros((2, 20, 2), np.float32)
    pred = true.copy()
    pred[0, :, 1] = 0.3          # 0.3 m lateral everywhere
    pred[1, -1, 0] = 2.0         # only the last point off by 2 m
    m = trajectory_metrics(pred, true, np.ones((2, 20)), np.zeros((2, 20)), np.array([0.3, 0.1]))
    assert np.isclose(m["ade_m"], (0.3 + 2.0 / 20) / 2)
    assert np.isclose(m["fde_m"], (0.3 + 2.0) / 2)
    assert np.isclose(m["speed_mae_mps"], 1.0)
    assert np.isclose(m["uncertainty_mae_m"], 0.0, atol=1e-6)
    assert caption_exact_match(np.array([[1, 2, 0], [1, 3, 0]]), np.array([[1, 2, 0], [1, 2, 0]])) == 0.5

