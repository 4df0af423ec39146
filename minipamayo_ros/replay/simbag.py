"""Record a bag straight from the simulator core: deterministic, no DDS, faster than real time.

    python -m minipamayo_ros.replay.simbag --seed 2000 --seconds 8 --out test/data/replay/sim_seed2000

The simulator node's own loop (:class:`~minipamayo_ros.sim.session.SimSession`, its default
parameters from ``config/simulator.yaml``) drives with the built-in expert; every output the node
would publish -- ``/clock``, ``/camera/image_raw`` (or its PNG/JPEG ``/compressed`` form),
``/odom``, ``/sim/ground_truth/odom``, ``/sim/ground_truth/scene`` (the scene frames a run is
scored from: ``replay.score_bag``) -- is written with log time = its stamp. The same arguments
give a byte-identical bag, which is how the suite's golden bag is made (``test/data/replay/``);
a bag of the running stack comes from ``record`` (or ``scripts/demo.sh --record``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from minipamayo_ros.params import build_config, load_node_yaml
from minipamayo_ros.replay.bagio import CLOCK, COMPRESSED_IMAGE, IMAGE, ODOMETRY, STORAGES, STRING, BagWriter
from minipamayo_ros.replay.messages import (
    clock_msg,
    compressed_image_msg,
    image_msg,
    odometry_msg,
    string_msg,
)
from minipamayo_ros.replay.progress import Progress
from minipamayo_ros.scoring.frames import TOPIC as SCENE_TOPIC
from minipamayo_ros.scoring.frames import FrameSampler
from minipamayo_ros.sim.config import SimulatorConfig
from minipamayo_ros.sim.session import SimSession

NS = 1_000_000_000


def sim_config(seed: int, overrides: dict[str, object] | None = None) -> SimulatorConfig:
    from minipamayo_ros.params import config_dir

    values = load_node_yaml(config_dir() / "simulator.yaml", "simulator")
    values.pop("use_sim_time", None)
    values.update({"seed": seed, "control_source": "expert", "auto_reset": False, **(overrides or {})})
    return build_config(SimulatorConfig, values)


def record_sim_bag(
    out: Path,
    seed: int,
    seconds: float,
    images: str = "png",
    storage: str = "mcap",
    overrides: dict[str, object] | None = None,
    ground_truth: bool = True,
    progress: bool = False,
) -> dict[str, int]:
    """Drive ``seconds`` of sim time on ``seed`` with the expert and write the bag; returns counts."""
    cfg = sim_config(seed, overrides)
    session = SimSession(cfg)
    cam = "/camera/image_raw" + ("/compressed" if images != "raw" else "")
    step = 1.0 / cfg.tick_rate_hz
    n_steps = int(round(seconds / step))
    bar = Progress(n_steps, "simbag", unit="ticks", enabled=progress)
    scenes = FrameSampler()
    with BagWriter(out, storage) as w:
        for _ in range(n_steps):
            o = session.advance(step)
            scene = scenes.sample(session.world, session.sim_time, session.episode) if ground_truth else None
            if scene is not None:
                ns = round(session.sim_time * NS)
                w.write("/" + SCENE_TOPIC, STRING, ns, string_msg(scene))
            for od in o.odom:
                ns = round(od.stamp * NS)
                w.write("/odom", ODOMETRY, ns, odometry_msg(ns, od.odom, cfg.odom_frame, cfg.base_frame))
                if ground_truth:
                    w.write(
                        "/sim/ground_truth/odom",
                        ODOMETRY,
                        ns,
                        odometry_msg(ns, od.truth, cfg.odom_frame, cfg.base_frame),
                    )
            for fr in o.frames:
                ns = round(fr.stamp * NS)
                if images == "raw":
                    w.write(cam, IMAGE, ns, image_msg(ns, fr.image, cfg.camera_frame))
                else:
                    w.write(
                        cam,
                        COMPRESSED_IMAGE,
                        ns,
                        compressed_image_msg(ns, fr.image, images, cfg.camera_frame),
                    )
            ns = round(session.sim_time * NS)
            w.write("/clock", CLOCK, ns, clock_msg(ns))
            bar.update()
        counts = dict(w.counts)
    bar.close()
    return counts


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True, help="new bag folder")
    p.add_argument("--seed", type=int, default=2000)
    p.add_argument("--seconds", type=float, default=8.0, help="[s] sim time")
    p.add_argument(
        "--images",
        choices=("png", "jpeg", "raw"),
        default="png",
        help="camera as CompressedImage (png: lossless, jpeg) or raw Image",
    )
    p.add_argument("--storage", choices=STORAGES, default="mcap")
    p.add_argument(
        "--camera-rate", type=float, default=None, help="[Hz] camera rate (default: simulator.yaml)"
    )
    a = p.parse_args(argv)
    overrides = {"camera_rate_hz": a.camera_rate} if a.camera_rate else None
    counts = record_sim_bag(a.out, a.seed, a.seconds, a.images, a.storage, overrides, progress=True)
    size = sum(f.stat().st_size for f in a.out.iterdir())
    print(f"[simbag] wrote {a.out} ({size / 1e6:.1f} MB): {counts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
