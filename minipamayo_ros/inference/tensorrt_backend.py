"""TensorRT backend (the robot: Jetson Orin Nano, JetPack 6, TensorRT 10.3).

Load path: manifest -> engine cache lookup (key: ONNX sha256, TensorRT version, GPU name and
compute capability, precision flags, builder settings; see ``engine_cache.py``) -> build from the
shipped ONNX if there is no valid engine (progress logged) -> deserialize -> one execution context,
pinned host + device buffers per I/O tensor, one CUDA stream -> warm-up (the caller).

Only TensorRT 10's name-based I/O API is used (``num_io_tensors``, ``get_tensor_name/mode/dtype/
shape``, ``set_input_shape``, ``set_tensor_address``, ``execute_async_v3``), all present in 10.3
(checked with mypy against ``tensorrt-stubs`` in ``test/test_tensorrt_typecheck.py``). Precision:
fp16 (default), fp32, bf16, or int8 for the explicitly quantized (Q/DQ) ONNX the model tooling
ships (no calibrator: the scales are in the graph). Never imports torch.

``infer`` timing (``last_infer_ms``) covers host->device copies, the engine and device->host
copies, i.e. what the node waits for.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tensorrt as trt

from minipamayo_ros.inference.backend import (
    BackendError,
    BackendOptions,
    InferenceBackend,
    Tensors,
    check_inputs,
    concrete_shape,
)
from minipamayo_ros.inference.build_progress import BuildProgress
from minipamayo_ros.inference.cuda_buffers import (
    CudaError,
    CudaRuntime,
    DeviceBuffer,
    PinnedHostBuffer,
    open_cuda,
)
from minipamayo_ros.inference.engine_cache import (
    PRECISIONS,
    EngineCache,
    EngineCacheError,
    builder_flag_names,
    default_cache_dir,
    engine_key,
)
from minipamayo_ros.manifest import ModelManifest

DEFAULT_WORKSPACE_MB = 1024  # Orin Nano 8 GB shares memory with the CPU: keep the builder modest

_log = logging.getLogger("minipamayo_ros.inference")
_nptype: Callable[[trt.DataType], type] = trt.nptype  # TensorRT DataType -> numpy scalar type


def dims_tuple(dims: trt.Dims) -> tuple[int, ...]:
    """A TensorRT Dims as a tuple (-1 marks a dynamic dimension)."""
    return tuple(int(dims[i]) for i in range(len(dims)))


class _TrtLogger(trt.ILogger):
    """Routes TensorRT's log into Python logging (warnings and errors by default)."""

    _LEVELS = {
        trt.ILogger.Severity.INTERNAL_ERROR: logging.CRITICAL,
        trt.ILogger.Severity.ERROR: logging.ERROR,
        trt.ILogger.Severity.WARNING: logging.WARNING,
        trt.ILogger.Severity.INFO: logging.INFO,
        trt.ILogger.Severity.VERBOSE: logging.DEBUG,
    }

    def __init__(self, min_severity: trt.ILogger.Severity = trt.ILogger.Severity.WARNING) -> None:
        trt.ILogger.__init__(self)
        self._min = min_severity
        self.errors: list[str] = []

    def log(self, severity: trt.ILogger.Severity, msg: str) -> None:
        if severity in (trt.ILogger.Severity.INTERNAL_ERROR, trt.ILogger.Severity.ERROR):
            self.errors.append(msg)
        if int(severity) <= int(self._min):
            _log.log(self._LEVELS.get(severity, logging.INFO), "[TensorRT] %s", msg)


class _ProgressMonitor(trt.IProgressMonitor):
    """TensorRT's IProgressMonitor forwarding to :class:`BuildProgress` (called from TRT threads)."""

    def __init__(self, progress: BuildProgress) -> None:
        trt.IProgressMonitor.__init__(self)
        self._progress = progress

    def phase_start(self, phase_name: str, parent_phase: str, num_steps: int) -> None:
        self._progress.phase_start(phase_name, parent_phase, num_steps)

    def step_complete(self, phase_name: str, step: int) -> bool:
        return self._progress.step_complete(phase_name, step)

    def phase_finish(self, phase_name: str) -> None:
        self._progress.phase_finish(phase_name)


