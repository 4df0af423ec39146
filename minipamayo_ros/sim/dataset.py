"""Training data: expert-driven episodes with perturbations, saved compactly (no pickle, no ROS).

Each sample is what the policy sees at an image stamp and what it should output:

=================  ==================  =====================================================
array              shape / dtype       content
=================  ==================  =====================================================
images             (N, H, W, 3) uint8  camera frame through ``image_preprocess.resize_to_model``
state              (N, 10, 4) float32  ``state_features.state_history`` of the odometry
waypoints          (N, 20, 2) float32  expert plan, base_link at the image stamp [m]
speeds             (N, 20) float32     planned speeds [m/s]
events             (N,) int64          ``events.Event`` value
caption_tokens     (N, 32) int32       caption ids (``language``), PAD-padded, no BOS/EOS
caption_lengths    (N,) int32          number of caption tokens
episode_seeds      (N,) int64          world seed of the sample's episode
reasons            (N,) int64          ``events.Reason`` value: what the expert reacts to (traffic
                                       world; derived from ``events`` for older datasets)
=================  ==================  =====================================================

The world is ``WorldConfig`` (``--scenario-mix`` / ``--scenario``: which traffic scenario type each
seed gets, ``sim.scenario``); the index records the mix and each episode's type.

On disk: ``<out>/dataset.json`` (index + generation settings) and one compressed
``episodes/ep_<seed>.npz`` per episode. Perturbations (off-centre / misaligned starts, steering
noise and drift bursts, unexplained stops on the *driven* command) put the car in recovery
situations; the labels are always the expert's plan from the true state, i.e. how to get back.

Who drives: here the perturbed expert. Policy-driven episodes labelled by the expert (DAgger) are
``minipamayo_ros.evaluation.dagger``: it passes its own ``episode`` function to
:func:`generate_dataset`, so the simulator knows nothing of models.

CLI (numpy + OpenCV; training seeds, ``minipamayo_ros/seeds.py``)::

    python -m minipamayo_ros.sim.dataset --out data/sim --seeds 0:200 \\
        --episode-seconds 30 --image-size 128 --workers 8
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from minipamayo_ros import language
from minipamayo_ros.events import EVENT_REASON, Event, Reason
from minipamayo_ros.image_preprocess import resize_to_model
from minipamayo_ros.seeds import parse_seeds
from minipamayo_ros.sim.expert import ExpertPlan
from minipamayo_ros.sim.scenario import CLASSIC, ScenarioError, load_mix
from minipamayo_ros.sim.world import World, WorldConfig
from minipamayo_ros.state_features import (
    REQUIRED_HISTORY,
    STATE_FEATURES,
    STATE_STEPS,
    StateHistory,
    state_history,
)
from minipamayo_ros.trajectory import NUM_WAYPOINTS

FORMAT = "minipamayo_sim_dataset"
#: 1 = state (N, 10, 3) (I/O contract v1), 2 = state (N, 10, 4) with the standing time (contract v2)
VERSION = 2
#: bumped whenever the same seed would give different samples (renderer, expert, perturbations):
#: 1 = first release, 2 = batched renderer (pixel-level differences) + stop approach that fades out,
#: 3 = standstill starts and unexplained stops (against a policy copying its own standstill)
#: 4 = slow-down bursts (driven below the expert's speed, labels recover to it)
#: 5 = the expert leaves a stop line after 0.8 s of standing (was 2 s; ``WorldConfig.expert_stop_hold``);
#:     policy drivers (``evaluation.dagger``) added
#: 7 = the standing-time state feature (format 2); images and labels as 5 / 6
GENERATOR_VERSION = 7
#: the generator version of datasets from a traffic mix (any non-classic scenario type); classic-only
#: datasets keep ``GENERATOR_VERSION``. 6 = first traffic world (#21), 7 = standing-time feature
TRAFFIC_GENERATOR_VERSION = 7
EXPERT_DRIVER = "expert"
INDEX_FILE = "dataset.json"
CONTROL_DT = 0.02  # [s] expert command and odometry period (50 Hz, like /odom)
#: drives and labels one episode: (seed, episode_seconds, sample_period, image_size, world_config,
#: perturbation) -> sample arrays
EpisodeFn = Callable[[int, float, float, tuple[int, int], WorldConfig | None, "Perturbation | None"],
                     dict[str, np.ndarray]]
ARRAYS = ("images", "state", "waypoints", "speeds", "events", "caption_tokens", "caption_lengths",
          "episode_seeds", "reasons")


@dataclass(frozen=True)
class Perturbation:
    """Disturbances of the driven car (labels stay the expert's plan). Seeded per episode."""

    start_offset: float = 0.8       # [m] max |lateral start offset|
    start_heading: float = 0.1      # [rad] max |start heading error|
    start_speed_max: float = 8.0    # [m/s] start speed uniform in [0, max]
    steer_noise_std: float = 0.015  # [rad] stationary std of Ornstein-Uhlenbeck steering noise
    steer_noise_tau: float = 0.5    # [s] its correlation time
    drift_rate: float = 0.08        # [1/s] rate of steering drift bursts
    drift_steer: float = 0.05       # [rad] max |drift burst| (held 0.5-1.5 s)
    start_standstill: float = 0.3   # probability of starting at 0 m/s
    stop_rate: float = 0.03         # [1/s] rate of unexplained stops: driven speed 0 for 1-3 s, so that
    #                                 standing on a clear road is followed by "go" labels (a policy must not
    #                                 learn "I stand, so I keep standing" from the odometry history)
    slow_rate: float = 0.06         # [1/s] rate of slow-down bursts: driven at 20-80 % of the expert's
    #                                 speed for 1-3 s, so that braking in the history is followed by
    #                                 labels that recover the expert's speed (speed recovery data, the
    #                                 longitudinal twin of the steering perturbations)


@dataclass
class DrivingDataset:
    """All samples of a dataset in memory (see module docstring for the arrays)."""

    images: NDArray[np.uint8]
    state: NDArray[np.float32]
    waypoints: NDArray[np.float32]
    speeds: NDArray[np.float32]
    events: NDArray[np.int64]
    caption_tokens: NDArray[np.int32]
    caption_lengths: NDArray[np.int32]
    episode_seeds: NDArray[np.int64]
    reasons: NDArray[np.int64]
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.images)

    def caption(self, i: int) -> str:
        return language.decode(self.caption_tokens[i, : self.caption_lengths[i]])


