"""Compare replayed outputs with golden ones: tolerance table, latency gates, text semantics, verdict.

    python -m minipamayo_ros.replay.compare --replayed OUT/replayed.jsonl --golden GOLDEN.jsonl --out OUT
    python -m minipamayo_ros.replay.compare ... --update-golden     # accept an intentional change

Outputs are matched by **input stamp** (the image stamp every trajectory carries):

* trajectories: ADE / FDE / max deviation [m], speed error [m/s], uncertainty error [m]; each
  element checked with ``|a - b| <= max(atol, rtol * max(|a|, |b|))`` under the profile of
  ``config/replay.yaml`` (exact for ONNX Runtime CPU, looser for FP16 / INT8);
* frames without output (skips, rate drops) must be skipped for the same reason;
* follower commands (``--follower`` replays): status exact, speed and steering in tolerance;
* explanations: event kind and stamp exact, text within ``max_token_edits`` token edits;
* latency gates: p95 / p99 / max of the replayed pipeline time against budgets.

Writes ``frames.jsonl`` (one line per compared item, then a verdict line), ``summary.json``,
``junit.xml`` and ``report.png``; exits 1 on a regression, 2 on unusable input, 0 otherwise.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from minipamayo_ros.replay.records import (
    TIMING_FIELDS,
    ControlRecord,
    Meta,
    Outputs,
    SkipRecord,
    TrajectoryRecord,
    read_jsonl,
)
from minipamayo_ros.replay.tolerances import (
    Tol,
    ToleranceError,
    ToleranceTable,
    auto_profile,
    load_table,
    token_edit_distance,
)

EXIT_OK, EXIT_REGRESSION, EXIT_ERROR = 0, 1, 2


@dataclass
class ItemResult:
    """One compared item (a frame's trajectory or skip, a control command, an explanation)."""

    kind: str  # trajectory | skip | control | explanation
    stamp_ns: int
    passed: bool
    status: str  # identical | within_tolerance | out_of_tolerance | missing | unexpected | changed
    metrics: dict[str, float] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    def line(self) -> dict[str, Any]:
        return {
            "kind": "frame" if self.kind in ("trajectory", "skip") else self.kind,
            "output": self.kind,
            "stamp_ns": self.stamp_ns,
            "stamp": round(self.stamp_ns * 1e-9, 9),
            "passed": self.passed,
            "status": self.status,
            "metrics": {k: _r(v) for k, v in self.metrics.items()},
            "failures": self.failures,
        }


@dataclass
class Comparison:
    items: list[ItemResult]
    gates: list[dict[str, Any]]
    profile: str
    tolerances: dict[str, Tol]
    golden: Meta
    replayed: Meta
    match_only: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[ItemResult]:
        return [i for i in self.items if not i.passed]

    @property
    def passed(self) -> bool:
        return not self.failed and all(g["passed"] for g in self.gates)

    def verdict(self) -> dict[str, Any]:
        gates_failed = [g["gate"] for g in self.gates if not g["passed"]]
        worst = max(self.failed, key=lambda i: i.metrics.get("ade_m", math.inf), default=None)
        if self.passed:
            reason = f"all {len(self.items)} outputs match the golden under profile '{self.profile}'"
        else:
            parts = []
            if self.failed:
                parts.append(
                    f"{len(self.failed)} of {len(self.items)} outputs differ "
                    f"(first at stamp {self.failed[0].stamp_ns * 1e-9:.3f} s: "
                    f"{'; '.join(self.failed[0].failures[:2])})"
                )
            if gates_failed:
                parts.append(f"latency gates failed: {', '.join(gates_failed)}")
            reason = "; ".join(parts)
        return {
            "kind": "verdict",
            "passed": self.passed,
            "verdict": "PASS" if self.passed else "REGRESSION",
            "items": len(self.items),
            "failed": len(self.failed),
            "gates_failed": gates_failed,
            "profile": self.profile,
            "worst_stamp_ns": worst.stamp_ns if worst else None,
            "reason": reason,
        }

    def summary(self) -> dict[str, Any]:
        traj = [i for i in self.items if i.kind == "trajectory" and i.metrics]
        by_status: dict[str, int] = {}
        for i in self.items:
            key = f"{i.kind}:{i.status}"
            by_status[key] = by_status.get(key, 0) + 1
        agg: dict[str, Any] = {}
        for m in ("ade_m", "fde_m", "max_dev_m", "speed_err_mps", "uncertainty_err_m"):
            vals = np.array([i.metrics[m] for i in traj if m in i.metrics])
            if vals.size:
                agg[m] = {"mean": _r(vals.mean()), "p95": _r(np.percentile(vals, 95)), "max": _r(vals.max())}
        return {
            "verdict": self.verdict(),
            "counts": by_status,
            "trajectory_errors": agg,
            "latency_gates": self.gates,
            "profile": self.profile,
            "tolerances": {k: asdict(v) for k, v in self.tolerances.items()},
            "match_only": self.match_only,
            "golden": asdict(self.golden),
            "replayed": asdict(self.replayed),
            "notes": self.notes,
            "load_average": _loadavg(),
        }


def _r(v: float) -> float | None:
    v = float(v)
    return None if not math.isfinite(v) else float(f"{v:.6g}")


def _loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


# --- comparison -----------------------------------------------------------------------------------


def _trajectory_metrics(a: TrajectoryRecord, b: TrajectoryRecord) -> dict[str, float]:
    pa = np.stack((a.x, a.y), axis=1)
    pb = np.stack((b.x, b.y), axis=1)
    if pa.shape != pb.shape:
        return {"ade_m": math.inf, "fde_m": math.inf, "max_dev_m": math.inf}
    d = np.linalg.norm(pa - pb, axis=1)
    return {
        "ade_m": float(d.mean()),
        "fde_m": float(d[-1]),
        "max_dev_m": float(d.max()),
        "speed_err_mps": float(np.max(np.abs(np.subtract(a.speed, b.speed))))
        if len(a.speed) == len(b.speed)
        else math.inf,
        "uncertainty_err_m": abs(a.uncertainty - b.uncertainty),
    }


def _check(name: str, tol: Tol, replayed: Any, golden: Any, failures: list[str], label: str = "") -> bool:
    ok, i, diff, allowed = tol.check(replayed, golden)
    if not ok:
        r = np.asarray(replayed, dtype=float).reshape(-1)
        g = np.asarray(golden, dtype=float).reshape(-1)
        if i < 0:
            failures.append(f"{label or name}: size {r.size} vs golden {g.size}")
        else:
            where = f"[{i}]" if r.size > 1 else ""
            failures.append(
                f"{label or name}{where}: replayed {r[i]:.6g} vs golden {g[i]:.6g}, |diff| {diff:.3g} > "
                f"allowed {allowed:.3g} ({tol.describe()})"
            )
    return ok


def compare_trajectory(a: TrajectoryRecord, b: TrajectoryRecord, tols: dict[str, Tol]) -> ItemResult:
    metrics = _trajectory_metrics(a, b)
    failures: list[str] = []
    ok = _check("waypoints", tols["waypoints"], a.x, b.x, failures, "waypoint x")
    ok &= _check("waypoints", tols["waypoints"], a.y, b.y, failures, "waypoint y")
    ok &= _check("speed", tols["speed"], a.speed, b.speed, failures)
    ok &= _check("uncertainty", tols["uncertainty"], a.uncertainty, b.uncertainty, failures)
    identical = a.x == b.x and a.y == b.y and a.speed == b.speed and a.uncertainty == b.uncertainty
    status = "identical" if identical else ("within_tolerance" if ok else "out_of_tolerance")
    return ItemResult("trajectory", a.stamp_ns, ok, status, metrics, failures)


def compare_outputs(
    replayed: Outputs,
    golden: Outputs,
    table: ToleranceTable,
    profile: str = "auto",
    latency_gates: bool = True,
    match_only: bool = False,
) -> Comparison:
    """Everything ``compare`` checks; ``match_only`` ignores outputs present on one side only
    (real-time replays over DDS drop frames by design: their drops are reported, not judged)."""
    rm, gm = replayed.meta, golden.meta
    if profile == "auto":
        profile = auto_profile(rm.backend, rm.precision, rm.model_id, gm.model_id)
    tols = table.profile(profile)
    items: list[ItemResult] = []
    notes: list[str] = []
    if rm.model_id and gm.model_id and rm.model_id != gm.model_id:
        notes.append(f"model differs from the golden's: replayed {rm.model_id}, golden {gm.model_id}")
    for lib in ("onnxruntime",):
        va, vb = rm.extra.get(lib), gm.extra.get(lib)
        if va and vb and va != vb:
            notes.append(f"{lib} version differs: replayed {va}, golden {vb} (kernels may round differently)")

    # frames: a trajectory or a skip per input stamp
    r_frames: dict[int, TrajectoryRecord | SkipRecord] = {r.stamp_ns: r for r in replayed.skips}
    r_frames.update({r.stamp_ns: r for r in replayed.trajectories})
    g_frames: dict[int, TrajectoryRecord | SkipRecord] = {r.stamp_ns: r for r in golden.skips}
    g_frames.update({r.stamp_ns: r for r in golden.trajectories})
    for s in sorted(set(r_frames) | set(g_frames)):
        a, b = r_frames.get(s), g_frames.get(s)
        if isinstance(a, TrajectoryRecord) and isinstance(b, TrajectoryRecord):
            items.append(compare_trajectory(a, b, tols))
        elif a is None or b is None:
            if match_only:
                continue
            have = a if a is not None else b
            assert have is not None
            what = "trajectory" if isinstance(have, TrajectoryRecord) else f"skip ({have.category})"
            if a is None:
                items.append(
                    ItemResult(
                        have.kind,
                        s,
                        False,
                        "missing",
                        {},
                        [f"golden has a {what} for this frame, the replay has nothing"],
                    )
                )
            else:
                items.append(
                    ItemResult(
                        have.kind,
                        s,
                        False,
                        "unexpected",
                        {},
                        [f"replay has a {what} for a frame the golden does not have"],
                    )
                )
        elif isinstance(a, SkipRecord) and isinstance(b, SkipRecord):
            same = a.category == b.category
            items.append(
                ItemResult(
                    "skip",
                    s,
                    same,
                    "identical" if same else "changed",
                    {},
                    [] if same else [f"skipped as '{a.category}', golden '{b.category}'"],
                )
            )
        else:
            if match_only and isinstance(a, SkipRecord) and a.category == "dropped_rate":
                continue
            r_what = "trajectory" if isinstance(a, TrajectoryRecord) else f"skip '{a.category}' ({a.reason})"
            g_what = "trajectory" if isinstance(b, TrajectoryRecord) else f"skip '{b.category}'"
            items.append(
                ItemResult(
                    "trajectory" if isinstance(b, TrajectoryRecord) else "skip",
                    s,
                    False,
                    "changed",
                    {},
                    [f"replay produced a {r_what}, golden a {g_what}"],
                )
            )

    # follower commands
    r_ctl = {c.stamp_ns: c for c in replayed.controls}
    g_ctl = {c.stamp_ns: c for c in golden.controls}
    for s in sorted(set(r_ctl) | set(g_ctl)):
        ca, cb = r_ctl.get(s), g_ctl.get(s)
        if ca is None or cb is None:
            if not match_only:
                items.append(
                    ItemResult(
                        "control",
                        s,
                        False,
                        "missing" if ca is None else "unexpected",
                        {},
                        ["control command only in the " + ("golden" if ca is None else "replay")],
                    )
                )
            continue
        items.append(_compare_control(ca, cb, tols))

    # explanations: (stamp, event) exact, text within the token-edit budget
    r_exp = {(e.stamp_ns, e.event): e for e in replayed.explanations}
    g_exp = {(e.stamp_ns, e.event): e for e in golden.explanations}
    for key in sorted(set(r_exp) | set(g_exp)):
        ea, eb = r_exp.get(key), g_exp.get(key)
        if ea is None or eb is None:
            if not match_only:
                items.append(
                    ItemResult(
                        "explanation",
                        key[0],
                        False,
                        "missing" if ea is None else "unexpected",
                        {},
                        [
                            f"explanation (event {key[1]}) only in the "
                            + ("golden" if ea is None else "replay")
                        ],
                    )
                )
            continue
        d = token_edit_distance(ea.text, eb.text)
        ok = d <= table.max_token_edits
        items.append(
            ItemResult(
                "explanation",
                key[0],
                ok,
                "identical" if ea.text == eb.text else ("within_tolerance" if ok else "out_of_tolerance"),
                {"token_edits": float(d)},
                []
                if ok
                else [
                    f"text differs by {d} tokens (> {table.max_token_edits}): "
                    f"'{ea.text}' vs golden '{eb.text}'"
                ],
            )
        )
    items.sort(key=lambda i: (i.stamp_ns, i.kind))

    gates: list[dict[str, Any]] = []
    if latency_gates and table.latency.budgets_ms:
        lat_field = table.latency.metric
        samples = [getattr(t, lat_field, float("nan")) for t in replayed.trajectories]
        gates = table.latency.evaluate(samples)
        load = _loadavg()
        for g in gates:
            g["load_average"] = load
    return Comparison(items, gates, profile, tols, gm, rm, match_only, notes)


def _compare_control(a: ControlRecord, b: ControlRecord, tols: dict[str, Tol]) -> ItemResult:
    failures: list[str] = []
    ok = a.status == b.status
    if not ok:
        failures.append(f"control status {a.status}, golden {b.status}")
    ok &= _check("control_speed", tols["control_speed"], a.speed, b.speed, failures)
    ok &= _check("control_steering", tols["control_steering"], a.steering_angle, b.steering_angle, failures)
    identical = (a.status, a.speed, a.steering_angle) == (b.status, b.speed, b.steering_angle)
    return ItemResult(
        "control",
        a.stamp_ns,
        ok,
        "identical" if identical else ("within_tolerance" if ok else "out_of_tolerance"),
        {
            "speed_err_mps": abs(a.speed - b.speed),
            "steering_err_rad": abs(a.steering_angle - b.steering_angle),
        },
        failures,
    )


# --- loading ---------------------------------------------------------------------------------------


def load_outputs(
    path: Path | str, trajectory_topic: str = "/vla/trajectory", explanation_topic: str = "/vla/explanation"
) -> Outputs:
    """Replayed or golden outputs from a JSON-lines file or from a bag (its Trajectory/Explanation topics)."""
    p = Path(path)
    if p.suffix == ".jsonl" or (p.is_file() and p.suffix not in (".mcap", ".db3")):
        if not p.exists():
            raise FileNotFoundError(f"outputs file {p} does not exist")
        return read_jsonl(p)
    from minipamayo_ros.replay.bagio import EXPLANATION, TRAJECTORY, BagError, BagReader
    from minipamayo_ros.replay.messages import explanation_record, trajectory_record

    with BagReader(p) as r:
        assert r.info is not None
        traj = [t.name for t in r.info.topics_of(TRAJECTORY)]
        expl = [t.name for t in r.info.topics_of(EXPLANATION)]
        if trajectory_topic not in traj and not expl:
            raise BagError(
                f"bag {p} has no {TRAJECTORY} on '{trajectory_topic}' and no explanations; "
                f"topics: {r.info.listing()}"
            )
        model = ""
        out = Outputs(Meta(mode="bag", bag=str(p)))
        for topic, _, _, msg in r.messages(
            [trajectory_topic, *([explanation_topic] if explanation_topic in expl else [])]
        ):
            if topic == trajectory_topic:
                rec = trajectory_record(msg)
                model = model or rec.model_id
                out.add(rec)
            else:
                out.add(explanation_record(msg))
        out.meta.model_id = model
    return out


# --- writing ---------------------------------------------------------------------------------------


def write_results(
    cmp: Comparison,
    out_dir: Path,
    bag: Path | None = None,
    replayed: Outputs | None = None,
    golden: Outputs | None = None,
    plots: bool = True,
    name: str = "replay",
) -> dict[str, Path]:
    """``frames.jsonl`` (+ verdict line), ``summary.json``, ``junit.xml``, ``report.png``."""
    from minipamayo_ros.replay.report import plot_report, write_junit

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "frames": out_dir / "frames.jsonl",
        "summary": out_dir / "summary.json",
        "junit": out_dir / "junit.xml",
    }
    with paths["frames"].open("w") as f:
        for item in cmp.items:
            f.write(json.dumps(item.line(), separators=(",", ":")) + "\n")
        f.write(json.dumps(cmp.verdict(), separators=(",", ":")) + "\n")
    paths["summary"].write_text(json.dumps(cmp.summary(), indent=2, default=str) + "\n")
    write_junit(cmp, paths["junit"], name)
    if plots and replayed is not None and golden is not None:
        paths["report"] = out_dir / "report.png"
        plot_report(cmp, replayed, golden, paths["report"], bag=bag)
    return paths


