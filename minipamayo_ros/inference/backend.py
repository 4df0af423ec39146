"""The one interface every inference backend implements.

Lifecycle: ``backend = create_backend(manifest, options)`` → ``backend.warm_up()`` →
``outputs = backend.infer({"image": ..., ...})`` (numpy in, numpy out, names as in the manifest)
→ ``backend.close()``. ``describe()`` says what actually runs (for logs and /diagnostics);
``last_infer_ms`` is the wall time of the latest ``infer`` call (engine time only).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from minipamayo_ros.manifest import ModelManifest

Tensors = dict[str, np.ndarray]


@dataclass(frozen=True)
class BackendOptions:
    """Runtime options; backends ignore what does not apply to them."""

    backend: str = "auto"               # auto | onnxruntime | tensorrt | torch
    intra_op_threads: int = 1           # ONNX Runtime: 1 leaves a core to the follower on 2-core CPUs
    inter_op_threads: int = 1
    precision: str = "fp16"             # tensorrt / torch: fp32 | fp16 | bf16 | int8
    engine_cache_dir: str = ""          # tensorrt: where built engines are cached ("" = beside model)
    force_rebuild: bool = False         # tensorrt: ignore a valid cached engine
    device: str = "cuda:0"              # torch
    cuda_graphs: bool = True            # torch
    compile: bool = False               # torch.compile
    warmup_runs: int = 3
    extra: dict[str, Any] = field(default_factory=dict)


class BackendError(RuntimeError):
    """Loading or running a model failed; the message says what to fix."""


class InferenceBackend(abc.ABC):
    """A loaded model that maps named numpy inputs to named numpy outputs."""

    def __init__(self, manifest: ModelManifest, options: BackendOptions) -> None:
        self.manifest = manifest
        self.options = options
        self.last_infer_ms: float = float("nan")
        self.warmed_up = False
        self.selection = f"backend={options.backend}"  # how the factory chose it (for logs)

    @abc.abstractmethod
    def infer(self, inputs: Tensors) -> Tensors:
        """Run the model once; must set ``last_infer_ms``. Safe to call from any one thread at a
        time per instance (concurrent calls are serialised); returned arrays are the caller's."""

    @abc.abstractmethod
    def describe(self) -> dict[str, str]:
        """backend, precision, device, library versions, model id."""

    def warm_up(self) -> None:
        """Run ``options.warmup_runs`` inferences on zero inputs of the manifest shapes."""
        dummy = {s.name: np.zeros(concrete_shape(s.shape), s.dtype) for s in self.manifest.inputs}
        for _ in range(max(1, self.options.warmup_runs)):
            self.infer(dummy)
        self.warmed_up = True

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release native resources."""


def check_inputs(manifest: ModelManifest, inputs: Tensors) -> Tensors:
    """Inputs as C-contiguous arrays after checking names, dtypes and shapes against the manifest.

    Raises :class:`BackendError` naming the offending tensor. Nothing is cast silently: a float64
    state or an int image is a bug in the caller, and every backend reports it the same way.
    Symbolic (string) manifest dimensions accept any size.
    """
    expected = {s.name for s in manifest.inputs}
    missing = sorted(expected - inputs.keys())
    extra = sorted(inputs.keys() - expected)
    if missing or extra:
        raise BackendError(f"model '{manifest.name}' inputs are {sorted(expected)}; "
                           f"missing {missing}, unexpected {extra}")
    out: Tensors = {}
    for spec in manifest.inputs:
        a = inputs[spec.name]
        if not isinstance(a, np.ndarray):
            raise BackendError(f"input '{spec.name}' must be a numpy array, got {type(a).__name__}")
        if a.dtype != np.dtype(spec.dtype):
            raise BackendError(f"input '{spec.name}' has dtype {a.dtype}, model '{manifest.name}' "
                               f"expects {spec.dtype}")
        if a.ndim != len(spec.shape) or any(
                isinstance(d, int) and d != n for d, n in zip(spec.shape, a.shape, strict=True)):
            raise BackendError(f"input '{spec.name}' has shape {tuple(a.shape)}, model '{manifest.name}' "
                               f"expects {tuple(spec.shape)}")
        out[spec.name] = np.ascontiguousarray(a)
    return out


def concrete_shape(shape: tuple[int | str, ...], fill: int = 1) -> tuple[int, ...]:
    """A manifest shape with symbolic dimensions replaced by ``fill`` (batch 1 on the robot)."""
    return tuple(d if isinstance(d, int) else fill for d in shape)
