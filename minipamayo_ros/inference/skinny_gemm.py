"""Split-K GEMM for the few-row linears of the 0.5B fusion backbone (torch backend, CUDA, optional).

Why: at batch 1 the fusion backbone multiplies 56 token rows by 25 MB of fp16 weights per layer.
That is a weight-streaming problem, and cuBLAS's kernels for ``M = 56`` read the weights at about
1 TB/s (a third of an H100's HBM bandwidth) and add a split-K reduce kernel after the MLP's second
GEMM (docs/inference.md, issue 24). This kernel splits ``K`` across enough CTAs to keep every SM
streaming weights and writes fp32 *partial sums* ``(splits, M, N)``. The sum over the splits, the
bias and the cast are left to the kernel that follows: the attention kernel here reads the qkv
GEMM's partial sums itself, and under ``torch.compile`` inductor is meant to fold the other sums into
the pointwise / LayerNorm kernel after each linear (it did not for fc2: run 5 below).

Only the weight layout ``nn.Linear`` uses is read (``weight`` (N, K), row-major), unchanged: the
same parameters, the same math up to fp32 summation order. Triton is imported lazily; without it
(CPU, the robot) the same partial sums are computed with torch (the reference the tests use). The
runtime nodes never import this module (torch backend only).

Measured on an H100 (docs/inference.md, run 5): each GEMM beats cuBLAS alone, and the backbone's
GEMM time falls 1.16 -> 1.00 ms. The whole forward is 0.04-0.08 ms *slower*, because this
attention kernel (8.7 us a layer vs cuDNN's 4.35) and an unfused split-sum kernel after fc2 lose
more than that. So it is opt-in and off by default, kept as the measured starting point.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from functools import partial
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F  # noqa: N812 - the universal torch idiom
from torch import nn

from minipamayo_ros.model.layers import Block

#: largest number of rows the kernel takes (one CTA holds all rows of its tile)
MAX_ROWS = 64


@dataclass(frozen=True)
class SplitKConfig:
    """One launch configuration: tiles of ``block_n`` output columns, ``splits`` K-slices."""

    block_n: int = 32
    block_k: int = 128
    splits: int = 4
    num_warps: int = 4
    num_stages: int = 4

    def check(self, n: int, k: int) -> str | None:
        """Why this config cannot run an (N, K) weight, or None."""
        if n % self.block_n:
            return f"N={n} is not a multiple of block_n={self.block_n}"
        if k % self.splits or (k // self.splits) % self.block_k:
            return f"K={k} is not splits={self.splits} x a multiple of block_k={self.block_k}"
        return None


#: per weight shape (N, K): the configuration tuned on an H100 (``tune``; bench_inference_gpu).
#: Shapes not listed use DEFAULT_CONFIG.
DEFAULT_CONFIG = SplitKConfig()
TUNED: dict[tuple[int, int], SplitKConfig] = {}


def candidate_configs(n: int, k: int, sms: int = 132, stages: tuple[int, ...] = (3, 4)) -> list[SplitKConfig]:
    """Configurations worth timing for an (N, K) weight: tiles x splits giving 0.5-4 CTAs per SM,
    pipelined ``stages`` deep within the shared memory of a CTA."""
    out = []
    for block_n in (16, 32, 64):
        for block_k in (64, 128, 256):
            for splits in (1, 2, 4, 8, 16):
                for num_stages in stages:
                    cfg = SplitKConfig(block_n, block_k, splits, 4, num_stages)
                    ctas = (n // block_n) * splits
                    if cfg.check(n, k) is None and sms // 2 <= ctas <= 4 * sms \
                            and block_k * (64 + block_n) * 2 * num_stages <= 160_000:
                        out.append(cfg)
    return out


def config_for(n: int, k: int) -> SplitKConfig:
    """The tuned config of an (N, K) weight, else DEFAULT_CONFIG, else the first candidate that fits."""
    if (n, k) in TUNED:
        return TUNED[(n, k)]
    if DEFAULT_CONFIG.check(n, k) is None:
        return DEFAULT_CONFIG
    fits = candidate_configs(n, k) or [c for c in (SplitKConfig(16, 16, 1, 4, 2),) if c.check(n, k) is None]
    if not fits:
        raise ValueError(f"no skinny GEMM config fits weight ({n}, {k}) (N and K multiples of 16)")
    return fits[0]


class _Kernels(NamedTuple):
    gemm: Any       # split-K GEMM: partial sums, or (one slice) + bias in the activations' dtype
    attention: Any  # attention of a few tokens, one CTA per (sequence, head), from qkv partial sums


_KERNELS: _Kernels | None = None


def _kernels() -> _Kernels:
    """The Triton kernels, compiled on first use (Triton is not needed on CPU)."""
    global _KERNELS
    if _KERNELS is not None:
        return _KERNELS
    import triton
    import triton.language as tl

    @triton.jit
    def _skinny_splitk_gemm_kernel(x_ptr, w_ptr, b_ptr, out_ptr, M, stride_xm, stride_wn, stride_os,
                                   stride_om, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                                   BLOCK_K: tl.constexpr, K_SPLIT: tl.constexpr, FINAL: tl.constexpr):
        # CTA (n tile, k slice): partial[s, :, tile] = x[:, slice] @ w[tile, slice]^T in fp32;
        # FINAL (one slice): + bias, stored in out's dtype (no sum left to do after the kernel)
        pid_n = tl.program_id(0)
        pid_s = tl.program_id(1)
        offs_m = tl.arange(0, BLOCK_M)
        offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
        offs_k = pid_s * K_SPLIT + tl.arange(0, BLOCK_K)
        rows = offs_m[:, None] < M
        x_ptrs = x_ptr + offs_m[:, None] * stride_xm + offs_k[None, :]
        w_ptrs = w_ptr + offs_n[None, :] * stride_wn + offs_k[:, None]  # (BLOCK_K, BLOCK_N) of w^T
        acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
        for _ in range(0, K_SPLIT // BLOCK_K):
            x = tl.load(x_ptrs, mask=rows, other=0.0)
            w = tl.load(w_ptrs)
            acc += tl.dot(x, w)
            x_ptrs += BLOCK_K
            w_ptrs += BLOCK_K
        out_ptrs = out_ptr + pid_s * stride_os + offs_m[:, None] * stride_om + offs_n[None, :]
        if FINAL:
            acc += tl.load(b_ptr + offs_n).to(tl.float32)[None, :]
            tl.store(out_ptrs, acc.to(out_ptr.dtype.element_ty), mask=rows)
        else:
            tl.store(out_ptrs, acc, mask=rows)

    @triton.jit
    def _skinny_attention_kernel(parts_ptr, b_ptr, out_ptr, T, W, stride_ps, stride_pm, stride_om, scale,
                                 SPLITS: tl.constexpr, BLOCK_T: tl.constexpr, HEAD_DIM: tl.constexpr):
        # q, k, v of head h = sum over the qkv GEMM's slices + bias, rounded to the activations'
        # dtype as the unfused path does; softmax in fp32; out (tokens, W) ready for the projection
        seq = tl.program_id(0)
        h = tl.program_id(1)
        offs_t = tl.arange(0, BLOCK_T)
        offs_d = tl.arange(0, HEAD_DIM)
        rows = offs_t[:, None] < T
        base = parts_ptr + (seq * T + offs_t[:, None]) * stride_pm + h * HEAD_DIM + offs_d[None, :]
        q = tl.zeros((BLOCK_T, HEAD_DIM), dtype=tl.float32)
        k = tl.zeros((BLOCK_T, HEAD_DIM), dtype=tl.float32)
        v = tl.zeros((BLOCK_T, HEAD_DIM), dtype=tl.float32)
        for s in range(SPLITS):
            q += tl.load(base + s * stride_ps, mask=rows, other=0.0)
            k += tl.load(base + s * stride_ps + W, mask=rows, other=0.0)
            v += tl.load(base + s * stride_ps + 2 * W, mask=rows, other=0.0)
        bq = b_ptr + h * HEAD_DIM + offs_d
        dt = out_ptr.dtype.element_ty
        q = (q + tl.load(bq).to(tl.float32)[None, :]).to(dt)
        k = (k + tl.load(bq + W).to(tl.float32)[None, :]).to(dt)
        v = (v + tl.load(bq + 2 * W).to(tl.float32)[None, :]).to(dt)
        scores = tl.dot(q, tl.trans(k)) * scale
        scores = tl.where(offs_t[None, :] < T, scores, float("-inf"))
        p = tl.exp(scores - tl.max(scores, axis=1)[:, None])
        p = p / tl.sum(p, axis=1)[:, None]
        o = tl.dot(p.to(dt), v)
        out = out_ptr + (seq * T + offs_t[:, None]) * stride_om + h * HEAD_DIM + offs_d[None, :]
        tl.store(out, o.to(dt), mask=rows)

    _KERNELS = _Kernels(_skinny_splitk_gemm_kernel, _skinny_attention_kernel)
    return _KERNELS


def attention_from_partials(parts: torch.Tensor, bias: torch.Tensor, seqs: int, heads: int,
                            dtype: torch.dtype) -> torch.Tensor:
    """Multi-head attention (no mask) from the qkv GEMM's fp32 partial sums ``(S, seqs*T, 3W)`` and
    its bias: ``(seqs*T, W)`` in ``dtype``. One Triton kernel on CUDA; torch elsewhere (same math:
    q/k/v rounded to ``dtype``, softmax in fp32)."""
    splits, rows, w3 = parts.shape
    t, w = rows // seqs, w3 // 3
    d = w // heads
    if parts.is_cuda:
        if t > MAX_ROWS:
            raise ValueError(f"skinny attention takes at most {MAX_ROWS} tokens, got {t}")
        out = torch.empty((rows, w), device=parts.device, dtype=dtype)
        kernel = (_KERNELS if _KERNELS is not None else _kernels()).attention
        kernel[(seqs, heads)](parts, bias, out, t, w, parts.stride(0), parts.stride(1), out.stride(0),
                              d ** -0.5, SPLITS=splits, BLOCK_T=_block_m(t), HEAD_DIM=d, num_warps=4)
        return out
    qkv = (parts.sum(0) + bias.float()).to(dtype).float()
    q, k, v = qkv.reshape(seqs, t, 3, heads, d).permute(2, 0, 3, 1, 4)
    att = ((q @ k.transpose(-2, -1)) * d ** -0.5).softmax(dim=-1).to(dtype).float()
    return (att @ v).to(dtype).transpose(1, 2).reshape(rows, w)


def _block_m(m: int) -> int:
    return max(16, 1 << (m - 1).bit_length())


def splitk_partials(x2d: torch.Tensor, weight: torch.Tensor, cfg: SplitKConfig) -> torch.Tensor:
    """fp32 partial sums ``(splits, M, N)`` of ``x2d (M, K) @ weight (N, K)^T`` (sum over dim 0 =
    the product). Triton on CUDA, torch elsewhere (same slicing of K)."""
    m, k = x2d.shape
    n = weight.shape[0]
    if x2d.is_cuda:
        out = torch.empty((cfg.splits, m, n), device=x2d.device, dtype=torch.float32)
        _launch(x2d, weight, None, out, cfg)
        return out
    xs = x2d.float().reshape(m, cfg.splits, k // cfg.splits).transpose(0, 1)       # (S, M, K/S)
    ws = weight.float().reshape(n, cfg.splits, k // cfg.splits).permute(1, 2, 0)   # (S, K/S, N)
    return torch.bmm(xs, ws)


def skinny_linear(x2d: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                  cfg: SplitKConfig) -> torch.Tensor:
    """``F.linear(x2d, weight, bias)`` for ``M <= MAX_ROWS`` rows, in ``x2d``'s dtype. One slice on
    CUDA: bias and cast inside the kernel; more: the partial sums' sum, bias and cast in torch ops
    (fused by inductor into the consumer under ``torch.compile``)."""
    if x2d.is_cuda and cfg.splits == 1 and bias is not None:
        out = torch.empty((1, x2d.shape[0], weight.shape[0]), device=x2d.device, dtype=x2d.dtype)
        _launch(x2d, weight, bias, out, cfg)
        return out[0]
    y = splitk_partials(x2d, weight, cfg).sum(0)
    if bias is not None:
        y = y + bias.float()
    return y.to(x2d.dtype)


def _launch(x2d: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, out: torch.Tensor,
            cfg: SplitKConfig) -> None:
    m, k = x2d.shape
    if m > MAX_ROWS:
        raise ValueError(f"skinny GEMM takes at most {MAX_ROWS} rows, got {m}")
    kernel = (_KERNELS if _KERNELS is not None else _kernels()).gemm
    kernel[(weight.shape[0] // cfg.block_n, cfg.splits)](
        x2d, weight, weight if bias is None else bias, out, m, x2d.stride(0), weight.stride(0),
        out.stride(0), out.stride(1), BLOCK_M=_block_m(m), BLOCK_N=cfg.block_n, BLOCK_K=cfg.block_k,
        K_SPLIT=k // cfg.splits, FINAL=bias is not None, num_warps=cfg.num_warps,
        num_stages=cfg.num_stages)


class SkinnyBlock(nn.Module):
    """A transformer :class:`~minipamayo_ros.model.layers.Block` (no mask, at most
    :data:`MAX_ROWS` token rows) as split-K GEMMs + one attention kernel per layer: the qkv
    GEMM's partial sums go straight into :func:`attention_from_partials` (no separate reduction),
    the other three linears' sums are left to the next inductor kernel (fc2's was not fused in
    run 5: module doc). Same parameters, same math; anything else runs the wrapped block."""

    block: Block

    def __init__(self, block: Block, configs: dict[tuple[int, int], SplitKConfig] | None = None) -> None:
        super().__init__()
        self.block = block
        table = configs or {}
        self.cfgs = {}
        for name in ("qkv", "proj", "fc1", "fc2"):
            n, k = getattr(block, name).weight.shape
            cfg = table.get((n, k)) or config_for(n, k)
            why = cfg.check(n, k)
            if why is not None:
                raise ValueError(f"skinny GEMM config {cfg} for {name} ({n}, {k}): {why}")
            self.cfgs[name] = cfg
        if block.qkv.weight.is_cuda:
            _kernels()  # built before torch.compile traces a forward

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        blk = self.block
        b, t, w = x.shape
        if mask is not None or b * t > MAX_ROWS or blk.training:
            return blk(x, mask)
        c = self.cfgs
        h = blk.ln1(x).reshape(b * t, w).contiguous()
        parts = splitk_partials(h, blk.qkv.weight, c["qkv"])
        y = attention_from_partials(parts, blk.qkv.bias, b, blk.heads, x.dtype)
        x = x + skinny_linear(y, blk.proj.weight, blk.proj.bias, c["proj"]).reshape(b, t, w)
        h = blk.ln2(x).reshape(b * t, w).contiguous()
        h = F.gelu(skinny_linear(h, blk.fc1.weight, blk.fc1.bias, c["fc1"]))
        return x + skinny_linear(h, blk.fc2.weight, blk.fc2.bias, c["fc2"]).reshape(b, t, w)


def use_skinny_gemm(blocks: nn.ModuleList, configs: dict[tuple[int, int], SplitKConfig] | None = None
                    ) -> int:
    """Wrap each transformer block of ``blocks`` (e.g. the policy's fusion backbone: few tokens) in
    :class:`SkinnyBlock`; returns how many linears now run the split-K kernel (4 per block)."""
    table = {**TUNED, **(configs or {})}
    count = 0
    for i, blk in enumerate(blocks):
        if isinstance(blk, Block):
            blocks[i] = SkinnyBlock(blk, table)
            count += 4
    return count


def tune(shapes: Iterable[tuple[int, int]], rows: int, dtype: torch.dtype = torch.float16,
         device: str = "cuda", reps: int = 20, l2_bytes: int = 64 << 20,
         stages: tuple[int, ...] = (3, 4)) -> dict[str, Any]:
    """Time every candidate config per (N, K) weight at ``rows`` rows against ``F.linear`` (cuBLAS,
    bias in its epilogue). The split-K kernel is timed alone: in the model the sum of its slices and
    the bias are done by the kernel that follows (attention, or inductor's fused pointwise /
    LayerNorm kernel), which runs with or without it.

    Each timing is one CUDA graph of ``reps`` calls cycling over enough distinct weight copies that
    they do not fit in L2 (the backbone reads every layer's weights from HBM once per forward);
    result per call [us], best of 5 replays. Returns ``{"NxK": {"cublas_us", "best", "best_us",
    "gbps", "max_abs_err", "configs": [...]}}``.
    """
    out: dict[str, Any] = {}
    for n, k in shapes:
        copies = max(2, -(-2 * l2_bytes // (n * k * 2)))
        ws = [torch.randn(n, k, device=device, dtype=dtype) * k ** -0.5 for _ in range(copies)]
        x = torch.randn(rows, k, device=device, dtype=dtype)
        bias = torch.randn(n, device=device, dtype=dtype)
        ref = F.linear(x, ws[0], bias).float()

        def cublas(w: torch.Tensor, x: torch.Tensor = x, b: torch.Tensor = bias) -> torch.Tensor:
            return F.linear(x, w, b)

        row: dict[str, Any] = {"cublas_us": round(_time_per_call(cublas, ws, reps), 2), "configs": []}
        t0 = time.monotonic()
        for cfg in candidate_configs(n, k, stages=stages):
            try:
                err = float((skinny_linear(x, ws[0], bias, cfg).float() - ref).abs().max())
                us = _time_per_call(partial(splitk_partials, x, cfg=cfg), ws, reps)
            except Exception as exc:  # e.g. out of shared memory for this tile: skip the config
                row["configs"].append({**asdict(cfg), "error": f"{type(exc).__name__}: {str(exc)[:120]}"})
                continue
            row["configs"].append({**asdict(cfg), "us": round(us, 2), "max_abs_err": err})
        ok = [c for c in row["configs"] if "us" in c]
        if ok:
            best = min(ok, key=lambda c: c["us"])
            row["best"] = {key: best[key] for key in asdict(DEFAULT_CONFIG)}
            row["best_us"] = best["us"]
            row["gbps"] = round(n * k * 2 / (best["us"] * 1e-6) / 1e9, 1)
            row["cublas_gbps"] = round(n * k * 2 / (row["cublas_us"] * 1e-6) / 1e9, 1)
            row["max_abs_err"] = best["max_abs_err"]
        row["tune_s"] = round(time.monotonic() - t0, 1)
        out[f"{n}x{k}"] = row
    return out


def _time_per_call(fn: Any, weights: list[torch.Tensor], reps: int) -> float:
    """[us] per call of ``fn(weight)``: one CUDA graph of ``reps`` calls cycling over ``weights``,
    best of 5 replays (CUDA events)."""
    for w in weights[:2]:
        fn(w)  # compile / warm up outside the graph
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for i in range(reps):
            fn(weights[i % len(weights)])
    best = float("inf")
    for _ in range(5):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        graph.replay()
        end.record()
        torch.cuda.synchronize()
        best = min(best, start.elapsed_time(end) * 1e3 / reps)
    return best


def configs_from_tuning(result: dict[str, Any]) -> dict[tuple[int, int], SplitKConfig]:
    """``tune()``'s result -> the table :func:`use_skinny_gemm` takes (shapes where a config won)."""
    table = {}
    for key, row in result.items():
        if "best" in row:
            n, k = (int(v) for v in key.split("x"))
            table[(n, k)] = SplitKConfig(**row["best"])
    return table
