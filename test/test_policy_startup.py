"""Policy node start-up in its own process: fatal misconfiguration, and the shipped tiny model."""

from __future__ import annotations

import numpy as np
import pytest
from test_policy_node import NODE, Rig, _raw

from conftest import REPO_ROOT
from minipamayo_ros.bringup.processes import ros_args
from minipamayo_ros.nodes.conversions import time_to_sec
from minipamayo_ros.nodes.node_main import EXIT_CONFIG_ERROR
from minipamayo_ros.policy.probe_model import build_probe_model

pytestmark = pytest.mark.ros


@pytest.fixture(scope="module")
def probe_manifest(tmp_path_factory) -> str:
    return str(build_probe_model(tmp_path_factory.mktemp("probe"), image_size=(64, 64)))


@pytest.mark.parametrize(("params", "expect"), [
    ({"manifest_path": "/nonexistent/policy.manifest.json"}, "manifest not found"),
    ({"max_rate_hz": 0.0}, "max_rate_hz"),
    ({"odom_history": 0.8}, "odom_history"),
    ("mismatch", "fix the manifest"),
    ("corrupt", "corrupt"),
])
def test_fatal_startup_errors_exit_nonzero_with_a_fix(spawn, tmp_path, probe_manifest, params,
                                                      expect) -> None:
    if params == "mismatch":
        params = {"manifest_path": str(build_probe_model(tmp_path, (64, 64), manifest_image_size=(32, 32)))}
    elif params == "corrupt":
        manifest = build_probe_model(tmp_path, (64, 64))
        (tmp_path / "probe-policy.onnx").write_bytes(b"\x08\x01garbage")
        params = {"manifest_path": str(manifest)}
    proc = spawn(module=NODE, args=ros_args({"manifest_path": probe_manifest, "backend": "onnxruntime",
                                             **params}), name="policy")
    rc = proc.wait(60.0)
    log = proc.read_log()
    assert rc == EXIT_CONFIG_ERROR, log[-2000:]
    assert "cannot start the node" in log and expect in log, log[-2000:]
    assert "Traceback" not in log


def test_shipped_tiny_model_runs_in_the_node(spawn, ros_node) -> None:
    """The default manifest_path (engines/minipamayo-tiny-policy) loads, and every output is valid."""
    if not (REPO_ROOT / "engines" / "minipamayo-tiny-policy.manifest.json").is_file():
        pytest.fail("engines/minipamayo-tiny-policy.manifest.json is missing (the model ships with the repo)")
    node, executor = ros_node
    rig = Rig(node, executor)
    proc = spawn(module=NODE, args=ros_args({"backend": "auto"}), name="policy")
    rig.wait_for_node(proc)
    rig.run(1.3)
    road = np.zeros((240, 320, 3), np.uint8)  # sky, grey road, centre line (a plausible input)
    road[:120] = (110, 160, 220)
    road[120:] = (90, 90, 90)
    road[120:, 157:163] = 255
    rig.run(30.0, image=lambda: _raw(road, "bgr8"), until=lambda: len(rig.trajs) >= 5)
    assert len(rig.trajs) >= 5, proc.read_log()[-2000:]
    for tr in rig.trajs:
        assert tr.model_id.startswith("minipamayo-tiny-policy@") and len(tr.x) == 20
        assert time_to_sec(tr.header.stamp) in rig.image_stamps
        assert np.all(np.isfinite(tr.x)) and np.all(np.asarray(tr.speed) >= 0.0) and tr.uncertainty >= 0.0
    from minipamayo_ros.inference import load_manifest

    context = load_manifest(REPO_ROOT / "engines" / "minipamayo-tiny-policy.manifest.json").output("context")
    assert rig.contexts and len(rig.contexts[-1].context) == context.shape[1]
