"""The compare report: JUnit XML for CI dashboards and one PNG for people.

``report.png``: golden (green) vs replayed (red) trajectories drawn into the camera frames they
were computed from (the frames with the largest deviation, else spread over the bag), the error
over time, and the latency histogram with its budgets. The projection uses the simulator's
camera mount (``config/simulator.yaml``); for other cameras the overlay is indicative only and a
top view of the same trajectories is drawn beside it.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from minipamayo_ros.replay.records import Outputs, TrajectoryRecord

if TYPE_CHECKING:
    from minipamayo_ros.replay.compare import Comparison


def write_junit(cmp: Comparison, path: Path, name: str = "replay") -> None:
    """One test suite; one test case per compared output and per latency gate."""
    suite = ET.Element(
        "testsuite",
        name=name,
        tests=str(len(cmp.items) + len(cmp.gates)),
        failures=str(len(cmp.failed) + sum(not g["passed"] for g in cmp.gates)),
        errors="0",
    )
    props = ET.SubElement(suite, "properties")
    for k, v in (
        ("profile", cmp.profile),
        ("golden_model", cmp.golden.model_id),
        ("replayed_model", cmp.replayed.model_id),
        ("backend", cmp.replayed.backend),
        ("golden_commit", cmp.golden.git_commit),
    ):
        ET.SubElement(props, "property", name=k, value=str(v))
    for item in cmp.items:
        case = ET.SubElement(
            suite,
            "testcase",
            classname=f"{name}.{item.kind}",
            name=f"{item.kind}@{item.stamp_ns * 1e-9:.3f}s",
        )
        if not item.passed:
            fail = ET.SubElement(case, "failure", message=f"{item.status}: {'; '.join(item.failures)[:500]}")
            fail.text = "\n".join(item.failures)
    for g in cmp.gates:
        case = ET.SubElement(suite, "testcase", classname=f"{name}.latency", name=g["gate"])
        if not g["passed"]:
            ET.SubElement(
                case,
                "failure",
                message=f"{g['gate']} = {g['value_ms']:.2f} ms > budget {g['budget_ms']:g} ms",
            )
    ET.ElementTree(suite).write(path, encoding="utf-8", xml_declaration=True)


def _frames_for(bag: Path, stamps: list[int], image_topic: str) -> dict[int, np.ndarray]:
    from minipamayo_ros.replay.bagio import BagReader, stamp_ns
    from minipamayo_ros.replay.inputs import camera_frame

    wanted = set(stamps)
    found: dict[int, np.ndarray] = {}
    with BagReader(bag) as r:
        for _, msgtype, _, msg in r.messages([image_topic]):
            s = stamp_ns(msg.header)
            if s in wanted:
                found[s] = np.array(camera_frame(msg, msgtype, now=s / 1e9)[0].decode())
                if len(found) == len(wanted):
                    break
    return found


def _draw(image: np.ndarray, rec: TrajectoryRecord, colour: tuple[int, int, int]) -> np.ndarray:
    import cv2

    from minipamayo_ros.replay.simbag import sim_config
    from minipamayo_ros.sim.camera import project

    cam = sim_config(0).world_config().camera
    if (cam.height, cam.width) != image.shape[:2]:
        from dataclasses import replace

        cam = replace(cam, height=image.shape[0], width=image.shape[1])
    ground = np.stack((rec.x, rec.y, np.zeros(len(rec.x))), axis=1)
    uv, valid = project(cam, ground)
    pts = np.round(uv[valid]).astype(np.int32)
    if len(pts) >= 2:
        cv2.polylines(image, [pts.reshape(-1, 1, 2)], False, colour, 2, cv2.LINE_AA)
    return image


def plot_report(
    cmp: Comparison,
    replayed: Outputs,
    golden: Outputs,
    path: Path,
    bag: Path | None = None,
    n_frames: int = 3,
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    r_traj = {t.stamp_ns: t for t in replayed.trajectories}
    g_traj = {t.stamp_ns: t for t in golden.trajectories}
    common = sorted(set(r_traj) & set(g_traj))
    items = {i.stamp_ns: i for i in cmp.items if i.kind == "trajectory" and i.metrics}
    # frames: the worst deviations, else evenly spread
    by_err = sorted(common, key=lambda s: -items[s].metrics.get("max_dev_m", 0.0) if s in items else 0.0)
    worst = [s for s in by_err if s in items and items[s].metrics.get("max_dev_m", 0.0) > 0][:n_frames]
    spread = [common[int(k)] for k in np.linspace(0, len(common) - 1, n_frames)] if common else []
    chosen = sorted(worst or spread)
    images: dict[int, np.ndarray] = {}
    if bag is not None and chosen and replayed.meta.image_topic:
        try:
            images = _frames_for(bag, chosen, replayed.meta.image_topic)
        except Exception:  # the report must not fail the comparison: frames are a bonus
            images = {}

    fig = plt.figure(figsize=(15, 9))
    verdict = cmp.verdict()
    fig.suptitle(
        f"{verdict['verdict']}: {verdict['reason'][:160]}\nreplayed {replayed.meta.model_id} "
        f"({replayed.meta.backend}/{replayed.meta.device}) vs golden {golden.meta.model_id} "
        f"(commit {golden.meta.git_commit[:12] or '?'}), profile '{cmp.profile}'",
        fontsize=10,
        color="green" if cmp.passed else "red",
    )
    for k, s in enumerate(chosen[:n_frames]):
        ax = fig.add_subplot(2, n_frames + 1, k + 1)
        g, r = g_traj[s], r_traj[s]
        if s in images:
            img = images[s].copy()
            img = _draw(img, g, (40, 200, 40))
            img = _draw(img, r, (230, 40, 40))
            ax.imshow(img)
            ax.axis("off")
        else:
            ax.plot(g.y, g.x, "g.-", label="golden")
            ax.plot(r.y, r.x, "r.--", label="replayed")
            ax.invert_xaxis()
            ax.set_xlabel("y [m] (left)")
            ax.set_ylabel("x [m]")
            ax.legend(fontsize=7)
        m = items[s].metrics if s in items else {}
        ax.set_title(
            f"t={s * 1e-9:.2f} s  ADE {m.get('ade_m', math.nan):.3g} m\n" f"green golden, red replayed",
            fontsize=8,
        )
    # top view of the worst frame
    ax = fig.add_subplot(2, n_frames + 1, n_frames + 1)
    if chosen:
        s = chosen[0]
        ax.plot(g_traj[s].y, g_traj[s].x, "g.-", label="golden")
        ax.plot(r_traj[s].y, r_traj[s].x, "r.--", label="replayed")
        ax.invert_xaxis()
        ax.set_aspect("equal", adjustable="datalim")
        ax.legend(fontsize=7)
        ax.set_title(f"top view t={s * 1e-9:.2f} s (base_link)", fontsize=8)
    # error over time
    ax = fig.add_subplot(2, 2, 3)
    t = np.array([s * 1e-9 for s in common])
    for key, style in (
        ("ade_m", "b-"),
        ("fde_m", "m-"),
        ("speed_err_mps", "c-"),
        ("uncertainty_err_m", "y-"),
    ):
        vals = np.array([items[s].metrics.get(key, np.nan) if s in items else np.nan for s in common])
        if vals.size:
            ax.plot(t, vals, style, label=key, lw=1)
    bad = [i.stamp_ns * 1e-9 for i in cmp.failed]
    if bad:
        ax.plot(bad, np.zeros(len(bad)), "rx", label=f"regressions ({len(bad)})")
    ax.set_xlabel("input stamp [s]")
    ax.set_ylabel("replayed - golden")
    ax.set_title("error over time", fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    # latency histogram
    ax = fig.add_subplot(2, 2, 4)
    field = "total_ms"
    if cmp.gates:
        field = cmp.gates[0]["gate"].split()[0]
    lat = np.array([getattr(tr, field, np.nan) for tr in replayed.trajectories], dtype=float)
    lat = lat[np.isfinite(lat)]
    if lat.size:
        ax.hist(lat, bins=40, color="steelblue")
        p50, p95, p99 = np.percentile(lat, [50, 95, 99])
        ax.set_title(
            f"replayed {field}: p50 {p50:.1f} p95 {p95:.1f} p99 {p99:.1f} max {lat.max():.1f} ms", fontsize=9
        )
        for gate in cmp.gates:
            ax.axvline(gate["budget_ms"], color="green" if gate["passed"] else "red", ls="--", lw=1)
            ax.text(gate["budget_ms"], ax.get_ylim()[1] * 0.9, gate["gate"].split()[-1], fontsize=7)
    else:
        ax.set_title("no latency samples", fontsize=9)
    ax.set_xlabel("[ms]")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