def describe(cmp: Comparison, limit: int = 5) -> str:
    """A readable multi-line summary for the console."""
    v = cmp.verdict()
    lines = [f"[compare] {v['verdict']}: {v['reason']}"]
    s = cmp.summary()["trajectory_errors"]
    if s:
        lines.append(
            "[compare] trajectory error vs golden: "
            + ", ".join(f"{k} mean {d['mean']} max {d['max']}" for k, d in s.items())
        )
    for f in cmp.failed[:limit]:
        lines.append(
            f"[compare]   {f.kind} @ {f.stamp_ns * 1e-9:.3f} s ({f.status}): {'; '.join(f.failures[:3])}"
        )
    if len(cmp.failed) > limit:
        lines.append(f"[compare]   ... and {len(cmp.failed) - limit} more (frames.jsonl)")
    for g in cmp.gates:
        lines.append(
            f"[compare] gate {g['gate']}: {g['value_ms']:.2f} ms (budget {g['budget_ms']:g} ms) "
            f"{'ok' if g['passed'] else 'FAILED'}"
        )
    lines.extend(f"[compare] note: {n}" for n in cmp.notes)
    return "\n".join(lines)


def non_finite_outputs(outputs: Outputs) -> list[str]:
    """Where ``outputs`` hold NaN / inf in a value a golden pins (timing fields excluded):
    ``"trajectory @ 1.100 s: x[3] = nan"``. A golden must never be written from such outputs."""
    found = []
    for rec in outputs.records():
        for name, value in asdict(rec).items():
            if name in TIMING_FIELDS or isinstance(value, (str, bool)) or value is None:
                continue
            values = value if isinstance(value, list) else [value]
            bad = [i for i, v in enumerate(values) if isinstance(v, float) and not math.isfinite(v)]
            if bad:
                where = f"{name}[{bad[0]}]" if isinstance(value, list) else name
                found.append(f"{rec.kind} @ {rec.stamp_ns * 1e-9:.3f} s: {where} = {values[bad[0]]}")
    return found


