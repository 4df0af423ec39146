"""PyTorch backend (GPU workstations; fallback where a TensorRT engine cannot be built).

Runs the reference network from ``minipamayo_ros.model`` with safetensors weights (never pickle)
in fp32, fp16 or bf16, optionally under ``torch.compile``, and on CUDA by default replays one
captured CUDA graph per call: at batch 1 a 0.5 B model is launch-bound in eager mode (hundreds of
small kernels), and the graph removes that CPU overhead. Inputs are staged through pinned host
tensors into static device tensors; outputs come back through pinned host tensors.

``torch`` is imported when this module is imported, and only the factory imports this module, only
for ``backend: torch``: runtime nodes on the robot never load torch.

Weights: ``options.extra["weights"]`` or ``<model dir>/<config name>.safetensors`` (the manifest's
``config.name``, e.g. ``engines/minipamayo-tiny.safetensors``). :meth:`TorchBackend.from_config`
builds a randomly initialised model instead (latency benchmarks of untrained configs).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from minipamayo_ros import io_contract
from minipamayo_ros.inference.backend import (
    BackendError,
    BackendOptions,
    InferenceBackend,
    Tensors,
    check_inputs,
    concrete_shape,
)
from minipamayo_ros.manifest import ModelManifest, TensorSpec

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
KINDS = ("policy", "text_decoder")
#: ``extra["sdpa_backends"]`` names -> torch's fused-attention kernels (same math, other kernels)
SDPA_BACKENDS = {"flash": "FLASH_ATTENTION", "efficient": "EFFICIENT_ATTENTION",
                 "cudnn": "CUDNN_ATTENTION", "math": "MATH"}


def weights_path(manifest: ModelManifest, options: BackendOptions) -> Path:
    """Where the safetensors weights for ``manifest`` are expected (see module doc)."""
    if options.extra.get("weights"):
        return Path(str(options.extra["weights"])).expanduser()
    name = manifest.config.get("name")
    if not name:
        raise BackendError(f"manifest '{manifest.name}' has no config.name: pass options.extra['weights']")
    return manifest.model_path.parent / f"{name}.safetensors"


def io_specs(cfg: Any, kind: str) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
    """The I/O contract (``minipamayo_ros.io_contract``) of ``kind`` for a ModelConfig (synthetic
    manifests)."""
    if kind == "policy":
        return io_contract.policy_specs(tuple(cfg.image_size), cfg.context_dim)
    return io_contract.text_specs(cfg.context_dim, cfg.text.max_tokens)


class TorchBackend(InferenceBackend):
    """The reference network on CPU or CUDA (see module doc).

    ``options``: ``device`` (cpu | cuda[:N]), ``precision`` (fp32 | fp16 | bf16), ``cuda_graphs``,
    ``compile``; ``extra["weights"]`` (safetensors path), ``extra["fused_attention"]`` (default
    True: SDPA kernel instead of the export-friendly matmul+softmax, same math),
    ``extra["cuda_stream_priority"]`` (int; default: the current stream): run, and capture the CUDA
    graph, on a stream of this priority (0 = lowest, negative = higher, clamped to the device's
    range). A graph keeps the priority of the stream it was *captured* on, so capture and replay
    share that stream. Priority orders dispatch of pending kernels; it never preempts a running one
    (docs/text.md). ``extra["graph_io"]`` (default False): the host<->device copies of the inputs
    and outputs are captured into the CUDA graph too, so one ``infer()`` is one graph launch and
    one sync. ``extra["compile_options"]`` (dict): inductor options for ``torch.compile`` (e.g.
    ``{"freezing": True}``: weights folded as constants). ``extra["sdpa_backends"]`` (list of
    :data:`SDPA_BACKENDS` names or one comma-separated string; default: torch's own pick): the
    fused-attention kernels torch may use, in that order; same math. Pins a choice torch made
    differently in two H100 runs of one build (cuDNN's kernel in one, FlashAttention in the other,
    docs/inference.md, issue 24). ``extra["skinny_gemm"]`` (policy on CUDA; default off): the fusion
    backbone's few-row linears through a split-K Triton kernel (:mod:`skinny_gemm`), same weights.
    """

    def __init__(self, manifest: ModelManifest, options: BackendOptions, model: Any = None) -> None:
        super().__init__(manifest, options)
        if manifest.kind not in KINDS:
            raise BackendError(f"torch backend runs {KINDS} models, manifest '{manifest.name}' is "
                               f"'{manifest.kind}'")
        self.precision = options.precision.lower()
        if self.precision not in DTYPES:
            raise BackendError(f"torch backend precision must be one of {list(DTYPES)}, got "
                               f"'{options.precision}' (int8 runs on TensorRT / ONNX Runtime)")
        self.device = torch.device(options.device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise BackendError(f"device {options.device} requested but torch sees no CUDA GPU "
                               "(set device: cpu, or install a CUDA build of torch)")
        self.dtype = DTYPES[self.precision]
        self._lock = threading.Lock()
        if self.device.type == "cpu":
            torch.set_num_threads(max(1, options.intra_op_threads))  # share the CPU like ORT does
        if model is None:
            model = self._load_model(manifest, options)
        if self.precision == "fp32":  # fp32 means fp32: no TF32 tensor-core rounding (process-wide)
            torch.backends.cuda.matmul.allow_tf32 = False
            torch.backends.cudnn.allow_tf32 = False
        # only the part this manifest runs goes to the device (the other half is dropped)
        part = model.policy if manifest.kind == "policy" else _TextModule(model.text)
        del model
        self._module = part.to(device=self.device, dtype=self.dtype).eval()
        self.fused_attention = bool(options.extra.get("fused_attention", True))
        if self.fused_attention:
            from minipamayo_ros.model.layers import set_fused_attention

            self.fused_attention = set_fused_attention(self._module) > 0
        self._sdpa_backends = _sdpa_backends(options.extra.get("sdpa_backends"))
        self.skinny_gemm = self._use_skinny_gemm(options.extra.get("skinny_gemm"))
        self.num_parameters = sum(p.numel() for p in self._module.parameters())
        self._fn = self._module
        if self._sdpa_backends:  # inside what torch.compile traces: the choice is part of its graph
            self._fn = _restrict_sdpa(self._module, self._sdpa_backends)
        if options.compile:
            mode = "max-autotune-no-cudagraphs" if options.extra.get("compile_autotune") else None
            compile_options = dict(options.extra.get("compile_options") or {})
            self._fn = torch.compile(self._fn, mode=None if compile_options else mode, dynamic=False,
                                     options=compile_options or None)
        self._in_specs, self._out_specs = manifest.inputs, manifest.outputs
        pin = self.device.type == "cuda"
        self._host_in = {s.name: torch.empty(concrete_shape(s.shape), dtype=_torch_dtype(s.dtype),
                                             pin_memory=pin) for s in self._in_specs}
        self._dev_in = {k: torch.zeros_like(v, device=self.device) for k, v in self._host_in.items()}
        self._host_out: dict[str, torch.Tensor] = {}
        self._graph: Any = None
        self._dev_out: tuple[torch.Tensor, ...] = ()
        self.use_graph = bool(options.cuda_graphs and self.device.type == "cuda")
        self.graph_io = bool(self.use_graph and options.extra.get("graph_io", False))
        priority = options.extra.get("cuda_stream_priority")
        self._stream: Any = (torch.cuda.Stream(self.device, priority=int(priority))
                             if priority is not None and self.device.type == "cuda" else None)
        if self.use_graph:
            try:
                self._capture()
            except Exception as exc:  # torch raises RuntimeError subclasses for capture/compile failures
                raise BackendError(f"torch backend could not capture a CUDA graph of '{manifest.name}'"
                                   f"{' under torch.compile' if options.compile else ''}: {exc}; "
                                   "set cuda_graphs: false (or compile: false)") from exc

    def _use_skinny_gemm(self, setting: Any) -> int:
        """``extra["skinny_gemm"]``: the fusion backbone's linears through the split-K kernel of
        :mod:`skinny_gemm` (True: its tuned table; a dict ``{"NxK": {block_n, ...}}``: these
        configs); each block is wrapped in ``SkinnyBlock`` (attention in one kernel too). Returns
        how many linears run the split-K kernel (0 = off)."""
        if not setting:
            return 0
        from minipamayo_ros.inference import skinny_gemm

        if self.manifest.kind != "policy" or self.device.type != "cuda":
            raise BackendError("torch backend: skinny_gemm is for the policy's fusion backbone on CUDA, "
                               f"not a {self.manifest.kind} on {self.device}")
        configs = {}
        if isinstance(setting, dict):
            try:
                configs = skinny_gemm.configs_from_tuning({k: {"best": v} for k, v in setting.items()})
            except (TypeError, ValueError) as exc:
                raise BackendError(f"torch backend: skinny_gemm configs {setting!r}: {exc}") from exc
        try:
            blocks = cast(torch.nn.ModuleList, self._module.blocks)
            count = skinny_gemm.use_skinny_gemm(blocks, configs)
        except ValueError as exc:
            raise BackendError(f"torch backend: skinny_gemm: {exc}") from exc
        if count == 0:  # e.g. parallel blocks (layers.ParallelBlock): nothing it knows how to run
            raise BackendError("torch backend: skinny_gemm wraps sequential transformer blocks only; this "
                               "policy's fusion backbone has none (fusion.parallel_blocks?)")
        return count

    @classmethod
    def from_config(cls, config: Any, kind: str, options: BackendOptions, seed: int = 0) -> TorchBackend:
        """A randomly initialised model of ``config`` (ModelConfig or name), e.g. the 0.5 B benchmark."""
        from minipamayo_ros.model.config import ModelConfig, load_config
        from minipamayo_ros.model.network import build_model

        cfg = config if isinstance(config, ModelConfig) else load_config(config)
        torch.manual_seed(seed)
        with torch.device(options.device):
            model = build_model(cfg)  # initialised directly on the target device (fast for 0.5 B)
        inputs, outputs = io_specs(cfg, kind)
        manifest = ModelManifest(name=f"{cfg.name}-{kind}-random-init", kind=kind,
                                 model_path=Path(f"{cfg.name}.random-init"), sha256="0" * 64,
                                 inputs=inputs, outputs=outputs, config=cfg.as_dict(),
                                 contract_version=io_contract.CONTRACT_VERSION)
        return cls(manifest, options, model=model)

    def _load_model(self, manifest: ModelManifest, options: BackendOptions) -> Any:
        from minipamayo_ros.model.config import ConfigError, ModelConfig
        from minipamayo_ros.model.network import load_model

        path = weights_path(manifest, options)
        if not path.is_file():
            raise BackendError(f"torch backend: weights {path} not found (set options.extra['weights'] "
                               "to the model's .safetensors file)")
        try:
            cfg = ModelConfig.from_dict(manifest.config)
            return load_model(path, cfg)
        except (ConfigError, RuntimeError, ValueError) as exc:
            raise BackendError(f"torch backend could not load {path} for '{manifest.name}': {exc}") from exc

    def _forward(self) -> tuple[torch.Tensor, ...]:
        args = [self._dev_in[s.name] for s in self._in_specs]
        outs = self._fn(*args)
        return tuple(o.to(_torch_dtype(s.dtype)) for o, s in zip(outs, self._out_specs, strict=True))

    def _capture(self) -> None:
        """Warm up on a side stream (compiles, autotunes, allocates), then capture one CUDA graph."""
        with torch.no_grad():
            side = torch.cuda.Stream(self.device)
            side.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(side):
                for _ in range(3):
                    self._forward()
            torch.cuda.current_stream(self.device).wait_stream(side)
            self._graph = torch.cuda.CUDAGraph()
            shapes = [o.shape for o in self._forward()]
            self._host_out = {s.name: torch.empty(shape, dtype=_torch_dtype(s.dtype), pin_memory=True)
                              for s, shape in zip(self._out_specs, shapes, strict=True)}
            with torch.cuda.graph(self._graph, stream=self._stream):
                if self.graph_io:  # pinned host -> device inside the graph: one launch per call
                    for name, host in self._host_in.items():
                        self._dev_in[name].copy_(host, non_blocking=True)
                self._dev_out = self._forward()
                if self.graph_io:
                    for s, o in zip(self._out_specs, self._dev_out, strict=True):
                        self._host_out[s.name].copy_(o, non_blocking=True)

    def infer(self, inputs: Tensors) -> Tensors:
        feed = check_inputs(self.manifest, inputs)
        with self._lock:  # one inference at a time: static graph buffers are shared
            if self._stream is None:
                return self._infer_locked(feed)
            with torch.cuda.stream(self._stream):
                return self._infer_locked(feed)

    def _infer_locked(self, feed: Tensors) -> Tensors:
        if self._module is None:
            raise BackendError("torch backend is closed")
        t0 = time.perf_counter()
        with torch.no_grad():
            for name, host in self._host_in.items():
                host.numpy()[...] = feed[name]
                if not self.graph_io:
                    self._dev_in[name].copy_(host, non_blocking=True)
            if self._graph is not None:
                self._graph.replay()
                outs = self._dev_out
                if self.graph_io:  # the graph copied the outputs to the pinned host tensors
                    torch.cuda.current_stream(self.device).synchronize()
                    self.last_infer_ms = (time.perf_counter() - t0) * 1e3
                    return {k: v.numpy().copy() for k, v in self._host_out.items()}
            else:
                outs = self._forward()
            if self.device.type == "cuda":
                if not self._host_out:
                    self._host_out = {s.name: torch.empty_like(o, device="cpu", pin_memory=True)
                                      for s, o in zip(self._out_specs, outs, strict=True)}
                for s, o in zip(self._out_specs, outs, strict=True):
                    self._host_out[s.name].copy_(o, non_blocking=True)
                torch.cuda.current_stream(self.device).synchronize()
                result = {k: v.numpy().copy() for k, v in self._host_out.items()}
            else:
                result = {s.name: o.numpy().copy() for s, o in zip(self._out_specs, outs, strict=True)}
        self.last_infer_ms = (time.perf_counter() - t0) * 1e3
        return result

    def describe(self) -> dict[str, str]:
        dev = torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else "cpu"
        return {
            "backend": "torch",
            "precision": self.precision,
            "device": dev,
            "torch": torch.__version__,
            "cuda_graphs": str(self._graph is not None).lower(),
            "cuda_stream_priority": "default" if self._stream is None else str(self._stream.priority),
            "compile": str(bool(self.options.compile)).lower(),
            "graph_io": str(self.graph_io).lower(),
            "fused_attention": str(self.fused_attention).lower(),
            "sdpa_backends": ",".join(b.name for b in self._sdpa_backends) or "default",
            "skinny_gemm_linears": str(self.skinny_gemm),
            "parameters": str(self.num_parameters),
            "model_id": self.manifest.model_id,
            "selection": self.selection,
        }

    def close(self) -> None:
        """Drop the graph, buffers and weights so their device memory can be reused."""
        import gc

        self._graph = None
        self._dev_out = ()
        self._dev_in, self._host_in, self._host_out = {}, {}, {}
        self._module = self._fn = None
        if self.options.compile:
            torch._dynamo.reset()  # compiled code holds references to the weights
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()


class _TextModule(torch.nn.Module):
    """Fixed-length greedy caption generation (model.text.greedy_generate) as one callable."""

    def __init__(self, decoder: torch.nn.Module) -> None:
        from minipamayo_ros.model.text import greedy_generate

        super().__init__()
        self.decoder: Any = decoder
        self._generate = greedy_generate

    def forward(self, context: torch.Tensor, event: torch.Tensor) -> tuple[torch.Tensor, ...]:
        dtype = self.decoder.head.weight.dtype
        return tuple(self._generate(self.decoder, context.to(dtype), event))


def _sdpa_backends(names: Any) -> list[Any]:
    """``extra["sdpa_backends"]`` (list or comma-separated string) -> ``SDPBackend`` members."""
    from torch.nn.attention import SDPBackend

    if not names:
        return []
    items = names.split(",") if isinstance(names, str) else list(names)
    unknown = [n for n in items if str(n).strip() not in SDPA_BACKENDS]
    if unknown:
        raise BackendError(f"torch backend: unknown sdpa_backends {unknown}, choose from "
                           f"{list(SDPA_BACKENDS)}")
    return [getattr(SDPBackend, SDPA_BACKENDS[str(n).strip()]) for n in items]


def _restrict_sdpa(module: Any, backends: list[Any]) -> Any:
    """``module`` called under ``sdpa_kernel(backends)``. The context sits inside the function that
    torch.compile traces, so the choice is baked into the compiled graph (entered around an already
    compiled call, an earlier compile of the same graph is reused from the cache whatever the
    backends: issue 24's first GPU run)."""
    from torch.nn.attention import sdpa_kernel

    def run(*args: torch.Tensor) -> Any:
        with sdpa_kernel(backends, set_priority=len(backends) > 1):
            return module(*args)

    return run


def _torch_dtype(name: str) -> torch.dtype:
    return torch.from_numpy(np.zeros(0, np.dtype(name))).dtype
