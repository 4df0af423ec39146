"""build_engine / verify_engine command-line tools (TensorRT paths end in a clear exit 2 here)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from minipamayo_ros.inference import load_manifest
from minipamayo_ros.tools import build_engine, verify_engine

ENGINES = Path(__file__).resolve().parents[1] / "engines"
POLICY = str(ENGINES / "minipamayo-tiny-policy.manifest.json")


def test_verify_engine_torch_vs_onnxruntime_passes_and_writes_report(tmp_path: Path, capsys) -> None:
    out = tmp_path / "report.json"
    rc = verify_engine.main(["--manifest", POLICY, "--backend", "torch", "--precision", "fp32",
                             "--device", "cpu", "--samples", "3", "--json", str(out)])
    printed = capsys.readouterr().out
    assert rc == 0, printed
    report = json.loads(out.read_text())
    assert report["pass"] and report["samples"] == 3
    assert set(report["outputs"]) == {"waypoints", "speeds", "uncertainty", "context"}
    assert all(r["max_abs_diff"] <= 1e-3 for r in report["outputs"].values())
    assert "PASS" in printed and "waypoints" in printed


def test_compare_flags_differences() -> None:
    m = load_manifest(POLICY)
    ref = [{s.name: np.zeros(s.shape, s.dtype) for s in m.outputs} for _ in range(2)]
    got = [{k: v.copy() for k, v in r.items()} for r in ref]
    got[1]["waypoints"][0, 5, 0] = 0.3  # 30 cm off at one waypoint
    report = verify_engine.compare(m, ref, got, atol=0.05, min_int_match=1.0)
    assert not report["pass"] and not report["outputs"]["waypoints"]["pass"]
    assert report["outputs"]["waypoints"]["max_abs_diff"] == pytest.approx(0.3)
    assert report["outputs"]["speeds"]["pass"]
    got[1]["waypoints"][0, 5, 0] = np.nan  # NaN never passes
    assert not verify_engine.compare(m, ref, got, atol=1e9, min_int_match=1.0)["pass"]


def test_compare_integer_outputs_by_exact_match() -> None:
    m = load_manifest(str(ENGINES / "minipamayo-tiny-text.manifest.json"))
    ref = [{s.name: np.zeros(s.shape, s.dtype) for s in m.outputs} for _ in range(10)]
    got = [{k: v.copy() for k, v in r.items()} for r in ref]
    got[0]["tokens"][0, 3] = 7
    r = verify_engine.compare(m, ref, got, atol=1e-3, min_int_match=0.9)
    assert r["outputs"]["tokens"] == {"exact_match_fraction": 0.9, "pass": True}
    assert not verify_engine.compare(m, ref, got, atol=1e-3, min_int_match=1.0)["pass"]


def test_sample_inputs_are_valid_and_start_with_zeros() -> None:
    m = load_manifest(str(ENGINES / "minipamayo-tiny-text.manifest.json"))
    xs = verify_engine.sample_inputs(m, 5)
    assert all(not v.any() for v in xs[0].values())
    events = np.concatenate([x["event"] for x in xs])
    assert events.dtype == np.int64 and events.min() >= 0 and events.max() < m.config["text"]["num_events"]


@pytest.fixture()
def no_tensorrt(monkeypatch):
    """TensorRT absent, also on a Jetson (the message path is what is tested)."""
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "tensorrt" else real(name, *a))


def test_build_engine_without_tensorrt_exits_2_with_fix(no_tensorrt, capsys) -> None:
    assert build_engine.main(["--manifest", POLICY]) == 2
    err = capsys.readouterr().err
    assert "TensorRT is not usable here" in err and "python3-libnvinfer" in err


def test_verify_engine_without_tensorrt_exits_2(no_tensorrt, capsys) -> None:
    assert verify_engine.main(["--manifest", POLICY, "--samples", "1"]) == 2
    assert "backend=tensorrt but" in capsys.readouterr().err


def test_tools_are_installed_executables() -> None:
    cmake = (Path(__file__).resolve().parents[1] / "CMakeLists.txt").read_text()
    assert '"build_engine:minipamayo_ros.tools.build_engine"' in cmake
    assert '"verify_engine:minipamayo_ros.tools.verify_engine"' in cmake


def test_verify_engine_bad_manifest_exits_2(tmp_path: Path, capsys) -> None:
    assert verify_engine.main(["--manifest", str(tmp_path / "missing.manifest.json")]) == 2
    assert "not found" in capsys.readouterr().err