def generate_episode(seed: int, episode_seconds: float = 30.0, sample_period: float = 0.2,
                     image_size: tuple[int, int] = (128, 128), world_config: WorldConfig | None = None,
                     perturbation: Perturbation | None = None) -> dict[str, np.ndarray]:
    """Drive one perturbed expert episode and return its sample arrays (deterministic per seed)."""
    pert = perturbation or Perturbation()
    rng = np.random.default_rng([int(seed), 0x44_41_54_41])  # "DATA"
    world = World(seed, perturbed_start(world_config or WorldConfig(), pert, rng))
    history = StateHistory(max_age=3.0)
    history.add(world.odometry())
    rows = new_rows()
    noise, drift, drift_left, stop_left, slow_left, slow_factor = 0.0, 0.0, 0.0, 0.0, 0.0, 1.0
    a = np.exp(-CONTROL_DT / pert.steer_noise_tau)
    next_sample = REQUIRED_HISTORY + CONTROL_DT
    steps = int(round(episode_seconds / CONTROL_DT))
    for _ in range(steps):
        if world.done:
            break
        steer, speed = world.expert_command()
        noise = a * noise + np.sqrt(1 - a * a) * pert.steer_noise_std * rng.standard_normal()
        if drift_left <= 0.0 and rng.random() < pert.drift_rate * CONTROL_DT:
            drift = float(rng.uniform(-pert.drift_steer, pert.drift_steer))
            drift_left = float(rng.uniform(0.5, 1.5))
        if drift_left > 0.0:
            drift_left -= CONTROL_DT
        else:
            drift = 0.0
        if stop_left <= 0.0 and rng.random() < pert.stop_rate * CONTROL_DT:
            stop_left = float(rng.uniform(1.0, 3.0))
        if stop_left > 0.0:
            stop_left -= CONTROL_DT
            speed = 0.0
        if slow_left <= 0.0 and rng.random() < pert.slow_rate * CONTROL_DT:
            slow_left = float(rng.uniform(1.0, 3.0))
            slow_factor = float(rng.uniform(0.2, 0.8))
        if slow_left > 0.0:
            slow_left -= CONTROL_DT
            speed *= slow_factor
        world.step(steer + noise + drift, speed, CONTROL_DT)
        history.add(world.odometry())
        if world.time + 1e-9 < next_sample:
            continue
        next_sample += sample_period
        state = state_history(history, world.time)
        if state is None:
            continue
        append_sample(rows, seed, resize_to_model(world.render(), image_size), state, world.expert_plan())
    return stack_rows(rows, image_size)


