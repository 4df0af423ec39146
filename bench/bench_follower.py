"""Follower benchmark: tick compute time, 100 Hz timer period deviation (idle / one core busy),
closed-loop tracking error across speeds.

* ``tick_core_us``: ``Follower.update`` with 3 s of 50 Hz odometry and a 20-point trajectory.
* ``tick_node_us``: the node's full tick (update + 3 messages built and published), in-process.
* timer: the real node (``python -m minipamayo_ros.nodes.follower_node``, rate_hz 100) in its own
  process, fed odometry at 50 Hz and trajectories at 10 Hz by this process; the period deviation
  is taken from consecutive ``/vla/control`` header stamps (the ROS clock read at the start of
  each tick callback). ``missed`` counts ticks absent from gaps longer than 1.5 periods.
  Idle for ``duration`` s, then again while a separate process busy-loops one core.
* closed loop: ``minipamayo_ros.evaluation.tracking`` on the reference road (|kappa| <= 0.1 1/m),
  trajectories at 10 Hz delivered 150 ms late, for set speeds 2..10 m/s; plot of cross-track error.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from bench.result import BenchResult
from minipamayo_ros.bringup.stack import StackArgs, drive_stack, process_env_overrides
from minipamayo_ros.control.follower import Follower
from minipamayo_ros.dds_env import apply_overrides
from minipamayo_ros.evaluation.closed_loop import ClosedLoopSettings
from minipamayo_ros.evaluation.tracking import track
from minipamayo_ros.geometry import Pose2D
from minipamayo_ros.latency import summarize
from minipamayo_ros.pose_history import OdometrySample
from minipamayo_ros.sim.road import reference_road
from minipamayo_ros.trajectory import PlannedTrajectory

TIMER_HZ = 100.0
FOLLOWER_MODULE = "minipamayo_ros.nodes.follower_node"
#: the follower's real-time option in the ``*_rt`` cases here and in the whole-stack benchmarks (text,
#: churn; off there with MINIPAMAYO_BENCH_FOLLOWER_RT=0) (docs/follower.md "Real-time")
FOLLOWER_RT = {"scheduling_policy": "fifo", "scheduling_priority": 50, "lock_memory": True}


def follower_rt_enabled() -> bool:
    """The whole-stack benchmarks run the follower with :data:`FOLLOWER_RT` unless the environment
    says ``MINIPAMAYO_BENCH_FOLLOWER_RT=0`` (to report the same run without it)."""
    return os.environ.get("MINIPAMAYO_BENCH_FOLLOWER_RT", "1") != "0"


def follower_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The follower's process environment as the stack gives it (``bringup.stack``: DDS over UDP
    only), or ``env`` unchanged with ``MINIPAMAYO_BENCH_FOLLOWER_SHM=1`` (the follower on shared
    memory too, for the A/B of docs/latency.md). Every benchmark starting a follower uses this."""
    base = dict(os.environ if env is None else env)
    if os.environ.get("MINIPAMAYO_BENCH_FOLLOWER_SHM", "0") == "1":
        return base
    follower = next(s for s in drive_stack(StackArgs()) if s.name == "follower")
    return apply_overrides(base, process_env_overrides(follower, base, print))


def _feed(f: Follower, t_end: float, seconds: float = 3.0) -> None:
    """Odometry on a 20 m radius curve at 5 m/s, 50 Hz, over ``(t_end - seconds, t_end]``, and a
    curved trajectory stamped 0.15 s before ``t_end``."""
    v, k = 5.0, 0.05
    for t in np.arange(t_end - seconds + 0.02, t_end + 1e-9, 0.02):
        yaw = v * k * t
        pose = Pose2D(np.sin(yaw) / k, (1 - np.cos(yaw)) / k, yaw)
        f.add_odometry(OdometrySample(float(t), pose, v, v * k))
    s = v * 0.1 * np.arange(1, 21)
    pts = np.stack((np.sin(k * s) / k, (1 - np.cos(k * s)) / k), 1)
    # named as the follower's own producer (the node's follows only its policy: safety.plan_source)
    plan = PlannedTrajectory(stamp=t_end - 0.15, points=pts, speeds=np.full(20, v), producer=f.producer or "")
    rejection = f.set_trajectory(plan, now=t_end)
    assert rejection is None, f"benchmark plan rejected: {rejection}"


