"""The minipamayo network: policy (image + odometry history -> trajectory, context) + text decoder.

The policy takes what the node has, unchanged: ``image`` uint8 (B, H, W, 3) RGB as produced by
``image_preprocess.resize_to_model`` and ``state`` float32 (B, 10, 3) from
``state_features.state_history``. Pixel and state normalisation are inside the module (hence inside
the exported graph). The trajectory is produced in a unicycle action space (as Alpamayo-R1 does):
per step an acceleration and a curvature, unrolled from the current speed, so every output is a
smooth, kinematically consistent path whose ``speeds`` agree with its waypoint spacing.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F  # noqa: N812 - the universal torch idiom
from torch import nn

from minipamayo_ros.model.config import ModelConfig, load_config
from minipamayo_ros.model.layers import make_block
from minipamayo_ros.model.text import TextDecoder
from minipamayo_ros.model.vision import build_vision

#: pixel normalisation baked into the graph: (x/255 - MEAN) / STD
PIXEL_MEAN = 0.5
PIXEL_STD = 0.25


class Policy(nn.Module):
    """Vision encoder -> connector -> fusion transformer -> trajectory / context / uncertainty."""

    state_mean: torch.Tensor
    state_std: torch.Tensor
    state_mask: torch.Tensor
    cumsum_matrix: torch.Tensor

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.fusion.width
        n = cfg.num_waypoints
        self.vision = build_vision(cfg.vision, cfg.image_size)
        # connector: average-pool the vision grid (token pooling) then project into the backbone width
        self.pool = cfg.fusion.connector_pool
        self.connector = nn.Sequential(nn.LayerNorm(cfg.vision.out_dim), nn.Linear(cfg.vision.out_dim, d))
        self.vision_pos = nn.Parameter(torch.zeros(1, cfg.vision_tokens, d))
        self.state_proj = nn.Linear(cfg.state_features, d)
        self.state_pos = nn.Parameter(torch.zeros(1, cfg.state_steps, d))
        self.ctx_token = nn.Parameter(torch.zeros(1, 1, d))
        self.queries = nn.Parameter(torch.zeros(1, n, d))
        for p in (self.vision_pos, self.state_pos, self.ctx_token, self.queries):
            nn.init.trunc_normal_(p, std=0.02)
        f = cfg.fusion
        self.blocks = nn.ModuleList(make_block(f.parallel_blocks, d, f.heads, f.mlp_ratio, f.dropout)
                                    for _ in range(f.depth))
        self.ln = nn.LayerNorm(d)
        self.action_head = nn.Linear(d, 2)  # (accel, curvature) per step, scaled by cfg.*_scale
        nn.init.zeros_(self.action_head.weight)
        nn.init.zeros_(self.action_head.bias)
        self.context_head = nn.Linear(d, cfg.context_dim)
        self.uncertainty_head = nn.Sequential(nn.Linear(cfg.context_dim, 64), nn.GELU(), nn.Linear(64, 1))
        # state normalisation (set from the training data by train.py; saved with the weights)
        self.register_buffer("state_mean", torch.zeros(cfg.state_features))
        self.register_buffer("state_std", torch.ones(cfg.state_features))
        # features the model must not use (config.state_feature_mask) are zeroed after normalisation
        self.register_buffer("state_mask", torch.tensor(cfg.state_feature_mask, dtype=torch.float32),
                             persistent=False)
        # cumulative sum as a matmul with an upper-triangular ones matrix (plain MatMul in ONNX/TRT)
        self.register_buffer("cumsum_matrix", torch.triu(torch.ones(n, n)), persistent=False)

    def forward(
        self, image: torch.Tensor, state: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``image`` uint8 (B,H,W,3), ``state`` (B,10,3) -> waypoints (B,N,2) [m], speeds (B,N)
        [m/s], uncertainty (B,) [m, predicted ADE], context (B,C)."""
        return self.forward_tokens(self.encode_image(image), state)

    def encode_image(self, image: torch.Tensor) -> torch.Tensor:
        """``image`` uint8 (B,H,W,3) -> vision tokens (B, vision_tokens, width) in the backbone's space."""
        dtype = self.ctx_token.dtype
        # Cast first: TensorRT accepts a uint8 network input only when a Cast consumes it directly
        x = image.to(dtype).permute(0, 3, 1, 2) * (1.0 / (255.0 * PIXEL_STD)) - PIXEL_MEAN / PIXEL_STD
        fmap = self.vision(x)
        if self.pool > 1:
            fmap = F.avg_pool2d(fmap, self.pool)
        return self.connector(fmap.flatten(2).transpose(1, 2)) + self.vision_pos

    def forward_tokens(
        self, vis: torch.Tensor, state: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """:meth:`forward` from vision tokens (``encode_image``): training with a frozen, cached
        vision encoder runs only this part."""
        dtype = self.ctx_token.dtype
        state = state.to(dtype)
        st = self.state_proj((state - self.state_mean) / self.state_std * self.state_mask) + self.state_pos
        B = vis.shape[0]
        tokens = torch.cat(
            [self.ctx_token.expand(B, -1, -1), vis, st, self.queries.expand(B, -1, -1)], dim=1
        )
        for blk in self.blocks:
            tokens = blk(tokens)
        tokens = self.ln(tokens)
        n = self.cfg.num_waypoints
        actions = self.action_head(tokens[:, -n:])
        context = self.context_head(tokens[:, 0])
        uncertainty = F.softplus(self.uncertainty_head(context)).squeeze(-1)
        waypoints, speeds = self.unroll(state[:, -1, 0], actions)
        return waypoints, speeds, uncertainty, context

    def unroll(self, v0: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Unicycle roll-out from speed ``v0`` (B,) [m/s] of per-step (accel, curvature) actions.

        Speed at step k: v_k = max(0, v0 + sum_{j<=k} a_j dt). Segment k uses the mean speed of its
        ends and the heading at its midpoint (second-order accurate in dt).
        """
        dt = self.cfg.waypoint_dt
        U = self.cumsum_matrix.to(actions.dtype)
        accel = actions[..., 0] * self.cfg.accel_scale
        curv = actions[..., 1] * self.cfg.curvature_scale
        speeds = F.relu(v0.unsqueeze(-1) + (accel * dt) @ U)
        v_prev = torch.cat([v0.unsqueeze(-1), speeds[:, :-1]], dim=1)
        v_mid = 0.5 * (v_prev + speeds)
        dtheta = v_mid * curv * dt
        theta_mid = dtheta @ U - 0.5 * dtheta
        x = (v_mid * torch.cos(theta_mid) * dt) @ U
        y = (v_mid * torch.sin(theta_mid) * dt) @ U
        return torch.stack([x, y], dim=-1), speeds


class Minipamayo(nn.Module):
    """Policy + text decoder; ``policy`` and ``text`` are exported to separate ONNX files."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.policy = Policy(cfg)
        self.text = TextDecoder(cfg.text, cfg.context_dim)


def build_model(config: ModelConfig | str) -> Minipamayo:
    """A freshly initialised model for a config object, a config name or a YAML path."""
    cfg = config if isinstance(config, ModelConfig) else load_config(config)
    return Minipamayo(cfg)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def parameter_breakdown(model: Minipamayo) -> dict[str, int]:
    """Parameter counts per part (vision / connector / fusion / heads / text / total)."""
    p = model.policy
    vision = count_parameters(p.vision)
    connector = count_parameters(p.connector) + p.vision_pos.numel()
    fusion = count_parameters(p.blocks) + count_parameters(p.ln) + count_parameters(p.state_proj) + sum(
        t.numel() for t in (p.state_pos, p.ctx_token, p.queries))
    heads = count_parameters(p.action_head) + count_parameters(p.context_head) + count_parameters(
        p.uncertainty_head)
    text = count_parameters(model.text)
    return {"vision": vision, "connector": connector, "fusion": fusion, "heads": heads, "text": text,
            "total": count_parameters(model)}


def save_weights(model: Minipamayo, path: str | Path) -> None:
    """Weights + normalisation buffers as safetensors (config goes in the metadata as JSON)."""
    import json

    from safetensors.torch import save_file

    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(state, str(path), metadata={"config": json.dumps(model.cfg.as_dict())})


def load_model(path: str | Path, config: ModelConfig | str | None = None,
               device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32) -> Minipamayo:
    """Build a model from safetensors weights (config from the file's metadata unless given).

    Returned in eval mode on ``device`` with floating parameters cast to ``dtype`` (e.g.
    ``torch.float16`` / ``torch.bfloat16`` on CUDA).
    """
    import json

    from safetensors import safe_open
    from safetensors.torch import load_file

    if config is None:
        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
        if "config" not in meta:
            raise ValueError(f"{path} carries no config metadata: pass config=")
        config = ModelConfig.from_dict(json.loads(meta["config"]))
    model = build_model(config)
    model.load_state_dict(load_file(str(path)), strict=True)
    return model.to(device=device, dtype=dtype).eval()