def perturbed_start(cfg: WorldConfig, pert: Perturbation, rng: np.random.Generator) -> WorldConfig:
    """The episode's start state: lateral offset, heading error and speed drawn from ``rng``."""
    return replace(cfg,
                   start_offset=float(rng.uniform(-pert.start_offset, pert.start_offset)),
                   start_heading=float(rng.uniform(-pert.start_heading, pert.start_heading)),
                   start_speed=0.0 if rng.random() < pert.start_standstill
                   else float(rng.uniform(0.0, pert.start_speed_max)))


def new_rows() -> dict[str, list[Any]]:
    return {k: [] for k in ARRAYS}


def append_sample(rows: dict[str, list[Any]], seed: int, image: NDArray[np.uint8],
                   state: NDArray[np.float32], plan: ExpertPlan) -> None:
    ids = language.encode(plan.caption, strict=True)
    rows["images"].append(image)
    rows["state"].append(state)
    rows["waypoints"].append(plan.points.astype(np.float32))
    rows["speeds"].append(plan.speeds.astype(np.float32))
    rows["events"].append(np.int64(int(plan.event)))
    rows["caption_tokens"].append(language.pad_tokens(ids))
    rows["caption_lengths"].append(np.int32(len(ids)))
    rows["episode_seeds"].append(np.int64(seed))
    rows["reasons"].append(np.int64(int(plan.reason)))


def stack_rows(rows: dict[str, list[Any]], image_size: tuple[int, int]) -> dict[str, np.ndarray]:
    h, w = image_size
    empty = {"images": ((0, h, w, 3), np.uint8), "state": ((0, STATE_STEPS, len(STATE_FEATURES)), np.float32),
             "waypoints": ((0, NUM_WAYPOINTS, 2), np.float32), "speeds": ((0, NUM_WAYPOINTS), np.float32),
             "events": ((0,), np.int64), "caption_tokens": ((0, language.MAX_CAPTION_TOKENS), np.int32),
             "caption_lengths": ((0,), np.int32), "episode_seeds": ((0,), np.int64),
             "reasons": ((0,), np.int64)}
    out = {}
    for k in ARRAYS:
        shape, dtype = empty[k]
        out[k] = np.stack(rows[k]).astype(dtype) if rows[k] else np.zeros(shape, dtype)
    return out


def _episode_job(args: tuple) -> tuple[int, str, int]:
    seed, out_dir, episode_seconds, sample_period, image_size, world_config, perturbation, episode = args
    arrays = episode(seed, episode_seconds, sample_period, image_size, world_config, perturbation)
    name = f"episodes/ep_{seed:06d}.npz"
    tmp = Path(out_dir) / f"episodes/.ep_{seed:06d}.tmp.npz"
    np.savez_compressed(tmp, **arrays)
    os.replace(tmp, Path(out_dir) / name)
    return seed, name, len(arrays["images"])