def bench_tick_core(n: int) -> np.ndarray:
    f = Follower()
    _feed(f, 3.0)
    out = np.empty(n)
    for i in range(n):
        t0 = time.perf_counter_ns()
        cmd = f.update(3.0 + (i % 10) * 1e-4)  # stays inside odom_stop_after; limiters keep working
        out[i] = (time.perf_counter_ns() - t0) / 1e3
    assert cmd.status == 0, "benchmark must time the tracking path"
    return out


def tick_alloc_peaks(tick, n: int, prepare=None) -> np.ndarray:
    """[B] memory allocated at the peak of each of ``n`` calls of ``tick(i)`` above what was allocated
    before it (tracemalloc): the transient garbage of one tick (messages, arrays, strings).
    ``prepare(i)`` runs before each call, outside the measurement."""
    import gc
    import tracemalloc

    out = np.empty(n)
    gc.disable()
    tracemalloc.start()
    try:
        for i in range(n):
            if prepare is not None:
                prepare(i)
            before = tracemalloc.get_traced_memory()[0]
            tracemalloc.reset_peak()
            tick(i)
            out[i] = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
        gc.enable()
    return out


def core_ticker() -> object:
    f = Follower()
    _feed(f, 3.0)
    return lambda i: f.update(3.0 + (i % 10) * 1e-4)


def bench_tick_node(n: int, allocs: bool = False) -> np.ndarray:
    """The node's tick() in this process (real rclpy, publishing on loopback DDS)."""
    import rclpy
    from geometry_msgs.msg import PointStamped, Twist
    from rclpy.context import Context

    from minipamayo_ros.msg import ControlCommand
    from minipamayo_ros.nodes.follower_node import FollowerNode

    ctx = Context()
    rclpy.init(context=ctx)
    try:
        node = FollowerNode(context=ctx)
        # never spun by an executor: neither its tick thread nor a timer runs; ticks are driven here
        _feed(node.follower, node._ros_now())
        # subscribers on all three outputs, so that the tick publishes all of them (it skips the
        # lookahead point and the Twist when nobody listens)
        probe = rclpy.create_node("follower_tick_probe", context=ctx)
        for topic, kind in (("/vla/control", ControlCommand), ("/vla/lookahead_point", PointStamped),
                            ("/cmd_vel", Twist)):
            probe.create_subscription(kind, topic, lambda _m: None, 10)
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline and node._lookahead_pub.get_subscription_count() == 0:
            time.sleep(0.05)

        def fresh() -> None:  # keep odometry and trajectory fresh on the node clock (not timed)
            node.follower.history.clear()
            node.follower.trajectory = None
            _feed(node.follower, node._ros_now(), seconds=1.0)

        if allocs:
            out = tick_alloc_peaks(lambda i: node.tick(), n, lambda i: fresh() if i % 20 == 0 else None)
            probe.destroy_node()
            node.destroy_node()
            return out
        out = np.empty(n)
        for i in range(n):
            if i % 20 == 0:
                fresh()
            t0 = time.perf_counter_ns()
            node.tick()
            out[i] = (time.perf_counter_ns() - t0) / 1e3
        assert node.follower.update(node._ros_now()).status == 0, "benchmark must time the tracking path"
        probe.destroy_node()
        node.destroy_node()
        return out
    finally:
        rclpy.try_shutdown(context=ctx)


