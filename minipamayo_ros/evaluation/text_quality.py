"""Closed-loop quality of the explanations: the simulator expert's caption is the ground truth.

    python -m minipamayo_ros.evaluation.text_quality --seeds test:40 --scenario-mix traffic_and_classic \\
        [--workers 4] [--out report.json]

The shipped policy drives each road in the offline closed loop (``evaluation.closed_loop``, the
policy node's own pipeline and the real follower, at ``--latency``, default the deployed 0.02 s).
Every trajectory goes through the text node's own core: ``EventDetector`` (parameters from
``config/text.yaml``) and ``CaptionGenerator`` on the policy's context vector, conditioned on the
detector's situation, exactly as the node does. The model's own caption and its confidence are
logged; the node's rule (a caption less confident than ``min_confidence`` becomes the situation's
generic caption, ``text.generator.GENERIC_CAPTIONS``) is applied when scoring, so one run scores
every threshold (``--thresholds``: the choice is made on validation seeds).

Ground truth: the expert's caption and ``Reason`` (what it reacts to) at every image stamp.

* **Exact within 1 s** (per event, the primary figure): the explanation is ready within 1 s of its
  stamp (the loop's latency plus the measured generation time) and its text equals a caption the
  expert gave within 1 s of that stamp. Reported overall and per **event type** = the expert's
  reason at the event (lead vehicle braking, pedestrian, red light, green light, cut-in, parked
  vehicle, stop line, obstacle, curve, ...); a generic caption is never exact.
* **No caption for what did not happen**: the share of explanations whose caption names no cause,
  or a cause (``caption_cause``: red light, pedestrian, lead vehicle, ...) the expert reacted to
  within 1 s. A generic caption names none.
* **Confusion**: per expert reason, which cause the captions named (e.g. the stop line vs
  obstacle confusion of the classic world).
* Recall of the expert's own onsets (its label changes to a cause) explained correctly within 1 s
  (secondary: the expert looks 15-30 m ahead, the policy's 2 s plan reacts later).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from minipamayo_ros import language
from minipamayo_ros.events import Event, Reason
from minipamayo_ros.params import build_config, load_node_yaml
from minipamayo_ros.text.config import TextConfig
from minipamayo_ros.text.events import EventDetector
from minipamayo_ros.text.generator import GENERIC_CAPTIONS, CaptionGenerator

ROOT = Path(__file__).resolve().parents[2]
WINDOW_S = 1.0
THRESHOLDS = (0.0, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
#: reasons that name a cause outside the car (a caption naming one claims it is there)
CAUSES = frozenset(Reason) - {Reason.NONE, Reason.BRAKE}
#: reasons that name the same thing (a lead vehicle braking or followed; a red or amber light)
SAME_CAUSE = {Reason.LEAD_BRAKING: Reason.LEAD_VEHICLE, Reason.AMBER_LIGHT: Reason.RED_LIGHT}


@dataclass
class EpisodeLog:
    """Per image stamp: the expert's label; per event: the model's caption and its confidence."""

    seed: int
    scenario: str = "classic"
    expert: list[tuple[float, int, str, int]] = field(default_factory=list)  # stamp, event, caption, reason
    explanations: list[dict[str, Any]] = field(default_factory=list)


def token_accuracy(got: Sequence[int], want: Sequence[int]) -> float:
    """Share of positions (over the longer caption) where the words agree."""
    n = max(len(got), len(want))
    return 1.0 if n == 0 else sum(a == b for a, b in zip(got, want, strict=False)) / n


def cause(reason: int) -> Reason | None:
    """The cause a reason names (None: the car's own business, e.g. cruise speed)."""
    r = Reason(reason)
    return SAME_CAUSE.get(r, r) if r in CAUSES else None


#: words of a caption -> the cause it names (first match; the expert's captions, sim/expert.py)
CAPTION_CAUSES: tuple[tuple[str, Reason], ...] = (
    ("red light", Reason.RED_LIGHT), ("amber light", Reason.RED_LIGHT), ("green light", Reason.GREEN_LIGHT),
    ("traffic in intersection", Reason.GREEN_LIGHT), ("at intersection", Reason.TURN),
    ("pedestrian", Reason.PEDESTRIAN), ("cutting in", Reason.CUT_IN), ("lead vehicle", Reason.LEAD_VEHICLE),
    ("parked vehicle", Reason.PARKED_VEHICLE), ("stop line", Reason.STOP_LINE), ("obstacle", Reason.OBSTACLE),
    ("oncoming", Reason.ONCOMING), ("curve", Reason.CURVE),
)


def caption_cause(text: str) -> Reason | None:
    """The cause a caption names (None: a generic caption, or the car's own business)."""
    if text in GENERIC_CAPTIONS.values():
        return None
    for words, reason in CAPTION_CAUSES:
        if words in text:
            return reason
    return None


def ground_truth_events(expert: list[tuple[float, int, str, int]]) -> list[tuple[float, int, str, int]]:
    """Onsets of expert causes: (stamp, event, caption, reason) where the named cause changes to one."""
    out, prev = [], None
    for stamp, ev, caption, reason in expert:
        c = cause(reason)
        if c is not None and c != prev:
            out.append((stamp, ev, caption, reason))
        prev = c
    return out


def _shown(ex: dict[str, Any], threshold: float) -> str:
    """The text the node publishes for this explanation at ``min_confidence`` = ``threshold``."""
    return ex["generic_text"] if ex["confidence"] < threshold else ex["model_text"]


def score(logs: list[EpisodeLog], threshold: float = 0.0, window: float = WINDOW_S) -> dict[str, Any]:
    """The figures of the module docstring at one ``min_confidence`` threshold."""
    per_type: dict[str, list[tuple[bool, float, bool]]] = {}
    per_event: dict[str, list[tuple[bool, float, bool]]] = {}
    confusion: dict[str, dict[str, int]] = {}
    onsets: dict[str, list[bool]] = {}
    generic = 0
    for log in logs:
        stamps = np.array([e[0] for e in log.expert])
        for ex in log.explanations:
            text = _shown(ex, threshold)
            generic += text == ex["generic_text"] and text != ex["model_text"]
            near = [e for e in log.expert if abs(e[0] - ex["stamp"]) <= window + 1e-9]
            _, _, caption, reason = log.expert[int(np.argmin(np.abs(stamps - ex["stamp"])))]
            in_time = ex.get("delay_s", 0.0) <= window
            ok = in_time and text in {e[2] for e in near}
            named = caption_cause(text)
            happened = named is None or named in {cause(e[3]) for e in near}
            acc = token_accuracy(language.encode(text), language.encode(caption)) if in_time else 0.0
            kind = Reason(reason).name
            per_type.setdefault(kind, []).append((ok, acc, happened))
            per_event.setdefault(ex["event"], []).append((ok, acc, happened))
            row = confusion.setdefault(kind, {})
            col = "generic/none" if named is None else named.name
            row[col] = row.get(col, 0) + 1
        for t, _, _, reason in ground_truth_events(log.expert):
            hit = False
            for ex in log.explanations:
                if abs(ex["stamp"] - t) <= window + 1e-9 and ex.get("delay_s", 0.0) <= window:
                    said = {e[2] for e in log.expert if abs(e[0] - ex["stamp"]) <= window + 1e-9}
                    hit = hit or _shown(ex, threshold) in said
            onsets.setdefault(Reason(reason).name, []).append(hit)

    def share(xs: list[tuple[bool, float, bool]]) -> dict[str, float]:
        nan = float("nan")
        return {"events": len(xs), "exact_within_1s": float(np.mean([x[0] for x in xs])) if xs else nan,
                "token_accuracy": float(np.mean([x[1] for x in xs])) if xs else nan,
                "named_cause_happened": float(np.mean([x[2] for x in xs])) if xs else nan}

    flat = [x for v in per_type.values() for x in v]
    return {"window_s": window, "min_confidence": threshold, **share(flat), "generic": int(generic),
            "per_event_type": {k: share(v) for k, v in sorted(per_type.items())},
            "per_detector_event": {k: share(v) for k, v in sorted(per_event.items())},
            "confusion": confusion,
            "expert_onsets": {k: {"onsets": len(v), "explained_within_1s": float(np.mean(v))}
                              for k, v in sorted(onsets.items())}}


def run_seed(seed: int, generator: CaptionGenerator, cfg: TextConfig, max_seconds: float,
             latency: float = 0.02, mix: str = "classic", scenario: str = "") -> EpisodeLog:
    from minipamayo_ros.evaluation.closed_loop import ClosedLoopSettings, PipelinePolicy, run_episode
    from minipamayo_ros.policy.config import PolicyConfig
    from minipamayo_ros.policy.pipeline import Frame, Skip
    from minipamayo_ros.sim.scenario import load_mix
    from minipamayo_ros.sim.world import WorldConfig

    log = EpisodeLog(seed)
    detector = EventDetector(cfg.detector_settings())
    settings = ClosedLoopSettings(max_seconds=max_seconds, latency=latency)

    class Explaining(PipelinePolicy):
        def __call__(self, obs: Any) -> Any:
            plan = obs.world.expert_plan()
            log.expert.append((obs.stamp, int(plan.event), plan.caption, int(plan.reason)))
            result = self.pipeline.run(Frame(stamp=obs.stamp, decode=obs.camera, description="sim camera",
                                             received=obs.stamp), lambda: obs.stamp)
            if isinstance(result, Skip):
                return result
            traj = result.output.trajectory
            for ev in detector.update(traj):
                cap = generator.generate(result.output.context, int(ev.situation), cfg.max_tokens,
                                         cfg.max_generation_ms)
                if cap.abandoned:
                    continue
                log.explanations.append({"stamp": ev.stamp, "event": ev.kind.name,
                                         "situation": ev.situation.name, "model_text": cap.text,
                                         "generic_text": GENERIC_CAPTIONS.get(ev.situation,
                                                                              GENERIC_CAPTIONS[Event.NONE]),
                                         "confidence": round(float(cap.confidence), 4),
                                         "delay_s": round(settings.latency + cap.latency_ms * 1e-3, 4)})
            return traj

    policy = Explaining.from_config(build_config(PolicyConfig, {"backend": "onnxruntime"}))
    r = run_episode(seed, policy, world_config=replace(WorldConfig(), scenarios=load_mix(mix, scenario)),
                    settings=settings)
    log.scenario = r.scenario
    return log


_GEN: dict[str, CaptionGenerator] = {}


def _seed_job(job: tuple[int, float, float, str, str]) -> EpisodeLog:
    from minipamayo_ros.inference import BackendOptions
    from minipamayo_ros.text.generator import load_text_generator

    seed, max_seconds, latency, mix, scenario = job
    cfg = text_config()
    if "g" not in _GEN:
        _GEN["g"] = load_text_generator(cfg.manifest_path, BackendOptions(backend="onnxruntime"))
    return run_seed(seed, _GEN["g"], cfg, max_seconds, latency, mix, scenario)


def text_config() -> TextConfig:
    return build_config(TextConfig, load_node_yaml(ROOT / "config" / "text.yaml", "text"))


def main(argv: list[str] | None = None) -> int:
    from minipamayo_ros.seeds import parse_seeds, split_of

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", default="test:10",
                    help="seed spec (minipamayo_ros/seeds.py), e.g. test:10 = the first 10 test seeds")
    ap.add_argument("--max-seconds", type=float, default=60.0, help="sim seconds per road")
    ap.add_argument("--latency", type=float, default=0.02, help="image stamp -> trajectory [s]")
    ap.add_argument("--scenario-mix", default="classic", help="scenario mix of config/scenarios.yaml")
    ap.add_argument("--scenario", default="", help="one scenario type for every seed")
    ap.add_argument("--thresholds", default=",".join(f"{t:g}" for t in THRESHOLDS),
                    help="min_confidence values to score (the node's is in config/text.yaml)")
    ap.add_argument("--workers", type=int, default=1, help="parallel processes (one seed each)")
    ap.add_argument("--out", type=Path, default=None, help="JSON report")
    a = ap.parse_args(argv)
    seeds = parse_seeds(a.seeds)
    cfg = text_config()
    jobs = [(s, a.max_seconds, a.latency, a.scenario_mix, a.scenario) for s in seeds]
    logs: list[EpisodeLog] = []
    pool = multiprocessing.get_context("spawn").Pool(a.workers) if a.workers > 1 else None
    for k, log in enumerate(pool.imap(_seed_job, jobs) if pool else map(_seed_job, jobs)):
        logs.append(log)
        print(f"[text eval] seed {log.seed} ({split_of(log.seed)}, {log.scenario}) {k + 1}/{len(seeds)}: "
              f"{len(log.explanations)} explanations", file=sys.stderr, flush=True)
    if pool:
        pool.close()
    thresholds = [float(t) for t in a.thresholds.split(",") if t.strip()]
    scores = {f"{t:g}": score(logs, t) for t in thresholds}
    node = f"{cfg.min_confidence:g}"
    result = {"seeds": seeds, "splits": sorted({str(split_of(s)) for s in seeds}), "latency_s": a.latency,
              "scenario_mix": a.scenario or a.scenario_mix, "node_min_confidence": cfg.min_confidence,
              "at_node_threshold": scores.get(node) or score(logs, cfg.min_confidence),
              "sweep": {t: {k: s[k] for k in ("events", "exact_within_1s", "named_cause_happened", "generic")}
                        for t, s in scores.items()},
              "episodes": [{"seed": lg.seed, "scenario": lg.scenario, "explanations": lg.explanations,
                            "ground_truth": [list(g) for g in ground_truth_events(lg.expert)]}
                           for lg in logs]}
    print(json.dumps({k: v for k, v in result.items() if k != "episodes"}, indent=1))
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