class _Progress:
    """A one-line progress bar on stderr (no dependency)."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.total, self.enabled, self.t0, self.done = total, enabled, time.monotonic(), 0

    def update(self, samples: int) -> None:
        self.done += 1
        if not self.enabled:
            return
        el = time.monotonic() - self.t0
        eta = el / self.done * (self.total - self.done)
        bar = "#" * int(30 * self.done / self.total)
        sys.stderr.write(f"\r[dataset] [{bar:<30}] {self.done}/{self.total} episodes, "
                         f"{samples} samples, {el:.0f} s elapsed, ETA {eta:.0f} s ")
        if self.done == self.total:
            sys.stderr.write("\n")
        sys.stderr.flush()


def generate_dataset(out_dir: str | Path, seeds: Sequence[int], episode_seconds: float = 30.0,
                     sample_period: float = 0.2, image_size: tuple[int, int] = (128, 128),
                     world_config: WorldConfig | None = None, perturbation: Perturbation | None = None,
                     workers: int = 1, progress: bool = True, episode: EpisodeFn = generate_episode,
                     driver_info: dict[str, Any] | None = None) -> Path:
    """Generate one episode per seed into ``out_dir``; returns ``out_dir`` (holding the index).

    ``episode`` drives and labels one seed (default: the perturbed expert; picklable for
    ``workers > 1``, e.g. ``evaluation.dagger``'s policy driver); ``driver_info`` goes into the index
    (default ``{"driver": "expert"}``).
    """
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ValueError("no seeds given")
    if len(set(seeds)) != len(seeds):
        raise ValueError("seeds must be distinct (one episode file per seed)")
    if sample_period < CONTROL_DT:
        raise ValueError(f"sample_period must be >= {CONTROL_DT} s")
    driver_info = driver_info or {"driver": EXPERT_DRIVER}
    out = Path(out_dir)
    (out / "episodes").mkdir(parents=True, exist_ok=True)
    world_config = world_config or WorldConfig()
    perturbation = perturbation or Perturbation()
    jobs = [(s, str(out), episode_seconds, sample_period, tuple(image_size), world_config, perturbation,
             episode) for s in seeds]
    bar = _Progress(len(jobs), progress)
    episodes: list[dict] = []
    total = 0

    def collect(results: Iterable[tuple[int, str, int]]) -> None:
        nonlocal total
        for seed, name, n in results:
            episodes.append({"seed": seed, "file": name, "samples": n})
            total += n
            bar.update(total)

    if workers > 1:
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            collect(pool.imap(_episode_job, jobs))
    else:
        collect(map(_episode_job, jobs))
    mix = world_config.scenarios
    classic = mix is None or mix.is_classic
    index = {
        "format": FORMAT, "version": VERSION,
        "generator_version": GENERATOR_VERSION if classic else TRAFFIC_GENERATOR_VERSION, **driver_info,
        "scenario_mix": CLASSIC if mix is None else mix.name,
        "scenario_types": {} if mix is None or classic else {str(s): mix.for_seed(s).name for s in seeds},
        "image_size": list(image_size),
        "episode_seconds": episode_seconds, "sample_period": sample_period,
        "samples": total, "vocab_size": language.VOCAB_SIZE,
        "camera": {k: float(v) for k, v in asdict(world_config.camera).items()},
        "expert": asdict(world_config.expert), "perturbation": asdict(perturbation),
        "episodes": episodes,
    }
    tmp = out / f".{INDEX_FILE}.tmp"
    tmp.write_text(json.dumps(index, indent=1))
    os.replace(tmp, out / INDEX_FILE)
    return out


def load_dataset(path: str | Path, seeds: Iterable[int] | None = None) -> DrivingDataset:
    """Load a dataset directory (or its ``dataset.json``) into memory.

    ``seeds`` selects episodes (e.g. a train/validation split by seed); None loads all.
    """
    path = Path(path)
    index_path = path if path.is_file() else path / INDEX_FILE
    if not index_path.exists():
        raise FileNotFoundError(f"no {INDEX_FILE} in {path}: generate one with "
                                "`python -m minipamayo_ros.sim.dataset --out DIR --seeds 0:100`")
    index = json.loads(index_path.read_text())
    if index.get("format") != FORMAT:
        raise ValueError(f"{index_path}: not a {FORMAT} index")
    if index.get("version") != VERSION:
        raise ValueError(f"{index_path}: {FORMAT} v{index.get('version')}, this code reads v{VERSION} "
                         f"(v2: state input with the standing time, I/O contract v2); regenerate it")
    root = index_path.parent
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ARRAYS}
    wanted = None if seeds is None else {int(s) for s in seeds}
    for ep in index["episodes"]:
        if wanted is not None and int(ep["seed"]) not in wanted:
            continue
        with np.load(root / ep["file"], allow_pickle=False) as data:
            for k in ARRAYS:
                if k == "reasons" and k not in data:  # before the traffic world: derived from events
                    parts[k].append(reasons_of_events(data["events"]))
                    continue
                parts[k].append(data[k])
    h, w = index["image_size"]
    arrays = {k: (np.concatenate(v) if v else stack_rows({k2: [] for k2 in ARRAYS}, (h, w))[k])
              for k, v in parts.items()}
    return DrivingDataset(**arrays, meta=index)


def reasons_of_events(events: NDArray[np.int64]) -> NDArray[np.int64]:
    """``Reason`` values standing for classic ``Event`` labels (datasets without reasons)."""
    return np.array([int(EVENT_REASON.get(Event(int(e)), Reason.NONE)) for e in events], dtype=np.int64)


def concatenate(datasets: Sequence[DrivingDataset]) -> DrivingDataset:
    """One dataset holding all samples of ``datasets`` (e.g. expert data + policy rollouts).

    The image sizes must agree; ``meta["parts"]`` keeps each part's index.
    """
    if not datasets:
        raise ValueError("no datasets to concatenate")
    sizes = {d.images.shape[1:3] for d in datasets}
    if len(sizes) != 1:
        raise ValueError(f"datasets have different image sizes: {sorted(sizes)}")
    arrays = {k: np.concatenate([getattr(d, k) for d in datasets]) for k in ARRAYS}
    return DrivingDataset(**arrays, meta={**datasets[0].meta, "parts": [d.meta for d in datasets]})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Generate minipamayo training data in the simulator")
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument("--seeds", default="0:100",
                        help="seed spec, e.g. 0:100 (minipamayo_ros/seeds.py; training data: training seeds)")
    parser.add_argument("--episode-seconds", type=float, default=30.0, help="max episode length [s]")
    parser.add_argument("--sample-period", type=float, default=0.2, help="seconds between samples")
    parser.add_argument("--image-size", type=int, nargs="+", default=[128],
                        help="model input size: S (square) or H W [px]")
    parser.add_argument("--workers", type=int, default=1, help="parallel processes")
    parser.add_argument("--scenario-mix", default=CLASSIC,
                        help="scenario mix of config/scenarios.yaml (classic = the original world, traffic)")
    parser.add_argument("--scenario", default="", help="one scenario type for every seed (e.g. cut_in)")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    size = (args.image_size[0], args.image_size[-1])
    try:
        world = replace(WorldConfig(), scenarios=load_mix(args.scenario_mix, args.scenario))
    except ScenarioError as e:
        parser.error(str(e))
    out = generate_dataset(args.out, parse_seeds(args.seeds), args.episode_seconds, args.sample_period,
                           size, world_config=world, workers=args.workers, progress=not args.no_progress)
    index = json.loads((out / INDEX_FILE).read_text())
    print(f"wrote {index['samples']} samples from {len(index['episodes'])} episodes to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
