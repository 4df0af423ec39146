"""Policy node benchmark: achieved rate vs ``max_rate_hz``, end-to-end latency, node overhead.

Setup (what the issue asks for): the real node (``python -m minipamayo_ros.nodes.policy_node``,
``backend: auto`` -> ONNX Runtime on this CPU, 1 intra-op thread) in its own process, fed by this
process over loopback DDS with 320x320 rgb8 images at 30 Hz (stamped at publish time) and
odometry at 50 Hz. Model: the shipped ``engines/minipamayo-tiny-policy`` if present, else the
probe model (``minipamayo_ros.policy.probe_model``); the result says which.

Per ``max_rate_hz`` in ``RATES`` (a fresh node each):

* ``achieved_hz``: trajectories received / time between the first and the last;
* ``end_to_end_*_ms``: ``Trajectory.end_to_end_latency_ms`` = image stamp -> just before publish on
  the node's clock (includes camera transport over DDS, decoding, resize, state, engine, parsing);
* ``inference_*_ms``: ``Trajectory.inference_latency_ms`` (engine time only);
* ``overhead_*_ms``: per trajectory end-to-end minus inference: everything the node adds;
* ``receive_*_ms``: image stamp -> trajectory received here (adds the trajectory's DDS hop);
* ``frames_dropped``: from the node's last /diagnostics (replaced while busy + over rate budget).

Goals: overhead p95 <= 3 ms at the default 10 Hz; the standing-time state input (issue 22) costs
<= 0.5 ms p95 per frame (``state_input_cost``: timed in this process, where DDS and scheduling
noise of milliseconds cannot hide it); the Jetson bar (end-to-end p95 < 180 ms) is shown next to
ours but is a bar for the robot, not for this CPU.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from bench.result import BenchResult
from minipamayo_ros.bringup.processes import NodeProcess, ros_args
from minipamayo_ros.dds_env import lease_domain_id, use_loopback_dds
from minipamayo_ros.latency import summarize

REPO_ROOT = Path(__file__).resolve().parents[1]
SHIPPED = REPO_ROOT / "engines" / "minipamayo-tiny-policy.manifest.json"
RATES = (5.0, 10.0, 30.0)
CAMERA_HZ = 30.0
ODOM_HZ = 50.0
IMAGE_PX = 320
OVERHEAD_GOAL_P95_MS = 3.0
JETSON_E2E_P95_MS = 180.0


def _frames(n: int = 30) -> list[bytes]:
    """``n`` distinct 320x320 rgb8 road-like frames (sky, grey road, moving lane marks)."""
    out = []
    y, x = np.mgrid[0:IMAGE_PX, 0:IMAGE_PX]
    for k in range(n):
        img = np.zeros((IMAGE_PX, IMAGE_PX, 3), np.uint8)
        img[: IMAGE_PX // 2] = (110, 160, 220)
        img[IMAGE_PX // 2:] = (90, 90, 90)
        marks = (np.abs(x - IMAGE_PX // 2) < 3) & (y > IMAGE_PX // 2) & (((y + 4 * k) // 12) % 2 == 0)
        img[marks] = 255
        out.append(img.tobytes())
    return out


def measure(manifest: str, max_rate_hz: float, duration: float, log_path: Path,
            module: str = "minipamayo_ros.nodes.policy_node") -> dict[str, float]:
    """The node (``module``: another implementation for an A/B) fed for ``duration`` s at the cap."""
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from nav_msgs.msg import Odometry
    from rclpy.context import Context
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image

    from minipamayo_ros.msg import Trajectory
    from minipamayo_ros.nodes.conversions import sec_to_time, time_to_sec
    from minipamayo_ros.nodes.policy_node import TRAJECTORY_QOS

    proc = NodeProcess.python_module(
        module,
        ros_args({"manifest_path": manifest, "backend": "auto", "max_rate_hz": max_rate_hz}),
        dict(os.environ), "policy_bench", log_path).start()
    ctx = Context()
    rclpy.init(context=ctx)
    frames = _frames()
    rows: list[tuple[float, float, float, float]] = []  # stamp, e2e, inference, receive latency
    image_stamps: set[float] = set()
    diags: list[DiagnosticArray] = []
    try:
        node = Node("policy_bench_probe", context=ctx)
        clock = node.get_clock()

        def now() -> float:
            return clock.now().nanoseconds * 1e-9

        def on_traj(m: Trajectory) -> None:
            stamp = time_to_sec(m.header.stamp)
            rows.append((stamp, m.end_to_end_latency_ms, m.inference_latency_ms, (now() - stamp) * 1e3))

        node.create_subscription(Trajectory, "vla/trajectory", on_traj, TRAJECTORY_QOS)
        node.create_subscription(DiagnosticArray, "/diagnostics", diags.append, 10)
        odom_pub = node.create_publisher(Odometry, "odom", qos_profile_sensor_data)
        image_pub = node.create_publisher(Image, "camera/image_raw", qos_profile_sensor_data)
        count = [0]

        def odom() -> None:
            msg = Odometry()
            msg.header.stamp = sec_to_time(now())
            msg.header.frame_id, msg.child_frame_id = "odom", "base_link"
            msg.pose.pose.orientation.w = 1.0
            msg.twist.twist.linear.x = 4.0
            odom_pub.publish(msg)

        feeding = [False]

        def image() -> None:
            if not feeding[0]:
                return
            msg = Image(height=IMAGE_PX, width=IMAGE_PX, encoding="rgb8", step=3 * IMAGE_PX)
            msg.data = frames[count[0] % len(frames)]
            count[0] += 1
            msg.header.stamp = sec_to_time(now())
            msg.header.frame_id = "camera"
            image_stamps.add(time_to_sec(msg.header.stamp))
            image_pub.publish(msg)

        node.create_timer(1.0 / ODOM_HZ, odom)
        node.create_timer(1.0 / CAMERA_HZ, image)
        ex = SingleThreadedExecutor(context=ctx)
        ex.add_node(node)
        deadline = time.monotonic() + 60.0
        while image_pub.get_subscription_count() == 0 and time.monotonic() < deadline:
            ex.spin_once(timeout_sec=0.05)  # node start-up (model load + warm-up) and discovery
            if proc.poll() is not None:
                raise RuntimeError(f"policy node exited:\n{proc.read_log()[-3000:]}")
        t_end = time.monotonic() + 1.5
        while time.monotonic() < t_end:  # odometry history before the first frame
            ex.spin_once(timeout_sec=0.01)
        feeding[0] = True
        warm = time.monotonic() + 2.0  # let discovery/caches settle; samples before this are dropped
        while time.monotonic() < warm:
            ex.spin_once(timeout_sec=0.01)
        rows.clear()
        sent0 = count[0]
        t_end = time.monotonic() + duration
        while time.monotonic() < t_end:
            ex.spin_once(timeout_sec=0.01)
        feeding[0] = False
        sent = count[0] - sent0
        n_diag = len(diags)
        t_end = time.monotonic() + 3.0
        while time.monotonic() < t_end and len(diags) < n_diag + 1:
            ex.spin_once(timeout_sec=0.05)
        ex.shutdown()
        node.destroy_node()
    finally:
        rclpy.try_shutdown(context=ctx)
        proc.stop()
    if len(rows) < 3:
        raise RuntimeError(f"only {len(rows)} trajectories at max_rate_hz={max_rate_hz}:\n"
                           f"{proc.read_log()[-3000:]}")
    a = np.asarray(rows)
    assert all(s in image_stamps for s in a[:, 0]), "trajectory stamp is not an image stamp"
    e2e, inf, recv = summarize(a[:, 1]), summarize(a[:, 2]), summarize(a[:, 3])
    ovh = summarize(a[:, 1] - a[:, 2])
    diag = {kv.key: kv.value for kv in diags[-1].status[0].values} if diags else {}
    out: dict[str, float] = {
        "max_rate_hz": max_rate_hz,
        "achieved_hz": (len(a) - 1) / max(a[-1, 0] - a[0, 0], 1e-9),
        "images_sent": float(sent),
        "trajectories": float(len(a)),
        "frames_received_total": float(diag.get("frames_received", "nan")),
        # replaced while busy + skipped over the rate budget (the node reports the two separately)
        "frames_dropped_total": (float(diag.get("frames_dropped_busy", "nan"))
                                 + float(diag.get("frames_skipped_rate_cap", "nan"))),
    }
    for name, s in (("end_to_end", e2e), ("inference", inf), ("overhead", ovh), ("receive", recv)):
        for k in ("p50", "p95", "p99", "max"):
            out[f"{name}_{k}_ms"] = round(getattr(s, k), 3)
    # the node's own breakdown of the overhead (its last diagnostics window, <= 100 trajectories)
    for part in ("transport", "queue", "preprocess"):
        for k in ("p50", "p95"):
            out[f"node_{part}_{k}_ms"] = float(diag.get(f"{part}_{k}_ms", "nan"))
    out["_series"] = a  # type: ignore[assignment]
    return out


STATE_INPUT_GOAL_P95_MS = 0.5


def state_input_cost(calls: int = 20000) -> dict[str, float]:
    """What the standing-time input costs the node per frame, in this process (no DDS noise):
    ``state_history`` as the node runs it, and the part the standing time adds (ten look-ups in the
    standstill clock per frame plus one clock update per odometry sample, 5 per 10 Hz frame).
    The history holds 3 s of 50 Hz odometry with a stop in it (the clock keeps closed standstills)."""
    import time as _time

    from minipamayo_ros.geometry import Pose2D
    from minipamayo_ros.pose_history import OdometrySample
    from minipamayo_ros.state_features import StandstillClock, StateHistory, state_history

    hist = StateHistory(max_age=2.0)
    for k in range(150):
        t = 0.02 * k
        hist.add(OdometrySample(t, Pose2D(0.1 * t, 0.0, 0.0), 0.0 if 1.0 <= t < 1.8 else 2.0, 0.0))
    stamp = 2.97
    total, standing = np.empty(calls), np.empty(calls)
    clock = StandstillClock()
    instants = stamp - 0.1 * np.arange(9, -1, -1)
    for i in range(calls):
        t0 = _time.perf_counter()
        state_history(hist, stamp)
        t1 = _time.perf_counter()
        for k in range(5):
            clock.add(10.0 + 0.02 * (5 * i + k), 0.0 if (i // 50) % 2 else 1.0)
        for t in instants:
            clock.standing_time(float(t))
        t2 = _time.perf_counter()
        total[i], standing[i] = (t1 - t0) * 1e3, (t2 - t1) * 1e3
    out: dict[str, float] = {}
    for name, arr in (("state_history", total), ("standing_time_part", standing)):
        s = summarize(arr)
        for k in ("p50", "p95", "p99", "max"):
            out[f"{name}_{k}_ms"] = round(getattr(s, k), 4)
    return out


def _plot(results: dict[float, dict], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, axes = plt.subplots(1, len(results), figsize=(5 * len(results), 3.6), sharey=True)
    for ax, (rate, r) in zip(np.atleast_1d(axes), results.items(), strict=True):
        a = r["_series"]
        t = a[:, 0] - a[0, 0]
        ax.plot(t, a[:, 1], ".", ms=3, label="end-to-end")
        ax.plot(t, a[:, 2], ".", ms=3, label="engine")
        ax.plot(t, a[:, 1] - a[:, 2], ".", ms=3, label="node overhead")
        ax.set_title(f"max_rate_hz {rate:g}: achieved {r['achieved_hz']:.1f} Hz")
        ax.set_xlabel("time [s]")
        ax.grid(alpha=0.3)
    np.atleast_1d(axes)[0].set_ylabel("latency [ms]")
    np.atleast_1d(axes)[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def run(out_dir: Path, quick: bool) -> BenchResult:
    use_loopback_dds(int(os.environ.get("ROS_DOMAIN_ID", lease_domain_id())))
    if SHIPPED.is_file():
        manifest, model = str(SHIPPED), "shipped engines/minipamayo-tiny-policy"
    else:
        from minipamayo_ros.policy.probe_model import build_probe_model

        manifest, model = str(build_probe_model(out_dir / "probe_model")), "probe model (no shipped engine)"
    duration = 6.0 if quick else 30.0
    load_before = os.getloadavg()
    results = {rate: measure(manifest, rate, duration, out_dir / f"policy_node_{rate:g}hz.log")
               for rate in RATES}
    load_after = os.getloadavg()
    metrics: dict[str, object] = {"model": model, "duration_s": duration, "camera_hz": CAMERA_HZ,
                                  "image_px": IMAGE_PX, "loadavg_1min_before": load_before[0],
                                  "loadavg_1min_after": load_after[0], "cpu_count": os.cpu_count()}
    for rate, r in results.items():
        for k, v in r.items():
            if not k.startswith("_"):
                metrics[f"rate{rate:g}_{k}"] = v
    cost = state_input_cost(2000 if quick else 20000)
    metrics.update({f"state_input_{k}": v for k, v in cost.items()})
    d = results[10.0]
    goals = {
        f"the standing-time input costs <= {STATE_INPUT_GOAL_P95_MS} ms p95 per frame":
        cost["standing_time_part_p95_ms"] <= STATE_INPUT_GOAL_P95_MS,
        f"node overhead p95 <= {OVERHEAD_GOAL_P95_MS} ms at max_rate_hz 10": d["overhead_p95_ms"]
        <= OVERHEAD_GOAL_P95_MS,
        "achieved rate within 10% of min(max_rate_hz, camera) at every cap": all(
            r["achieved_hz"] >= 0.9 * min(rate, CAMERA_HZ) and r["achieved_hz"] <= 1.05 * rate
            for rate, r in results.items()),
        f"end-to-end p95 < {JETSON_E2E_P95_MS:g} ms (Jetson bar; here on the CPU)": d["end_to_end_p95_ms"]
        < JETSON_E2E_P95_MS,
    }
    artifacts = []
    if _plot(results, out_dir / "policy_node_latency.png"):
        artifacts.append("policy_node_latency.png")
    lines = [
        f"Model: {model}; {IMAGE_PX} px rgb8 at {CAMERA_HZ:g} Hz + odometry at {ODOM_HZ:g} Hz from another "
        f"process; {duration:g} s per cap; {os.cpu_count()} CPUs, load avg {load_before[0]:.1f} -> "
        f"{load_after[0]:.1f} (**under load**: other jobs share the box).",
        "",
        "| max_rate_hz | achieved Hz | dropped/received | e2e p50/p95/p99/max ms | engine p50/p95/p99 ms "
        "| overhead p50/p95/p99/max ms | stamp->received p95 ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for rate, r in results.items():
        lines.append(
            f"| {rate:g} | {r['achieved_hz']:.2f} "
            f"| {r['frames_dropped_total']:.0f}/{r['frames_received_total']:.0f} "
            f"| {r['end_to_end_p50_ms']:.1f}/{r['end_to_end_p95_ms']:.1f}/{r['end_to_end_p99_ms']:.1f}/"
            f"{r['end_to_end_max_ms']:.1f} | {r['inference_p50_ms']:.1f}/{r['inference_p95_ms']:.1f}/"
            f"{r['inference_p99_ms']:.1f} | {r['overhead_p50_ms']:.2f}/{r['overhead_p95_ms']:.2f}/"
            f"{r['overhead_p99_ms']:.2f}/{r['overhead_max_ms']:.2f} | {r['receive_p95_ms']:.1f} |")
    lines += ["", "Overhead breakdown from the node's /diagnostics (last <= 100 trajectories), p50/p95 ms: "
              "transport = image stamp -> camera callback (DDS), queue = callback -> worker start, "
              "preprocess = decode + resize + state history.", "",
              "| max_rate_hz | transport | queue | preprocess |", "|---|---|---|---|"]
    for rate, r in results.items():
        lines.append(" | ".join([f"| {rate:g}"] + [
            f"{r[f'node_{p}_p50_ms']:.2f}/{r[f'node_{p}_p95_ms']:.2f}"
            for p in ("transport", "queue", "preprocess")]) + " |")
    lines += ["", "State input in this process (no DDS), ms p50/p95/p99/max: `state_history` (what the "
              f"node runs per frame) {cost['state_history_p50_ms']:.3f}/{cost['state_history_p95_ms']:.3f}/"
              f"{cost['state_history_p99_ms']:.3f}/{cost['state_history_max_ms']:.3f}, of which the standing "
              f"time (10 look-ups + 5 clock updates) {cost['standing_time_part_p50_ms']:.4f}/"
              f"{cost['standing_time_part_p95_ms']:.4f}/{cost['standing_time_part_p99_ms']:.4f}/"
              f"{cost['standing_time_part_max_ms']:.4f}."]
    lines += ["", f"Goal node overhead p95 <= {OVERHEAD_GOAL_P95_MS} ms; Jetson bar end-to-end p95 < "
              f"{JETSON_E2E_P95_MS:g} ms (ours at 10 Hz on this CPU: {d['end_to_end_p95_ms']:.1f} ms)."]
    return BenchResult(metrics=metrics, summary_md="\n".join(lines), goals=goals, artifacts=artifacts)
