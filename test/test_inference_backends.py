"""ONNX Runtime backend + create_backend factory: real ONNX Runtime on small real graphs."""

from __future__ import annotations

import importlib.util
import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_inference_graphs import policy_manifest, reference_outputs, sample_inputs

from minipamayo_ros.inference import (
    BackendError,
    BackendOptions,
    ManifestError,
    TensorSpec,
    choose_backend,
    create_backend,
    load_manifest,
)
from minipamayo_ros.inference.factory import import_tensorrt, tensorrt_availability
from minipamayo_ros.inference.onnxruntime_backend import OnnxRuntimeBackend

REPO = Path(__file__).resolve().parents[1]
ORT = BackendOptions(backend="onnxruntime")


@pytest.fixture()
def manifest(tmp_path: Path):
    m, _ = policy_manifest(tmp_path)
    return m


def test_outputs_match_numpy_reference(manifest) -> None:
    backend = create_backend(manifest, ORT)
    x = sample_inputs()
    out = backend.infer(x)
    ref = reference_outputs(**x)
    assert set(out) == {s.name for s in manifest.outputs}
    for spec in manifest.outputs:
        assert out[spec.name].shape == spec.shape and out[spec.name].dtype == np.dtype(spec.dtype)
        np.testing.assert_allclose(out[spec.name], ref[spec.name], rtol=1e-5, atol=1e-5)
    assert backend.last_infer_ms >= 0.0


def test_warm_up_and_describe(manifest) -> None:
    backend = create_backend(manifest, BackendOptions(backend="onnxruntime", warmup_runs=2,
                                                      intra_op_threads=2))
    assert not backend.warmed_up
    backend.warm_up()
    assert backend.warmed_up and np.isfinite(backend.last_infer_ms)
    d = backend.describe()
    assert d["backend"] == "onnxruntime" and d["device"] == "cpu"
    assert d["model_id"] == manifest.model_id
    assert d["threads"] == "intra=2 inter=1"
    assert d["onnxruntime"][0].isdigit()
    backend.close()


@pytest.mark.parametrize("bad, message", [
    (lambda x: {"image": x["image"]}, "missing ['state']"),
    (lambda x: {**x, "extra": x["state"]}, "unexpected ['extra']"),
    (lambda x: {**x, "state": x["state"].astype(np.float64)}, "'state' has dtype float64"),
    (lambda x: {**x, "image": x["image"][:, :16]}, "'image' has shape (1, 16, 32, 3)"),
    # the state's shape without its batch axis (from the I/O contract: (10, 4) since contract v2)
    (lambda x: {**x, "state": x["state"][0]}, f"'state' has shape {sample_inputs()['state'].shape[1:]}"),
    (lambda x: {**x, "state": x["state"].tolist()}, "'state' must be a numpy array"),
])
def test_bad_inputs_raise_clear_errors(manifest, bad, message) -> None:
    backend = create_backend(manifest, ORT)
    with pytest.raises(BackendError) as err:
        backend.infer(bad(sample_inputs()))
    assert message in str(err.value)


def test_non_contiguous_input_is_accepted(manifest) -> None:
    backend = create_backend(manifest, ORT)
    x = sample_inputs()
    flipped = np.ascontiguousarray(x["image"][:, ::-1])[:, ::-1]  # same values, negative strides
    assert not flipped.flags.c_contiguous
    out = backend.infer({"image": flipped, "state": x["state"]})
    np.testing.assert_allclose(out["waypoints"], reference_outputs(**x)["waypoints"], atol=1e-5)


def test_manifest_that_does_not_match_graph_fails_at_load(manifest) -> None:
    renamed = manifest.__class__(**{**manifest.__dict__, "outputs": manifest.outputs[:3] +
                                    (TensorSpec("ctx", (1, 8), "float32"),)})
    with pytest.raises(BackendError, match=r"outputs .* but manifest 'test-policy' declares"):
        create_backend(renamed, ORT)
    wrong_shape = manifest.__class__(**{**manifest.__dict__, "inputs": (
        TensorSpec("image", (1, 64, 64, 3), "uint8"), manifest.inputs[1])})
    with pytest.raises(BackendError, match=r"input 'image': graph shape \[1, 32, 32, 3\]"):
        create_backend(wrong_shape, ORT)
    wrong_dtype = manifest.__class__(**{**manifest.__dict__, "inputs": (
        TensorSpec("image", (1, 32, 32, 3), "float32"), manifest.inputs[1])})
    with pytest.raises(BackendError, match="graph dtype uint8 != manifest float32"):
        create_backend(wrong_dtype, ORT)


