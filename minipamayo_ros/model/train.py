"""Train a minipamayo model on simulator datasets (CPU-feasible for ``tiny``; uses CUDA if present).

Usage (one command: data generation, training, validation evaluation, weights, curves)::

    nice -n 10 python -m minipamayo_ros.model.train --config tiny --out runs/tiny \
        --train-seeds 0:200 --val-seeds 1000:1040 --epochs 40

Seeds: training and validation splits of ``minipamayo_ros/seeds.py`` (checked; test seeds are
refused). Writes ``<out>/weights.safetensors`` (best validation ADE), ``loss_curves.png``, ``metrics.json``
(validation ADE/FDE, caption exact match), ``training.json`` (seeds, sizes, hyper-parameters, the
per-epoch history). Fixed seeds: the same command gives the same data and initialisation.
Losses: trajectory = mean L2 waypoint error (the ADE itself) + 0.5 x speed L1; uncertainty =
L1 between the predicted and the actual (detached) ADE; text = token cross-entropy (EOS included).
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 - the universal torch idiom

from minipamayo_ros.model.config import ModelConfig, load_config
from minipamayo_ros.model.evaluate import Dataset, evaluate
from minipamayo_ros.model.network import Minipamayo, build_model, load_model, save_weights
from minipamayo_ros.model.text import BOS, EOS, PAD, greedy_generate
from minipamayo_ros.seeds import TRAINING, VALIDATION, parse_seeds, require_split


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 40
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.02
    warmup_steps: int = 200
    grad_clip: float = 1.0
    speed_weight: float = 0.5
    uncertainty_weight: float = 0.1
    text_weight: float = 0.2
    seed: int = 0
    text_eval_limit: int = 1024     # validation samples decoded per evaluation (greedy decoding is slow-ish)
    eval_every: int = 1             # epochs
    time_budget_s: float = 0.0      # > 0: shrink the schedule after 40 steps so training fits this
    log_every: int = 0              # > 0: a progress line every this many steps (slow CPU runs)
    #: refit the state normalisation to the training data (False when fine-tuning: it is part of the
    #: weights the model starts from)
    fit_normalisation: bool = True
    #: keep the vision encoder (CNN/ViT, connector, vision positions) as it is and train the rest on
    #: its cached tokens: ~5x cheaper per step, the way to fine-tune on a CPU (docs/model.md)
    freeze_vision: bool = False


@dataclass
class ArrayDataset:
    """In-memory dataset with the ``DrivingDataset`` arrays (used for subsets and tests)."""

    images: np.ndarray
    state: np.ndarray
    waypoints: np.ndarray
    speeds: np.ndarray
    events: np.ndarray
    caption_tokens: np.ndarray

    def __len__(self) -> int:
        return len(self.images)


def synthetic_dataset(n: int, cfg: ModelConfig, seed: int = 0) -> ArrayDataset:
    """A learnable toy task (tests only): a bright road stripe whose tilt sets the curvature,
    speed from the state history, a caption per event. Not a substitute for simulator data."""
    rng = np.random.default_rng(seed)
    h, w = cfg.image_size
    curv = rng.uniform(-0.3, 0.3, n).astype(np.float32)
    v0 = rng.uniform(0.5, 3.0, n).astype(np.float32)
    images = np.full((n, h, w, 3), 60, np.uint8)
    rows = np.arange(h)
    for i in range(n):
        cols = (w / 2 + curv[i] * 2.0 * (h - rows)).astype(int).clip(0, w - 2)
        images[i, rows, cols] = 230
        images[i, rows, cols + 1] = 230
    state = np.zeros((n, cfg.state_steps, cfg.state_features), np.float32)
    state[..., 0] = v0[:, None]
    state[..., 1] = (v0 * curv)[:, None]
    t = cfg.waypoint_dt * np.arange(1, cfg.num_waypoints + 1, dtype=np.float32)
    s = v0[:, None] * t[None]
    k = np.where(np.abs(curv) < 1e-4, 1e-4, curv)[:, None]
    waypoints = np.stack([np.sin(k * s) / k, (1 - np.cos(k * s)) / k], axis=-1).astype(np.float32)
    speeds = np.repeat(v0[:, None], cfg.num_waypoints, axis=1)
    events = rng.integers(0, 3, n).astype(np.int64)
    captions = np.zeros((n, cfg.text.max_tokens), np.int32)
    for i, e in enumerate(events):
        words = [10 + int(e), 20, 30 + int(curv[i] > 0)]
        captions[i, : len(words)] = words
    return ArrayDataset(images, state, waypoints, speeds, events, captions)


def set_state_normalisation(model: Minipamayo, ds: Dataset) -> None:
    """Per-feature mean/std of the training states into the model (saved with the weights)."""
    s = np.asarray(ds.state, np.float64).reshape(-1, ds.state.shape[-1])
    model.policy.state_mean.copy_(torch.as_tensor(s.mean(0), dtype=torch.float32))
    model.policy.state_std.copy_(torch.as_tensor(np.maximum(s.std(0), 1e-3), dtype=torch.float32))


def caption_io(captions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Dataset captions (B, L) PAD-padded -> decoder input [BOS, words, PAD..] and target
    [words, EOS, PAD..], both (B, L+1); PAD targets are ignored by the loss."""
    B, L = captions.shape
    captions = captions.long()
    lengths = (captions != PAD).sum(1)
    inp = torch.cat([torch.full((B, 1), BOS, dtype=torch.long, device=captions.device), captions], 1)
    tgt = torch.cat([captions, torch.full((B, 1), PAD, dtype=torch.long, device=captions.device)], 1)
    tgt[torch.arange(B, device=captions.device), lengths] = EOS
    return inp, tgt


