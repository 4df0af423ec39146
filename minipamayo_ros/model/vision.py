"""Vision encoders: uint8-free (they take normalised NCHW floats) and return a (B, C, gh, gw) map."""

from __future__ import annotations

import torch
from torch import nn

from minipamayo_ros.model.config import VisionConfig
from minipamayo_ros.model.layers import Block


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


class ViTEncoder(nn.Module):
    """Patch ViT (for the 0.5B config): patch conv, learned positions, pre-LN blocks."""

    def __init__(self, cfg: VisionConfig, image_size: tuple[int, int]) -> None:
        super().__init__()
        self.grid = cfg.grid(image_size)
        self.patch = nn.Conv2d(3, cfg.width, cfg.patch_size, stride=cfg.patch_size)
        self.pos = nn.Parameter(torch.zeros(1, self.grid[0] * self.grid[1], cfg.width))
        nn.init.trunc_normal_(self.pos, std=0.02)
        self.blocks = nn.ModuleList(Block(cfg.width, cfg.heads, cfg.mlp_ratio) for _ in range(cfg.depth))
        self.ln = nn.LayerNorm(cfg.width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch(x)
        B, C, gh, gw = x.shape
        t = x.flatten(2).transpose(1, 2) + self.pos
        for blk in self.blocks:
            t = blk(t)
        return self.ln(t).transpose(1, 2).reshape(B, C, gh, gw)


def build_vision(cfg: VisionConfig, image_size: tuple[int, int]) -> nn.Module:
    return CNNEncoder(cfg) if cfg.kind == "cnn" else ViTEncoder(cfg, image_size)