def measure_timer(duration: float, log_path: Path, parameters: dict[str, object] | None = None,
                  module: str = "minipamayo_ros.nodes.follower_node") -> dict[str, float]:
    """Run the real node (or ``module``, e.g. the bare timer) at 100 Hz for ``duration`` s; deviation
    stats [ms], missed ticks and the process's CPU time per second [ms/s] over the window."""
    import psutil
    import rclpy
    from geometry_msgs.msg import PointStamped, Twist
    from nav_msgs.msg import Odometry
    from rclpy.context import Context
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data

    from minipamayo_ros.bringup.processes import NodeProcess, ros_args
    from minipamayo_ros.msg import ControlCommand, Trajectory
    from minipamayo_ros.nodes.conversions import sec_to_time, time_to_sec, trajectory_to_msg

    proc = NodeProcess.python_module(module, ros_args(parameters={"rate_hz": TIMER_HZ, **(parameters or {})}),
                                     follower_env(), "follower_bench", log_path).start()
    ctx = Context()
    rclpy.init(context=ctx)
    stamps: list[float] = []
    try:
        node = Node("follower_bench_probe", context=ctx)
        qos = QoSProfile(reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST, depth=500)
        node.create_subscription(ControlCommand, "vla/control",
                                 lambda m: stamps.append(time_to_sec(m.header.stamp)), qos)
        # the other two outputs have a subscriber too (the follower skips them when nobody listens)
        node.create_subscription(PointStamped, "vla/lookahead_point", lambda _m: None, 10)
        node.create_subscription(Twist, "cmd_vel", lambda _m: None, 10)
        odom_pub = node.create_publisher(Odometry, "odom", qos_profile_sensor_data)
        traj_pub = node.create_publisher(
            Trajectory, "vla/trajectory",
            QoSProfile(reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST, depth=1))
        t0 = time.time()

        def odom() -> None:
            now = time.time()
            msg = Odometry()
            msg.header.stamp = sec_to_time(now)
            msg.pose.pose.position.x = 5.0 * (now - t0)
            msg.pose.pose.orientation.w = 1.0
            msg.twist.twist.linear.x = 5.0
            odom_pub.publish(msg)

        def traj() -> None:
            t = 0.1 * np.arange(1, 21)
            traj_pub.publish(trajectory_to_msg(PlannedTrajectory(
                stamp=time.time() - 0.15, points=np.stack((5.0 * t, 0.1 * t**2), 1),
                speeds=np.full(20, 5.0), producer="/policy")))  # as the follower's default producer

        node.create_timer(0.02, odom)
        node.create_timer(0.1, traj)
        ex = SingleThreadedExecutor(context=ctx)
        ex.add_node(node)
        deadline = time.monotonic() + 30.0
        while not stamps and time.monotonic() < deadline:  # node start-up and discovery
            ex.spin_once(timeout_sec=0.05)
        settle = time.monotonic() + 1.0
        while time.monotonic() < settle:
            ex.spin_once(timeout_sec=0.05)
        stamps.clear()
        ps = psutil.Process(proc.pid)
        cpu0, t_start = sum(ps.cpu_times()[:2]), time.monotonic()
        end = time.monotonic() + duration
        while time.monotonic() < end:
            ex.spin_once(timeout_sec=0.05)
        cpu_ms_per_s = (sum(ps.cpu_times()[:2]) - cpu0) * 1e3 / (time.monotonic() - t_start)
        ex.shutdown()
        node.destroy_node()
    finally:
        rclpy.try_shutdown(context=ctx)
        proc.stop()
    period = 1.0 / TIMER_HZ
    gaps = np.diff(np.asarray(stamps))
    if gaps.size == 0:
        raise RuntimeError(f"no /vla/control received from the node; log: {log_path}")
    dev = np.abs(gaps - period) * 1e3
    s = summarize(dev)
    missed = int(np.sum(np.maximum(np.round(gaps / period) - 1, 0)[gaps > 1.5 * period]))
    return {"ticks": int(gaps.size + 1), "rate_hz": float(gaps.size / max(gaps.sum(), 1e-9)),
            "dev_p50_ms": s.p50, "dev_p95_ms": s.p95, "dev_p99_ms": s.p99, "dev_max_ms": s.max,
            "missed_ticks": missed, "cpu_ms_per_s": cpu_ms_per_s}


def interleaved_cpu(cases: dict[str, str], rounds: int, seconds: float, log_dir: Path,
                    progress: bool = False) -> dict[str, list[dict[str, float]]]:
    """:func:`measure_timer` of each module in ``cases`` (name -> module), one after the other,
    ``rounds`` times: ratios of their mean CPU compare like with like on a machine whose load
    drifts (a single sample per case moved the follower / bare-timer ratio by +-0.3)."""
    runs: dict[str, list[dict[str, float]]] = {k: [] for k in cases}
    for r in range(rounds):
        for name, module in cases.items():
            res = measure_timer(seconds, log_dir / f"{name}.log", {}, module)
            res["loadavg_1min"] = round(os.getloadavg()[0], 2)
            runs[name].append(res)
            if progress:
                print(f"round {r} {name}: CPU {res['cpu_ms_per_s']:.1f} ms/s, dev p99 {res['dev_p99_ms']:.3f}"
                      f" ms, missed {res['missed_ticks']}, load {res['loadavg_1min']}", flush=True)
    return runs


def mean_cpu(runs: list[dict[str, float]]) -> float:
    """[ms/s] mean process CPU over the rounds of one case."""
    return sum(x["cpu_ms_per_s"] for x in runs) / len(runs)


def _busy_core() -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", "while True:\n    pass"], start_new_session=True)