def losses(model: Minipamayo, batch: dict[str, torch.Tensor], tc: TrainConfig) -> dict[str, torch.Tensor]:
    if "vis" in batch:  # frozen vision encoder: its tokens were computed once (``vision_tokens``)
        wp, sp, unc, ctx = model.policy.forward_tokens(batch["vis"], batch["state"])
    else:
        wp, sp, unc, ctx = model.policy(batch["images"], batch["state"])
    err = torch.sqrt(((wp - batch["waypoints"]) ** 2).sum(-1) + 1e-6)  # (B, N) [m]
    ade = err.mean(1)
    traj = ade.mean()
    speed = (sp - batch["speeds"]).abs().mean()
    unc_loss = (unc - ade.detach()).abs().mean()
    inp, tgt = caption_io(batch["captions"])
    logits = model.text(ctx, batch["events"], inp)
    text = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1), ignore_index=PAD)
    total = traj + tc.speed_weight * speed + tc.uncertainty_weight * unc_loss + tc.text_weight * text
    return {"total": total, "ade": traj, "speed": speed, "uncertainty": unc_loss, "text": text}


def torch_policy_fn(model: Minipamayo, device: torch.device) -> Callable[..., tuple[np.ndarray, ...]]:
    @torch.no_grad()
    def fn(images: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, ...]:
        out = model.policy(torch.from_numpy(np.ascontiguousarray(images)).to(device),
                           torch.from_numpy(np.ascontiguousarray(state)).to(device))
        return tuple(o.float().cpu().numpy() for o in out)

    return fn


def torch_text_fn(model: Minipamayo, device: torch.device) -> Callable[..., np.ndarray]:
    @torch.no_grad()
    def fn(context: np.ndarray, events: np.ndarray) -> np.ndarray:
        tok, _, _ = greedy_generate(model.text, torch.from_numpy(context).to(device),
                                    torch.from_numpy(events).to(device))
        return tok.cpu().numpy()

    return fn


VISION_PARTS = ("vision", "connector", "vision_pos")


def freeze_vision(model: Minipamayo) -> None:
    """No gradients for the vision encoder (``TrainConfig.freeze_vision``)."""
    for name, p in model.policy.named_parameters():
        if name.split(".")[0] in VISION_PARTS:
            p.requires_grad_(False)


