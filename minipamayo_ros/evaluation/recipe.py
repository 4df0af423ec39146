"""The training recipe of the shipped policy, from nothing to chosen weights, in one command.

    # the shipped run: one H100/H200 + 16 CPU cores (device tool), ~3.5 min; round 0 starts from the
    # policy shipped before (classic roads), its new standing-time input switched on
    python -m minipamayo_ros.evaluation.recipe --out runs/traffic --scale full --workers 16 \\
        --init-weights engines/minipamayo-tiny.safetensors
    # the same recipe, same data and schedule, on a CPU only (slower: docs/model.md gives the time)
    python -m minipamayo_ros.evaluation.recipe --out runs/traffic-cpu --scale full --device cpu \\
        --init-weights engines/minipamayo-tiny.safetensors
    # a small version that checks the whole pipeline on a laptop in minutes
    python -m minipamayo_ros.evaluation.recipe --out runs/small --scale small --workers 2

Stages (each writes into ``--out``; a progress bar per stage on stderr):

1. **Expert data** (``sim.dataset``): the classic world and the traffic mix (every scenario type
   of ``config/scenarios.yaml``) on training seeds, plus open-loop validation data (checkpoint
   choice) and calibration data (INT8) on their own seeds.
2. **Round 0**: the tiny model trained from scratch on the expert data.
3. **DAgger rounds** (``evaluation.dagger``): the previous round drives in closed loop on training
   seeds of every scenario type, half of the rollouts at the deployed latency (0.02 s), half at
   0.1 s; the expert labels the states it visits; the next round is fine-tuned on all data so far.
4. **Choice on validation seeds**: every round drives the validation seeds of every scenario type
   in closed loop at both latencies (the policy node's own pipeline, ``evaluation.closed_loop``);
   the round with the most clean runs (ties: lower open-loop ADE) is chosen. The shipped
   policy drives the classic validation seeds too, for the "replace only if better" rule.
5. ``recipe.json``: every stage's seeds, sizes, timings, validation figures and the choice;
   ``weights.safetensors`` of the chosen round (``model.release`` turns it into engines/).

Test seeds are never read here. Every number of the recipe is in :data:`SCALES`; a stage that
would overrun ``--deadline-s`` is shrunk and the deviation recorded in ``recipe.json``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import shutil
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from minipamayo_ros.evaluation.closed_loop import ClosedLoopSettings, load_policy, run_episode
from minipamayo_ros.evaluation.dagger import generate_dagger_dataset
from minipamayo_ros.seeds import TRAINING, VALIDATION, format_seeds, require_split
from minipamayo_ros.sim.dataset import concatenate, generate_dataset, load_dataset
from minipamayo_ros.sim.metrics import clean_checks
from minipamayo_ros.sim.scenario import load_mix
from minipamayo_ros.sim.world import WorldConfig

#: deployed latency (the dev box's stack) and a slower computer's [s]
LATENCIES = (0.02, 0.1)
TRAFFIC_MIX = "traffic"
ALL_MIX = "traffic_and_classic"


@dataclass(frozen=True)
class Scale:
    """Every size of the recipe (seeds are counted from the start of their range)."""

    classic_seeds: int            # expert episodes in the classic world (training seeds from 0)
    traffic_seeds: int            # expert episodes of the traffic mix (the next training seeds)
    episode_seconds: float        # [s] per expert episode
    val_data_seeds: int           # open-loop validation episodes (from 1000, mix traffic_and_classic)
    calib_seeds: int              # calibration episodes for INT8 (training seeds 990..)
    dagger_rounds: int
    dagger_seeds: int             # rollouts per round (training seeds from 5000), half per latency
    dagger_seconds: float         # [s] per rollout
    epochs_round0: int
    epochs_finetune: int
    batch_size: int
    lr: float
    finetune_lr: float
    select_seeds: int             # closed-loop validation seeds (from 2000, mix traffic_and_classic)
    select_classic_seeds: int     # classic validation seeds (from 3000): new vs shipped policy
    select_seconds: float         # [s] per closed-loop validation run
    freeze_vision: bool = False   # fine-tune on cached vision tokens (``TrainConfig.freeze_vision``)


SCALES: dict[str, Scale] = {
    "full": Scale(classic_seeds=40, traffic_seeds=200, episode_seconds=25.0, val_data_seeds=12,
                  calib_seeds=8, dagger_rounds=1, dagger_seeds=48, dagger_seconds=30.0, epochs_round0=4,
                  epochs_finetune=2, batch_size=256, lr=2e-3, finetune_lr=1e-3, select_seeds=16,
                  select_classic_seeds=8, select_seconds=30.0),
    # ~3.5x the data and training of "full" (2.5x expert episodes, a larger classic share against
    # the slower driving "full" learnt on classic roads, two DAgger rounds): one device call, ~4-5 min
    "large": Scale(classic_seeds=160, traffic_seeds=440, episode_seconds=25.0, val_data_seeds=12,
                   calib_seeds=8, dagger_rounds=2, dagger_seeds=80, dagger_seconds=30.0, epochs_round0=4,
                   epochs_finetune=2, batch_size=256, lr=2e-3, finetune_lr=1e-3, select_seeds=16,
                   select_classic_seeds=8, select_seconds=30.0),
    # what a 2-core CPU can do in ~3 h: the vision encoder of the previous policy kept (frozen), the
    # fusion backbone, heads and text decoder fine-tuned on its cached tokens
    "cpu": Scale(classic_seeds=40, traffic_seeds=210, episode_seconds=25.0, val_data_seeds=8,
                 calib_seeds=8, dagger_rounds=1, dagger_seeds=40, dagger_seconds=30.0, epochs_round0=2,
                 epochs_finetune=2, batch_size=128, lr=2e-3, finetune_lr=1e-3, select_seeds=16,
                 select_classic_seeds=8, select_seconds=30.0, freeze_vision=True),
    "small": Scale(classic_seeds=2, traffic_seeds=6, episode_seconds=8.0, val_data_seeds=2, calib_seeds=1,
                   dagger_rounds=1, dagger_seeds=2, dagger_seconds=8.0, epochs_round0=1, epochs_finetune=1,
                   batch_size=32, lr=2e-3, finetune_lr=1e-3, select_seeds=2, select_classic_seeds=1,
                   select_seconds=8.0, freeze_vision=True),
}


class Stages:
    """Stage progress on stderr (a bar over the recipe's stages) and the record of each stage."""

    def __init__(self, names: list[str], deadline: float, enabled: bool = True) -> None:
        self.names, self.deadline, self.enabled = names, deadline, enabled
        self.t0 = time.monotonic()
        self.done = 0
        self.record: dict[str, Any] = {}

    def left(self) -> float:
        return self.deadline - (time.monotonic() - self.t0)

    def start(self, name: str) -> float:
        if self.enabled:
            bar = "#" * int(20 * self.done / len(self.names))
            sys.stderr.write(f"[recipe] [{bar:<20}] stage {self.done + 1}/{len(self.names)}: {name} "
                             f"({time.monotonic() - self.t0:.0f} s elapsed)\n")
            sys.stderr.flush()
        return time.monotonic()

    def end(self, name: str, started: float, **info: Any) -> None:
        self.done += 1
        self.record[name] = {"wall_s": round(time.monotonic() - started, 1), **info}


# ------------------------------------------------------------------ closed-loop validation
_POLICY_CACHE: dict[str, Any] = {}


def _closed_loop_job(job: tuple[str, int, float, str, str, float]) -> dict[str, Any]:
    manifest, seed, latency, mix, scenario, seconds = job
    if manifest not in _POLICY_CACHE:
        _POLICY_CACHE[manifest] = load_policy(manifest)
    world = replace(WorldConfig(), scenarios=load_mix(mix, scenario))
    r = run_episode(seed, _POLICY_CACHE[manifest], world,
                    ClosedLoopSettings(max_seconds=seconds, latency=latency))
    m = r.metrics.as_dict()
    checks = clean_checks(m)
    return {"seed": seed, "latency_s": latency, "scenario": r.scenario, "clean": all(checks.values()),
            "failed": [k for k, ok in checks.items() if not ok], "distance_m": round(m["distance_m"], 1),
            "longest_stall_s": round(float(m.get("longest_stall_s") or 0.0), 1)}


def closed_loop_runs(manifest: str, seeds: list[int], mix: str, seconds: float, workers: int,
                     latencies: tuple[float, ...] = LATENCIES, scenario: str = "") -> list[dict[str, Any]]:
    """Each seed at each latency, driven by the policy node's pipeline (``closed_loop.load_policy``;
    ``"expert"``: the expert); ``scenario``: one type for every seed instead of the mix's draw."""
    jobs = [(manifest, s, lat, mix, scenario, seconds) for s in seeds for lat in latencies]
    if workers > 1:
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            return list(pool.imap(_closed_loop_job, jobs))
    return [_closed_loop_job(j) for j in jobs]


def summarize_runs(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Clean share overall, per latency and per scenario type."""
    def share(rs: list[dict[str, Any]]) -> dict[str, Any]:
        return {"runs": len(rs), "clean": sum(r["clean"] for r in rs),
                "clean_fraction": round(sum(r["clean"] for r in rs) / max(1, len(rs)), 4)}

    types = sorted({r["scenario"] for r in runs})
    return {**share(runs),
            "per_latency": {str(lat): share([r for r in runs if r["latency_s"] == lat]) for lat in LATENCIES},
            "per_type": {t: share([r for r in runs if r["scenario"] == t]) for t in types},
            "failures": [r for r in runs if not r["clean"]]}


# ------------------------------------------------------------------ the recipe
def run_recipe(out: Path, scale: Scale, workers: int, device: str, deadline_s: float,
               shipped: str = "", progress: bool = True, init_weights: str = "") -> dict[str, Any]:
    import torch

    from minipamayo_ros.model.config import load_config
    from minipamayo_ros.model.export import export_policy, write_engine_manifest
    from minipamayo_ros.model.network import build_model, load_model, save_weights
    from minipamayo_ros.model.train import TrainConfig, plot_curves, train

    out.mkdir(parents=True, exist_ok=True)
    dagger = [f"DAgger {k} + round {k}" for k in range(1, scale.dagger_rounds + 1)]
    names = ["expert data", "round 0", *dagger, "validation closed loop"]
    st = Stages(names, deadline_s, progress)
    dev = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                       ("cpu" if device == "auto" else device))
    classic = replace(WorldConfig(), scenarios=load_mix("classic"))
    traffic = replace(WorldConfig(), scenarios=load_mix(TRAFFIC_MIX))
    everything = replace(WorldConfig(), scenarios=load_mix(ALL_MIX))
    sd = scale.episode_seconds
    s_classic = list(range(0, scale.classic_seeds))
    s_traffic = list(range(scale.classic_seeds, scale.classic_seeds + scale.traffic_seeds))
    s_val = list(range(1000, 1000 + scale.val_data_seeds))
    s_calib = list(range(990, 990 + scale.calib_seeds))
    require_split(s_classic + s_traffic + s_calib, TRAINING, "recipe expert data")
    require_split(s_val, VALIDATION, "recipe validation data")
    record: dict[str, Any] = {"scale": asdict(scale), "device": str(dev), "torch": torch.__version__,
                              "workers": workers, "init_weights": init_weights or None, "deviations": []}

    t = st.start("expert data")
    data = out / "data"
    kw: dict[str, Any] = {"workers": workers, "progress": progress, "episode_seconds": sd}
    parts = [generate_dataset(data / "classic", s_classic, world_config=classic, **kw),
             generate_dataset(data / "traffic", s_traffic, world_config=traffic, **kw)]
    val_path = generate_dataset(data / "val", s_val, world_config=everything, **kw)
    generate_dataset(data / "calib", s_calib, world_config=everything, **kw)
    train_ds, val_ds = concatenate([load_dataset(p) for p in parts]), load_dataset(val_path)
    st.end("expert data", t, seeds={"classic": format_seeds(s_classic), "traffic": format_seeds(s_traffic),
                                    "validation": format_seeds(s_val), "calibration": format_seeds(s_calib)},
           samples={"train": len(train_ds), "validation": len(val_ds)})

    cfg = load_config("tiny")
    rounds: list[dict[str, Any]] = []

    def fit(model: Any, ds: Any, epochs: int, lr: float, name: str, init: str | None,
            budget: float) -> dict[str, Any]:
        # the schedule is in epochs (the same on any machine); ``budget`` [s] only guards the deadline
        tc = TrainConfig(epochs=epochs, batch_size=scale.batch_size, lr=lr, seed=0,
                         time_budget_s=budget if np.isfinite(budget) else 0.0, fit_normalisation=init is None,
                         freeze_vision=scale.freeze_vision)
        hist = train(model, ds, val_ds, tc, dev, log=lambda m: print(f"[{name}] {m}", file=sys.stderr,
                                                                       flush=True))
        planned = epochs * max(1, len(ds) // scale.batch_size)
        if len(hist["step_losses"]) < planned:
            record["deviations"].append(f"{name}: {len(hist['step_losses'])} of {planned} steps "
                                        f"(time budget {budget:.0f} s)")
        model.cpu().float()
        rdir = out / name
        rdir.mkdir(exist_ok=True)
        save_weights(model, rdir / "weights.safetensors")
        try:
            plot_curves(hist, rdir / "loss_curves.png")
        except ImportError:  # a GPU box without matplotlib: the history is in history.json
            pass
        onnx = export_policy(model, rdir / "minipamayo-tiny-policy.onnx")  # what drives the closed loop
        manifest = write_engine_manifest(onnx, "minipamayo-tiny-policy", "policy", model.cfg.as_dict(),
                                         {"recipe_round": name, "init_weights": init}, {})
        info = {"name": name, "dir": str(rdir), "manifest": str(manifest),
                "samples": len(ds), "epochs": epochs, "lr": lr, "init": init,
                "best_val_ade_m": hist["best_val_ade_m"], "val": hist["val"][-1] if hist["val"] else {}}
        (rdir / "history.json").write_text(json.dumps(hist))
        return info

    t = st.start("round 0")
    torch.manual_seed(0)
    if init_weights:  # warm start: the previous policy, its standing-time input switched on (zero weights)
        model0 = load_model(init_weights, cfg).train()
        rounds.append(fit(model0, train_ds, scale.epochs_round0, scale.finetune_lr, "round0",
                          str(init_weights), 0.25 * deadline_s))
    else:
        rounds.append(fit(build_model(cfg), train_ds, scale.epochs_round0, scale.lr, "round0", None,
                          0.25 * deadline_s))
    st.end("round 0", t, **{k: rounds[-1][k] for k in ("samples", "best_val_ade_m")})

    seed0 = 5000
    sim_rate = float("inf")  # closed-loop sim seconds per wall second (all workers), from the rollouts
    for k in range(1, scale.dagger_rounds + 1):
        name = f"DAgger {k} + round {k}"
        t = st.start(name)
        n = scale.dagger_seeds
        if st.left() < 0.3 * deadline_s:  # a round that cannot finish is not started
            record["deviations"].append(f"{name}: skipped, {st.left():.0f} s left of {deadline_s:.0f} s")
            break
        dseeds = list(range(seed0, seed0 + n))
        seed0 += n
        half = max(1, n // 2)
        rollouts = []
        t_roll = time.monotonic()
        for lat, ss in ((LATENCIES[0], dseeds[:half]), (LATENCIES[1], dseeds[half:])):
            if not ss:
                continue
            rollouts.append(generate_dagger_dataset(data / f"dagger{k}_{lat:g}", ss, rounds[-1]["manifest"],
                                                    scale.dagger_seconds, workers=workers, progress=progress,
                                                    world_config=everything, latency=lat))
        sim_rate = len(dseeds) * scale.dagger_seconds / max(1e-3, time.monotonic() - t_roll)  # sim s / wall s
        train_ds = concatenate([train_ds, *[load_dataset(p) for p in rollouts]])
        prev = rounds[-1]
        model = load_model(Path(prev["dir"]) / "weights.safetensors", cfg).train()
        rounds.append(fit(model, train_ds, scale.epochs_finetune, scale.finetune_lr, f"round{k}",
                          prev["name"], 0.15 * deadline_s))
        rounds[-1]["dagger_seeds"] = {str(LATENCIES[0]): format_seeds(dseeds[:half]),
                                      str(LATENCIES[1]): format_seeds(dseeds[half:])}
        st.end(name, t, dagger_seeds=rounds[-1]["dagger_seeds"], samples=len(train_ds),
               best_val_ade_m=rounds[-1]["best_val_ade_m"])

    t = st.start("validation closed loop")
    n_sel, n_cls = scale.select_seeds, scale.select_classic_seeds
    need = len(LATENCIES) * scale.select_seconds * (len(rounds) * n_sel + 2 * n_cls) / sim_rate
    if need > st.left() - 20.0:  # shrink to fit the deadline (recorded), never below 8 + 4 seeds
        f = max(0.0, st.left() - 20.0) / need
        n_sel, n_cls = max(8, int(n_sel * f)), max(4, int(n_cls * f))
        record["deviations"].append(f"validation closed loop: {n_sel} + {n_cls} seeds (estimated "
                                    f"{need:.0f} s, {st.left():.0f} s left)")
    s_sel = list(range(2000, 2000 + n_sel))
    s_cls = list(range(3000, 3000 + n_cls))
    require_split(s_sel + s_cls, VALIDATION, "recipe closed-loop validation")
    for r in rounds:
        runs = closed_loop_runs(r["manifest"], s_sel, ALL_MIX, scale.select_seconds, workers)
        r["closed_loop"] = summarize_runs(runs)
        print(f"[recipe] {r['name']}: {r['closed_loop']['clean']}/{r['closed_loop']['runs']} clean on "
              f"validation seeds {format_seeds(s_sel)}", file=sys.stderr, flush=True)
    best = max(rounds, key=lambda r: (r["closed_loop"]["clean_fraction"], -r["best_val_ade_m"]))
    classic_cmp = {"seeds": format_seeds(s_cls),
                   "new": summarize_runs(closed_loop_runs(best["manifest"], s_cls, "classic",
                                                          scale.select_seconds, workers))}
    if shipped:
        runs = closed_loop_runs(shipped, s_cls, "classic", scale.select_seconds, workers)
        classic_cmp["shipped"] = summarize_runs(runs)
    st.end("validation closed loop", t, seeds=format_seeds(s_sel), chosen=best["name"])
    shutil.copyfile(Path(best["dir"]) / "weights.safetensors", out / "weights.safetensors")
    if (Path(best["dir"]) / "loss_curves.png").is_file():
        shutil.copyfile(Path(best["dir"]) / "loss_curves.png", out / "loss_curves.png")
    record.update({"stages": st.record, "rounds": rounds, "chosen": best["name"],
                   "classic_validation": classic_cmp, "wall_s": round(time.monotonic() - st.t0, 1)})
    (out / "recipe.json").write_text(json.dumps(record, indent=1, default=_json))
    (out / "training.json").write_text(json.dumps(_training_json(record, best), default=_json))
    return record


def _training_json(record: dict[str, Any], best: dict[str, Any]) -> dict[str, Any]:
    """What ``model.release`` copies into the manifests (``training``)."""
    return {"command": "python -m minipamayo_ros.evaluation.recipe " + " ".join(sys.argv[1:]),
            "recipe": {k: v for k, v in record.items() if k != "rounds"},
            "rounds": [{k: v for k, v in r.items() if k not in ("dir", "manifest")}
                       for r in record["rounds"]],
            "chosen": best["name"], "history": {"best_val_ade_m": best["best_val_ade_m"]}}


def _json(x: Any) -> Any:
    if isinstance(x, (np.integer, np.floating)):
        return x.item()
    return str(x)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--scale", choices=sorted(SCALES), default="full")
    ap.add_argument("--workers", type=int, default=max(1, (multiprocessing.cpu_count() or 2) - 0))
    ap.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda")
    ap.add_argument("--deadline-s", type=float, default=float("inf"),
                    help="wall-time budget: a DAgger round that would not fit is skipped (recorded)")
    ap.add_argument("--shipped", default="engines/minipamayo-tiny-policy.manifest.json",
                    help="the shipped policy, compared on classic validation seeds ('' = skip)")
    ap.add_argument("--init-weights", default="",
                    help="round 0 starts from these safetensors (same config; e.g. the shipped policy) "
                         "instead of from scratch, at the fine-tuning learning rate")
    ap.add_argument("--no-progress", action="store_true")
    a = ap.parse_args(argv)
    rec = run_recipe(a.out, SCALES[a.scale], a.workers, a.device, a.deadline_s, a.shipped, not a.no_progress,
                     a.init_weights)
    print(json.dumps({"chosen": rec["chosen"], "classic_validation": {
        k: v if k == "seeds" else {kk: vv for kk, vv in v.items() if kk != "failures"}
        for k, v in rec["classic_validation"].items()},
        "rounds": [{"name": r["name"], "best_val_ade_m": r["best_val_ade_m"],
                    "closed_loop": {k: v for k, v in r["closed_loop"].items() if k != "failures"}}
                   for r in rec["rounds"]]}, indent=1, default=_json))
    return 0


if __name__ == "__main__":
    sys.exit(main())
