"""Lighting and sensor variety of the traffic world: time of day, exposure drift, camera noise.

Drawn per seed from the scenario's weights (``scenario.LightingSpec``), with its own random
stream. ``day`` keeps the seed's palette; ``dusk`` dims and warms it (ambient 0.45-0.7, lamps of
vehicles lit); ``night`` leaves only the ego's headlight beam lighting the ground and the objects
in it (ambient 0.12-0.2) and lamps glowing. The exposure drifts smoothly (gain 1 +- ``exposure``,
periods 2-6 s) and every frame gets fresh sensor noise (sigma from the spec's range).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from enum import IntEnum
from typing import Any

import numpy as np

from minipamayo_ros.sim.render import Color, Palette
from minipamayo_ros.sim.scenario import LightingSpec


class TimeOfDay(IntEnum):
    DAY = 0
    DUSK = 1
    NIGHT = 2


@dataclass(frozen=True)
class Lighting:
    """How one episode is lit and sensed."""

    time_of_day: TimeOfDay = TimeOfDay.DAY
    ambient: float = 1.0                  # surface brightness factor (1 = the palette's)
    tint: tuple[float, float, float] = (1.0, 1.0, 1.0)  # RGB factors of the ambient light
    sky_top: Color | None = None          # None: the palette's
    sky_horizon: Color | None = None
    beam_range: float = 0.0               # [m] headlight beam reach (night; 0 = no beam)
    lamps_lit: bool = False               # vehicles' head/tail lamps lit
    exposure: float = 0.0                 # relative exposure drift amplitude
    exposure_periods: tuple[float, float] = (3.0, 5.0)  # [s]
    exposure_phases: tuple[float, float] = (0.0, 0.0)   # [rad]
    noise: float = 0.0                    # per-frame sensor noise sigma [8-bit levels]

    def gain(self, time: float) -> float:
        """Exposure gain at ``time`` [s]: a smooth drift within 1 +- exposure."""
        if self.exposure <= 0.0:
            return 1.0
        (p1, p2), (f1, f2) = self.exposure_periods, self.exposure_phases
        x = 0.6 * math.sin(2 * math.pi * time / p1 + f1) + 0.4 * math.sin(2 * math.pi * time / p2 + f2)
        return 1.0 + self.exposure * x

    def surface(self, c: Color) -> Color:
        """A lit surface colour under the ambient light."""
        return tuple(int(min(255.0, v * self.ambient * t)) for v, t in zip(c, self.tint, strict=True))  # type: ignore[return-value]

    def palette(self, base: Palette) -> Palette:
        """The seed's palette under this light (sky replaced at dusk / night)."""
        if self.time_of_day == TimeOfDay.DAY:
            return base
        s = self.surface
        # at night the ground keeps its daylight colours: the beam (renderer) darkens them
        g = s if self.time_of_day == TimeOfDay.DUSK else (lambda c: c)
        return replace(base, sky_top=self.sky_top or base.sky_top,
                       sky_horizon=self.sky_horizon or base.sky_horizon,
                       grass=g(base.grass), asphalt=g(base.asphalt), shoulder=g(base.shoulder),
                       edge_line=g(base.edge_line), centre_line=g(base.centre_line),
                       stop_line=g(base.stop_line), sign=s(base.sign), pole=s(base.pole),
                       fog_distance=base.fog_distance if self.time_of_day == TimeOfDay.DUSK else 1e9)


def lighting_for_seed(seed: int, spec: LightingSpec) -> Lighting:
    """The lighting of ``seed`` (deterministic)."""
    rng = np.random.default_rng([int(seed), 0x4C_49_54])  # "LIT"
    w = np.array([spec.day, spec.dusk, spec.night], dtype=np.float64)
    tod = TimeOfDay(int(rng.choice(3, p=w / w.sum())))
    common: dict[str, Any] = {
        "exposure": float(rng.uniform(0.3, 1.0)) * spec.exposure,
        "exposure_periods": (float(rng.uniform(2.0, 4.0)), float(rng.uniform(3.5, 6.0))),
        "exposure_phases": (float(rng.uniform(0, 2 * math.pi)), float(rng.uniform(0, 2 * math.pi))),
        "noise": float(rng.uniform(*spec.noise)),
    }
    if tod == TimeOfDay.DAY:
        return Lighting(TimeOfDay.DAY, **common)
    if tod == TimeOfDay.DUSK:
        amb = float(rng.uniform(0.45, 0.7))
        return Lighting(TimeOfDay.DUSK, ambient=amb, tint=(1.05, 0.92, 0.8), lamps_lit=True,
                        sky_top=(int(60 * amb), int(70 * amb), int(120 * amb)),
                        sky_horizon=(int(255 * amb), int(150 * amb), int(90 * amb)), **common)
    amb = float(rng.uniform(0.12, 0.2))
    common["noise"] = float(common["noise"]) * 1.5 + 1.0  # darker: more gain, more noise
    return Lighting(TimeOfDay.NIGHT, ambient=amb, tint=(0.85, 0.9, 1.1), lamps_lit=True,
                    sky_top=(8, 10, 22), sky_horizon=(22, 24, 38), beam_range=float(rng.uniform(28.0, 40.0)),
                    **common)