@torch.no_grad()
def vision_tokens(model: Minipamayo, images: np.ndarray, device: torch.device, batch: int = 256,
                  log: Callable[[str], None] | None = None) -> torch.Tensor:
    """The (frozen) vision encoder's tokens of every image, computed once, on ``device``."""
    model.policy.eval()
    out = []
    t0 = time.time()
    for i in range(0, len(images), batch):
        img = torch.from_numpy(np.ascontiguousarray(images[i:i + batch])).to(device)
        out.append(model.policy.encode_image(img))
        if log is not None and (i // batch) % 20 == 19:
            log(f"vision tokens {i + batch}/{len(images)} ({time.time() - t0:.0f} s)")
    return torch.cat(out)


def _subset(ds: Dataset, n: int) -> ArrayDataset:
    return ArrayDataset(ds.images[:n], ds.state[:n], ds.waypoints[:n], ds.speeds[:n], ds.events[:n],
                        ds.caption_tokens[:n])


def train(model: Minipamayo, train_ds: Dataset, val_ds: Dataset | None, tc: TrainConfig,
          device: str | torch.device = "cpu", log: Callable[[str], None] = print,
          max_steps: int | None = None) -> dict[str, Any]:
    """Train in place; keeps the weights of the best validation ADE. Returns the history."""
    device = torch.device(device)
    torch.manual_seed(tc.seed)
    gen = torch.Generator(device="cpu").manual_seed(tc.seed)
    if tc.fit_normalisation:
        set_state_normalisation(model, train_ds)
    model.to(device).train()
    data = {
        "images": torch.from_numpy(np.ascontiguousarray(train_ds.images)).to(device),
        "state": torch.from_numpy(np.asarray(train_ds.state, np.float32)).to(device),
        "waypoints": torch.from_numpy(np.asarray(train_ds.waypoints, np.float32)).to(device),
        "speeds": torch.from_numpy(np.asarray(train_ds.speeds, np.float32)).to(device),
        "events": torch.from_numpy(np.asarray(train_ds.events, np.int64)).to(device),
        "captions": torch.from_numpy(np.asarray(train_ds.caption_tokens, np.int64)).to(device),
    }
    if tc.freeze_vision:
        freeze_vision(model)
        data["vis"] = vision_tokens(model, train_ds.images, device, log=log)
        del data["images"]
        model.train()
    n = len(train_ds.images)
    steps_per_epoch = max(1, n // tc.batch_size)
    total_steps = tc.epochs * steps_per_epoch if max_steps is None else max_steps
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=tc.lr,
                            weight_decay=tc.weight_decay)

    def lr_at(step: int) -> float:
        if step < tc.warmup_steps:
            return tc.lr * (step + 1) / tc.warmup_steps
        p = (step - tc.warmup_steps) / max(1, total_steps - tc.warmup_steps)
        return tc.lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(1.0, p))))

    history: dict[str, Any] = {"epoch": [], "train": [], "val": [], "step_losses": []}
    best: tuple[float, dict[str, Any] | None] = (float("inf"), None)
    step, t0 = 0, time.time()
    t_steps = t0
    for epoch in range(tc.epochs):
        model.train()
        perm = torch.randperm(n, generator=gen)
        sums: dict[str, float] = {}
        nb = 0
        for b in range(steps_per_epoch):
            if step >= total_steps:
                break
            idx = perm[b * tc.batch_size:(b + 1) * tc.batch_size].to(device)
            batch = {k: v[idx] for k, v in data.items()}
            for g in opt.param_groups:
                g["lr"] = lr_at(step)
            ls = losses(model, batch, tc)
            opt.zero_grad(set_to_none=True)
            ls["total"].backward()
            torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], tc.grad_clip)
            opt.step()
            vals = {k: float(v.detach()) for k, v in ls.items()}
            history["step_losses"].append(vals["total"])
            for k, v in vals.items():
                sums[k] = sums.get(k, 0.0) + v
            step += 1
            nb += 1
            if tc.log_every > 0 and step % tc.log_every == 0:
                el = time.time() - t0
                log(f"  step {step}/{total_steps} ({100 * step / total_steps:.0f}%) {el:.0f}s, "
                    f"ETA {el / step * (total_steps - step):.0f}s, loss {vals['total']:.4f}")
            if step == 10:
                t_steps = time.time()  # after warm-up (cudnn autotuning, allocator)
            if step == 40 and tc.time_budget_s > 0 and max_steps is None:
                per_step = (time.time() - t_steps) / 30
                fit = int((tc.time_budget_s - (time.time() - t0)) / per_step) + step
                if fit < total_steps:
                    log(f"time budget {tc.time_budget_s:.0f}s at {per_step * 1e3:.1f} ms/step: "
                        f"{fit} of {total_steps} steps ({fit / steps_per_epoch:.1f} epochs)")
                    total_steps = max(fit, 41)
        train_means = {k: v / max(1, nb) for k, v in sums.items()}
        history["epoch"].append(epoch + 1)
        history["train"].append(train_means)
        msg = (f"epoch {epoch + 1}/{tc.epochs} step {step} {time.time() - t0:6.1f}s "
               f"loss {train_means.get('total', float('nan')):.4f} "
               f"ade {train_means.get('ade', float('nan')):.3f}")
        if val_ds is not None and ((epoch + 1) % tc.eval_every == 0 or epoch + 1 == tc.epochs):
            model.eval()
            res = evaluate(val_ds, torch_policy_fn(model, device))
            vm = res["policy"]
            if (epoch + 1) % (5 * tc.eval_every) == 0 or epoch + 1 == tc.epochs:
                tres = evaluate(_subset(val_ds, tc.text_eval_limit), torch_policy_fn(model, device),
                                torch_text_fn(model, device))
                vm["caption_exact_match"] = tres["text"]["caption_exact_match"]
            history["val"].append(vm)
            msg += f" | val ade {vm['ade_m']:.3f} fde {vm['fde_m']:.3f}"
            if "caption_exact_match" in vm:
                msg += f" captions {vm['caption_exact_match']:.3f}"
            if vm["ade_m"] < best[0]:
                best = (vm["ade_m"], copy.deepcopy(model.state_dict()))
        log(msg)
        if step >= total_steps:
            break
    if best[1] is not None:
        model.load_state_dict(best[1])
    model.eval()
    history["best_val_ade_m"] = best[0]
    return history