def build_serialized_engine(onnx_path: Path, precision: str, workspace_mb: int,
                            input_shapes: dict[str, tuple[int, ...]],
                            log: Callable[[str], Any] = print, progress_interval_s: float = 5.0) -> bytes:
    """Parse ``onnx_path`` and build a serialized engine (blocking; progress through ``log``).

    Dynamic input dimensions get a single-shape optimization profile from ``input_shapes``
    (batch 1 on the robot). Raises :class:`BackendError` with the parser/builder errors.
    """
    logger = _TrtLogger()
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # TensorRT 10: always explicit batch
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise BackendError(f"TensorRT could not parse {onnx_path}: " + " | ".join(errors or logger.errors))
    if precision == "int8" and not any(network.get_layer(i).type == trt.LayerType.QUANTIZE
                                       for i in range(network.num_layers)):
        raise BackendError(f"precision int8 needs an explicitly quantized (Q/DQ) ONNX, and {onnx_path.name} "
                           "has no QuantizeLinear nodes: use the shipped *-int8 model's manifest, or fp16")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_mb) << 20)
    for flag in builder_flag_names(precision):
        config.set_flag(getattr(trt.BuilderFlag, flag))
    dynamic = []
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        if any(d < 0 for d in dims_tuple(tensor.shape)):
            dynamic.append(tensor.name)
    if dynamic:
        profile = builder.create_optimization_profile()
        for name in dynamic:
            if name not in input_shapes:
                raise BackendError(f"ONNX input '{name}' is dynamic but has no shape in the manifest")
            shape = trt.Dims(list(input_shapes[name]))
            profile.set_shape(name, shape, shape, shape)
        config.add_optimization_profile(profile)
    progress = BuildProgress(log, interval_s=progress_interval_s)
    monitor = _ProgressMonitor(progress)  # must outlive the build
    config.progress_monitor = monitor
    t0 = time.monotonic()
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise BackendError(f"TensorRT engine build failed for {onnx_path.name} ({precision}): "
                           + (" | ".join(logger.errors) or "see the TensorRT log above"))
    log(f"engine built in {time.monotonic() - t0:.1f} s ({precision})")
    return bytes(memoryview(serialized))


@dataclass
class _Binding:
    name: str
    is_input: bool
    shape: tuple[int, ...]
    dtype: np.dtype
    host: PinnedHostBuffer
    device: DeviceBuffer