def update_golden(replayed: Outputs, golden_path: Path, old: Outputs | None, table: ToleranceTable) -> str:
    """Write ``replayed`` as the new golden (stamped: commit, model, backend, precision); say what changed.

    Raises ValueError (nothing written) when the outputs hold non-finite values."""
    from minipamayo_ros.replay.lockstep import git_commit

    bad = non_finite_outputs(replayed)
    if bad:
        raise ValueError(f"refusing to write golden {golden_path}: {len(bad)} non-finite output value(s), "
                         f"first: {'; '.join(bad[:3])}")

    meta = Meta(
        **{
            **asdict(replayed.meta),
            "mode": "golden",
            "git_commit": git_commit() or replayed.meta.git_commit,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
    )
    new = Outputs(meta, replayed.trajectories, replayed.skips, replayed.controls, replayed.explanations)
    msg = [
        f"[golden] wrote {golden_path}: model {meta.model_id}, backend {meta.backend}/{meta.device}, "
        f"precision {meta.precision}, commit {meta.git_commit or '?'}"
    ]
    if old is not None:
        cmp = compare_outputs(replayed, old, table, profile="exact", latency_gates=False)
        changed = cmp.failed
        msg.append(
            f"[golden] changed vs the previous golden (commit {old.meta.git_commit or '?'}, model "
            f"{old.meta.model_id or '?'}): {len(changed)} of {len(cmp.items)} outputs"
        )
        s = cmp.summary()["trajectory_errors"]
        if s:
            msg.append("[golden]   " + ", ".join(f"{k} max {d['max']}" for k, d in s.items()))
        for f in changed[:5]:
            msg.append(f"[golden]   {f.kind} @ {f.stamp_ns * 1e-9:.3f} s: {'; '.join(f.failures[:2])}")
    else:
        msg.append(
            f"[golden] new golden: {len(new.trajectories)} trajectories, {len(new.skips)} skips, "
            f"{len(new.controls)} controls, {len(new.explanations)} explanations"
        )
    golden_path.parent.mkdir(parents=True, exist_ok=True)
    new.write(golden_path)
    return "\n".join(msg)


def run_compare(
    replayed_path: Path,
    golden_path: Path,
    out_dir: Path | None,
    profile: str = "auto",
    tolerances: Path | None = None,
    latency_gates: bool = True,
    match_only: bool = False,
    update: bool = False,
    bag: Path | None = None,
    plots: bool = True,
    replayed: Outputs | None = None,
    name: str = "replay",
) -> tuple[int, Comparison | None, str]:
    """The CLI's work, callable from ``replay`` and ``corpus``: ``(exit code, comparison, console text)``."""
    table = load_table(tolerances)
    rep = replayed if replayed is not None else load_outputs(replayed_path)
    gold = load_outputs(golden_path) if golden_path.exists() else None
    if update:
        text = update_golden(rep, golden_path, gold, table)
        return EXIT_OK, None, text
    if gold is None:
        return (
            EXIT_ERROR,
            None,
            (
                f"[compare] golden {golden_path} does not exist; create it with --update-golden "
                "after checking the replay"
            ),
        )
    cmp = compare_outputs(rep, gold, table, profile, latency_gates, match_only)
    if out_dir is not None:
        bag_path = bag or (Path(rep.meta.bag.split(", ")[0]) if rep.meta.bag else None)
        write_results(
            cmp, out_dir, bag_path if bag_path and bag_path.exists() else None, rep, gold, plots, name
        )
    return (EXIT_OK if cmp.passed else EXIT_REGRESSION), cmp, describe(cmp)


def add_compare_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--profile", default="auto", help="tolerance profile (auto: from the replayed backend/precision)"
    )
    p.add_argument(
        "--tolerances", type=Path, default=None, help="tolerance file (default config/replay.yaml)"
    )
    p.add_argument(
        "--no-latency-gates",
        dest="latency_gates",
        action="store_false",
        help="skip the p95/p99/max latency gates (e.g. on a loaded shared machine)",
    )
    p.add_argument(
        "--match-only",
        action="store_true",
        help="judge only outputs present on both sides (real-time replays drop frames by design)",
    )
    p.add_argument(
        "--update-golden",
        action="store_true",
        help="write the replayed outputs as the new golden and print what changed",
    )
    p.add_argument("--no-plots", dest="plots", action="store_false", help="skip report.png")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--replayed", type=Path, required=True, help="replayed outputs (JSON lines or a bag)")
    p.add_argument("--golden", type=Path, required=True, help="golden outputs (JSON lines or a bag)")
    p.add_argument("--out", type=Path, default=None, help="report folder (default: beside --replayed)")
    p.add_argument("--bag", type=Path, default=None, help="input bag, for the frames in report.png")
    add_compare_arguments(p)
    a = p.parse_args(argv)
    out = a.out or (a.replayed.parent if a.replayed.suffix == ".jsonl" else a.replayed.parent / "compare")
    try:
        code, _, text = run_compare(
            a.replayed,
            a.golden,
            out,
            a.profile,
            a.tolerances,
            a.latency_gates,
            a.match_only,
            a.update_golden,
            a.bag,
            a.plots,
        )
    except (ToleranceError, FileNotFoundError, ValueError, RuntimeError) as exc:
        print(f"[compare] error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    print(text)
    if code != EXIT_ERROR and not a.update_golden:
        print(f"[compare] report: {out}/ (frames.jsonl, summary.json, junit.xml, report.png)")
    return code


if __name__ == "__main__":
    sys.exit(main())
