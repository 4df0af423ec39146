"""ONNX Runtime backend (CPU): CI, the demo, and any machine without TensorRT.

Defaults suit a 2-core robot computer shared with the 100 Hz follower and the text node: one
intra-op and one inter-op thread, sequential execution, and no busy-wait spinning of idle pool
threads (spinning would steal the follower's core between frames). Graph optimisations are on
(``ORT_ENABLE_ALL``). Never imports torch.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from minipamayo_ros.inference.backend import (
    BackendError,
    BackendOptions,
    InferenceBackend,
    Tensors,
    check_inputs,
)
from minipamayo_ros.manifest import ModelManifest, TensorSpec

# ONNX Runtime's type strings -> numpy dtype names (the manifest's spelling).
_ORT_TYPES = {
    "tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64",
    "tensor(uint8)": "uint8", "tensor(int8)": "int8", "tensor(int32)": "int32",
    "tensor(int64)": "int64", "tensor(bool)": "bool",
}


def _import_ort() -> Any:
    try:
        import onnxruntime
    except ImportError as exc:  # pragma: no cover - onnxruntime is a runtime requirement
        raise BackendError("onnxruntime is not installed: pip install onnxruntime "
                           "(requirements/runtime.txt)") from exc
    return onnxruntime


def _check_io(kind: str, specs: tuple[TensorSpec, ...], ort_args: list[Any], manifest: ModelManifest) -> None:
    """The ONNX graph must have exactly the manifest's tensors (names, dtypes, fixed dims)."""
    graph = {a.name: a for a in ort_args}
    want = {s.name for s in specs}
    if set(graph) != want:
        raise BackendError(
            f"model file {manifest.model_path.name} has {kind}s {sorted(graph)} but manifest "
            f"'{manifest.name}' declares {sorted(want)}; re-export the model or fix the manifest")
    for spec in specs:
        arg = graph[spec.name]
        dtype = _ORT_TYPES.get(arg.type, arg.type)
        if dtype != spec.dtype:
            raise BackendError(f"{kind} '{spec.name}': graph dtype {dtype} != manifest {spec.dtype} "
                               f"({manifest.model_path.name})")
        shape = list(arg.shape)
        mismatch = len(shape) != len(spec.shape) or any(
            isinstance(g, int) and isinstance(m, int) and g != m
            for g, m in zip(shape, spec.shape, strict=False))
        if mismatch:
            raise BackendError(f"{kind} '{spec.name}': graph shape {shape} != manifest {list(spec.shape)} "
                               f"({manifest.model_path.name})")


class OnnxRuntimeBackend(InferenceBackend):
    """A model run by ONNX Runtime on the CPU execution provider.

    ``options.extra`` keys (all optional): ``ort_providers`` (list, default CPU only),
    ``ort_allow_spinning`` (bool, default False), ``ort_optimized_model_path`` (str: where to save
    the optimised graph, for inspection).
    """

    def __init__(self, manifest: ModelManifest, options: BackendOptions) -> None:
        super().__init__(manifest, options)
        if options.intra_op_threads < 1 or options.inter_op_threads < 1:
            raise BackendError(f"onnxruntime thread counts must be >= 1 (intra_op_threads="
                               f"{options.intra_op_threads}, inter_op_threads={options.inter_op_threads})")
        ort = _import_ort()
        self._ort_version = str(ort.__version__)
        so = ort.SessionOptions()
        so.intra_op_num_threads = options.intra_op_threads
        so.inter_op_num_threads = options.inter_op_threads
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        spin = "1" if options.extra.get("ort_allow_spinning", False) else "0"
        so.add_session_config_entry("session.intra_op.allow_spinning", spin)
        so.add_session_config_entry("session.inter_op.allow_spinning", spin)
        if options.extra.get("ort_optimized_model_path"):
            so.optimized_model_filepath = str(options.extra["ort_optimized_model_path"])
        providers = list(options.extra.get("ort_providers", ["CPUExecutionProvider"]))
        try:
            self._session = ort.InferenceSession(str(manifest.model_path), sess_options=so,
                                                 providers=providers)
        except Exception as exc:  # onnxruntime raises its own exception types (Fail, InvalidGraph, ...)
            raise BackendError(f"onnxruntime could not load {manifest.model_path}: {exc}") from exc
        _check_io("input", manifest.inputs, self._session.get_inputs(), manifest)
        _check_io("output", manifest.outputs, self._session.get_outputs(), manifest)
        self._output_names = [s.name for s in manifest.outputs]
        self._providers = self._session.get_providers()

    def infer(self, inputs: Tensors) -> Tensors:
        feed = check_inputs(self.manifest, inputs)
        t0 = time.perf_counter()
        try:
            values = self._session.run(self._output_names, feed)
        except Exception as exc:
            raise BackendError(f"onnxruntime inference failed for '{self.manifest.name}': {exc}") from exc
        self.last_infer_ms = (time.perf_counter() - t0) * 1e3
        return {name: np.asarray(v) for name, v in zip(self._output_names, values, strict=True)}

    def describe(self) -> dict[str, str]:
        dtypes = sorted({s.dtype for s in self.manifest.inputs + self.manifest.outputs if "float" in s.dtype})
        return {
            "backend": "onnxruntime",
            "precision": "/".join(dtypes) or "n/a",  # what the graph computes in
            "device": "cpu" if self._providers == ["CPUExecutionProvider"] else ",".join(self._providers),
            "onnxruntime": self._ort_version,
            "threads": f"intra={self.options.intra_op_threads} inter={self.options.inter_op_threads}",
            "model_id": self.manifest.model_id,
            "selection": self.selection,
        }

    def close(self) -> None:
        self._session = None
