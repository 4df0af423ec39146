"""Small real ONNX policy graphs (built with onnx.helper) for the inference backend tests.

They have the policy I/O contract (``image`` uint8 (1,H,W,3), ``state`` float32 (1,10,4) ->
``waypoints`` (1,20,2), ``speeds`` (1,20), ``uncertainty`` (1,), ``context`` (1,C)) and outputs
that depend on the inputs in a way :func:`reference_outputs` recomputes in numpy, so a backend
that mixes up tensors, dtypes or buffers is caught. Run by real ONNX Runtime, not mocked.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from minipamayo_ros.io_contract import CONTRACT_VERSION
from minipamayo_ros.manifest import ModelManifest, TensorSpec, sha256_of, write_manifest

CONTEXT = 8


def _weights(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "W_wp": rng.normal(0, 0.3, (40, 40)).astype(np.float32),
        "W_sp": rng.normal(0, 0.3, (40, 20)).astype(np.float32),
        "W_cx": rng.normal(0, 0.3, (40, CONTEXT)).astype(np.float32),
    }


def reference_outputs(image: np.ndarray, state: np.ndarray, seed: int = 0) -> dict[str, np.ndarray]:
    """What the graph of :func:`build_policy_onnx` computes, in numpy (float64 then cast)."""
    w = _weights(seed)
    s = state.reshape(1, 40).astype(np.float64)
    brightness = image.astype(np.float64).mean() / 255.0
    waypoints = (s @ w["W_wp"] + brightness).reshape(1, 20, 2)
    speeds = s @ w["W_sp"]
    uncertainty = np.abs(speeds).mean(axis=1)
    context = np.tanh(s @ w["W_cx"] + brightness)
    return {"waypoints": waypoints.astype(np.float32), "speeds": speeds.astype(np.float32),
            "uncertainty": uncertainty.astype(np.float32), "context": context.astype(np.float32)}


def build_policy_onnx(path: Path, image_hw: tuple[int, int] = (32, 32), seed: int = 0) -> Path:
    """Write the test policy graph to ``path`` (opset 17)."""
    h, w_ = image_hw
    w = _weights(seed)
    inits = [numpy_helper.from_array(v, k) for k, v in w.items()]
    inits += [numpy_helper.from_array(np.array([1, 40], np.int64), "shape_s"),
              numpy_helper.from_array(np.array([1, 20, 2], np.int64), "shape_wp"),
              numpy_helper.from_array(np.array(255.0, np.float32), "c255")]
    nodes = [
        helper.make_node("Cast", ["image"], ["img_f"], to=TensorProto.FLOAT),
        helper.make_node("ReduceMean", ["img_f"], ["img_mean4"], keepdims=0),
        helper.make_node("Div", ["img_mean4", "c255"], ["bright"]),
        helper.make_node("Reshape", ["state", "shape_s"], ["s"]),
        helper.make_node("MatMul", ["s", "W_wp"], ["wp_flat"]),
        helper.make_node("Add", ["wp_flat", "bright"], ["wp_b"]),
        helper.make_node("Reshape", ["wp_b", "shape_wp"], ["waypoints"]),
        helper.make_node("MatMul", ["s", "W_sp"], ["speeds"]),
        helper.make_node("Abs", ["speeds"], ["abs_sp"]),
        helper.make_node("ReduceMean", ["abs_sp"], ["uncertainty"], axes=[1], keepdims=0),
        helper.make_node("MatMul", ["s", "W_cx"], ["cx"]),
        helper.make_node("Add", ["cx", "bright"], ["cx_b"]),
        helper.make_node("Tanh", ["cx_b"], ["context"]),
    ]
    graph = helper.make_graph(
        nodes, "test_policy",
        [helper.make_tensor_value_info("image", TensorProto.UINT8, [1, h, w_, 3]),
         helper.make_tensor_value_info("state", TensorProto.FLOAT, [1, 10, 4])],
        [helper.make_tensor_value_info("waypoints", TensorProto.FLOAT, [1, 20, 2]),
         helper.make_tensor_value_info("speeds", TensorProto.FLOAT, [1, 20]),
         helper.make_tensor_value_info("uncertainty", TensorProto.FLOAT, [1]),
         helper.make_tensor_value_info("context", TensorProto.FLOAT, [1, CONTEXT])],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # readable by every onnxruntime >= 1.14
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def policy_manifest(tmp_dir: Path, image_hw: tuple[int, int] = (32, 32), seed: int = 0,
                    name: str = "test-policy") -> tuple[ModelManifest, Path]:
    """Build the graph + write its manifest in ``tmp_dir``; returns (manifest, manifest path)."""
    onnx_path = build_policy_onnx(tmp_dir / f"{name}.onnx", image_hw, seed)
    h, w = image_hw
    manifest = ModelManifest(
        name=name, kind="policy", model_path=onnx_path.resolve(), sha256=sha256_of(onnx_path),
        inputs=(TensorSpec("image", (1, h, w, 3), "uint8"), TensorSpec("state", (1, 10, 4), "float32")),
        outputs=(TensorSpec("waypoints", (1, 20, 2), "float32"), TensorSpec("speeds", (1, 20), "float32"),
                 TensorSpec("uncertainty", (1,), "float32"), TensorSpec("context", (1, CONTEXT), "float32")),
        config={"test_graph_seed": seed}, contract_version=CONTRACT_VERSION)
    mpath = tmp_dir / f"{name}.manifest.json"
    write_manifest(mpath, manifest)
    return manifest, mpath


def sample_inputs(image_hw: tuple[int, int] = (32, 32), seed: int = 1) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"image": rng.integers(0, 256, (1, *image_hw, 3), dtype=np.uint8),
            "state": rng.normal(0, 1, (1, 10, 4)).astype(np.float32)}


def test_graph_is_valid_onnx_with_policy_io(tmp_path: Path) -> None:
    path = build_policy_onnx(tmp_path / "p.onnx")
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    assert [i.name for i in model.graph.input] == ["image", "state"]
    assert [o.name for o in model.graph.output] == ["waypoints", "speeds", "uncertainty", "context"]


def test_reference_depends_on_both_inputs() -> None:
    a = sample_inputs(seed=1)
    b = {"image": a["image"] // 2, "state": a["state"]}
    c = {"image": a["image"], "state": a["state"] * 2}
    ra, rb, rc = (reference_outputs(**x) for x in (a, b, c))
    assert not np.allclose(ra["waypoints"], rb["waypoints"])  # image matters
    assert not np.allclose(ra["speeds"], rc["speeds"])        # state matters
