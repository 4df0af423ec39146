"""GPU inference benchmark (run on the lent H100 through the device tool) + CUDA buffer check.

    PYTHONPATH=. python3 -m bench.bench_inference_gpu --out $OUT [--quick]

1. ``cuda_buffers``: the TensorRT backend's CUDA code for real with cuda-python: pinned host and
   device buffers and one stream, data round-tripped exactly as ``TensorRTBackend.infer`` does
   (copy into pinned -> H2D -> [engine stand-in: D2D copy on the stream] -> D2H -> sync), a
   memset check, pinned-ness checked with cudaPointerGetAttributes, copy timings.
2. ``policy``: ``minipamayo-0.5b`` (random init: latency does not depend on the weights' values)
   at batch 1, 320 px, through :class:`TorchBackend`: eager vs CUDA graph (export-style matmul
   attention, and fused SDPA attention: the backend default) vs torch.compile + graph (default and
   max-autotune), fp16 and bf16; p50/p95/p99/max of ``infer()`` (host->device copy, forward,
   device->host copy), GPU memory, FLOPs, and the fraction of the memory-bandwidth limit reached
   (weights read once).
3. ``text``: the 0.5B text decoder, 32 tokens (fixed-length greedy, 33 steps), eager vs graph.

Under ``scripts/bench.sh`` on a machine without CUDA this benchmark summarises the committed H100
results in ``bench/results_gpu/`` instead of measuring.
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

from bench.result import BenchResult
from minipamayo_ros.latency import summarize

RESULTS_DIR = Path(__file__).resolve().parent / "results_gpu"
RESULT_FILE = "inference_gpu_h100.json"
#: peak HBM bandwidth by GPU name [GB/s] (NVIDIA data sheets)
PEAK_BW_GBS = {"H100 80GB HBM3": 3350.0, "H100 PCIe": 2000.0, "H200": 4800.0, "H100 NVL": 3900.0}
GOAL_POLICY_P99_MS = 1.5
GOAL_TEXT_MS = 25.0


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


def bench_torch(cfg: Any, kind: str, precision: str, mode: str, n: int) -> dict[str, Any]:
    """Load, warm up and time one TorchBackend configuration."""
    import torch

    from minipamayo_ros.inference.backend import BackendOptions
    from minipamayo_ros.inference.torch_backend import TorchBackend

    gc.collect()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    opts = BackendOptions(backend="torch", device="cuda:0", precision=precision,
                          cuda_graphs=mode != "eager", compile=mode.startswith("compile"), warmup_runs=10,
                          extra={"fused_attention": mode != "graph_matmul_attn",
                                 "compile_autotune": mode == "compile_autotune"})
    t0 = time.monotonic()
    backend = TorchBackend.from_config(cfg, kind, opts)
    weights_mb = torch.cuda.memory_allocated() / 2**20
    torch.cuda.reset_peak_memory_stats()
    x = _policy_inputs(cfg) if kind == "policy" else _text_inputs(cfg)
    backend.warm_up()
    load_s = time.monotonic() - t0
    ms = []
    for _ in range(n):
        backend.infer(x)
        ms.append(backend.last_infer_ms)
    res: dict[str, Any] = {"kind": kind, "precision": precision, "mode": mode, **_stats(ms),
                           "load_and_warmup_s": round(load_s, 1),
                           "parameters": backend.num_parameters,
                           "gpu_mem_weights_mb": round(weights_mb, 1),
                           "gpu_mem_peak_allocated_mb": round(torch.cuda.max_memory_allocated() / 2**20, 1),
                           "gpu_mem_reserved_mb": round(torch.cuda.memory_reserved() / 2**20, 1),
                           "describe": backend.describe()}
    if backend._graph is not None:  # GPU-only time of one replay (CUDA events), no host copies
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        gpu_ms = []
        for _ in range(min(n, 200)):
            start.record()
            backend._graph.replay()
            end.record()
            end.synchronize()
            gpu_ms.append(start.elapsed_time(end))
        res["graph_replay_gpu"] = _stats(gpu_ms)
    backend.close()
    del backend
    return res


def profile_kernels(cfg: Any, precision: str, fused: bool, reps: int = 5) -> dict[str, Any]:
    """Kernel count and summed kernel time of one eager policy forward (torch.profiler, CUPTI).

    The summed kernel time is the floor a CUDA graph of the same kernels can reach (no launch gaps).
    """
    import torch
    from torch.profiler import ProfilerActivity, profile

    from minipamayo_ros.inference.backend import BackendOptions
    from minipamayo_ros.inference.torch_backend import TorchBackend

    opts = BackendOptions(backend="torch", device="cuda:0", precision=precision, cuda_graphs=False,
                          extra={"fused_attention": fused})
    backend = TorchBackend.from_config(cfg, "policy", opts)
    x = _policy_inputs(cfg)
    backend.warm_up()
    for name, host in backend._host_in.items():
        host.numpy()[...] = x[name]
        backend._dev_in[name].copy_(host)
    torch.cuda.synchronize()
    with torch.no_grad(), profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(reps):
            backend._forward()
        torch.cuda.synchronize()
    kernels = [e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]
    total_us = sum(e.device_time for e in kernels) / reps
    by_name: dict[str, list[float]] = {}
    for e in kernels:
        by_name.setdefault(e.name, []).append(e.device_time)
    top = sorted(by_name.items(), key=lambda kv: -sum(kv[1]))[:10]
    backend.close()
    return {"kernels_per_forward": len(kernels) / reps, "kernel_time_per_forward_ms": total_us / 1e3,
            "top_kernels": [{"name": n[:90], "calls_per_forward": len(t) / reps,
                             "ms_per_forward": sum(t) / reps / 1e3} for n, t in top]}


def flops_per_forward(cfg: Any, kind: str) -> float:
    """FLOPs (2 x multiply-adds) of one policy forward / one 32-token generation, counted by torch
    (the roofline benchmark's counter, so both benchmarks use the same figure)."""
    from bench.bench_inference_roofline import count

    return count(cfg, kind)["flops"]


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


def measure(out_dir: Path, quick: bool, image_px: int = 320, only: list[str] | None = None,
            profile: bool = False, result_file: str = RESULT_FILE) -> dict[str, Any]:
    import dataclasses

    import torch

    from minipamayo_ros.model.config import load_config

    t_start = time.monotonic()
    result: dict[str, Any] = {"host": {"python": platform.python_version(), "torch": torch.__version__,
                                       "gpu": torch.cuda.get_device_name(0)}, "errors": {}}
    path = out_dir / result_file

    def save() -> None:
        path.write_text(json.dumps(result, indent=2))

    def section(name: str, fn: Any) -> Any:
        print(f"[gpu-bench] {name} ...", flush=True)
        try:
            value = fn()
        except Exception:
            result["errors"][name] = traceback.format_exc()[-3000:]
            print(result["errors"][name], flush=True)
            value = None
        result[name] = value
        save()
        return value

    cfg = load_config("minipamayo-0.5b")
    cfg = dataclasses.replace(cfg, image_size=(image_px, image_px))
    if profile:
        section("profile_fp16_sdpa", lambda: profile_kernels(cfg, "fp16", True))
        section("profile_fp16_matmul_attn", lambda: profile_kernels(cfg, "fp16", False))
    if not only:
        section("cuda_buffers", lambda: cuda_buffers_check(quick))
        section("tiny_parity", tiny_gpu_parity)
    result["config"] = {"name": cfg.name, "image_size": list(cfg.image_size), "batch": 1,
                        "vision_tokens": cfg.vision_tokens}
    gpu = torch.cuda.get_device_name(0)
    peak_bw = next((v for k, v in PEAK_BW_GBS.items() if k in gpu), float("nan"))
    if not only:
        section("copy_bandwidth_gbs", measured_copy_bandwidth_gbs)
        section("flops", lambda: {"policy": flops_per_forward(cfg, "policy"),
                                  "text_32_tokens": flops_per_forward(cfg, "text_decoder")})
    n_pol, n_txt = (50, 20) if quick else (300, 100)
    runs = []
    plan = [("policy", "fp16", "eager"), ("policy", "fp16", "graph_matmul_attn"), ("policy", "fp16", "graph"),
            ("text_decoder", "fp16", "eager"), ("text_decoder", "fp16", "graph"),
            ("policy", "bf16", "eager"), ("policy", "bf16", "graph"),
            ("text_decoder", "bf16", "eager"), ("text_decoder", "bf16", "graph")]
    if not quick:
        plan += [("policy", "fp16", "compile"), ("policy", "bf16", "compile"),
                 ("text_decoder", "fp16", "compile"), ("policy", "fp16", "compile_autotune")]
    if only:
        plan = [(k if k == "policy" else "text_decoder", p, m) for name in only
                for k, p, m in [name.split("_", 2)]]
    for kind, precision, mode in plan:
        elapsed = time.monotonic() - t_start
        late = (mode == "compile_autotune" and elapsed > 150) or (
            mode.startswith("compile") and elapsed > 300)
        if late and not only:
            result["errors"][f"{kind}_{precision}_{mode}"] = f"skipped: {elapsed:.0f} s elapsed"
            continue  # keep the run inside the device call's limit
        name = f"{'policy' if kind == 'policy' else 'text'}_{precision}_{mode}"
        n = n_pol if kind == "policy" else n_txt
        r = section(name, lambda k=kind, p=precision, m=mode, n=n: bench_torch(cfg, k, p, m, n))
        if r and kind == "policy":
            runs.append(r)
    # memory-bandwidth limit: all weights read once per forward at peak bandwidth
    for r in runs:
        weights_bytes = r["parameters"] * 2
        r["weights_mb"] = round(weights_bytes / 2**20, 1)
        r["bandwidth_limit_ms"] = round(weights_bytes / (peak_bw * 1e9) * 1e3, 4)
        r["fraction_of_limit_p50"] = round(r["bandwidth_limit_ms"] / r["p50_ms"], 3)
    result["peak_bandwidth_gbs"] = peak_bw
    result["wall_s"] = round(time.monotonic() - t_start, 1)
    save()
    return result


def summarize_result(result: dict[str, Any]) -> BenchResult:
    """Metrics, goals and a markdown table from a result dict (measured now or loaded)."""
    metrics: dict[str, Any] = {}
    rows = ["| run | p50 ms | p95 ms | p99 ms | max ms | GPU-only p50 ms | peak alloc MB | limit frac |",
            "|---|---|---|---|---|---|---|---|"]
    for key, r in result.items():
        if not (key.startswith("policy_") or key.startswith("text_")) or not r:
            continue
        for stat in ("p50_ms", "p95_ms", "p99_ms", "max_ms"):
            metrics[f"{key}_{stat}"] = r[stat]
        metrics[f"{key}_gpu_mem_peak_mb"] = r["gpu_mem_peak_allocated_mb"]
        gpu_only = r.get("graph_replay_gpu", {}).get("p50_ms", "")
        rows.append(f"| {key} | {r['p50_ms']:.3f} | {r['p95_ms']:.3f} | {r['p99_ms']:.3f} "
                    f"| {r['max_ms']:.3f} | {gpu_only} | {r['gpu_mem_peak_allocated_mb']} "
                    f"| {r.get('fraction_of_limit_p50', '')} |")
    goals = {}
    graph_p99 = [result[k]["p99_ms"] for k in result
                 if k.startswith("policy_") and "eager" not in k and result[k]]
    if graph_p99:
        goal = f"policy p99 <= {GOAL_POLICY_P99_MS} ms (best CUDA-graph run)"
        goals[goal] = min(graph_p99) <= GOAL_POLICY_P99_MS
    text = [result[k]["p50_ms"] for k in result if k.startswith("text_") and result[k]]
    if text:
        goals[f"32-token text <= {GOAL_TEXT_MS} ms (best run, p50)"] = min(text) <= GOAL_TEXT_MS
    cb = result.get("cuda_buffers") or {}
    goals["cuda-python pinned/device/stream round trip exact"] = bool(cb.get("all_ok"))
    md = [f"GPU: {result.get('host', {}).get('gpu')}, torch {result.get('host', {}).get('torch')}; "
          f"model {result.get('config')}; copy bandwidth {result.get('copy_bandwidth_gbs')} GB/s "
          f"(read+write), peak {result.get('peak_bandwidth_gbs')} GB/s", "", *rows]
    if result.get("errors"):
        md.append(f"\nerrors in: {sorted(result['errors'])}")
    return BenchResult(metrics=metrics, summary_md="\n".join(md), goals=goals)


def run(out_dir: Path, quick: bool) -> BenchResult:
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    if has_cuda:
        return summarize_result(measure(out_dir, quick))
    committed = RESULTS_DIR / RESULT_FILE
    if not committed.is_file():
        return BenchResult(metrics={}, summary_md="no CUDA GPU here and no committed GPU results")
    res = summarize_result(json.loads(committed.read_text()))
    res.summary_md = f"(no CUDA GPU here: committed results from {committed.name})\n\n" + res.summary_md
    return res


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--image-px", type=int, default=320)
    parser.add_argument("--only", default="",
                        help="comma-separated runs, e.g. policy_fp16_graph,text_fp16_graph")
    parser.add_argument("--profile", action="store_true", help="kernel count/time of the eager forward")
    parser.add_argument("--result-file", default=RESULT_FILE)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    only = [x for x in args.only.split(",") if x]
    res = summarize_result(measure(args.out, args.quick, args.image_px, only, args.profile, args.result_file))
    print(res.summary_md)
    print(json.dumps(res.goals, indent=2))


if __name__ == "__main__":
    main()
