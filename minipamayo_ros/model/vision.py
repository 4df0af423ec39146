"""Vision encoders: uint8-free (they take normalised NCHW floats) and return a (B, C, gh, gw) map."""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812 - the universal torch idiom
from torch import nn

from minipamayo_ros.model.config import VisionConfig
from minipamayo_ros.model.layers import make_block


class _ResBlock(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True),
            nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c),
        )
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x + self.body(x))


class CNNEncoder(nn.Module):
    """Stride-2 conv stages (+ residual blocks): cheap on 2 CPU cores, TensorRT/INT8 friendly."""

    def __init__(self, cfg: VisionConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = 3
        for c in cfg.channels:
            layers += [nn.Conv2d(cin, c, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(c),
                       nn.ReLU(inplace=True)]
            layers += [_ResBlock(c) for _ in range(cfg.blocks_per_stage)]
            cin = c
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class PatchEmbed(nn.Conv2d):
    """ViT patch embedding: the ``p x p``, stride ``p`` convolution (its weights, state-dict keys and
    FLOPs), computed as one matmul over the non-overlapping patches and returned as tokens
    (B, gh*gw, width). Same math as the convolution: on CUDA, cuDNN ran the convolution of the
    3-channel image with its slowest kernel (62 us of a 2 ms 0.5B forward on an H100, issue 24);
    the matmul is one GEMM of the ViT's own size (~5 us there)."""

    def __init__(self, in_channels: int, width: int, patch: int) -> None:
        super().__init__(in_channels, width, patch, stride=patch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` (B, C, H, W) -> (B, gh*gw, width); rows/columns past the last whole patch are
        dropped, as the convolution drops them."""
        B, C, H, W = x.shape
        p = self.kernel_size[0]
        gh, gw = H // p, W // p
        if (gh * p, gw * p) != (H, W):
            x = x[:, :, :gh * p, :gw * p]
        x = x.reshape(B, C, gh, p, gw, p).permute(0, 2, 4, 1, 3, 5).reshape(B, gh * gw, C * p * p)
        return F.linear(x, self.weight.reshape(self.out_channels, C * p * p), self.bias)


class ViTEncoder(nn.Module):
    """Patch ViT (for the 0.5B config): patch embedding, learned positions, pre-LN blocks."""

    def __init__(self, cfg: VisionConfig, image_size: tuple[int, int]) -> None:
        super().__init__()
        self.grid = cfg.grid(image_size)
        self.patch = PatchEmbed(3, cfg.width, cfg.patch_size)
        self.pos = nn.Parameter(torch.zeros(1, self.grid[0] * self.grid[1], cfg.width))
        nn.init.trunc_normal_(self.pos, std=0.02)
        self.blocks = nn.ModuleList(make_block(cfg.parallel_blocks, cfg.width, cfg.heads, cfg.mlp_ratio)
                                    for _ in range(cfg.depth))
        self.ln = nn.LayerNorm(cfg.width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B = x.shape[0]
        p = self.patch.kernel_size[0]
        gh, gw = x.shape[2] // p, x.shape[3] // p
        t = self.patch(x) + self.pos
        for blk in self.blocks:
            t = blk(t)
        return self.ln(t).transpose(1, 2).reshape(B, -1, gh, gw)


def build_vision(cfg: VisionConfig, image_size: tuple[int, int]) -> nn.Module:
    return CNNEncoder(cfg) if cfg.kind == "cnn" else ViTEncoder(cfg, image_size)
