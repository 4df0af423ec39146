"""scripts/flake_hunt.py: JUnit reports of several runs -> the per-test table (no suite is run here)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from conftest import REPO_ROOT

_spec = importlib.util.spec_from_file_location("flake_hunt", REPO_ROOT / "scripts" / "flake_hunt.py")
assert _spec is not None and _spec.loader is not None
flake_hunt = importlib.util.module_from_spec(_spec)
sys.modules["flake_hunt"] = flake_hunt  # dataclasses look their module up
_spec.loader.exec_module(flake_hunt)


def _junit(path: Path, cases: str) -> Path:
    path.write_text(f'<?xml version="1.0"?><testsuites><testsuite>{cases}</testsuite></testsuites>')
    return path


def test_runs_are_tallied_per_test_with_the_first_failure(tmp_path) -> None:
    ok = '<testcase classname="test.test_a" name="test_x" file="test/test_a.py" line="3" time="0.1"/>'
    cls = ('<testcase classname="test.launch.test_b.TestRig" name="test_y" file="test/launch/test_b.py" '
           'line="9" time="1"/>')
    run1 = _junit(tmp_path / "1.xml", ok + cls + (
        '<testcase classname="test.test_c" name="test_z" file="test/test_c.py" line="1" time="5">'
        '<failure message="AssertionError: spin_until returned False">long traceback</failure>'
        '<error message="failed on teardown with &quot;process survived&quot;">...</error></testcase>'
        '<testcase classname="test.test_c" name="test_s" file="test/test_c.py" line="2" time="0">'
        '<skipped message="no GPU"/></testcase>'))
    run2 = _junit(tmp_path / "2.xml", ok + cls + (
        '<testcase classname="test.test_c" name="test_z" file="test/test_c.py" line="1" time="5"/>'
        '<testcase classname="test.test_a" name="test_x" file="test/test_a.py" line="3" time="0.1">'
        '<error message="failed on teardown with &quot;leftover&quot;"/></testcase>'))
    per_run = [flake_hunt.outcomes(run1), flake_hunt.outcomes(run2)]
    assert per_run[0]["test/launch/test_b.py::TestRig::test_y"] == ("passed", "")
    assert per_run[0]["test/test_c.py::test_z"] == ("failed", "AssertionError: spin_until returned False")
    tests = flake_hunt.tally(per_run)
    z, x = tests["test/test_c.py::test_z"], tests["test/test_a.py::test_x"]
    s = tests["test/test_c.py::test_s"]
    assert (z.runs, z.failures, z.first_failure_run) == (2, 1, 1)
    assert (x.runs, x.failures, x.first_failure_run) == (2, 1, 2) and "leftover" in x.first_failure
    assert (s.runs, s.skipped, s.failures) == (0, 1, 0)
    runs = [flake_hunt.RunRecord(1, True, 7, 1, 60.0, 2.0, 2.5, tests=3, failed=1, skipped=1),
            flake_hunt.RunRecord(2, False, 8, 1, 61.0, 2.5, 2.0, tests=3, failed=1)]
    md = flake_hunt.markdown({"started": "t", "commit": "abc", "cpus": 2, "domain": 5, "hog_cpu": 1,
                              "pytest_args": []}, runs, tests)
    assert "| `test/test_c.py::test_z` | 2 | 1 | 1: AssertionError: spin_until returned False |" in md
    assert "--random-order-seed=7" in md and "2 test(s) failed at least once" in md
