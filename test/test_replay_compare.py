"""compare: the tolerance rule, profiles, latency gates, text semantics, matching, golden updates."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import yaml

from minipamayo_ros.replay import compare, lockstep
from minipamayo_ros.replay.bagio import EXPLANATION, TRAJECTORY, BagWriter
from minipamayo_ros.replay.messages import explanation_msg, trajectory_msg
from minipamayo_ros.replay.records import (
    ControlRecord,
    ExplanationRecord,
    Meta,
    Outputs,
    SkipRecord,
    TrajectoryRecord,
    read_jsonl,
)
from minipamayo_ros.replay.tolerances import (
    FIELDS,
    LatencyGates,
    Tol,
    ToleranceError,
    auto_profile,
    load_table,
    token_edit_distance,
)

REPO = Path(__file__).resolve().parents[1]


def _traj(
    stamp: int, shift: float = 0.0, speed_bias: float = 0.0, unc: float = 0.2, inference_ms: float = 4.0
) -> TrajectoryRecord:
    """Values a float32 model could output (bags store float32)."""

    def f32(v: float) -> float:
        return float(np.float32(v))

    return TrajectoryRecord(
        stamp_ns=stamp,
        sequence=1,
        x=[f32(0.5 * (i + 1) + shift) for i in range(20)],
        y=[0.0] * 20,
        speed=[f32(5.0 + speed_bias)] * 20,
        uncertainty=f32(unc),
        model_id="m@1",
        inference_ms=inference_ms,
        total_ms=inference_ms + 1.0,
    )


def _outputs(*recs: object, backend: str = "onnxruntime", model: str = "m@1") -> Outputs:
    out = Outputs(Meta(model_id=model, backend=backend, device="cpu", precision="float32"))
    for r in recs:
        out.add(r)  # type: ignore[arg-type]
    return out


def test_tolerance_rule_is_openpilots() -> None:
    t = Tol(atol=0.1, rtol=0.01)
    assert t.check([1.05], [1.0])[0]  # |d| 0.05 <= atol
    assert not t.check([1.2], [1.0])[0]  # 0.2 > max(0.1, 0.012)
    assert t.check([100.9], [100.0])[0]  # 0.9 <= rtol * 100.9
    assert not t.check([102.0], [100.0])[0]  # 2.0 > 1.02
    ok, i, diff, allowed = Tol(0.0, 0.0).check([1.0, 2.0, 3.5], [1.0, 2.0, 3.0])
    assert (ok, i, diff, allowed) == (False, 2, 0.5, 0.0)
    assert Tol(0.0, 0.0).check([1.0], [1.0])[0]
    assert not Tol(1.0, 1.0).check([float("nan")], [1.0])[0]  # NaN never passes
    assert not Tol(1.0, 1.0).check([1.0, 2.0], [1.0])[0]  # shape change never passes


def test_shipped_table_has_every_field_and_profile() -> None:
    table = load_table(REPO / "config" / "replay.yaml")
    assert set(table.profiles) >= {"exact", "fp16", "int8"}
    assert all(set(p) == set(FIELDS) for p in table.profiles.values())
    assert all(t == Tol(0.0, 0.0) for t in table.profile("exact").values())
    for f in FIELDS:  # looser for lower precision
        assert table.profile("int8")[f].atol >= table.profile("fp16")[f].atol > 0.0
    assert set(table.latency.budgets_ms) == {"p95", "p99", "max"}
    with pytest.raises(ToleranceError, match="profile 'bf8'"):
        table.profile("bf8")


def test_bad_tolerance_file_is_refused(tmp_path: Path) -> None:
    doc = yaml.safe_load((REPO / "config" / "replay.yaml").read_text())
    del doc["profiles"]["exact"]["speed"]["rtol"]
    (tmp_path / "t.yaml").write_text(yaml.safe_dump(doc))
    with pytest.raises(ToleranceError, match="exact.speed needs atol and rtol"):
        load_table(tmp_path / "t.yaml")


def test_auto_profile_by_backend_and_precision() -> None:
    assert auto_profile("onnxruntime", "float32", "p@1", "p@1") == "exact"
    assert auto_profile("onnxruntime", "float32", "p-int8@2", "p@1") == "int8"
    assert auto_profile("tensorrt", "fp16", "p@1", "p@1") == "fp16"
    assert auto_profile("tensorrt", "int8", "p@1", "p@1") == "int8"
    assert auto_profile("torch", "bf16", "p@1", "p@1") == "fp16"


def test_latency_gates_pass_and_fail() -> None:
    gates = LatencyGates("total_ms", {"p95": 25.0, "p99": 35.0, "max": 100.0})
    fast = gates.evaluate([5.0] * 99 + [30.0])
    assert [g["passed"] for g in fast] == [True, True, True]
    slow = gates.evaluate([5.0] * 90 + [40.0] * 10)
    assert [g["passed"] for g in slow] == [False, False, True]
    assert slow[0]["gate"] == "total_ms p95" and slow[0]["value_ms"] == pytest.approx(40.0)
    assert not any(g["passed"] for g in gates.evaluate([]))  # no samples is no evidence


def test_identical_outputs_pass_and_latency_gate_can_fail() -> None:
    table = load_table()
    g = _outputs(_traj(1), _traj(2), SkipRecord(3, "no_odometry"))
    cmp = compare.compare_outputs(_outputs(_traj(1), _traj(2), SkipRecord(3, "no_odometry")), g, table)
    assert cmp.passed and all(i.status == "identical" for i in cmp.items)
    slow = _outputs(_traj(1, inference_ms=80.0), _traj(2, inference_ms=80.0), SkipRecord(3, "no_odometry"))
    cmp = compare.compare_outputs(slow, g, table)
    assert not cmp.passed and not cmp.failed
    assert cmp.verdict()["gates_failed"] == ["total_ms p95", "total_ms p99"]


def test_differences_are_named() -> None:
    table = load_table()
    golden = _outputs(
        _traj(1), _traj(2), SkipRecord(3, "no_odometry"), _traj(4), SkipRecord(5, "dropped_rate")
    )
    replayed = _outputs(
        _traj(1, shift=0.01), SkipRecord(2, "invalid_output", "nan"), SkipRecord(3, "stale_image"), _traj(6)
    )
    cmp = compare.compare_outputs(replayed, golden, table, profile="fp16", latency_gates=False)
    by_stamp = {i.stamp_ns: i for i in cmp.items}
    assert by_stamp[1].passed and by_stamp[1].status == "within_tolerance"  # 1 cm under fp16
    assert by_stamp[1].metrics["ade_m"] == pytest.approx(0.01, abs=1e-6)
    assert by_stamp[2].status == "changed" and "skip 'invalid_output'" in by_stamp[2].failures[0]
    assert (
        by_stamp[3].status == "changed" and "'stale_image', golden 'no_odometry'" in by_stamp[3].failures[0]
    )
    assert by_stamp[4].status == "missing" and by_stamp[5].status == "missing"
    assert by_stamp[6].status == "unexpected"
    assert not cmp.passed and len(cmp.failed) == 5
    # the same under exact: the 1 cm shift is a regression, with the numbers
    exact = compare.compare_outputs(replayed, golden, table, profile="exact", latency_gates=False)
    first = next(i for i in exact.items if i.stamp_ns == 1)
    assert not first.passed and first.failures[0].startswith("waypoint x[")
    assert "|diff| 0.01 > allowed 0" in first.failures[0]
    # match-only judges only what both sides have
    mo = compare.compare_outputs(
        replayed, golden, table, profile="fp16", latency_gates=False, match_only=True
    )
    assert {i.stamp_ns for i in mo.items} == {1, 2, 3}


def test_control_outputs_are_compared() -> None:
    table = load_table()
    g = _outputs(ControlRecord(10, 0, 5.0, 0.1, 0.04), ControlRecord(20, 0, 5.0, 0.1, 0.04))
    r = _outputs(ControlRecord(10, 0, 5.0, 0.1, 0.04), ControlRecord(20, 1, 4.0, 0.1, 0.04))
    cmp = compare.compare_outputs(r, g, table, latency_gates=False)
    bad = cmp.failed
    assert len(bad) == 1 and bad[0].stamp_ns == 20 and "control status 1, golden 0" in bad[0].failures[0]


def test_explanations_are_compared_semantically() -> None:
    """Event kind and stamp exact; text within the token-edit budget, never byte for byte."""
    table = load_table()
    assert token_edit_distance("slow down for the stop line", "slow down for stop line") == 1
    assert token_edit_distance("a b c", "x y z") == 3
    golden = _outputs(
        ExplanationRecord(100, 3, "stop line ahead slowing down"),
        ExplanationRecord(200, 1, "curve to the left keep lane"),
        ExplanationRecord(300, 4, "obstacle ahead braking"),
    )
    replayed = _outputs(
        ExplanationRecord(100, 3, "stop line ahead  slowing down now"),  # 1 edit: ok
        ExplanationRecord(200, 1, "right bend ahead turning the wheel hard"),  # many edits
        ExplanationRecord(300, 2, "obstacle ahead braking"),
    )  # other event kind
    cmp = compare.compare_outputs(replayed, golden, table, latency_gates=False)
    res = {(i.stamp_ns, i.status) for i in cmp.items}
    assert (100, "within_tolerance") in res and (200, "out_of_tolerance") in res
    assert (300, "missing") in res and (300, "unexpected") in res
    assert not cmp.passed


def test_golden_from_a_bag_equals_golden_from_json_lines(tmp_path: Path) -> None:
    recs = [_traj(10**9 + k * 10**8, shift=0.001 * k) for k in range(5)]
    exps = [ExplanationRecord(10**9, 3, "stop line ahead", [5, 6, 7], 1)]
    with BagWriter(tmp_path / "g", "mcap") as w:
        for r in recs:
            w.write("/vla/trajectory", TRAJECTORY, r.stamp_ns, trajectory_msg(r))
        for e in exps:
            w.write("/vla/explanation", EXPLANATION, e.stamp_ns, explanation_msg(e))
    from_bag = compare.load_outputs(tmp_path / "g")
    assert from_bag.meta.model_id == "m@1" and from_bag.explanations[0].text == "stop line ahead"
    cmp = compare.compare_outputs(_outputs(*recs, *exps), from_bag, load_table(), latency_gates=False)
    assert cmp.passed and all(i.status == "identical" for i in cmp.items)


def test_update_golden_stamps_and_reports_changes(tmp_path: Path) -> None:
    golden = tmp_path / "g.jsonl"
    first = _outputs(_traj(1), _traj(2))
    code, _, text = compare.run_compare(tmp_path / "x.jsonl", golden, None, update=True, replayed=first)
    assert code == 0 and "new golden: 2 trajectories" in text
    meta = read_jsonl(golden).meta
    assert meta.mode == "golden" and meta.model_id == "m@1" and meta.backend == "onnxruntime" and meta.created
    assert meta.precision == "float32" and meta.device == "cpu"
    assert meta.git_commit == lockstep.git_commit() and len(meta.git_commit.removesuffix("-dirty")) == 40
    assert f"commit {meta.git_commit}" in text and "precision float32" in text
    second = _outputs(_traj(1), _traj(2, speed_bias=0.5), model="m@2")
    code, _, text = compare.run_compare(tmp_path / "x.jsonl", golden, None, update=True, replayed=second)
    assert "changed vs the previous golden" in text and "1 of 2 outputs" in text and "speed[" in text
    assert read_jsonl(golden).meta.model_id == "m@2"


def test_update_golden_refuses_non_finite_outputs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 19: a golden is never written from NaN outputs (before: written, exit 0)."""
    bad = _traj(2 * 10**9)
    bad.x[3] = float("nan")
    replayed = tmp_path / "replayed.jsonl"
    _outputs(_traj(10**9), bad).write(replayed)
    golden = tmp_path / "golden.jsonl"
    assert compare.main(["--replayed", str(replayed), "--golden", str(golden), "--update-golden"]) == 2
    assert not golden.exists()
    assert "trajectory @ 2.000 s: x[3] = nan" in capsys.readouterr().err
    ctrl = _outputs(_traj(10**9), ControlRecord(10**9, 0, float("inf"), 0.0, 0.0))
    with pytest.raises(ValueError, match="control @ 1.000 s: speed = inf"):
        compare.run_compare(replayed, golden, None, update=True, replayed=ctrl)


