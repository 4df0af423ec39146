"""Check a 0.5B architecture change on the trained tiny family: apply it to the shipped tiny
weights, fine-tune briefly, export, drive it in closed loop.

    nice python -m minipamayo_ros.model.arch_cut --pool 2 --parallel --depth 2 --out runs/tiny-cut \
        --train-data <expert data> --extra-train-data <DAgger data> --val-data <validation data> \
        --steps 240 --threads 1
    python -m minipamayo_ros.evaluation.evaluate --split validation --episodes 20 \
        --engine runs/tiny-cut/engines/<name>-policy.manifest.json

The 0.5B config is not trained here, so each change made to it for speed is checked on the tiny
model instead, with its trained weights carried over as far as the change allows:

* ``--pool P`` (token cut): the connector average-pools the vision grid P x P more, so the fusion
  backbone sees P^2 x fewer vision tokens; the learned vision positions are average-pooled exactly
  like the tokens (the connector is per-token, every other weight is unchanged).
* ``--parallel``: each fusion block becomes a :class:`~minipamayo_ros.model.layers.ParallelBlock`
  (:meth:`~minipamayo_ros.model.layers.ParallelBlock.from_block`: the same weights, attention and
  MLP side by side).
* ``--depth D``: keep D of the fusion blocks, evenly spaced, first and last included (a shallower
  backbone; the tiny analog of fewer, wider layers is this harsher cut: fewer layers, same width).

Then the model is fine-tuned briefly (CPU: minutes, not a retraining), exported to ONNX with the
release checks, and driven by the closed-loop evaluator. No option (``--pool 1``) runs the same
fine-tune without a change: the control that separates a change's cost from the short fine-tune's.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812 - the universal torch idiom

from minipamayo_ros.model.config import ModelConfig
from minipamayo_ros.model.layers import Block, ParallelBlock
from minipamayo_ros.model.network import Minipamayo, build_model, load_model, save_weights


def pooled_config(cfg: ModelConfig, pool: int, name: str | None = None) -> ModelConfig:
    """``cfg`` with its connector pooling multiplied by ``pool`` (``pool`` x fewer tokens per axis)."""
    fusion = dataclasses.replace(cfg.fusion, connector_pool=cfg.fusion.connector_pool * pool)
    return dataclasses.replace(cfg, fusion=fusion, name=name or f"{cfg.name}-pool{fusion.connector_pool}")


def cut_model(src: Minipamayo, pool: int, name: str, parallel: bool = False,
              depth: int | None = None) -> Minipamayo:
    """A copy of ``src`` with the changes of the module doc: connector pooling ``pool`` x ``pool``
    more (vision positions pooled alike), fusion blocks as parallel blocks, ``depth`` of them kept."""
    cfg = pooled_config(src.cfg, pool, name)
    keep = kept_layers(src.cfg.fusion.depth, depth or src.cfg.fusion.depth)
    fusion = dataclasses.replace(cfg.fusion, depth=len(keep),
                                 parallel_blocks=cfg.fusion.parallel_blocks or parallel)
    cfg = dataclasses.replace(cfg, fusion=fusion)
    state = {k: v.clone() for k, v in src.state_dict().items() if not k.startswith("policy.blocks.")}
    gh, gw = src.cfg.vision.grid(src.cfg.image_size)
    p0 = src.cfg.fusion.connector_pool
    pos = state["policy.vision_pos"]  # (1, (gh/p0)*(gw/p0), d), row-major like the flattened grid
    d = pos.shape[-1]
    grid = pos.reshape(1, gh // p0, gw // p0, d).permute(0, 3, 1, 2)
    state["policy.vision_pos"] = F.avg_pool2d(grid, pool).flatten(2).transpose(1, 2).contiguous()
    for new_i, old_i in enumerate(keep):
        blk = src.policy.blocks[old_i]
        if parallel and isinstance(blk, Block):
            blk = ParallelBlock.from_block(blk)
        state.update({f"policy.blocks.{new_i}.{k}": v.clone() for k, v in blk.state_dict().items()})
    dst = build_model(cfg)
    dst.load_state_dict(state, strict=True)
    return dst.eval()


def kept_layers(depth: int, keep: int) -> list[int]:
    """``keep`` of ``depth`` layer indices, evenly spaced, the first and the last included."""
    if not 1 <= keep <= depth:
        raise ValueError(f"--depth must be in [1, {depth}], got {keep}")
    if keep == 1:
        return [depth - 1]
    return sorted({round(i * (depth - 1) / (keep - 1)) for i in range(keep)})


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--weights", default="engines/minipamayo-tiny.safetensors")
    ap.add_argument("--pool", type=int, default=1, help="extra pooling factor per axis (1: none)")
    ap.add_argument("--parallel", action="store_true", help="fusion blocks as parallel blocks")
    ap.add_argument("--depth", type=int, default=0, help="> 0: keep this many fusion blocks")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--name", default="", help="model name (default: from the changes made)")
    ap.add_argument("--train-data", required=True)
    ap.add_argument("--extra-train-data", nargs="*", default=[])
    ap.add_argument("--val-data", required=True, help="validation data: checkpoint choice")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--time-budget-s", type=float, default=0.0)
    ap.add_argument("--steps", type=int, default=0, help="> 0: exactly this many steps (e.g. a control "
                    "run matching another run's schedule; overrides --time-budget-s)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu", help="torch device for the fine-tune (e.g. cuda)")
    a = ap.parse_args(argv)
    from minipamayo_ros.model.evaluate import evaluate
    from minipamayo_ros.model.export import export_all
    from minipamayo_ros.model.train import TrainConfig, plot_curves, torch_policy_fn, train
    from minipamayo_ros.seeds import TRAINING, VALIDATION, require_split
    from minipamayo_ros.sim.dataset import concatenate, load_dataset

    torch.set_num_threads(a.threads)
    t0 = time.time()
    src = load_model(a.weights)
    tokens = src.cfg.vision_tokens // (a.pool * a.pool)
    changes = ([f"tokens{tokens}"] if a.pool > 1 else []) + (["par"] if a.parallel else []) \
        + ([f"d{a.depth}"] if a.depth else [])
    name = a.name or f"{src.cfg.name}-{'-'.join(changes) or 'control'}"
    model = cut_model(src, a.pool, name, a.parallel, a.depth or None)
    parts = [load_dataset(p) for p in [a.train_data, *a.extra_train_data]]
    for p, d in zip([a.train_data, *a.extra_train_data], parts, strict=True):
        require_split(sorted(set(d.episode_seeds.tolist())), TRAINING, p)
    train_ds = concatenate(parts) if len(parts) > 1 else parts[0]
    val_ds = load_dataset(a.val_data)
    require_split(sorted(set(val_ds.episode_seeds.tolist())), VALIDATION, a.val_data)
    before = evaluate(val_ds, torch_policy_fn(model, torch.device("cpu")))["policy"]
    print(f"{name}: {model.cfg.vision_tokens} vision tokens (was {src.cfg.vision_tokens}), "
          f"{model.cfg.fusion.depth} fusion blocks (was {src.cfg.fusion.depth}), parallel "
          f"{model.cfg.fusion.parallel_blocks}; validation ADE "
          f"before fine-tuning {before['ade_m']:.4f} m; {len(train_ds.images)} training samples", flush=True)
    tc = TrainConfig(epochs=a.epochs, batch_size=a.batch_size, lr=a.lr, warmup_steps=20,
                     time_budget_s=a.time_budget_s, log_every=10, text_eval_limit=256)
    history = train(model, train_ds, val_ds, tc, a.device, log=lambda m: print(m, flush=True),
                    max_steps=a.steps or None)
    model.cpu().eval()
    a.out.mkdir(parents=True, exist_ok=True)
    plot_curves(history, a.out / "loss_curves.png")
    save_weights(model, a.out / "weights.safetensors")  # a further round (--weights) starts here
    training: dict[str, Any] = {
        "command": " ".join(["python -m minipamayo_ros.model.arch_cut",
                             *(sys.argv[1:] if argv is None else argv)]),
        "init_weights": a.weights, "pool": a.pool, "vision_tokens": model.cfg.vision_tokens,
        "parallel_blocks": model.cfg.fusion.parallel_blocks,
        "fusion_layers_kept": kept_layers(src.cfg.fusion.depth, a.depth or src.cfg.fusion.depth),
        "data": [a.train_data, *a.extra_train_data], "validation_data": a.val_data,
        "samples": {"train": int(len(train_ds.images)), "validation": int(len(val_ds.images))},
        "train_config": dataclasses.asdict(tc), "val_ade_before_finetune_m": before["ade_m"],
        "best_val_ade_m_torch": history["best_val_ade_m"], "wall_s": round(time.time() - t0, 1)}
    (a.out / "training.json").write_text(json.dumps({**training, "history": history}))
    files = export_all(model, a.out / "engines", name, training, {})
    print(json.dumps({k: str(v) for k, v in files.items()}, indent=1), flush=True)


if __name__ == "__main__":
    main()
