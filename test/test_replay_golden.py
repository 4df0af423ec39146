"""The regression suite on its golden bag: replay + compare with the shipped engine passes, is
bit-identical run to run, and a perturbed model fails with a readable report.

Golden data: ``test/data/replay/`` (how it was made: README there).
"""

from __future__ import annotations

import hashlib
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from minipamayo_ros import seeds
from minipamayo_ros.replay import compare, lockstep
from minipamayo_ros.replay.records import read_jsonl
from minipamayo_ros.replay.replay import main as replay_main

DATA = Path(__file__).resolve().parent / "data" / "replay"
BAG = DATA / "sim_seed20008"
GOLDEN = DATA / "sim_seed20008.golden.jsonl"
GOLDEN_SEED = 20008
ENGINES = Path(__file__).resolve().parents[1] / "engines"


def _settings(manifest: str | None = None) -> lockstep.LockstepSettings:
    """What the golden was made with: the stack's parameter files, follower and text cores on."""
    overrides = {"manifest_path": manifest} if manifest else {}
    return lockstep.settings_from_config("drive.yaml", overrides, follower=True, text=True)


def test_golden_data_is_small_and_from_a_test_seed() -> None:
    size = sum(f.stat().st_size for f in BAG.iterdir())
    assert size <= 10e6, f"golden bag is {size / 1e6:.1f} MB (limit 10 MB)"
    meta = read_jsonl(GOLDEN).meta
    assert meta.mode == "golden" and meta.model_id.startswith("minipamayo-tiny-policy@")
    assert meta.backend == "onnxruntime" and meta.git_commit and meta.precision
    assert seeds.split_of(GOLDEN_SEED) == seeds.TEST  # never a seed the model trained or was tuned on


def test_golden_bag_replays_identically_to_the_golden_3_times(tmp_path: Path) -> None:
    """Flake rate 0: three lock-step replays give the same bits, and they equal the golden."""
    settings = _settings()
    pipeline = lockstep.build_pipeline(settings.policy)
    golden = read_jsonl(GOLDEN)
    text = lockstep.build_text(settings.text)
    runs = [
        lockstep.run_lockstep(BAG, settings, pipeline=pipeline, text=text, progress=False).outputs
        for _ in range(3)
    ]
    lines = [r.deterministic_lines() for r in runs]
    flakes = sum(x != lines[0] for x in lines[1:])
    print(f"MEASURED lock-step flake rate: {flakes}/{len(lines) - 1} repeats differ from the first run")
    assert flakes == 0 and lines[0] == lines[1] == lines[2]
    assert lines[0] == golden.deterministic_lines()
    assert len(runs[0].trajectories) >= 80 and len(runs[0].controls) >= 400
    assert {e.event for e in runs[0].explanations} >= {1}  # the drive's curve is explained
    table = compare.load_table()
    cmp = compare.compare_outputs(runs[0], golden, table, latency_gates=False)
    assert cmp.passed and cmp.profile == "exact"
    assert all(i.status == "identical" for i in cmp.items)


def test_replay_cli_passes_against_the_golden(tmp_path: Path) -> None:
    out = tmp_path / "out"
    rc = replay_main(
        [
            str(BAG),
            "--out",
            str(out),
            "--follower",
            "--text",
            "--golden",
            str(GOLDEN),
            "--no-progress",
            "--no-latency-gates",
        ]
    )
    assert rc == 0
    verdict = json.loads((out / "frames.jsonl").read_text().splitlines()[-1])
    assert verdict["kind"] == "verdict" and verdict["passed"] and verdict["verdict"] == "PASS"
    suite = ET.parse(out / "junit.xml").getroot()
    assert suite.get("failures") == "0" and int(suite.get("tests", 0)) > 500
    assert (out / "report.png").stat().st_size > 10_000


def _perturbed_manifest(tmp_path: Path, bias: float) -> Path:
    """The shipped policy with ``bias`` [m/s] added to its speeds output (a real ONNX graph edit)."""
    import onnx
    from onnx import helper, numpy_helper

    src = json.loads((ENGINES / "minipamayo-tiny-policy.manifest.json").read_text())
    model = onnx.load(str(ENGINES / src["file"]))
    g = model.graph
    for node in g.node:
        node.output[:] = ["speeds_unbiased" if o == "speeds" else o for o in node.output]
        node.input[:] = ["speeds_unbiased" if i == "speeds" else i for i in node.input]
    g.initializer.append(numpy_helper.from_array(np.array(bias, np.float32), "speed_bias"))
    g.node.append(helper.make_node("Add", ["speeds_unbiased", "speed_bias"], ["speeds"], name="perturb"))
    onnx.checker.check_model(model)
    path = tmp_path / "perturbed.onnx"
    onnx.save(model, str(path))
    src.update(
        file=path.name,
        name="minipamayo-tiny-policy-perturbed",
        sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
    )
    manifest = tmp_path / "perturbed.manifest.json"
    manifest.write_text(json.dumps(src))
    return manifest


def test_perturbed_model_fails_with_a_readable_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = _perturbed_manifest(tmp_path, bias=0.3)
    out = tmp_path / "out"
    rc = replay_main(
        [
            str(BAG),
            "--out",
            str(out),
            "--engine",
            str(manifest),
            "--follower",
            "--text",
            "--golden",
            str(GOLDEN),
            "--no-progress",
            "--no-latency-gates",
        ]
    )
    assert rc == 1
    text = capsys.readouterr().out
    assert "REGRESSION" in text and "speed[" in text and "golden" in text
    summary = json.loads((out / "summary.json").read_text())
    assert summary["verdict"]["passed"] is False
    assert "model differs" in " ".join(summary["notes"])
    # the bias shows up in the speed error (~0.3 m/s), the waypoints are the same model's
    assert 0.25 < summary["trajectory_errors"]["speed_err_mps"]["max"] < 0.35
    frames = [json.loads(x) for x in (out / "frames.jsonl").read_text().splitlines()]
    bad = [f for f in frames[:-1] if not f["passed"] and f["output"] == "trajectory"]
    assert bad and "speed[" in bad[0]["failures"][0]
    suite = ET.parse(out / "junit.xml").getroot()
    assert int(suite.get("failures", 0)) >= len(bad)
    assert (out / "report.png").stat().st_size > 10_000
