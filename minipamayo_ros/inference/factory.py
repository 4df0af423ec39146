"""``create_backend(manifest, options)``: the one place that decides which runtime executes a model.

``backend: auto`` picks TensorRT where the ``tensorrt`` module imports *and* a CUDA GPU is usable
(the robot), else ONNX Runtime (CI, laptops, the demo). The choice and the reason are logged and
kept in ``backend.selection`` / ``describe()["selection"]``, so a robot that silently fell back to
the CPU is visible in the node log and /diagnostics. An explicitly requested backend that cannot
run is an error (never a silent fallback). Only the chosen backend's modules are imported; torch
is imported by the torch backend alone.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
from typing import Any, Protocol

from minipamayo_ros.inference.backend import BackendError, BackendOptions, InferenceBackend
from minipamayo_ros.manifest import ModelManifest

BACKENDS = ("auto", "onnxruntime", "tensorrt", "torch")

_log = logging.getLogger("minipamayo_ros.inference")


class _Logger(Protocol):
    def info(self, msg: str, /) -> Any: ...


def import_tensorrt() -> tuple[Any, str]:
    """``(tensorrt module, "")`` or ``(None, why not)``.

    Only real bindings count: ``pip install tensorrt-stubs`` leaves a ``tensorrt/`` folder holding
    just ``__init__.pyi``, which Python imports as an empty namespace package.
    """
    if importlib.util.find_spec("tensorrt") is None:
        return None, "tensorrt is not importable (no TensorRT Python bindings)"
    try:
        import tensorrt as trt
    except Exception as exc:  # broken install (e.g. missing libnvinfer) is "not available"
        return None, f"tensorrt import failed: {exc}"
    if not hasattr(trt, "Builder") or not hasattr(trt, "__version__"):
        return None, "tensorrt is only type stubs here (no TensorRT Python bindings)"
    return trt, ""


def tensorrt_availability(device: int = 0) -> tuple[bool, str]:
    """``(True, "<trt version> on <gpu>")`` or ``(False, why not)``; imports tensorrt only if present."""
    trt, why = import_tensorrt()
    if trt is None:
        return False, why
    from minipamayo_ros.inference.cuda_buffers import probe_gpu

    gpu, reason = probe_gpu(device)
    if gpu is None:
        return False, f"tensorrt {trt.__version__} is importable but no CUDA GPU is usable: {reason}"
    return True, f"tensorrt {trt.__version__} on {gpu.name} ({gpu.sm})"


def choose_backend(options: BackendOptions) -> tuple[str, str]:
    """``(backend name, reason)`` for ``options.backend`` (resolves ``auto``)."""
    name = options.backend.strip().lower()
    if name not in BACKENDS:
        raise BackendError(f"unknown backend '{options.backend}'; choose one of {list(BACKENDS)}")
    if name != "auto":
        return name, f"backend={name} requested"
    ok, why = tensorrt_availability(_device_index(options.device))
    if ok:
        return "tensorrt", f"auto: {why}"
    return "onnxruntime", f"auto: onnxruntime on CPU because {why}"


def create_backend(manifest: ModelManifest, options: BackendOptions | None = None,
                   logger: _Logger | None = None) -> InferenceBackend:
    """Load ``manifest``'s model on the backend ``options.backend`` selects (see module doc).

    Raises :class:`BackendError` (message says what to fix) when the backend cannot load the model.
    The caller runs ``warm_up()`` before reporting ready.
    """
    options = options or BackendOptions()
    name, reason = choose_backend(options)
    log = logger or _log
    log.info(f"inference backend for {manifest.model_id}: {name} ({reason})")
    backend: InferenceBackend
    if name == "onnxruntime":
        from minipamayo_ros.inference.onnxruntime_backend import OnnxRuntimeBackend

        backend = OnnxRuntimeBackend(manifest, options)
    elif name == "tensorrt":
        trt, why = import_tensorrt()
        if trt is None:
            raise BackendError(f"backend=tensorrt but {why}; on JetPack: sudo apt install "
                               "python3-libnvinfer (or use backend:=onnxruntime)")
        from minipamayo_ros.inference.tensorrt_backend import TensorRTBackend

        if "build_log" not in options.extra:  # engine-build progress goes where the caller logs
            options = dataclasses.replace(options, extra={**options.extra, "build_log": log.info})
        backend = TensorRTBackend(manifest, options)
    else:
        from minipamayo_ros.inference.torch_backend import TorchBackend

        backend = TorchBackend(manifest, options)
    backend.selection = reason
    return backend


def _device_index(device: str) -> int:
    """``"cuda:1"`` -> 1; anything without an index -> 0."""
    _, _, idx = device.partition(":")
    return int(idx) if idx.isdigit() else 0