def run(out_dir: Path, quick: bool) -> BenchResult:
    metrics: dict[str, object] = {}
    goals: dict[str, bool] = {}
    lines: list[str] = []

    core = summarize(bench_tick_core(1000 if quick else 20000))
    node = summarize(bench_tick_node(300 if quick else 5000))
    core_alloc = summarize(tick_alloc_peaks(core_ticker(), 200 if quick else 2000))
    node_alloc = summarize(bench_tick_node(200 if quick else 2000, allocs=True))
    metrics.update(tick_core_p50_us=core.p50, tick_core_p99_us=core.p99, tick_core_max_us=core.max,
                   tick_node_p50_us=node.p50, tick_node_p99_us=node.p99, tick_node_max_us=node.max,
                   tick_core_alloc_peak_p50_bytes=core_alloc.p50,
                   tick_node_alloc_peak_p50_bytes=node_alloc.p50,
                   loadavg_1min_before=round(os.getloadavg()[0], 2))
    lines += ["| tick compute [us] | p50 | p95 | p99 | max | transient memory per tick p50 [B] |",
              "|---|---|---|---|---|---|",
              f"| Follower.update (core) | {core.p50:.0f} | {core.p95:.0f} | {core.p99:.0f} "
              f"| {core.max:.0f} | {core_alloc.p50:.0f} |",
              f"| node tick (update + 3 publishes) | {node.p50:.0f} | {node.p95:.0f} | {node.p99:.0f} "
              f"| {node.max:.0f} | {node_alloc.p50:.0f} |", ""]

    duration = 3.0 if quick else 20.0
    lines += [f"Timer at {TIMER_HZ:g} Hz, real node process, {duration:g} s each "
              f"(machine load average at start: {os.getloadavg()[0]:.2f}):", "",
              "| case | ticks | rate [Hz] | dev p50 [ms] | p95 | p99 | max | missed | CPU [ms/s] |",
              "|---|---|---|---|---|---|---|---|---|"]
    for case in ("idle", "busy_core", "idle_rt", "busy_core_rt", "bare_timer"):
        busy = _busy_core() if case.startswith("busy_core") else None
        try:
            r = measure_timer(duration, out_dir / f"follower_node_{case}.log",
                              FOLLOWER_RT if case.endswith("_rt") else {},
                              "bench.bench_follower" if case == "bare_timer" else FOLLOWER_MODULE)
        finally:
            if busy is not None:
                busy.kill()
                busy.wait()
        for k, v in r.items():
            metrics[f"timer_{case}_{k}"] = v
        lines.append(f"| {case} | {r['ticks']} | {r['rate_hz']:.1f} | {r['dev_p50_ms']:.3f} | "
                     f"{r['dev_p95_ms']:.3f} | {r['dev_p99_ms']:.3f} | {r['dev_max_ms']:.3f} | "
                     f"{r['missed_ticks']} | {r['cpu_ms_per_s']:.1f} |")
        if case != "bare_timer":
            goals[f"timer {case}: p99 deviation <= 1.0 ms"] = r["dev_p99_ms"] <= 1.0
            goals[f"timer {case}: no missed ticks"] = r["missed_ticks"] == 0
    rounds, seconds = (1, 3.0) if quick else (3, 10.0)
    ab = interleaved_cpu({"bare_timer": "bench.bench_follower", "follower": FOLLOWER_MODULE}, rounds,
                         seconds, out_dir)
    mean = {k: mean_cpu(v) for k, v in ab.items()}
    ratio = mean["follower"] / max(mean["bare_timer"], 1e-9)
    metrics["cpu_ab_rounds"] = {k: [x["cpu_ms_per_s"] for x in v] for k, v in ab.items()}
    metrics["cpu_follower_vs_bare_timer_ratio"] = round(ratio, 3)
    goals["follower CPU at 100 Hz <= 1.3 x a bare rclpy timer with the same three publishes"] = ratio <= 1.3
    lines += ["", f"CPU: follower / bare rclpy timer publishing the same three messages at {TIMER_HZ:g} Hz "
              f"(`bare_timer`, same feed and subscribers), both idle, interleaved over {rounds} round(s) of "
              f"{seconds:g} s: {mean['follower']:.1f} / {mean['bare_timer']:.1f} ms/s = x{ratio:.2f} "
              "(goal <= 1.3)."]

    speeds = (2.0, 5.0, 10.0) if quick else (2.0, 4.0, 5.0, 6.0, 8.0, 10.0)
    road = reference_road(0.1)
    lines += ["", "Closed loop, reference road |kappa| <= 0.1 1/m, trajectories 10 Hz, 150 ms latency, "
              "follower 50 Hz (kinematic bicycle with steering/speed lags):", "",
              "| set speed [m/s] | cross-track RMS [m] | max [m] | mean speed [m/s] | min speed [m/s] |",
              "|---|---|---|---|---|"]
    runs = {}
    for v in speeds:
        res = track(road, speed=v, settings=ClosedLoopSettings(latency=0.15))
        runs[v] = res
        metrics[f"closed_loop_{v:g}mps_rms_m"] = res.cross_track_rms
        metrics[f"closed_loop_{v:g}mps_max_m"] = res.cross_track_max
        lines.append(f"| {v:g} | {res.cross_track_rms:.3f} | {res.cross_track_max:.3f} | "
                     f"{res.mean_speed:.2f} | {res.min_speed:.2f} |")
    goals["closed loop 5 m/s: RMS <= 0.10 m, max <= 0.25 m"] = (
        runs[5.0].cross_track_rms <= 0.10 and runs[5.0].cross_track_max <= 0.25)
    lines.append("\n(above ~5.5 m/s the follower caps speed in the 10 m radius curves: "
                 "max_lateral_accel 3 m/s^2)")
    lines += ["", "Same at 5 m/s with policy-like error: each trajectory shifted sideways by N(0, sigma):",
              "", "| sigma [m] | cross-track RMS [m] | max [m] |", "|---|---|---|"]
    for sigma in (0.1, 0.2):
        res = track(road, speed=5.0, settings=ClosedLoopSettings(latency=0.15), plan_noise=sigma)
        metrics[f"closed_loop_5mps_noise{sigma:g}_rms_m"] = res.cross_track_rms
        metrics[f"closed_loop_5mps_noise{sigma:g}_max_m"] = res.cross_track_max
        lines.append(f"| {sigma:g} | {res.cross_track_rms:.3f} | {res.cross_track_max:.3f} |")
    artifacts = [_plot(runs, out_dir / "follower_closed_loop.png", road)]
    return BenchResult(metrics=metrics, summary_md="\n".join(lines), goals=goals,
                       artifacts=[a for a in artifacts if a])


