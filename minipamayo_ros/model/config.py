"""Model configuration: one frozen dataclass tree, loaded from ``configs/<name>.yaml`` (torch-free).

The family is fixed in structure and sized by these numbers::

    image (H, W, 3) uint8 ─ vision encoder (CNN | ViT) ─ connector (avg-pool + linear) ─┐
    state (10, 3) ──────── linear per step ─────────────────────────────────────────────┤
    [CTX] + 20 trajectory query tokens ─────────────────────────────────────────────────┴─ fusion
    transformer ─ query tokens → (accel, curvature) per step → unicycle unroll → waypoints, speeds
                └ [CTX] token → context vector (C) → uncertainty head (predicted ADE, m)
    text decoder: [context, event] prefix + BOS + words → next word (causal transformer)

Sizes are validated in ``__post_init__`` (errors name the field and the fix).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from minipamayo_ros.events import Event
from minipamayo_ros.io_contract import CONTRACT_VERSION
from minipamayo_ros.state_features import STATE_FEATURES, STATE_STEPS

CONFIG_DIR = Path(__file__).resolve().parent / "configs"


class ConfigError(ValueError):
    """A model config value is invalid; the message names the field."""


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise ConfigError(msg)


@dataclass(frozen=True)
class VisionConfig:
    """Image encoder. ``kind='cnn'``: strided conv stages; ``kind='vit'``: patch ViT."""

    kind: str = "cnn"
    channels: tuple[int, ...] = (24, 48, 96, 128)  # cnn: output channels per stride-2 stage
    blocks_per_stage: int = 1                      # cnn: extra 3x3 residual blocks per stage
    patch_size: int = 16                           # vit
    width: int = 768                               # vit: token width
    depth: int = 12                                # vit: layers
    heads: int = 12                                # vit
    mlp_ratio: float = 4.0                         # vit
    parallel_blocks: bool = False                  # vit: layers.ParallelBlock (2 GEMMs a layer)

    def __post_init__(self) -> None:
        _check(self.kind in ("cnn", "vit"), f"vision.kind must be 'cnn' or 'vit', got {self.kind!r}")
        if self.kind == "cnn":
            _check(len(self.channels) >= 1 and all(c > 0 for c in self.channels),
                   "vision.channels must be a non-empty list of positive ints")
            _check(self.blocks_per_stage >= 0, "vision.blocks_per_stage must be >= 0")
        else:
            _check(self.width % self.heads == 0, "vision.width must be divisible by vision.heads")
            _check(self.depth >= 1 and self.patch_size >= 2, "vision.depth >= 1, vision.patch_size >= 2")

    @property
    def out_dim(self) -> int:
        return self.channels[-1] if self.kind == "cnn" else self.width

    def grid(self, image_size: tuple[int, int]) -> tuple[int, int]:
        """Feature-map size (rows, cols) the encoder produces for ``image_size``."""
        h, w = image_size
        f = 2 ** len(self.channels) if self.kind == "cnn" else self.patch_size
        return h // f, w // f


@dataclass(frozen=True)
class FusionConfig:
    """Bidirectional pre-LN transformer over [CTX, vision, state, query] tokens."""

    width: int = 128
    depth: int = 4
    heads: int = 4
    mlp_ratio: float = 4.0
    connector_pool: int = 1     # avg-pool factor on the vision grid before projection (token count / p^2)
    dropout: float = 0.0
    parallel_blocks: bool = False  # layers.ParallelBlock: attention and MLP side by side, 2 GEMMs a layer

    def __post_init__(self) -> None:
        _check(self.width % self.heads == 0, "fusion.width must be divisible by fusion.heads")
        _check(self.depth >= 1, "fusion.depth must be >= 1")
        _check(self.connector_pool >= 1, "fusion.connector_pool must be >= 1")
        _check(0.0 <= self.dropout < 1.0, "fusion.dropout must be in [0, 1)")


@dataclass(frozen=True)
class TextConfig:
    """Autoregressive caption decoder over the pseudo-language vocabulary."""

    vocab_size: int = 128       # >= minipamayo_ros.language.VOCAB_SIZE (specials included)
    max_tokens: int = 32        # caption words (without BOS/EOS), = dataset caption_tokens width
    num_events: int = 8         # >= number of minipamayo_ros.events.Event values
    width: int = 128
    depth: int = 2
    heads: int = 4
    mlp_ratio: float = 4.0

    def __post_init__(self) -> None:
        _check(self.vocab_size >= 4, "text.vocab_size must be >= 4")
        _check(self.max_tokens >= 1, "text.max_tokens must be >= 1")
        _check(self.width % self.heads == 0, "text.width must be divisible by text.heads")
        _check(self.num_events >= len(Event), f"text.num_events must cover the Event enum (>= {len(Event)})")


@dataclass(frozen=True)
class ModelConfig:
    """A whole minipamayo model (policy + text decoder)."""

    name: str = "minipamayo-tiny"
    image_size: tuple[int, int] = (128, 128)   # (height, width) [px]
    state_steps: int = STATE_STEPS
    state_features: int = len(STATE_FEATURES)       # io_contract v2: speed, yaw rate, accel, standing time
    num_waypoints: int = 20
    waypoint_dt: float = 0.1                    # [s]
    context_dim: int = 128
    accel_scale: float = 3.0                    # [m/s^2] head output 1.0 ↔ this acceleration
    curvature_scale: float = 0.5                # [1/m]  head output 1.0 ↔ this curvature
    # Which odometry-history features the model may look at (1 = used, 0 = ignored in the graph; the
    # ONNX input keeps all features so the I/O contract does not change). The shipped tiny model
    # ignores the acceleration history: with it, closed-loop driving collapsed into a standstill
    # (the model copied its own braking from the history: causal confusion, see docs/model.md).
    state_feature_mask: tuple[float, ...] = (1.0,) * len(STATE_FEATURES)
    vision: VisionConfig = field(default_factory=VisionConfig)
    fusion: FusionConfig = field(default_factory=FusionConfig)
    text: TextConfig = field(default_factory=TextConfig)

    def __post_init__(self) -> None:
        h, w = self.image_size
        gh, gw = self.vision.grid(self.image_size)
        _check(gh >= 1 and gw >= 1 and gh * (h // gh) == h and gw * (w // gw) == w,
               f"image_size {self.image_size} must be divisible by the vision downsampling")
        p = self.fusion.connector_pool
        _check(gh % p == 0 and gw % p == 0,
               f"fusion.connector_pool {p} must divide the vision grid {gh}x{gw}")
        _check(self.num_waypoints >= 1 and self.waypoint_dt > 0, "num_waypoints >= 1, waypoint_dt > 0")
        _check(self.context_dim >= 1, "context_dim must be >= 1")
        _check(self.state_steps == STATE_STEPS and self.state_features == len(STATE_FEATURES),
               f"state_steps/state_features {self.state_steps}/{self.state_features}: the I/O contract "
               f"v{CONTRACT_VERSION} feeds {STATE_STEPS} steps of {len(STATE_FEATURES)} features "
               f"({', '.join(STATE_FEATURES)}; minipamayo_ros/state_features.py)")
        _check(len(self.state_feature_mask) == self.state_features
               and all(m in (0.0, 1.0) for m in self.state_feature_mask),
               f"state_feature_mask must hold {self.state_features} values of 0 or 1")

    @property
    def vision_tokens(self) -> int:
        gh, gw = self.vision.grid(self.image_size)
        p = self.fusion.connector_pool
        return (gh // p) * (gw // p)

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON/YAML-able dict (tuples as lists), the form stored in manifests."""
        return _listify(dataclasses.asdict(self))

    @staticmethod
    def from_dict(d: dict[str, Any]) -> ModelConfig:
        d = dict(d)
        try:
            vision = VisionConfig(**_tuplify(d.pop("vision", {})))
            fusion = FusionConfig(**d.pop("fusion", {}))
            text = TextConfig(**d.pop("text", {}))
            return ModelConfig(vision=vision, fusion=fusion, text=text, **_tuplify(d))
        except TypeError as exc:  # unknown key
            raise ConfigError(f"model config has an unknown or missing field: {exc}") from exc


def _listify(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _listify(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_listify(v) for v in x]
    return x


def _tuplify(d: dict[str, Any]) -> dict[str, Any]:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}


def available_configs() -> list[str]:
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def load_config(name_or_path: str | Path) -> ModelConfig:
    """Config by name (``tiny``, ``minipamayo-0.5b``: files in ``configs/``) or by YAML path."""
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = CONFIG_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        raise ConfigError(f"model config {name_or_path!r} not found; available: {available_configs()}")
    return ModelConfig.from_dict(yaml.safe_load(path.read_text()) or {})
