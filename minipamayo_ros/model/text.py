"""Caption decoder over the pseudo-language vocabulary, and its fixed-length greedy generation.

Sequence layout: ``[context, event, BOS, w1, ..., wL]``; the outputs at positions 2.. predict
``[w1, ..., wL, EOS]``. Generation is greedy and always runs ``max_tokens + 1`` steps (captions are
<= 32 words, the vocabulary is small), which makes its cost a constant: the text node and the
benchmarks see one fixed latency instead of a length-dependent tail (see docs/model.md).
"""

from __future__ import annotations

import torch
from torch import nn

from minipamayo_ros.model.config import TextConfig
from minipamayo_ros.model.layers import Block, causal_mask

# Special token ids; must equal minipamayo_ros.language (checked by train.py against the vocabulary).
PAD, BOS, EOS = 0, 1, 2


class TextDecoder(nn.Module):
    """Causal transformer conditioned on a (context vector, event id) prefix."""

    PREFIX = 2

    def __init__(self, cfg: TextConfig, context_dim: int) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.width
        self.context_proj = nn.Sequential(nn.LayerNorm(context_dim), nn.Linear(context_dim, d))
        self.event_emb = nn.Embedding(cfg.num_events, d)
        self.token_emb = nn.Embedding(cfg.vocab_size, d)
        self.pos = nn.Parameter(torch.zeros(1, self.PREFIX + cfg.max_tokens + 1, d))
        nn.init.trunc_normal_(self.pos, std=0.02)
        self.blocks = nn.ModuleList(Block(d, cfg.heads, cfg.mlp_ratio) for _ in range(cfg.depth))
        self.ln = nn.LayerNorm(d)
        self.head = nn.Linear(d, cfg.vocab_size)

    def forward(self, context: torch.Tensor, event: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """``context`` (B,C), ``event`` (B,) int, ``tokens`` (B,T) int starting with BOS ->
        logits (B,T,vocab): position t predicts token t+1 (EOS after the last word)."""
        T = tokens.shape[1]
        prefix = torch.stack([self.context_proj(context), self.event_emb(event).to(context.dtype)], dim=1)
        x = torch.cat([prefix, self.token_emb(tokens).to(context.dtype)], dim=1)
        x = x + self.pos[:, : T + self.PREFIX]
        mask = causal_mask(T + self.PREFIX, x.device, x.dtype)
        for blk in self.blocks:
            x = blk(x, mask)
        return self.head(self.ln(x[:, self.PREFIX:]))


def greedy_generate(
    decoder: TextDecoder, context: torch.Tensor, event: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Fixed-length greedy decoding (always ``max_tokens + 1`` steps, static shapes).

    Returns ``tokens`` int32 (B, max_tokens) caption word ids, PAD after the caption (no BOS/EOS:
    the dataset's ``caption_tokens`` format), ``length`` int32 (B,) words before EOS, and
    ``confidence`` float32 (B,): the lowest softmax probability among the chosen tokens up to and
    including EOS (a caption the model is unsure of has a low value; the text node may drop it).
    """
    B = context.shape[0]
    L = decoder.cfg.max_tokens
    seq = torch.full((B, 1), BOS, dtype=torch.int64, device=context.device)
    done = torch.zeros(B, dtype=torch.bool, device=context.device)
    conf = torch.ones(B, dtype=torch.float32, device=context.device)
    words = []
    for _ in range(L + 1):
        logits = decoder(context, event, seq)[:, -1].float()
        prob, nxt = logits.softmax(-1).max(-1)
        conf = torch.where(done, conf, torch.minimum(conf, prob))
        nxt = torch.where(done, torch.full_like(nxt, PAD), nxt)
        done = done | (nxt == EOS)
        words.append(torch.where(nxt == EOS, torch.full_like(nxt, PAD), nxt))
        seq = torch.cat([seq, nxt.unsqueeze(1)], dim=1)
    tokens = torch.stack(words[:L], dim=1)
    length = (tokens != PAD).sum(dim=1).to(torch.int32)
    return tokens.to(torch.int32), length, conf


class TextGenerator(nn.Module):
    """``greedy_generate`` as a module: what ``export.py`` turns into the text ONNX graph."""

    def __init__(self, decoder: TextDecoder) -> None:
        super().__init__()
        self.decoder = decoder

    def forward(self, context: torch.Tensor, event: torch.Tensor):
        return greedy_generate(self.decoder, context, event)