def plot_curves(history: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    ep = history["epoch"]
    for k in ("total", "ade", "speed", "uncertainty", "text"):
        axes[0].plot(ep, [t[k] for t in history["train"]], label=k)
    axes[0].set(title="training losses (epoch means)", xlabel="epoch", yscale="log")
    axes[0].legend()
    if history["val"]:
        vep = ep if len(history["val"]) == len(ep) else list(range(1, len(history["val"]) + 1))
        axes[1].plot(vep, [v["ade_m"] for v in history["val"]], label="ADE")
        axes[1].plot(vep, [v["fde_m"] for v in history["val"]], label="FDE")
        axes[1].axhline(0.30, ls="--", c="C0", lw=0.8)
        axes[1].axhline(0.80, ls="--", c="C1", lw=0.8)
        axes[1].set(title="validation open-loop error [m] (dashed: bars)", xlabel="epoch")
        axes[1].legend()
        cm = [(e, v["caption_exact_match"]) for e, v in zip(vep, history["val"], strict=False)
              if "caption_exact_match" in v]
        if cm:
            axes[2].plot(*zip(*cm, strict=True), marker="o")
            axes[2].axhline(0.9, ls="--", lw=0.8)
    axes[2].set(title="validation caption exact match", xlabel="epoch", ylim=(0, 1.02))
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


#: what training.json records of each dataset part (who drove, which generator)
PART_KEYS = ("driver", "driver_model_id", "generator_version", "samples")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Train a minipamayo model on simulator data")
    ap.add_argument("--config", default="tiny")
    ap.add_argument("--out", default="runs/tiny")
    ap.add_argument("--train-seeds", default="0:200", help="training seed spec (minipamayo_ros/seeds.py)")
    ap.add_argument("--val-seeds", default="1000:1040",
                    help="validation seed spec: checkpoint choice, early stopping (never test seeds)")
    ap.add_argument("--train-data", help="existing dataset dir (else generated from --train-seeds)")
    ap.add_argument("--val-data", help="existing dataset dir (else generated from --val-seeds)")
    ap.add_argument("--extra-train-data", nargs="*", default=[],
                    help="more dataset dirs appended to the training data (e.g. policy rollouts "
                         "labelled by the expert: python -m minipamayo_ros.evaluation.dagger)")
    ap.add_argument("--init-weights", help="start from these safetensors weights (same config)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--epochs", type=int, default=TrainConfig.epochs)
    ap.add_argument("--batch-size", type=int, default=TrainConfig.batch_size)
    ap.add_argument("--lr", type=float, default=TrainConfig.lr)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")
    ap.add_argument("--workers", type=int, default=1, help="processes for dataset generation")
    ap.add_argument("--time-budget-s", type=float, default=0.0, help="fit the training schedule into this")
    a = ap.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cudnn.benchmark = True
    device = torch.device("cuda" if a.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if a.device == "auto" else a.device))
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = load_config(a.config)
    from minipamayo_ros import language
    from minipamayo_ros.sim.dataset import concatenate, generate_dataset, load_dataset

    specials = (language.PAD, language.BOS, language.EOS)
    if cfg.text.vocab_size < language.VOCAB_SIZE or specials != (PAD, BOS, EOS):
        raise SystemExit(f"config text.vocab_size {cfg.text.vocab_size} < vocabulary {language.VOCAB_SIZE} "
                         "or special token ids differ from minipamayo_ros.language")
    train_seeds, val_seeds = parse_seeds(a.train_seeds), parse_seeds(a.val_seeds)
    try:  # disjoint by construction of the splits
        require_split(train_seeds, TRAINING, "--train-seeds")
        require_split(val_seeds, VALIDATION, "--val-seeds")
    except ValueError as exc:
        raise SystemExit(str(exc)) from None
    t0 = time.time()
    train_path = Path(a.train_data) if a.train_data else generate_dataset(
        out / "data_train", train_seeds, image_size=cfg.image_size, workers=a.workers)
    val_path = Path(a.val_data) if a.val_data else generate_dataset(
        out / "data_val", val_seeds, image_size=cfg.image_size, workers=a.workers)
    train_ds, val_ds = load_dataset(train_path), load_dataset(val_path)
    if a.extra_train_data:
        extra = [load_dataset(p) for p in a.extra_train_data]
        for p, d in zip(a.extra_train_data, extra, strict=True):
            try:
                require_split(sorted(set(d.episode_seeds.tolist())), TRAINING, f"--extra-train-data {p}")
            except ValueError as exc:
                raise SystemExit(str(exc)) from None
        train_ds = concatenate([train_ds, *extra])
    print(f"data: {len(train_ds.images)} train / {len(val_ds.images)} validation samples "
          f"({time.time() - t0:.0f}s)", flush=True)
    torch.manual_seed(a.seed)
    if a.init_weights:  # fine-tuning (e.g. on added policy rollouts): same config, strict load
        model = load_model(a.init_weights, cfg).train()
        print(f"initialised from {a.init_weights}", flush=True)
    else:
        model = build_model(cfg)
    tc = TrainConfig(epochs=a.epochs, batch_size=a.batch_size, lr=a.lr, seed=a.seed,
                     time_budget_s=a.time_budget_s)
    history = train(model, train_ds, val_ds, tc, device, log=lambda m: print(m, flush=True))
    model.cpu().float()
    save_weights(model, out / "weights.safetensors")
    plot_curves(history, out / "loss_curves.png")
    final = evaluate(val_ds, torch_policy_fn(model, torch.device("cpu")),
                     torch_text_fn(model, torch.device("cpu")))
    (out / "metrics.json").write_text(json.dumps(final, indent=2))
    training = {"command": "python -m minipamayo_ros.model.train " + " ".join(sys.argv[1:] if argv is None
                                                                         else argv),
                "data_seeds": {"train": train_seeds, "validation": val_seeds},
                "data_parts": [{k: m.get(k) for k in PART_KEYS}
                               for m in train_ds.meta.get("parts", [train_ds.meta])],
                "init_weights": a.init_weights,
                "samples": {"train": int(len(train_ds.images)), "validation": int(len(val_ds.images))},
                "train_config": asdict(tc), "device": str(device), "torch": torch.__version__,
                "wall_s": round(time.time() - t0, 1), "history": history}
    (out / "training.json").write_text(json.dumps(training))
    print(json.dumps(final, indent=2), flush=True)


if __name__ == "__main__":
    main()
