"""Transformer building block shared by the ViT, the fusion backbone and the text decoder."""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812 - the universal torch idiom
from torch import nn


class Block(nn.Module):
    """Pre-LN transformer block: x + attn(LN(x)); x + MLP(LN(x)).

    By default attention is written out (matmul + softmax) rather than
    ``scaled_dot_product_attention`` so the exported ONNX graph is plain MatMul/Softmax that ONNX
    Runtime's INT8 quantizer and TensorRT 10.3 both handle without custom ops. ``fused_attention``
    (set with :func:`set_fused_attention`) runs the same math as one fused SDPA kernel instead: in
    PyTorch it saves ~4 kernels per layer (44 layers in the 0.5 B model). Never set it for export.
    """

    fused_attention: bool = False

    def __init__(self, width: int, heads: int, mlp_ratio: float = 4.0, dropout: float = 0.0) -> None:
        super().__init__()
        self.heads = heads
        self.ln1 = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.ln2 = nn.LayerNorm(width)
        hidden = int(width * mlp_ratio)
        self.fc1 = nn.Linear(width, hidden)
        self.fc2 = nn.Linear(hidden, width)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """``x`` (B, T, width); ``mask`` additive (T, T) (0 or -inf), e.g. causal."""
        y = attention(self.qkv(self.ln1(x)), self.heads, mask, self.fused_attention)
        x = x + self.drop(self.proj(y))
        return x + self.drop(self.fc2(F.gelu(self.fc1(self.ln2(x)))))


class ParallelBlock(nn.Module):
    """Parallel pre-LN block (GPT-J, PaLM, ViT-22B): x + attn(LN(x)) + MLP(LN(x)), one LayerNorm.

    Why: at batch 1 on a GPU the forward is bound by the number of kernels, not by FLOPs. Here the
    qkv and fc1 projections read the same normalised input, so they are one GEMM (``in_proj``), and
    the attention output and the GELU hidden feed one GEMM (``out_proj``). A layer then runs
    2 GEMMs instead of 4, and one LayerNorm instead of two. The parameters are :class:`Block`'s,
    stacked, less one LayerNorm: :meth:`from_block` converts trained weights. The math differs from
    :class:`Block`: the MLP sees ``x``, not ``x + attn``. A converted model needs fine-tuning
    (``model/arch_cut.py``). Attention as in :class:`Block` (``fused_attention``).
    """

    fused_attention: bool = False

    def __init__(self, width: int, heads: int, mlp_ratio: float = 4.0, dropout: float = 0.0) -> None:
        super().__init__()
        self.heads = heads
        self.width = width
        self.hidden = int(width * mlp_ratio)
        self.ln = nn.LayerNorm(width)
        self.in_proj = nn.Linear(width, 3 * width + self.hidden)   # [qkv | fc1]
        self.out_proj = nn.Linear(width + self.hidden, width)      # [proj | fc2]
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """``x`` (B, T, width); ``mask`` additive (T, T) (0 or -inf), e.g. causal."""
        qkv, h = self.in_proj(self.ln(x)).split([3 * self.width, self.hidden], dim=-1)
        y = attention(qkv, self.heads, mask, self.fused_attention)
        return x + self.drop(self.out_proj(torch.cat([y, F.gelu(h)], dim=-1)))

    @classmethod
    def from_block(cls, blk: Block) -> ParallelBlock:
        """The same weights rewired in parallel: ``in_proj`` = [qkv; fc1], ``out_proj`` = [proj, fc2]
        with their biases summed, the LayerNorm = ``ln1`` (``ln2`` is dropped)."""
        width, hidden = blk.proj.weight.shape[0], blk.fc1.weight.shape[0]
        out = cls(width, blk.heads, hidden / width, blk.drop.p)
        with torch.no_grad():
            out.ln.load_state_dict(blk.ln1.state_dict())
            out.in_proj.weight.copy_(torch.cat([blk.qkv.weight, blk.fc1.weight]))
            out.in_proj.bias.copy_(torch.cat([blk.qkv.bias, blk.fc1.bias]))
            out.out_proj.weight.copy_(torch.cat([blk.proj.weight, blk.fc2.weight], dim=1))
            out.out_proj.bias.copy_(blk.proj.bias + blk.fc2.bias)
        return out.to(blk.qkv.weight.device, blk.qkv.weight.dtype).train(blk.training)


def make_block(parallel: bool, width: int, heads: int, mlp_ratio: float = 4.0,
               dropout: float = 0.0) -> nn.Module:
    """A :class:`ParallelBlock` or a :class:`Block` (config ``parallel_blocks``)."""
    return (ParallelBlock if parallel else Block)(width, heads, mlp_ratio, dropout)


def attention(qkv: torch.Tensor, heads: int, mask: torch.Tensor | None = None,
              fused: bool = False) -> torch.Tensor:
    """Multi-head attention of a (B, T, 3*W) [q | k | v] projection -> (B, T, W).

    Written out (matmul + softmax) unless ``fused``: see :class:`Block`."""
    B, T, W3 = qkv.shape
    W = W3 // 3
    q, k, v = qkv.reshape(B, T, 3, heads, W // heads).permute(2, 0, 3, 1, 4)
    if fused:
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    else:
        att = (q @ k.transpose(-2, -1)) * ((W // heads) ** -0.5)
        if mask is not None:
            att = att + mask
        y = att.softmax(dim=-1) @ v
    return y.transpose(1, 2).reshape(B, T, W)


def set_fused_attention(module: nn.Module, enabled: bool = True) -> int:
    """Switch every :class:`Block` / :class:`ParallelBlock` in ``module`` to (or back from) fused
    attention; returns the count."""
    n = 0
    for m in module.modules():
        if isinstance(m, (Block, ParallelBlock)):
            m.fused_attention = enabled
            n += 1
    return n


def causal_mask(T: int, device: torch.device | None = None,
                dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(T, T) additive mask: 0 on and below the diagonal, a large negative above it."""
    m = torch.full((T, T), torch.finfo(dtype).min, device=device, dtype=dtype)
    return torch.triu(m, diagonal=1)
