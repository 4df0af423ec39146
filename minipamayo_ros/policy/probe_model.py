"""A deterministic stand-in policy (ONNX) with the real I/O contract, for tests and benchmarks.

Its outputs are simple, checkable functions of its inputs, so a test can tell that the node fed
the right pixels (channel order!) and the right odometry:

* ``v`` = the newest speed in ``state`` (``state[0, -1, 0]``) [m/s]
* ``r, g, b`` = mean of each image channel / 255
* ``waypoints[i] = (v * t_i, (r - b) * t_i)`` with ``t_i = (i + 1) * 0.1`` s
* ``speeds[i] = v``; ``uncertainty = (r + g + b) / 3``; ``context = (r, g, b, v)``

Needs the ``onnx`` package (dev requirements), imported only when a model is built. The model
is run by the real ONNX Runtime backend; it is not a mock.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from minipamayo_ros import io_contract
from minipamayo_ros.manifest import ModelManifest, sha256_of, write_manifest
from minipamayo_ros.state_features import STATE_STEPS
from minipamayo_ros.trajectory import NUM_WAYPOINTS, WAYPOINT_DT

CONTEXT_DIM = 4


def expected_outputs(image: np.ndarray, state: np.ndarray) -> dict[str, np.ndarray]:
    """What the probe model computes, in numpy (batch-1 inputs as fed to the model)."""
    means = image.reshape(-1, 3).astype(np.float64).mean(axis=0) / 255.0
    v = float(state[0, -1, 0])
    t = WAYPOINT_DT * np.arange(1, NUM_WAYPOINTS + 1)
    wp = np.stack((v * t, (means[0] - means[2]) * t), axis=1)[None]
    return {"waypoints": wp.astype(np.float32), "speeds": np.full((1, NUM_WAYPOINTS), v, np.float32),
            "uncertainty": np.array([means.mean()], np.float32),
            "context": np.array([[*means, v]], np.float32)}


def build_probe_model(out_dir: str | Path, image_size: tuple[int, int] = (128, 128),
                      name: str = "probe-policy", manifest_image_size: tuple[int, int] | None = None
                      ) -> Path:
    """Write ``<name>.onnx`` + ``<name>.manifest.json`` into ``out_dir``; returns the manifest path.

    ``manifest_image_size`` (default: ``image_size``) lets a test write a manifest that disagrees
    with the graph (a shape-mismatch startup error).
    """
    import onnx
    from onnx import TensorProto, helper

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    h, w = image_size
    t = (WAYPOINT_DT * np.arange(1, NUM_WAYPOINTS + 1, dtype=np.float32)).reshape(1, NUM_WAYPOINTS)

    def const(name: str, value: np.ndarray) -> onnx.NodeProto:
        return helper.make_node("Constant", [], [name], value=helper.make_tensor(
            name + "_v", TensorProto.FLOAT if value.dtype == np.float32 else TensorProto.INT64,
            value.shape, value.flatten().tolist()))

    nodes = [
        const("t", t),
        const("ones", np.ones((1, NUM_WAYPOINTS), np.float32)),
        const("k255", np.array(255.0, np.float32)),
        const("s_start", np.array([STATE_STEPS - 1, 0], np.int64)),
        const("s_end", np.array([STATE_STEPS, 1], np.int64)),
        const("s_axes", np.array([1, 2], np.int64)),
        const("shape_11", np.array([1, 1], np.int64)),
        const("c0", np.array([0], np.int64)), const("c1", np.array([1], np.int64)),
        const("c2", np.array([2], np.int64)), const("c3", np.array([3], np.int64)),
        const("ax1", np.array([1], np.int64)),
        helper.make_node("Cast", ["image"], ["img_f"], to=TensorProto.FLOAT),
        helper.make_node("ReduceMean", ["img_f"], ["sum_means"], axes=[1, 2], keepdims=0),
        helper.make_node("Div", ["sum_means", "k255"], ["means"]),                  # (1, 3)
        helper.make_node("Slice", ["state", "s_start", "s_end", "s_axes"], ["v111"]),
        helper.make_node("Reshape", ["v111", "shape_11"], ["v"]),                   # (1, 1)
        helper.make_node("Slice", ["means", "c0", "c1", "ax1"], ["r"]),
        helper.make_node("Slice", ["means", "c2", "c3", "ax1"], ["b"]),
        helper.make_node("Sub", ["r", "b"], ["rb"]),
        helper.make_node("Mul", ["v", "t"], ["x"]),                                 # (1, 20)
        helper.make_node("Mul", ["rb", "t"], ["y"]),
        helper.make_node("Unsqueeze", ["x", "c2"], ["x3"]),
        helper.make_node("Unsqueeze", ["y", "c2"], ["y3"]),
        helper.make_node("Concat", ["x3", "y3"], ["waypoints"], axis=2),           # (1, 20, 2)
        helper.make_node("Mul", ["v", "ones"], ["speeds"]),
        helper.make_node("ReduceMean", ["means"], ["uncertainty"], axes=[1], keepdims=0),  # (1,)
        helper.make_node("Concat", ["means", "v"], ["context"], axis=1),           # (1, 4)
    ]
    inputs, outputs = io_contract.policy_specs((h, w), CONTEXT_DIM)
    types = {"uint8": TensorProto.UINT8, "float32": TensorProto.FLOAT}
    graph = helper.make_graph(
        nodes, name,
        [helper.make_tensor_value_info(s.name, types[s.dtype], list(s.shape)) for s in inputs],
        [helper.make_tensor_value_info(s.name, types[s.dtype], list(s.shape)) for s in outputs],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    model_path = out_dir / f"{name}.onnx"
    onnx.save(model, str(model_path))
    mh, mw = manifest_image_size or image_size
    manifest = ModelManifest(
        name=name, kind="policy", model_path=model_path.resolve(), sha256=sha256_of(model_path),
        inputs=io_contract.policy_specs((mh, mw), CONTEXT_DIM)[0], outputs=outputs,
        config={"context_dim": CONTEXT_DIM, "probe": True}, contract_version=io_contract.CONTRACT_VERSION,
    )
    manifest_path = out_dir / f"{name}.manifest.json"
    write_manifest(manifest_path, manifest)
    return manifest_path
