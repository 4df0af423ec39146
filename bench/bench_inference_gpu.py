"""GPU inference benchmark of the 0.5B policy (run on the lent GPU through the device tool).

    PYTHONPATH=. python3 -m bench.bench_inference_gpu --out $OUT [--full | --only SPEC,...] [--quick]

Writes ``inference_gpu_<card>.json`` (``bench/gpu_cards.py``: named by the card that ran it).
A run is ``kind:variant:px:precision:mode`` (e.g. ``policy:committed:320:fp16:compile_io``):

* ``kind`` policy | text_decoder; ``variant``: a 0.5B variant of ``bench_inference_roofline.VARIANTS``
  (``committed`` = ``configs/minipamayo-0.5b.yaml`` as it is; random init: latency does not depend
  on the weights' values); ``px`` the square input; ``precision`` fp16 | bf16;
* ``mode`` (:data:`MODES`): ``eager``; ``graph`` (one CUDA graph of the forward, fused SDPA
  attention: the torch backend's default); ``graph_matmul_attn`` (export-style attention);
  ``graph_io`` (the input/output copies inside the graph too: one launch per ``infer()``);
  ``compile`` (torch.compile/inductor: LayerNorm, residual and GELU fused into few Triton kernels,
  under the same graph); ``compile_io``; ``compile_freeze_io`` (+ inductor freezing: weights as
  constants); ``compile_autotune`` (max-autotune GEMMs); ``compile_io_pdl`` (inductor's kernels
  with programmatic dependent launch); ``graph_io_<b>`` / ``compile_io_<b>``
  (``b`` flash | efficient | cudnn): the same with the fused attention pinned to that kernel
  (``extra["sdpa_backends"]``; torch's own pick differed between two H100 runs of one torch build).

Per run: p50/p95/p99/max of ``infer()`` (host->device copy, forward, device->host copy, sync), the
GPU-only time of one graph replay (CUDA events), the kernel count and summed kernel time of one
forward (torch.profiler/CUPTI, outside the graph: the graph replays the same kernels), FLOPs
(``bench_inference_roofline.count``), the card's data-sheet roofline (max of FLOPs / fp16 peak and
weight bytes / bandwidth) and the fraction of it reached at p50 and p95, GPU memory.
Extra sections: measured ceilings (1 GiB device copy, 8192^3 fp16 matmul), the TensorRT backend's
CUDA buffers with cuda-python (``cuda_buffers``), the shipped tiny models on CUDA vs ONNX Runtime.

The default plan fits one device call: runs are skipped once the time budget would be exceeded
and listed under ``skipped`` with the reason. ``--full`` measures every run of :func:`full_plan`
(no budget; only runs that fail are missing, with their error under ``errors``).
Under ``scripts/bench.sh`` on a machine without CUDA it summarises the newest committed result.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np

from bench.gpu_cards import card_peaks, newest_result, result_path, stamp
from bench.result import BenchResult
from minipamayo_ros.latency import summarize

BENCH = "inference_gpu"
GOAL_POLICY_P99_MS = 1.5
GOAL_TEXT_MS = 25.0
#: mode -> backend settings (see module doc)
MODES: dict[str, dict[str, Any]] = {
    "eager": {"cuda_graphs": False},
    "graph_matmul_attn": {"fused_attention": False},
    "graph": {},
    "graph_io": {"graph_io": True},
    "compile": {"compile": True},
    "compile_io": {"compile": True, "graph_io": True},
    "compile_freeze_io": {"compile": True, "graph_io": True, "compile_options": {"freezing": True}},
    "compile_autotune": {"compile": True, "compile_autotune": True},
    # inductor's Triton kernels with programmatic dependent launch (Hopper+): the next kernel's
    # launch overlaps the previous one's tail
    "compile_io_pdl": {"compile": True, "graph_io": True, "compile_options": {"triton.enable_pdl": True}},
    **{f"graph_io_{b}": {"graph_io": True, "sdpa_backends": [b]} for b in ("flash", "efficient", "cudnn")},
    **{f"compile_io_{b}": {"compile": True, "graph_io": True, "sdpa_backends": [b]}
       for b in ("flash", "efficient", "cudnn")},
    # the fusion backbone's linears through the split-K kernel (skinny_gemm; tuned by --extras skinny_tune)
    "graph_io_skinny": {"graph_io": True, "skinny_gemm": True},
    "compile_io_skinny": {"compile": True, "graph_io": True, "skinny_gemm": True},
    "compile_io_cudnn_skinny": {"compile": True, "graph_io": True, "sdpa_backends": ["cudnn"],
                                "skinny_gemm": True},
}
#: kernel name pattern -> category of the per-forward breakdown (first match wins)
KERNEL_CATEGORIES = (("attention", ("sdpa", "flash", "fmha", "attention", "attn")),
                     ("gemm", ("nvjet", "gemm", "cutlass", "xmma", "cublas", "splitk")),
                     ("conv", ("conv", "implicit", "cudnn")),
                     ("copy", ("memcpy", "memset", "copy", "transpose", "cat")),
                     ("norm_or_reduction", ("layer_norm", "triton_per", "triton_red", "reduce", "softmax")),
                     ("pointwise", ("triton_poi", "elementwise", "gelu", "unrolled")))
#: rough seconds a run costs on an H100 (load, warm-up, compile, 300 calls, profile): the budget check
COST_S = {"eager": 15, "compile_autotune": 300, "text_compile": 100}
COMPILE_COST_S = 45
GRAPH_COST_S = 10


def _stats(ms: list[float]) -> dict[str, float]:
    s = summarize(ms)
    return {"p50_ms": round(s.p50, 4), "p95_ms": round(s.p95, 4), "p99_ms": round(s.p99, 4),
            "max_ms": round(s.max, 4), "mean_ms": round(s.mean, 4), "n": s.count}


def cuda_buffers_check(quick: bool) -> dict[str, Any]:
    """Round-trip data through pinned host / device buffers and one stream with cuda-python."""
    from minipamayo_ros.inference.cuda_buffers import CudaError, open_cuda

    cuda = open_cuda(0, "cuda-python")
    rt = cuda.api.rt
    out: dict[str, Any] = {"binding": cuda.binding, "version": cuda.version()}
    info = cuda.info()
    out["gpu"] = {"name": info.name, "sm": info.sm,
                  "total_memory_gb": round(info.total_memory_bytes / 1e9, 1)}
    stream = cuda.stream()
    out["stream_handle_nonzero"] = stream.handle != 0
    rng = np.random.default_rng(0)
    tensors = {"image": ((1, 320, 320, 3), np.uint8), "state": ((1, 10, 3), np.float32),
               "waypoints": ((1, 20, 2), np.float32), "context": ((1, 1024), np.float32),
               "event": ((1,), np.int64)}
    ok = True
    for name, (shape, dtype) in tensors.items():
        host_in, host_out = cuda.pinned(shape, dtype), cuda.pinned(shape, dtype)
        dev_in, dev_out = cuda.device_buffer(host_in.nbytes), cuda.device_buffer(host_in.nbytes)
        src = (rng.integers(0, 256, shape, dtype=np.uint8) if dtype == np.uint8
               else rng.normal(0, 10, shape).astype(dtype))
        np.copyto(host_in.array, src)                       # as TensorRTBackend.infer
        cuda.copy_htod(dev_in, host_in, stream)
        cuda.copy_dtod(dev_out, dev_in, host_in.nbytes, stream)  # the engine's place on the stream
        cuda.memset(dev_in, 0, stream)
        cuda.copy_dtoh(host_out, dev_out, stream)
        stream.synchronize()
        same = bool(np.array_equal(host_out.array, src))
        cuda.copy_dtoh(host_out, dev_in, stream)
        stream.synchronize()
        zeroed = not np.any(host_out.array.view(np.uint8))
        err, attrs = rt.cudaPointerGetAttributes(host_in.ptr)
        pinned = err == rt.cudaError_t.cudaSuccess and attrs.type == rt.cudaMemoryType.cudaMemoryTypeHost
        out[f"roundtrip_{name}"] = {"equal": same, "memset_zero": zeroed, "pinned": bool(pinned),
                                    "bytes": host_in.nbytes}
        ok = ok and same and zeroed and bool(pinned)
    try:  # a copy larger than the destination must be refused before it reaches the driver
        small = cuda.device_buffer(16)
        cuda.copy_htod(small, cuda.pinned((1, 320, 320, 3), np.uint8), stream)
        out["oversize_copy_refused"] = False
        ok = False
    except CudaError:
        out["oversize_copy_refused"] = True
    # copy timings for the 320 px policy input + outputs (what one TensorRT inference moves)
    img = cuda.pinned((1, 320, 320, 3), np.uint8)
    dimg = cuda.device_buffer(img.nbytes)
    outs = cuda.pinned((1, 1100), np.float32)
    douts = cuda.device_buffer(outs.nbytes)
    times = []
    for _ in range(200 if quick else 2000):
        t0 = time.perf_counter()
        cuda.copy_htod(dimg, img, stream)
        cuda.copy_dtoh(outs, douts, stream)
        stream.synchronize()
        times.append((time.perf_counter() - t0) * 1e3)
    out["h2d_image_320_plus_d2h_outputs"] = _stats(times)
    cuda.close()
    out["all_ok"] = ok
    return out


def _policy_inputs(cfg: Any, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    h, w = cfg.image_size
    return {"image": rng.integers(0, 256, (1, h, w, 3), dtype=np.uint8),
            "state": rng.normal(0, 1, (1, cfg.state_steps, cfg.state_features)).astype(np.float32)}


def _text_inputs(cfg: Any, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"context": rng.normal(0, 1, (1, cfg.context_dim)).astype(np.float32),
            "event": np.array([3], np.int64)}


def parse_spec(spec: str) -> tuple[str, str, int, str, str]:
    """``kind:variant:px:precision:mode`` -> its parts (ValueError naming what is wrong)."""
    from bench.bench_inference_roofline import VARIANTS

    parts = spec.split(":")
    if len(parts) != 5:
        raise ValueError(f"run {spec!r}: expected kind:variant:px:precision:mode")
    kind, variant, px, precision, mode = parts
    if kind not in ("policy", "text_decoder") or variant not in VARIANTS or mode not in MODES \
            or precision not in ("fp16", "bf16", "fp32") or not px.isdigit():
        raise ValueError(f"run {spec!r}: kind policy|text_decoder, variant {sorted(VARIANTS)}, px an "
                         f"int, precision fp16|bf16|fp32, mode {sorted(MODES)}")
    return kind, variant, int(px), precision, mode


def run_name(spec: str) -> str:
    """JSON key / metric prefix of a run: ``policy_committed_320_fp16_compile_io``."""
    return spec.replace(":", "_")


def default_plan() -> list[str]:
    """What one device call measures: the committed 0.5B config's GPU path, mode by mode, then
    the backbones with fewer kernels (parallel blocks, fewer wider layers) in the best mode."""
    plan = [f"policy:committed:320:fp16:{m}" for m in ("graph", "graph_io", "compile", "compile_io",
                                                       "compile_io_cudnn", "compile_freeze_io")]
    plan += ["policy:committed:320:bf16:compile_io", "policy:pool4-par:320:fp16:compile_io",
             "policy:pool4-par-w1536d14:320:fp16:compile_io", "policy:pool4-par-w1280d20:320:fp16:compile_io",
             "policy:committed:256:fp16:compile_io", "policy:committed:384:fp16:compile_io",
             "text_decoder:committed:320:fp16:graph"]
    return plan


def full_plan() -> list[str]:
    """Every run: each variant x fp16/bf16 x every mode at 320 px, the committed config at
    256/384 px, the text decoder in eager/graph/compile."""
    from bench.bench_inference_roofline import VARIANTS

    plan = [f"policy:{v}:320:{p}:{m}" for v in VARIANTS for p in ("fp16", "bf16") for m in MODES]
    plan += [f"policy:committed:{px}:fp16:{m}" for px in (256, 384) for m in ("graph", "compile_io")]
    plan += [f"text_decoder:committed:320:{p}:{m}" for p in ("fp16", "bf16")
             for m in ("eager", "graph", "compile")]
    return plan


def estimated_cost_s(spec: str) -> float:
    kind, _, _, _, mode = parse_spec(spec)
    if kind == "text_decoder" and mode.startswith("compile"):
        return COST_S["text_compile"]
    return COST_S.get(mode, COMPILE_COST_S if mode.startswith("compile") else GRAPH_COST_S)


def kernel_category(name: str) -> str:
    """:data:`KERNEL_CATEGORIES` name of a CUDA kernel (``other`` when none matches)."""
    low = name.lower()
    for cat, keys in KERNEL_CATEGORIES:
        if any(k in low for k in keys):
            return cat
    return "other"


def _count_kernels(fn: Any, reps: int = 3, listing: Path | None = None) -> dict[str, Any]:
    """Kernels and summed kernel time per call of ``fn`` (torch.profiler, CUDA activities), per
    :func:`kernel_category`; ``listing``: write the first call's kernels in order (name, us)."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    fn()
    torch.cuda.synchronize()
    with torch.no_grad(), profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(reps):
            fn()
        torch.cuda.synchronize()
    kernels = [e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]
    by_name: dict[str, list[float]] = {}
    for e in kernels:
        by_name.setdefault(e.name, []).append(e.device_time)
    top = sorted(by_name.items(), key=lambda kv: -sum(kv[1]))[:8]
    cats: dict[str, dict[str, float]] = {}
    for e in kernels:
        c = cats.setdefault(kernel_category(e.name), {"kernels": 0.0, "ms": 0.0})
        c["kernels"] += 1 / reps
        c["ms"] += e.device_time / reps / 1e3
    if listing is not None:
        first = sorted(kernels, key=lambda e: e.time_range.start)[:len(kernels) // reps]
        listing.write_text("".join(f"{e.device_time:8.2f} us  {kernel_category(e.name):18s} {e.name[:140]}\n"
                                   for e in first))
    return {"kernels": len(kernels) / reps,
            "kernel_time_ms": sum(e.device_time for e in kernels) / reps / 1e3,
            "by_category": {k: {"kernels": round(v["kernels"], 1), "ms": round(v["ms"], 4)}
                            for k, v in sorted(cats.items(), key=lambda kv: -kv[1]["ms"])},
            "top": [{"name": n[:80], "calls": len(t) / reps, "ms": round(sum(t) / reps / 1e3, 4)}
                    for n, t in top]}


def bench_run(spec: str, n: int, counts: dict[tuple[str, int, str], dict[str, float]],
              out_dir: Path | None = None) -> dict[str, Any]:
    """Load, warm up and time one run (see module doc); ``out_dir``: also write the run's kernel
    listing there (``kernels_<run>.txt``)."""
    import torch

    from bench.bench_inference_roofline import count, fusion_key, variant_config
    from minipamayo_ros.inference.backend import BackendOptions
    from minipamayo_ros.inference.torch_backend import TorchBackend

    kind, variant, px, precision, mode = parse_spec(spec)
    cfg = variant_config(variant, px)
    m = MODES[mode]
    gc.collect()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    extra = {"fused_attention": m.get("fused_attention", True), "graph_io": m.get("graph_io", False),
             "compile_autotune": m.get("compile_autotune", False)}
    for key in ("compile_options", "sdpa_backends", "skinny_gemm"):
        if m.get(key):
            extra[key] = m[key]
    opts = BackendOptions(backend="torch", device="cuda:0", precision=precision,
                          cuda_graphs=m.get("cuda_graphs", True), compile=m.get("compile", False),
                          warmup_runs=10, extra=extra)
    t0 = time.monotonic()
    backend = TorchBackend.from_config(cfg, kind, opts)
    weights_mb = torch.cuda.memory_allocated() / 2**20
    torch.cuda.reset_peak_memory_stats()
    x = _policy_inputs(cfg) if kind == "policy" else _text_inputs(cfg)
    backend.warm_up()
    load_s = time.monotonic() - t0
    ms = []
    first = backend.infer(x)
    for _ in range(n):
        backend.infer(x)
        ms.append(backend.last_infer_ms)
    key = (variant, px, kind)
    if key not in counts:
        counts[key] = count(cfg, kind)
    c = counts[key]
    res: dict[str, Any] = {"kind": kind, "variant": variant, "image_px": px, "precision": precision,
                           "mode": mode,
                           "fusion": fusion_key(cfg), "vision_tokens": cfg.vision_tokens, **_stats(ms),
                           "load_and_warmup_s": round(load_s, 1), "parameters": backend.num_parameters,
                           "gflops": round(c["flops"] / 1e9, 3),
                           "gpu_mem_weights_mb": round(weights_mb, 1),
                           "gpu_mem_peak_allocated_mb": round(torch.cuda.max_memory_allocated() / 2**20, 1),
                           "describe": backend.describe(),
                           # same seed, same inputs in every run of a variant: modes compare output to output
                           "first_output": {k: np.asarray(v, np.float64).ravel()[:40].round(5).tolist()
                                            for k, v in first.items()}}
    if backend._graph is not None:  # GPU-only time of one replay (CUDA events)
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        gpu_ms = []
        for _ in range(min(n, 200)):
            start.record()
            backend._graph.replay()
            end.record()
            end.synchronize()
            gpu_ms.append(start.elapsed_time(end))
        res["graph_replay_gpu"] = _stats(gpu_ms)
    try:
        listing = None if out_dir is None else out_dir / f"kernels_{run_name(spec)}.txt"
        res["kernels_per_forward"] = _count_kernels(backend._forward, listing=listing)
    except Exception as exc:  # profiler unavailable: the timing stands without it
        res["kernels_per_forward"] = {"error": repr(exc)[:300]}
    peaks = card_peaks(torch.cuda.get_device_name(0))
    if peaks:
        reads = c["weight_reads"]
        compute_ms = c["flops"] / (peaks["tflops"][precision] * 1e12) * 1e3
        memory_ms = 2 * c["parameters"] * reads / (peaks["bw_gbs"] * 1e9) * 1e3
        res["roofline_ms"] = round(max(compute_ms, memory_ms), 5)
        res["roofline_bound"] = "compute" if compute_ms >= memory_ms else "memory"
        res["fraction_of_roofline_p50"] = round(res["roofline_ms"] / res["p50_ms"], 4)
        res["fraction_of_roofline_p95"] = round(res["roofline_ms"] / res["p95_ms"], 4)
    backend.close()
    del backend
    return res


def measured_ceilings() -> dict[str, float]:
    """Device-to-device copy of 1 GiB (bytes read + written per second) and an 8192^3 fp16 matmul."""
    import torch

    out = {"copy_gbs": round(measured_copy_bandwidth_gbs(), 1)}
    a = torch.randn(8192, 8192, device="cuda", dtype=torch.float16)
    b = torch.randn_like(a)
    for _ in range(3):
        a @ b
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(10):
        a @ b
    end.record()
    end.synchronize()
    out["matmul_fp16_tflops"] = round(10 * 2 * 8192**3 / (start.elapsed_time(end) / 1e3) / 1e12, 1)
    del a, b
    torch.cuda.empty_cache()
    return out


def tiny_gpu_parity() -> dict[str, Any]:
    """Shipped tiny models: TorchBackend on CUDA (fp32 + CUDA graph, fp16 + graph) vs ONNX Runtime CPU."""
    from minipamayo_ros.inference import BackendOptions, create_backend, load_manifest

    engines = Path(__file__).resolve().parents[1] / "engines"
    out: dict[str, Any] = {}
    for name in ("minipamayo-tiny-policy", "minipamayo-tiny-text"):
        m = load_manifest(engines / f"{name}.manifest.json")
        ort = create_backend(m, BackendOptions(backend="onnxruntime"))
        for precision in ("fp32", "fp16"):
            pt = create_backend(m, BackendOptions(backend="torch", device="cuda:0", precision=precision))
            worst: dict[str, float] = {}
            for seed in range(5):
                rng = np.random.default_rng(seed)
                x: dict[str, np.ndarray]
                if m.kind == "policy":
                    x = {"image": rng.integers(0, 256, (1, 128, 128, 3), dtype=np.uint8),
                         "state": rng.normal(0, 1, (1, 10, 3)).astype(np.float32)}
                else:
                    x = {"context": rng.normal(0, 1, (1, 96)).astype(np.float32),
                         "event": np.array([seed % 7], np.int64)}
                a, b = ort.infer(x), pt.infer(x)
                for k in a:
                    d = float(np.abs(a[k].astype(np.float64) - b[k]).max())
                    worst[k] = max(worst.get(k, 0.0), d)
            out[f"{name}_{precision}_graph_max_abs_diff"] = worst
            pt.close()
    return out


def measured_copy_bandwidth_gbs() -> float:
    """Device-to-device copy of 1 GiB: bytes read + written per second [GB/s]."""
    import torch

    a = torch.empty(2**30, dtype=torch.uint8, device="cuda")
    b = torch.empty_like(a)
    for _ in range(3):
        b.copy_(a)
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(10):
        b.copy_(a)
    torch.cuda.synchronize()
    gbs = 2 * 10 * a.numel() / (time.perf_counter() - t0) / 1e9
    del a, b
    torch.cuda.empty_cache()
    return gbs


def skinny_tune() -> dict[str, Any]:
    """Time the split-K kernel's candidate configs against cuBLAS on the committed 0.5B backbone's
    four weight shapes at its 320 px token count, and make the winners the table the ``*_skinny``
    runs of this process use (``skinny_gemm.TUNED``). Pipelines 4 deep only (``tune`` can also try
    3: half the candidates, to fit one device call)."""
    from bench.bench_inference_roofline import variant_config
    from minipamayo_ros.inference import skinny_gemm

    cfg = variant_config("committed", 320)
    d, hidden = cfg.fusion.width, int(cfg.fusion.width * cfg.fusion.mlp_ratio)
    rows = 1 + cfg.vision_tokens + cfg.state_steps + cfg.num_waypoints
    shapes = [(3 * d, d), (d, d), (hidden, d), (d, hidden)]  # qkv, proj, fc1, fc2
    result = skinny_gemm.tune(shapes, rows, stages=(4,))
    skinny_gemm.TUNED.update(skinny_gemm.configs_from_tuning(result))
    summary = {k: {key: v.get(key) for key in ("cublas_us", "best_us", "cublas_gbps", "gbps", "best",
                                                "max_abs_err", "tune_s")} for k, v in result.items()}
    print(json.dumps(summary, indent=1), flush=True)
    return {"rows": rows, "shapes": result}


EXTRAS = ("ceilings", "cuda_buffers", "tiny_parity", "skinny_tune")


def measure(out_dir: Path, quick: bool, plan: list[str], budget_s: float | None,
            extras: tuple[str, ...] = EXTRAS) -> dict[str, Any]:
    """Run the ``extras`` sections and ``plan`` (skipping what would overrun ``budget_s``, None =
    no budget); writes ``inference_gpu_<card>.json`` after every run and returns its content."""
    import torch

    t_start = time.monotonic()
    gpu = torch.cuda.get_device_name(0)
    result: dict[str, Any] = {"measured_at": stamp(),
                              "host": {"python": platform.python_version(), "torch": torch.__version__,
                                       "cuda": torch.version.cuda, "gpu": gpu},
                              "card_peaks": card_peaks(gpu), "plan": plan, "budget_s": budget_s,
                              "runs": {}, "skipped": {}, "errors": {}}
    path = result_path(out_dir, BENCH, gpu)

    def save() -> None:
        result["wall_s"] = round(time.monotonic() - t_start, 1)
        path.write_text(json.dumps(result, indent=1))

    def section(name: str, fn: Any) -> Any:
        print(f"[gpu-bench] {name} ...", flush=True)
        try:
            value = fn()
        except Exception:
            result["errors"][name] = traceback.format_exc()[-3000:]
            print(result["errors"][name], flush=True)
            value = None
        save()
        return value

    sections = {"ceilings": measured_ceilings, "cuda_buffers": lambda: cuda_buffers_check(quick),
                "tiny_parity": tiny_gpu_parity, "skinny_tune": skinny_tune}
    for name in extras:
        result[name] = section(name, sections[name])
    n_pol, n_txt = (50, 20) if quick else (300, 100)
    counts: dict[tuple[str, int, str], dict[str, float]] = {}
    for spec in plan:
        elapsed = time.monotonic() - t_start
        cost = estimated_cost_s(spec)
        if budget_s is not None and elapsed + cost > budget_s:
            result["skipped"][run_name(spec)] = (f"time budget: {elapsed:.0f} s elapsed + ~{cost:.0f} s "
                                                 f"> {budget_s:.0f} s (--full measures it)")
            save()
            continue
        n = n_pol if spec.startswith("policy") else n_txt
        value = section(run_name(spec), lambda spec=spec, n=n: bench_run(spec, n, counts, out_dir))
        if value is not None:
            result["runs"][run_name(spec)] = value
            r = value
            print(f"  p50 {r['p50_ms']:.3f} p95 {r['p95_ms']:.3f} p99 {r['p99_ms']:.3f} ms, "
                  f"GPU {r.get('graph_replay_gpu', {}).get('p50_ms', '-')} ms, kernels "
                  f"{r.get('kernels_per_forward', {}).get('kernels', '-')}, roofline frac p50 "
                  f"{r.get('fraction_of_roofline_p50', '-')}", flush=True)
        save()
    save()
    return result


def summarize_result(result: dict[str, Any], source: str = "measured now") -> BenchResult:
    """Metrics, goals and a markdown table from a result dict (measured now or loaded)."""
    metrics: dict[str, Any] = {}
    rows = ["| run | tokens | p50 ms | p95 ms | p99 ms | max ms | GPU-only p50 ms | kernels | roofline ms "
            "| frac p50 | peak MB |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for key, r in result.get("runs", {}).items():
        for stat in ("p50_ms", "p95_ms", "p99_ms", "max_ms"):
            metrics[f"{key}_{stat}"] = r[stat]
        metrics[f"{key}_gpu_mem_peak_mb"] = r["gpu_mem_peak_allocated_mb"]
        k = r.get("kernels_per_forward", {}).get("kernels")
        if k is not None:
            metrics[f"{key}_kernels"] = k
        if "fraction_of_roofline_p50" in r:
            metrics[f"{key}_roofline_fraction_p50_ratio"] = r["fraction_of_roofline_p50"]
        gpu_only = r.get("graph_replay_gpu", {}).get("p50_ms", "")
        kernels = "" if k is None else f"{k:.0f}"
        rows.append(f"| {key} | {r.get('vision_tokens', '')} | {r['p50_ms']:.3f} | {r['p95_ms']:.3f} "
                    f"| {r['p99_ms']:.3f} | {r['max_ms']:.3f} | {gpu_only} | {kernels} "
                    f"| {r.get('roofline_ms', '')} | {r.get('fraction_of_roofline_p50', '')} "
                    f"| {r['gpu_mem_peak_allocated_mb']} |")
    goals = {}
    from bench.bench_inference_roofline import fusion_key, same_variant, variant_config

    committed = fusion_key(variant_config("committed"))  # runs of the config as it is now
    best = [r["p99_ms"] for r in result.get("runs", {}).values()
            if r["kind"] == "policy" and same_variant(r.get("fusion") or {}, committed)
            and r["image_px"] == 320 and r["precision"] == "fp16" and r["mode"] != "eager"]
    if best:
        goals[f"0.5B policy (committed config) fp16 320 px p99 <= {GOAL_POLICY_P99_MS} ms (best run: "
              f"{min(best):.2f} ms)"] = min(best) <= GOAL_POLICY_P99_MS
    text = [r["p50_ms"] for r in result.get("runs", {}).values() if r["kind"] == "text_decoder"]
    if text:
        goals[f"32-token text <= {GOAL_TEXT_MS} ms (best run, p50)"] = min(text) <= GOAL_TEXT_MS
    if result.get("cuda_buffers") is not None:
        ok = bool(result["cuda_buffers"].get("all_ok"))
        goals["cuda-python pinned/device/stream round trip exact"] = ok
    host = result.get("host", {})
    md = [f"{source}: {host.get('gpu')}, torch {host.get('torch')}, measured {result.get('measured_at')}; "
          f"ceilings {result.get('ceilings')}; data-sheet peaks {result.get('card_peaks')}", "", *rows]
    if result.get("skipped"):
        md.append("\nskipped: " + "; ".join(f"{k} ({v})" for k, v in result["skipped"].items()))
    if result.get("errors"):
        md.append(f"\nerrors in: {sorted(result['errors'])}")
    return BenchResult(metrics=metrics, summary_md="\n".join(md), goals=goals)


def run(out_dir: Path, quick: bool) -> BenchResult:
    """bench.run entry: measure the default plan where CUDA works, else summarise the newest
    committed result."""
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    if has_cuda:
        return summarize_result(measure(out_dir, quick, default_plan(), 420.0))
    found = newest_result(BENCH, require="runs")
    if found is None:
        return BenchResult(metrics={}, summary_md="no CUDA GPU here and no committed GPU results")
    return summarize_result(found[1], f"committed {found[0].name} (no CUDA GPU here)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--full", action="store_true", help="every run of full_plan(), no time budget")
    parser.add_argument("--only", default="", help="comma-separated runs kind:variant:px:precision:mode")
    parser.add_argument("--budget-s", type=float, default=420.0, help="default plan / --only: time budget")
    parser.add_argument("--extras", default=",".join(EXTRAS),
                        help=f"sections besides the runs (--full: all): {','.join(EXTRAS)}")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    plan = full_plan() if args.full else ([s for s in args.only.split(",") if s] or default_plan())
    for spec in plan:
        parse_spec(spec)  # fail before the GPU work starts
    extras = EXTRAS if args.full else tuple(e for e in args.extras.split(",") if e)
    unknown = set(extras) - set(EXTRAS)
    if unknown:
        parser.error(f"unknown --extras {sorted(unknown)}; choose from {EXTRAS}")
    res = measure(args.out, args.quick, plan, None if args.full else args.budget_s, extras)
    summary = summarize_result(res)
    print(summary.summary_md)
    print(json.dumps(summary.goals, indent=2))


if __name__ == "__main__":
    main()