def test_reports_are_written(tmp_path: Path) -> None:
    golden = _outputs(_traj(10**9), _traj(2 * 10**9), _traj(3 * 10**9))
    replayed = _outputs(_traj(10**9), _traj(2 * 10**9, shift=0.3), _traj(3 * 10**9))
    replayed.meta = replace(replayed.meta, image_topic="")
    cmp = compare.compare_outputs(replayed, golden, load_table(), latency_gates=True)
    paths = compare.write_results(cmp, tmp_path, None, replayed, golden, plots=True, name="unit")
    lines = [json.loads(x) for x in paths["frames"].read_text().splitlines()]
    assert [x["kind"] for x in lines] == ["frame"] * 3 + ["verdict"]
    assert lines[-1]["verdict"] == "REGRESSION" and lines[-1]["failed"] == 1
    suite = ET.parse(paths["junit"]).getroot()
    assert suite.get("tests") == "6" and suite.get("failures") == "1"
    failure = suite.find("testcase/failure")
    assert failure is not None and "out_of_tolerance" in failure.get("message", "")
    summary = json.loads(paths["summary"].read_text())
    assert summary["trajectory_errors"]["ade_m"]["max"] == pytest.approx(0.3, abs=1e-6)
    assert paths["report"].stat().st_size > 10_000