def test_corrupt_model_file(tmp_path: Path) -> None:
    _, mpath = policy_manifest(tmp_path)
    onnx_path = tmp_path / "test-policy.onnx"
    onnx_path.write_bytes(b"not an onnx file")
    with pytest.raises(ManifestError, match="corrupt or was replaced"):
        load_manifest(mpath)
    # even with the hash check bypassed, the backend refuses cleanly
    with pytest.raises(BackendError, match="could not load"):
        create_backend(load_manifest(mpath, verify_hash=False), ORT)


def test_thread_counts_validated(manifest) -> None:
    with pytest.raises(BackendError, match="intra_op_threads=0"):
        OnnxRuntimeBackend(manifest, BackendOptions(intra_op_threads=0))


def test_auto_without_tensorrt_picks_onnxruntime_and_says_why(manifest, caplog) -> None:
    name, reason = choose_backend(BackendOptions(backend="auto"))
    if name == "onnxruntime":  # this machine: no TensorRT
        assert reason.startswith("auto: onnxruntime on CPU because") and "tensorrt" in reason
    # the handler goes on the module's logger itself: once `launch` is imported in this process (the
    # launch tests), loggers created afterwards do not propagate to the root, where caplog listens
    log = logging.getLogger("minipamayo_ros.inference")
    log.addHandler(caplog.handler)
    try:
        with caplog.at_level("INFO", logger="minipamayo_ros.inference"):
            backend = create_backend(manifest, BackendOptions(backend="AUTO"))
    finally:
        log.removeHandler(caplog.handler)
    assert backend.describe()["selection"] == reason
    assert f"inference backend for {manifest.model_id}: {name}" in caplog.text


def test_auto_logs_through_a_given_logger(manifest) -> None:
    lines: list[str] = []

    class Log:
        def info(self, msg: str) -> None:
            lines.append(msg)

    create_backend(manifest, BackendOptions(backend="onnxruntime"), logger=Log())
    assert lines == [f"inference backend for {manifest.model_id}: onnxruntime "
                     "(backend=onnxruntime requested)"]


def test_tensorrt_type_stubs_are_not_mistaken_for_tensorrt() -> None:
    """tensorrt-stubs (installed in the dev venv) makes `import tensorrt` succeed as an empty package."""
    spec = importlib.util.find_spec("tensorrt")
    stubs_only = spec is not None and spec.origin in (None, "namespace")  # a folder without __init__.py
    trt, why = import_tensorrt()
    if stubs_only:
        assert trt is None and why == "tensorrt is only type stubs here (no TensorRT Python bindings)"
        assert not tensorrt_availability()[0]
    elif spec is None:
        assert trt is None and "not importable" in why
    else:  # a real TensorRT install
        assert trt is not None and hasattr(trt, "Builder")


def test_unknown_backend_is_an_error(manifest) -> None:
    with pytest.raises(BackendError, match=r"unknown backend 'onnx'; choose one of \['auto'"):
        create_backend(manifest, BackendOptions(backend="onnx"))


def test_explicit_tensorrt_without_tensorrt_is_an_error_not_a_fallback(manifest, monkeypatch) -> None:
    real_find_spec = importlib.util.find_spec  # make TensorRT absent here, also on a Jetson
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "tensorrt" else real_find_spec(name, *a))
    with pytest.raises(BackendError, match="backend=tensorrt but tensorrt is not importable"):
        create_backend(manifest, BackendOptions(backend="tensorrt"))


def test_runtime_path_never_imports_torch(tmp_path: Path) -> None:
    """The robot has 8 GB: importing + running the ORT backend via the factory must not pull torch."""
    _, mpath = policy_manifest(tmp_path)
    code = f"""
import json, sys
import numpy as np
from minipamayo_ros.inference import BackendOptions, create_backend, load_manifest
b = create_backend(load_manifest({str(mpath)!r}), BackendOptions(backend="auto"))
b.warm_up()
out = b.infer({{"image": np.zeros((1, 32, 32, 3), np.uint8), "state": np.ones((1, 10, 4), np.float32)}})
print(json.dumps({{"torch": "torch" in sys.modules, "tensorrt": "tensorrt" in sys.modules,
                  "shape": list(out["waypoints"].shape)}}))
"""
    res = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    got = json.loads(res.stdout.strip().splitlines()[-1])
    assert got == {"torch": False, "tensorrt": got["tensorrt"], "shape": [1, 20, 2]}
