"""DAgger data: a trained policy drives in closed loop, the expert labels the states it visits.

A cloned policy drifts into states the expert never shows it (e.g. creeping past its stop point
behind an obstacle); samples of those states labelled with the expert's plan teach it how to get
out. The policy runs through :class:`~minipamayo_ros.evaluation.closed_loop.PipelinePolicy` (the
policy node's own pipeline), and every stored sample is exactly the model input of that frame.
Output: the ``sim.dataset`` format (``driver`` / ``driver_model_id`` in the index).

CLI (training seeds only, ``minipamayo_ros/seeds.py``)::

    python -m minipamayo_ros.evaluation.dagger --out data/dagger --seeds 5000:5300 \\
        --policy engines/minipamayo-tiny-policy.manifest.json --episode-seconds 60 --workers 8 \\
        --latency 0.02 --scenario-mix traffic_and_classic
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from pathlib import Path

import numpy as np

from minipamayo_ros.evaluation.closed_loop import (
    ClosedLoopSettings,
    Observation,
    PipelinePolicy,
    add_scenario_arguments,
    run_episode,
    scenario_world,
)
from minipamayo_ros.io_contract import IMAGE, STATE
from minipamayo_ros.manifest import load_manifest
from minipamayo_ros.policy.config import PolicyConfig
from minipamayo_ros.policy.pipeline import Skip
from minipamayo_ros.seeds import TRAINING, parse_seeds, require_split
from minipamayo_ros.sim.dataset import (
    INDEX_FILE,
    Perturbation,
    append_sample,
    generate_dataset,
    new_rows,
    perturbed_start,
    stack_rows,
)
from minipamayo_ros.sim.world import WorldConfig
from minipamayo_ros.trajectory import PlannedTrajectory

_POLICIES: dict[str, PipelinePolicy] = {}  # per worker process: a policy is loaded once


class _Labeller:
    """Wraps the driving policy: every ``sample_period`` s stores its model inputs + the expert's plan."""

    uses_camera = True

    def __init__(self, policy: PipelinePolicy, seed: int, sample_period: float) -> None:
        self.policy, self.seed, self.sample_period = policy, seed, sample_period
        self.rows = new_rows()
        self._next = 0.0

    def start(self) -> None:
        self.policy.start()

    def add_odometry(self, sample) -> None:
        self.policy.add_odometry(sample)

    def __call__(self, obs: Observation) -> PlannedTrajectory | Skip:
        out = self.policy(obs)
        inputs = self.policy.last_inputs
        if not isinstance(out, Skip) and inputs is not None and obs.stamp + 1e-9 >= self._next:
            self._next = obs.stamp + self.sample_period - 1e-6
            append_sample(self.rows, self.seed, inputs[IMAGE][0], inputs[STATE][0], obs.world.expert_plan())
        return out


def policy_episode(manifest_path: str, seed: int, episode_seconds: float = 60.0, sample_period: float = 0.2,
                   image_size: tuple[int, int] = (128, 128), world_config: WorldConfig | None = None,
                   perturbation: Perturbation | None = None, latency: float = 0.1) -> dict[str, np.ndarray]:
    """The policy of ``manifest_path`` drives one episode of ``seed``; expert-labelled samples.

    Only the start is perturbed (the same draws as ``sim.dataset.generate_episode``); the rest of
    the disturbance comes from the policy's own mistakes, which is the point. ``latency`` [s]:
    image stamp -> trajectory at the follower (0.02 s deployed, 0.1 s a slower computer): the
    mistakes differ with it (e.g. the stop-line deadlock happened at 0.02 s only).
    """
    if manifest_path not in _POLICIES:
        _POLICIES[manifest_path] = PipelinePolicy.from_config(
            PolicyConfig(manifest_path=manifest_path, backend="onnxruntime"))
    policy = _POLICIES[manifest_path]
    if policy.pipeline.io.image_size != tuple(image_size):
        raise ValueError(f"dataset image size {tuple(image_size)} != the policy's input "
                         f"{policy.pipeline.io.image_size}")
    pert = perturbation or Perturbation()
    rng = np.random.default_rng([int(seed), 0x44_41_54_41])  # "DATA", as generate_episode
    cfg = perturbed_start(world_config or WorldConfig(), pert, rng)
    labeller = _Labeller(policy, seed, sample_period)
    run_episode(seed, labeller, cfg, ClosedLoopSettings(max_seconds=episode_seconds, latency=latency))
    return stack_rows(labeller.rows, image_size)


def generate_dagger_dataset(out_dir: str | Path, seeds: list[int], manifest_path: str,
                            episode_seconds: float = 60.0, sample_period: float = 0.2, workers: int = 1,
                            progress: bool = True, world_config: WorldConfig | None = None,
                            latency: float = 0.1) -> Path:
    """Policy-driven, expert-labelled episodes (training seeds only) into ``out_dir``; ``latency``
    [s] of the closed loop (``policy_episode``)."""
    require_split(seeds, TRAINING, "DAgger data")
    manifest = load_manifest(manifest_path)  # a bad path or corrupt model fails here, not in every worker
    image = manifest.input(IMAGE).shape
    return generate_dataset(out_dir, seeds, episode_seconds, sample_period, (int(image[1]), int(image[2])),
                            world_config=world_config, workers=workers, progress=progress,
                            episode=functools.partial(_policy_episode_at, str(manifest_path), latency),
                            driver_info={"driver": f"manifest:{manifest_path}",
                                         "driver_model_id": manifest.model_id, "latency_s": latency})


def _policy_episode_at(manifest_path: str, latency: float, seed: int, episode_seconds: float,
                       sample_period: float, image_size: tuple[int, int], world_config: WorldConfig | None,
                       perturbation: Perturbation | None) -> dict[str, np.ndarray]:
    """:func:`policy_episode` in the ``sim.dataset.EpisodeFn`` signature (picklable for workers)."""
    return policy_episode(manifest_path, seed, episode_seconds, sample_period, image_size, world_config,
                          perturbation, latency)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="DAgger data: a policy drives, the expert labels")
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument("--seeds", required=True, help="training seed spec, e.g. 5000:5300")
    parser.add_argument("--policy", required=True, help="policy manifest path")
    parser.add_argument("--episode-seconds", type=float, default=60.0, help="max episode length [s]")
    parser.add_argument("--sample-period", type=float, default=0.2, help="seconds between samples")
    parser.add_argument("--workers", type=int, default=1, help="parallel processes")
    parser.add_argument("--latency", type=float, default=0.1,
                        help="image stamp -> trajectory at the follower [s] (0.02 = the deployed stack)")
    parser.add_argument("--no-progress", action="store_true")
    add_scenario_arguments(parser)
    args = parser.parse_args(argv)
    out = generate_dagger_dataset(args.out, parse_seeds(args.seeds), args.policy, args.episode_seconds,
                                  args.sample_period, args.workers, not args.no_progress,
                                  scenario_world(parser, args), args.latency)
    index = json.loads((out / INDEX_FILE).read_text())
    print(f"wrote {index['samples']} samples from {len(index['episodes'])} episodes to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