class TensorRTBackend(InferenceBackend):
    """A model run by a TensorRT engine built from (or cached for) the manifest's ONNX file.

    ``options.extra`` keys (optional): ``workspace_mb`` (int, default 1024), ``cuda_binding``
    (auto | cuda-python | pycuda), ``build_log`` (callable taking a str; default logging),
    ``progress_interval_s`` (float, default 5), ``cuda_stream_priority`` (as in the torch backend:
    int, 0 = lowest, negative = higher, clamped to the device's range; also "lowest" / "highest";
    default: a default-priority stream). The priority used is in ``describe()``. It orders dispatch
    of pending kernels and never preempts a running one (docs/text.md); pycuda has no stream
    priorities (warned, default stream).
    """

    def __init__(self, manifest: ModelManifest, options: BackendOptions) -> None:
        super().__init__(manifest, options)
        precision = options.precision.lower()
        if precision not in PRECISIONS:
            raise BackendError(f"unknown TensorRT precision '{options.precision}'; "
                               f"choose one of {list(PRECISIONS)}")
        self.precision = precision
        self._lock = threading.Lock()  # one inference at a time: the I/O buffers are shared
        log: Callable[[str], Any] = options.extra.get("build_log") or _log.info
        workspace_mb = int(options.extra.get("workspace_mb", DEFAULT_WORKSPACE_MB))
        _, _, idx = options.device.partition(":")
        try:
            self._cuda: CudaRuntime | None = open_cuda(int(idx) if idx.isdigit() else 0,
                                                       str(options.extra.get("cuda_binding", "auto")))
        except CudaError as exc:
            raise BackendError(f"TensorRT backend needs CUDA: {exc}") from exc
        try:
            self._load(manifest, precision, workspace_mb, log)
        except BaseException:
            self.close()
            raise

    def _load(self, manifest: ModelManifest, precision: str, workspace_mb: int,
              log: Callable[[str], Any]) -> None:
        assert self._cuda is not None
        self.gpu = self._cuda.info()
        self.key = engine_key(manifest, self.gpu, precision, workspace_mb, trt.__version__)
        cache = EngineCache(default_cache_dir(manifest.model_path, self.options.engine_cache_dir))
        shapes = dict(self.key.input_shapes)
        interval = float(self.options.extra.get("progress_interval_s", 5.0))
        try:
            cached = cache.load_or_build(
                manifest.name, self.key, force_rebuild=self.options.force_rebuild, log=log,
                build=lambda: build_serialized_engine(manifest.model_path, precision, workspace_mb,
                                                      shapes, log, interval))
        except EngineCacheError as exc:
            raise BackendError(str(exc)) from exc
        self.engine_path = cached.path
        self._trt_logger = _TrtLogger()
        self._runtime = trt.Runtime(self._trt_logger)
        self._engine = self._runtime.deserialize_cuda_engine(cached.data)
        if self._engine is None:
            raise BackendError(f"TensorRT could not deserialize {cached.path} "
                               f"({' | '.join(self._trt_logger.errors)}); rerun with force_rebuild:=true")
        self._context = self._engine.create_execution_context()
        if self._context is None:
            raise BackendError("TensorRT could not create an execution context (out of GPU memory?)")
        self._stream = self._cuda.stream(self.options.extra.get("cuda_stream_priority"))
        self._bindings = self._bind(manifest)

    def _bind(self, manifest: ModelManifest) -> list[_Binding]:
        """Check engine I/O against the manifest, set input shapes, allocate and bind buffers."""
        assert self._cuda is not None
        engine, context = self._engine, self._context
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        want_in, want_out = [s.name for s in manifest.inputs], [s.name for s in manifest.outputs]
        if sorted(inputs) != sorted(want_in) or sorted(outputs) != sorted(want_out):
            raise BackendError(f"engine I/O {inputs} -> {outputs} does not match manifest '{manifest.name}' "
                               f"{want_in} -> {want_out}; rebuild with force_rebuild:=true")
        for spec in manifest.inputs:
            if not context.set_input_shape(spec.name, concrete_shape(spec.shape)):
                engine_shape = dims_tuple(engine.get_tensor_shape(spec.name))
                raise BackendError(f"engine rejects input shape {concrete_shape(spec.shape)} for "
                                   f"'{spec.name}' (engine shape {engine_shape})")
        bindings = []
        for spec in manifest.inputs + manifest.outputs:
            is_input = spec.name in want_in
            dtype = np.dtype(_nptype(engine.get_tensor_dtype(spec.name)))
            if dtype != np.dtype(spec.dtype):
                raise BackendError(f"engine tensor '{spec.name}' is {dtype}, manifest says {spec.dtype}")
            shape = dims_tuple(context.get_tensor_shape(spec.name))
            if any(d < 0 for d in shape):
                raise BackendError(f"engine tensor '{spec.name}' has unresolved shape {shape}")
            host = self._cuda.pinned(shape, dtype)
            device = self._cuda.device_buffer(host.nbytes)
            if not context.set_tensor_address(spec.name, device.ptr):
                raise BackendError(f"TensorRT refused the device address of '{spec.name}'")
            bindings.append(_Binding(spec.name, is_input, shape, dtype, host, device))
        return bindings

    def infer(self, inputs: Tensors) -> Tensors:
        feed = check_inputs(self.manifest, inputs)
        with self._lock:
            try:
                return self._infer_locked(feed)
            except CudaError as exc:
                raise BackendError(f"CUDA error during TensorRT inference of '{self.manifest.name}': "
                                   f"{exc}") from exc

    def _infer_locked(self, feed: Tensors) -> Tensors:
        if self._cuda is None:
            raise BackendError("TensorRT backend is closed")
        cuda, stream = self._cuda, self._stream
        t0 = time.perf_counter()
        for b in self._bindings:
            if b.is_input:
                np.copyto(b.host.array, feed[b.name].reshape(b.shape))
                cuda.copy_htod(b.device, b.host, stream)
        if not self._context.execute_async_v3(stream.handle):
            raise BackendError(f"TensorRT execute_async_v3 failed for '{self.manifest.name}': "
                               + " | ".join(self._trt_logger.errors[-3:]))
        for b in self._bindings:
            if not b.is_input:
                cuda.copy_dtoh(b.host, b.device, stream)
        stream.synchronize()
        self.last_infer_ms = (time.perf_counter() - t0) * 1e3
        # copies: the pinned buffers are overwritten by the next call
        return {b.name: b.host.array.copy() for b in self._bindings if not b.is_input}

    def describe(self) -> dict[str, str]:
        binding = self._cuda.binding if self._cuda is not None else "closed"
        priority = self._stream.priority
        return {
            "backend": "tensorrt",
            "precision": self.precision,
            "device": f"{self.gpu.name} ({self.gpu.sm})",
            "tensorrt": trt.__version__,
            "cuda": binding,
            "cuda_stream_priority": "default" if priority is None else str(priority),
            "engine": str(self.engine_path),
            "engine_key": self.key.digest(),
            "model_id": self.manifest.model_id,
            "selection": self.selection,
        }

    def close(self) -> None:
        # context before engine before runtime; buffers/stream after TensorRT is done with them
        for attr in ("_context", "_engine", "_runtime"):
            if hasattr(self, attr):
                delattr(self, attr)
        if self._cuda is not None:
            self._cuda.close()
            self._cuda = None
