"""Camera rendering of the traffic world: intersections, merge lanes, crosswalks, road users and
traffic lights as solid shaded boxes, occluded far to near, under the episode's lighting.

The classic renderer (``render.Renderer.render``) is untouched; :class:`TrafficRenderer` adds
:meth:`TrafficRenderer.render_traffic`. Ground layers are drawn in order (shoulders, asphalt of the
route, intersection arms and boxes and merge lanes, lines, crosswalks and stop lines) and hazed per
pixel (at night: the ego's headlight beam); then every 3-D object (vehicles, pedestrians,
obstacles, signs, light heads) is drawn in **painter's order** (farthest camera depth first), each
part a box with back faces culled, its colour shaded and hazed by its own distance. Lamps (lit
signal lamps, tail / brake / head lamps, indicators) are emissive: never darkened. Last, the
exposure gain and fresh per-frame sensor noise (one of ``NOISE_PATTERNS`` precomputed patterns,
chosen by frame time: deterministic and cheap).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import partial

import cv2
import numpy as np
from numpy.typing import NDArray

from minipamayo_ros.geometry import Pose2D
from minipamayo_ros.sim.agents.behavior import Pedestrian
from minipamayo_ros.sim.agents.kinematics import Agent, AgentKind
from minipamayo_ros.sim.agents.objects import Intersection, LightState
from minipamayo_ros.sim.camera import CameraConfig, pixel_to_ground
from minipamayo_ros.sim.lighting import Lighting, TimeOfDay
from minipamayo_ros.sim.render import (
    _DASH,
    _DASH_PERIOD,
    _LINE_W,
    _SCALE,
    _SHIFT,
    _STEP,
    Color,
    Palette,
    Renderer,
)
from minipamayo_ros.sim.road import Obstacle, Road

NOISE_PATTERNS = 4
FRAME_PERIOD = 0.05          # [s] noise pattern changes every frame at 20 Hz
ARM_LENGTH = 60.0            # [m] drawn length of an intersection's unused arms
LAMP_ON: dict[LightState, Color] = {LightState.RED: (255, 45, 35), LightState.AMBER: (255, 175, 20),
                                    LightState.GREEN: (60, 255, 140)}
SKIN = (200, 160, 130)
FloatArray = NDArray[np.float64]

def _straight_road(x0: float, y0: float, heading: float, length: float, lw: float) -> Road:
    s = np.arange(0.0, max(length, 1.0) + _STEP / 2, _STEP)
    c, sn = math.cos(heading), math.sin(heading)
    xy = np.stack((x0 + c * s, y0 + sn * s), axis=1)
    return Road(s=s, xy=xy, heading=np.full_like(s, heading), curvature=np.zeros_like(s), lane_width=lw)


class TrafficRenderer(Renderer):
    """The classic renderer plus the traffic world (see module doc)."""

    def __init__(self, cam: CameraConfig, palette: Palette, seed: int, lighting: Lighting) -> None:
        self.lighting = lighting
        super().__init__(cam, lighting.palette(palette), seed)
        self.base_palette = palette
        self._arms: dict[int, list[tuple[Road, bool]]] = {}
        rng = np.random.default_rng([int(seed), 0x46_52_4D])  # "FRM"
        shape = (cam.height, cam.width, 3)
        self._noise: list[tuple[NDArray[np.uint8], NDArray[np.uint8]]] = []
        if lighting.noise > 0.0:
            for _ in range(NOISE_PATTERNS):
                n = np.clip(np.round(rng.normal(0.0, lighting.noise, shape)), -255, 255)
                self._noise.append((np.maximum(n, 0).astype(np.uint8), np.maximum(-n, 0).astype(np.uint8)))
        self._fog_rgb = tuple(float(c) for c in self.palette.sky_horizon)
        self._cp, self._sp = math.cos(cam.pitch), math.sin(cam.pitch)
        self._intrinsics = (cam.x_offset, cam.mount_height, cam.near, cam.cx, cam.cy, cam.fx, cam.fy)
        self._night = lighting.time_of_day == TimeOfDay.NIGHT
        if self._night:
            self._precompute_beam()

    # ------------------------------------------------------------------ lighting
    def _precompute_beam(self) -> None:
        """Per-pixel ground weights (x/256) towards the night colour outside the headlight beam."""
        cam = self.cam
        h, w = cam.height, cam.width
        rows = np.arange(self._row0, h) + 0.5
        cols = np.arange(w) + 0.5
        uu, vv = np.meshgrid(cols, rows)
        pts, hits = pixel_to_ground(cam, np.stack((uu, vv), axis=-1))
        beam = np.where(hits, self._beam(pts[..., 0], pts[..., 1]), 0.0)
        amb = self.lighting.ambient
        lit = amb + (1.0 - amb) * beam
        self._haze_w = np.round(256.0 * (1.0 - lit))[..., None].astype(np.uint16)
        self._haze_term = (self._haze_w * np.array(self.palette.sky_horizon, np.uint16).reshape(1, 1, 3)
                           ).astype(np.uint16)

    def _beam(self, x: FloatArray | float, y: FloatArray | float) -> FloatArray:
        """Headlight intensity 0..1 at body-frame ground point(s) (x ahead, y left) [m]."""
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        ahead = np.maximum(x - 1.0, 0.0)
        spread = 1.2 + 0.28 * ahead
        fall = np.exp(-(ahead / self.lighting.beam_range) ** 2)
        return np.where(x > 0.5, fall * np.exp(-((y / spread) ** 2)), 0.0)

    def _light_and_haze(self, bx: float, by: float) -> tuple[float, float]:
        """(brightness factor, haze weight 0..1) of an object at body (bx, by) [m]."""
        dist = math.hypot(bx - self.cam.x_offset, by)
        if self._night:
            amb = self.lighting.ambient
            return amb + (1.0 - amb) * float(self._beam(bx, by)), 0.0
        haze = 1.0 - math.exp(-dist / self.palette.fog_distance)
        return (self.lighting.ambient if self.lighting.time_of_day == TimeOfDay.DUSK else 1.0), haze

    def _shade(self, color: Color, factor: float, haze: float) -> Color:
        """A surface colour lit by ``factor`` (ambient tint included) and hazed by ``haze`` 0..1."""
        keep = factor * (1.0 - haze)
        return tuple(int(min(max(c * t * keep + f * haze, 0.0), 255.0))  # type: ignore[return-value]
                     for c, t, f in zip(color, self.lighting.tint, self._fog_rgb, strict=True))

    # ------------------------------------------------------------------ ground geometry
    @staticmethod
    def _world(road: Road, s: FloatArray, d: FloatArray) -> tuple[FloatArray, FloatArray]:
        """World points at route (s, d): ``d`` is (len(s), k) or (k,)."""
        x = np.interp(s, road.s, road.xy[:, 0])[:, None]
        y = np.interp(s, road.s, road.xy[:, 1])[:, None]
        h = np.interp(s, road.s, np.unwrap(road.heading))[:, None]
        d2 = np.asarray(d, dtype=np.float64)
        if d2.ndim == 1:
            d2 = d2[None, :]
        return x - np.sin(h) * d2, y + np.cos(h) * d2

    @staticmethod
    def _runs(uv: FloatArray, ok: NDArray[np.bool_], lo: int, hi: int, mask: NDArray[np.bool_] | None = None,
              rows: slice | None = None) -> list[NDArray[np.int32]]:
        """Fixed-point polygons between columns ``lo`` and ``hi`` over every contiguous valid run."""
        rows = slice(None) if rows is None else rows
        valid = ok[rows, lo] & ok[rows, hi]
        if mask is not None:
            valid &= mask[rows]
        idx = np.flatnonzero(valid)
        if len(idx) < 2:
            return []
        out = []
        for run in np.split(idx, np.flatnonzero(np.diff(idx) > 1) + 1):
            if len(run) < 2:
                continue
            a, b = uv[rows, lo][run], uv[rows, hi][run]
            poly = np.concatenate((a, b[::-1]))
            out.append(np.round(np.clip(poly, -1e5, 1e5) * _SCALE).astype(np.int32))
        return out

    def _fill_all(self, img: NDArray[np.uint8], polys: list[NDArray[np.int32]], color: Color) -> None:
        """Fill each polygon on its own (one ``fillPoly`` call would XOR where they overlap)."""
        for p in polys:
            cv2.fillPoly(img, [p], color, lineType=cv2.LINE_AA, shift=_SHIFT)

    def _arms_of(self, ix: Intersection, road: Road) -> list[tuple[Road, bool]]:
        """Straight roads of an intersection's four arms, from the box edge outwards (lane centre of
        the outgoing lane at d = 0, like the route): (road, drawn in full). The route's own arms are
        only drawn where the route's lines are left out (its turn)."""
        arms = self._arms.get(ix.id)
        if arms is not None:
            return arms
        lw = road.lane_width
        arms = []
        approach_gap = max(ix.s_in - ix.s_turn_start, 0.0) + 1.0
        exit_gap = max(ix.s_turn_end - ix.s_out, 0.0) + 1.0
        exit_dir = {0: 0.0, 1: math.pi / 2, -1: -math.pi / 2}[ix.turn]
        for k in range(4):
            rel = k * math.pi / 2
            h = ix.heading + rel
            c, sn = math.cos(h), math.sin(h)
            x0 = ix.center[0] + c * ix.half + sn * (lw / 2)
            y0 = ix.center[1] + sn * ix.half - c * (lw / 2)
            is_back = abs(math.remainder(rel - math.pi, 2 * math.pi)) < 1e-6
            is_exit = abs(math.remainder(rel - exit_dir, 2 * math.pi)) < 1e-6
            length = approach_gap if is_back else exit_gap if is_exit else ARM_LENGTH
            arms.append((_straight_road(x0, y0, h, length, lw), not (is_back or is_exit)))
        self._arms[ix.id] = arms
        return arms

    # ------------------------------------------------------------------ 3-D objects
    # Plain-float math below: a frame draws ~100 faces, and numpy calls on 4-8 points cost more
    # than the arithmetic (the bench's 20 Hz budget with 12 agents is 15 ms).
    def _frame(self, pose: Pose2D, x: float, y: float, yaw: float) -> tuple[float, float, float, float]:
        """(body x, body y, cos, sin of the heading relative to the car) of an object at world (x, y, yaw)."""
        c, s = math.cos(pose.yaw), math.sin(pose.yaw)
        dx, dy = x - pose.x, y - pose.y
        rel = yaw - pose.yaw
        return c * dx + s * dy, -s * dx + c * dy, math.cos(rel), math.sin(rel)

    def _pixels(self, fr: tuple[float, float, float, float],
                local: Sequence[tuple[float, float, float]]) -> NDArray[np.int32] | None:
        """Fixed-point pixels of object-frame points (None if one is behind the near plane)."""
        bx0, by0, c, s = fr
        cp, sp = self._cp, self._sp
        xo, mh, near, ccx, ccy, fx, fy = self._intrinsics
        out = []
        for lx, ly, lz in local:
            dx = bx0 + c * lx - s * ly - xo
            by = by0 + s * lx + c * ly
            dz = lz - mh
            zc = dx * cp - dz * sp
            if zc <= near:
                return None
            u = ccx - fx * by / zc
            v = ccy + fy * (-dx * sp - dz * cp) / zc
            out.append((min(max(u, -1e5), 1e5) * _SCALE, min(max(v, -1e5), 1e5) * _SCALE))
        return np.array(out, dtype=np.float64).round().astype(np.int32)

    def _cuboid(self, img: NDArray[np.uint8], fr: tuple[float, float, float, float],
                box: tuple[float, float, float, float, float, float], color: Color, light: float,
                haze: float) -> tuple[bool, bool]:
        """A shaded box (x0, x1, y0, y1, z0, z1 in the object frame, frame from :meth:`_frame`);
        only the faces turned towards the camera are drawn (a box is convex: no sorting within
        it). Returns whether its back and front faces are visible."""
        x0, x1, y0, y1, z0, z1 = box
        bx0, by0, c, s = fr
        # the camera in the object frame decides which faces it sees
        rx, ry = self.cam.x_offset - bx0, -by0
        cx, cy, cz = c * rx + s * ry, -s * rx + c * ry, self.cam.mount_height
        faces = []
        if cx < x0:
            faces.append((((x0, y0, z0), (x0, y1, z0), (x0, y1, z1), (x0, y0, z1)), 0.75))
        if cx > x1:
            faces.append((((x1, y0, z0), (x1, y0, z1), (x1, y1, z1), (x1, y1, z0)), 0.75))
        if cy < y0:
            faces.append((((x0, y0, z0), (x0, y0, z1), (x1, y0, z1), (x1, y0, z0)), 0.6))
        if cy > y1:
            faces.append((((x0, y1, z0), (x1, y1, z0), (x1, y1, z1), (x0, y1, z1)), 0.6))
        if cz > z1:
            faces.append((((x0, y0, z1), (x0, y1, z1), (x1, y1, z1), (x1, y0, z1)), 1.0))
        for quad, shade in faces:
            poly = self._pixels(fr, quad)
            if poly is not None:
                cv2.fillConvexPoly(img, poly, self._shade(color, light * shade, haze), lineType=cv2.LINE_AA,
                                   shift=_SHIFT)
        return cx < x0, cx > x1

    def _quad(self, img: NDArray[np.uint8], fr: tuple[float, float, float, float],
              local: Sequence[tuple[float, float, float]], color: Color) -> None:
        """A flat quad (4 object-frame corners) in a fixed colour (lamps: emissive)."""
        poly = self._pixels(fr, local)
        if poly is not None:
            cv2.fillConvexPoly(img, poly, color, lineType=cv2.LINE_AA, shift=_SHIFT)

    def _vehicle(self, img: NDArray[np.uint8], pose: Pose2D, a: Agent, time: float, light: float,
                 haze: float) -> None:
        """Wheels / underbody, body, cabin (glass), tail (brake) lamps, head lamps when lit, indicators."""
        x, y, yaw = a.pose()
        fr = self._frame(pose, x, y, yaw)
        L, W, H = a.length / 2, a.width / 2, a.height
        self._cuboid(img, fr, (-L + 0.5, L - 0.5, -W + 0.15, W - 0.15, 0.0, 0.35), (25, 25, 25), light, haze)
        back, front = self._cuboid(img, fr, (-L, L, -W, W, 0.3, 0.62 * H), a.color, light, haze)
        glass = tuple(int(0.35 * c + 25) for c in a.color)
        self._cuboid(img, fr, (-0.62 * L, 0.35 * L, -0.9 * W, 0.9 * W, 0.62 * H, H), glass,  # type: ignore[arg-type]
                     light, haze)
        z0, z1 = 0.42 * H, 0.56 * H
        lit = self.lighting.lamps_lit
        if back:
            red = (255, 30, 30) if a.braking() else ((200, 20, 20) if lit else
                                                      self._shade((150, 20, 25), light, haze))
            xb = -L - 0.01
            for side in (-1, 1):
                yo = side * (W - 0.3)
                self._quad(img, fr, ((xb, yo - 0.22, z0), (xb, yo + 0.22, z0), (xb, yo + 0.22, z1),
                                     (xb, yo - 0.22, z1)), red)
        if front and lit:
            xf = L + 0.01
            for side in (-1, 1):
                yo = side * (W - 0.35)
                self._quad(img, fr, ((xf, yo - 0.2, z0), (xf, yo + 0.2, z0), (xf, yo + 0.2, z1),
                                     (xf, yo - 0.2, z1)), (255, 250, 215))
        if a.indicator and (time % 0.66) < 0.33:
            yo = (W + 0.01) * (1 if a.indicator > 0 else -1)
            for xo in (-L + 0.15, L - 0.15):
                self._quad(img, fr, ((xo - 0.15, yo, z0), (xo + 0.15, yo, z0), (xo + 0.15, yo, z1),
                                     (xo - 0.15, yo, z1)), (255, 160, 0))

    def _pedestrian(self, img: NDArray[np.uint8], pose: Pose2D, a: Agent, light: float, haze: float) -> None:
        """Legs, torso (clothes), head."""
        fr = self._frame(pose, *a.pose())
        H = a.height
        for box, color in (((-0.12, 0.12, -0.17, 0.17, 0.0, 0.47 * H), (45, 45, 55)),
                           ((-0.15, 0.15, -0.25, 0.25, 0.47 * H, 0.86 * H), a.color),
                           ((-0.1, 0.1, -0.1, 0.1, 0.87 * H, H), SKIN)):
            self._cuboid(img, fr, box, color, light, haze)

    def _signal(self, img: NDArray[np.uint8], pose: Pose2D, road: Road, ix: Intersection, time: float,
                light: float = 1.0, haze: float = 0.0) -> None:
        """Pole head at the right of the stop line and an overhead head on a mast arm over our lane."""
        lw = road.lane_width
        s = ix.stop_line
        state = ix.cycle.state(time)
        h = float(road.heading_at(s))
        px, py = road.points_at(s, -lw / 2 - 1.2)
        fr = self._frame(pose, float(px), float(py), h)
        pole = self._shade(self.base_palette.pole, light, haze)
        arm = lw / 2 + 1.2
        self._cuboid(img, fr, (-0.07, 0.07, -0.07, 0.07, 0.0, 5.6), pole, 1.0, 0.0)
        self._cuboid(img, fr, (-0.05, 0.05, 0.0, arm, 5.45, 5.6), pole, 1.0, 0.0)
        for dy, z0 in ((0.0, 2.2), (arm, 4.3)):   # pole head, overhead head (above our lane)
            self._cuboid(img, fr, (-0.12, 0.12, dy - 0.2, dy + 0.2, z0, z0 + 1.05), (40, 40, 42), light, haze)
            for k, lamp in enumerate((LightState.RED, LightState.AMBER, LightState.GREEN)):
                zc = z0 + 0.85 - k * 0.33
                on = lamp == state
                r = 0.19 if on and self._night else 0.13
                color = LAMP_ON[lamp] if on else tuple(int(0.22 * c) for c in LAMP_ON[lamp])
                xl = -0.13
                self._quad(img, fr, ((xl, dy - r, zc - r), (xl, dy + r, zc - r), (xl, dy + r, zc + r),
                                     (xl, dy - r, zc + r)), color)  # type: ignore[arg-type]

    # ------------------------------------------------------------------ frame
    def render_traffic(self, road: Road, pose: Pose2D, s_vehicle: float, obstacles: Sequence[Obstacle],
                       stop_lines: Sequence[float], traffic: object, time: float) -> NDArray[np.uint8]:
        """RGB frame of the traffic world seen from base_link ``pose`` at route ``s_vehicle``."""
        from minipamayo_ros.sim.traffic import Traffic

        assert isinstance(traffic, Traffic)
        img = self._background.copy()
        pal, lw, cam = self.palette, road.lane_width, self.cam
        layout = traffic.layout
        s_end = min(s_vehicle + cam.max_range, road.length)
        s = np.arange(np.ceil(max(0.0, s_vehicle - 2.0) / _STEP) * _STEP, s_end, _STEP)
        near_ix = [ix for ix in layout.intersections
                   if ix.s_turn_start - 60.0 < s_end and ix.s_turn_end + 70.0 > s_vehicle - 5.0]
        shoulders: list[NDArray[np.int32]] = []
        asphalt: list[NDArray[np.int32]] = []
        lines: list[NDArray[np.int32]] = []
        dashes: list[NDArray[np.int32]] = []
        marks: list[NDArray[np.int32]] = []
        if len(s) >= 2:
            merge_w = np.zeros_like(s)
            for ml in layout.merge_lanes:
                m = (s >= ml.s_start) & (s <= ml.s_end)
                merge_w[m] = lw * np.minimum(1.0, (ml.s_end - s[m]) / ml.taper)
            w = _LINE_W / 2
            right = -lw / 2 - merge_w
            cols = np.stack([right - 0.7, np.full_like(s, 1.5 * lw + 0.7), right, np.full_like(s, 1.5 * lw),
                             right - w, right + w, np.full_like(s, 1.5 * lw - w),
                             np.full_like(s, 1.5 * lw + w),
                             np.full_like(s, lw / 2 - w), np.full_like(s, lw / 2 + w),
                             np.full_like(s, -lw / 2 - w), np.full_like(s, -lw / 2 + w)], axis=1)
            wx, wy = self._world(road, s, cols)
            uv, ok = self._uv(pose, wx, wy)
            free = np.ones(len(s), dtype=bool)   # no lines inside an intersection's turn / box
            for ix in near_ix:
                free &= ~((s >= ix.s_turn_start - 0.3) & (s <= ix.s_turn_end + 0.3))
            shoulders += self._runs(uv, ok, 0, 1)
            asphalt += self._runs(uv, ok, 2, 3)
            lines += self._runs(uv, ok, 4, 5, free) + self._runs(uv, ok, 6, 7, free)
            phase = np.mod(s + 1e-6, _DASH_PERIOD) <= _DASH + 2e-6
            dmask = phase & free
            dashes += self._runs(uv, ok, 8, 9, dmask)
            dashes += self._runs(uv, ok, 10, 11, dmask & (merge_w > 0.3))
        for ix in near_ix:
            for arm, full in self._arms_of(ix, road):
                sa = arm.s
                wx, wy = self._world(arm, sa, np.array([-lw / 2 - 0.7, 1.5 * lw + 0.7, -lw / 2, 1.5 * lw,
                                                        -lw / 2 - w, -lw / 2 + w, 1.5 * lw - w, 1.5 * lw + w,
                                                        lw / 2 - w, lw / 2 + w]))
                uv_a, ok_a = self._uv(pose, wx, wy)
                if full:
                    shoulders += self._runs(uv_a, ok_a, 0, 1)
                asphalt += self._runs(uv_a, ok_a, 2, 3)
                lines += self._runs(uv_a, ok_a, 4, 5) + self._runs(uv_a, ok_a, 6, 7)
                dashes += self._runs(uv_a, ok_a, 8, 9, np.mod(sa + 1e-6, _DASH_PERIOD) <= _DASH + 2e-6)
                if full:   # its stop line across the incoming lane (left of the outgoing one)
                    wxs, wys = self._world(arm, np.array([0.8, 1.3]), np.array([lw / 2, 1.5 * lw]))
                    uv_s, ok_s = self._uv(pose, wxs, wys)
                    marks += self._runs(uv_s, ok_s, 0, 1)
            c, sn = math.cos(ix.heading), math.sin(ix.heading)
            box = _straight_road(ix.center[0] - c * ix.half, ix.center[1] - sn * ix.half, ix.heading,
                                 2 * ix.half, lw)
            wx, wy = self._world(box, box.s, np.array([-ix.half, ix.half]))
            uv_b, ok_b = self._uv(pose, wx, wy)
            asphalt += self._runs(uv_b, ok_b, 0, 1)
        self._fill_all(img, shoulders, pal.shoulder)
        self._fill_all(img, asphalt, pal.asphalt)
        self._fill_all(img, lines, pal.edge_line)
        self._fill_all(img, dashes, pal.centre_line)
        # crosswalks (zebra stripes along the road) and stop lines
        for cw in layout.crosswalks:
            if not s_vehicle - 6.0 < cw.s < s_end:
                continue
            ss = np.linspace(cw.s - cw.width / 2, cw.s + cw.width / 2, 4)
            edges = np.arange(-lw / 2 + 0.15, 1.5 * lw - 0.3, 1.0)
            wx, wy = self._world(road, ss, np.stack((edges, edges + 0.5), axis=1).ravel())
            uv_c, ok_c = self._uv(pose, wx, wy)
            pix = np.round(np.clip(uv_c, -1e5, 1e5) * _SCALE).astype(np.int32)
            for k in range(len(edges)):   # a stripe: all 8 corners in front of the camera
                if ok_c[:, 2 * k].all() and ok_c[:, 2 * k + 1].all():
                    marks.append(np.concatenate((pix[:, 2 * k], pix[::-1, 2 * k + 1])))
        lines_s = [sl for sl in stop_lines if s_vehicle - 5.0 < sl < s_end]
        lines_s += [ix.stop_line for ix in layout.intersections if s_vehicle - 5.0 < ix.stop_line < s_end]
        for sl in lines_s:
            wx, wy = self._world(road, np.array([sl - 0.25, sl + 0.25]), np.array([-lw / 2, lw / 2]))
            uv_s, ok_s = self._uv(pose, wx, wy)
            marks += self._runs(uv_s, ok_s, 0, 1)
        self._fill_all(img, marks, pal.stop_line)
        # ground haze / night beam
        lower = img[self._row0:]
        lower[:] = ((lower.astype(np.uint16) * (256 - self._haze_w) + self._haze_term) >> 8).astype(np.uint8)
        # 3-D objects far to near (painter's order by camera depth)
        self._objects(img, road, pose, s_vehicle, s_end, obstacles, lines_s, stop_lines, traffic, time)
        return self._sensor(img, time)

    def _objects(self, img: NDArray[np.uint8], road: Road, pose: Pose2D, s_vehicle: float, s_end: float,
                 obstacles: Sequence[Obstacle], lines_s: Sequence[float], stop_lines: Sequence[float],
                 traffic: object, time: float) -> None:
        from minipamayo_ros.sim.traffic import Traffic

        assert isinstance(traffic, Traffic)
        items: list[tuple[float, Callable[[], None]]] = []
        cam = self.cam
        tan_half = math.tan(cam.hfov / 2) + 0.15

        cy, sy = math.cos(pose.yaw), math.sin(pose.yaw)

        def add(x: float, y: float, radius: float, draw: Callable[[float, float], None]) -> None:
            bx = cy * (x - pose.x) + sy * (y - pose.y)
            by = -sy * (x - pose.x) + cy * (y - pose.y)
            depth = bx - cam.x_offset
            outside = abs(by) > depth * tan_half + radius + 1.0
            if depth < -radius or depth > cam.max_range + radius or outside:
                return
            light, haze = self._light_and_haze(bx, by)
            items.append((depth, partial(draw, light, haze)))

        for ob in obstacles:
            if s_vehicle - 5.0 < ob.s < s_end:
                c = road.points_at(ob.s, ob.d)
                add(float(c[0]), float(c[1]), 1.5, partial(self._obstacle, img, road, pose, ob))
        for sl in stop_lines:
            if s_vehicle - 5.0 < sl < s_end:
                c = road.points_at(sl, -road.lane_width / 2 - 1.3)
                add(float(c[0]), float(c[1]), 0.5, partial(self._sign, img, road, pose, sl))
        for ix in traffic.layout.intersections:
            if s_vehicle - 5.0 < ix.stop_line < s_end:
                c = road.points_at(ix.stop_line, -road.lane_width / 2 - 1.2)
                add(float(c[0]), float(c[1]), 3.0, partial(self._signal, img, pose, road, ix, time))
        for a in traffic.agents:
            if not a.active:
                continue
            x, y, _ = a.pose()
            if a.kind == AgentKind.PEDESTRIAN:
                assert isinstance(a, Pedestrian)
                add(x, y, 0.5, partial(self._pedestrian, img, pose, a))
            else:
                add(x, y, a.length / 2, partial(self._vehicle, img, pose, a, time))
        for _, draw in sorted(items, key=lambda it: -it[0]):
            draw()

    def _obstacle(self, img: NDArray[np.uint8], road: Road, pose: Pose2D, ob: Obstacle, light: float,
                  haze: float) -> None:
        c = road.points_at(ob.s, ob.d)
        L, W = ob.length / 2, ob.width / 2
        fr = self._frame(pose, float(c[0]), float(c[1]), float(road.heading_at(ob.s)))
        self._cuboid(img, fr, (-L, L, -W, W, 0.0, ob.height), ob.color, light, haze)

    def _sign(self, img: NDArray[np.uint8], road: Road, pose: Pose2D, s_line: float, light: float,
              haze: float) -> None:
        c = road.points_at(s_line, -road.lane_width / 2 - 1.3)
        fr = self._frame(pose, float(c[0]), float(c[1]), float(road.heading_at(s_line)))
        pal = self.base_palette
        self._cuboid(img, fr, (-0.04, 0.04, -0.04, 0.04, 0.0, 1.7), pal.pole, light, haze)
        self._cuboid(img, fr, (-0.03, 0.03, -0.35, 0.35, 1.6, 2.3), pal.sign, max(light, 0.6), haze)

    def _sensor(self, img: NDArray[np.uint8], time: float) -> NDArray[np.uint8]:
        """Exposure gain and per-frame noise."""
        g = self.lighting.gain(time)
        out: NDArray[np.uint8] = img
        if abs(g - 1.0) > 1e-3:
            out = np.asarray(cv2.convertScaleAbs(out, alpha=g), dtype=np.uint8)
        if self._noise:
            pos, neg = self._noise[int(round(time / FRAME_PERIOD)) % len(self._noise)]
            out = np.asarray(cv2.subtract(cv2.add(out, pos), neg), dtype=np.uint8)
        return out