def _plot(runs: dict, path: Path, road=None) -> str | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, (ax, axk) = plt.subplots(2, 1, figsize=(9, 5.5), sharex=True, height_ratios=(3, 1))
    for v, res in runs.items():
        ax.plot(res.stations, res.cross_track * 100.0, label=f"{v:g} m/s", lw=1)
    ax.set_ylabel("cross-track error [cm] (left +)")
    ax.set_title("Follower closed loop on the reference road (150 ms trajectory latency)")
    ax.grid(alpha=0.3)
    ax.legend(ncol=2, fontsize=8)
    if road is not None:
        axk.plot(road.s, road.curvature, color="k", lw=1)
    axk.set_ylabel("road curvature [1/m]")
    axk.set_xlabel("distance along the road [m]")
    axk.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)


def bare_timer(argv: list[str]) -> None:
    """The CPU reference: an rclpy node whose 100 Hz timer publishes a ControlCommand, a PointStamped
    and a Twist (prebuilt, only the stamps change) and does nothing else, in its own process and
    executor like the follower (``node_main``: same gc handling and signal handling)."""
    from geometry_msgs.msg import PointStamped, Twist
    from rclpy.node import Node

    from minipamayo_ros.msg import ControlCommand
    from minipamayo_ros.nodes.conversions import set_time
    from minipamayo_ros.nodes.node_main import run_node

    class BareTimer(Node):
        def __init__(self) -> None:
            super().__init__("bare_timer")
            rate = float(self.declare_parameter("rate_hz", TIMER_HZ).value)
            self.msgs = (ControlCommand(), PointStamped(), Twist())
            self.pubs = (self.create_publisher(ControlCommand, "/vla/control", 10),
                         self.create_publisher(PointStamped, "/vla/lookahead_point", 1),
                         self.create_publisher(Twist, "/cmd_vel", 10))
            self.create_timer(1.0 / rate, self.tick)

        def tick(self) -> None:
            now = self.get_clock().now().nanoseconds * 1e-9
            set_time(self.msgs[0].header.stamp, now)
            set_time(self.msgs[1].header.stamp, now)
            for pub, msg in zip(self.pubs, self.msgs, strict=True):
                pub.publish(msg)

    sys.exit(run_node(BareTimer, (), argv))


if __name__ == "__main__":
    bare_timer(sys.argv)
