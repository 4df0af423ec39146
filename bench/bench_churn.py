"""The control path while tools come and go: DDS participant churn against the whole drive stack.

On a vehicle people attach tools at any moment (``ros2 topic echo``, ``ros2 node list``, a bag
recorder, RViz). Each is a new DDS participant that every running process discovers and, over
shared memory, opens a port to. This benchmark runs the whole stack, each node its own process over
loopback DDS on wall time, with the shipped configurations:

* the camera: a simulator drive (validation road, the simulator's 256x256 image and odometry)
  rendered once and replayed by its own process at 30 Hz with 50 Hz odometry
  (``python -m bench.bench_churn --source DRIVE.npz``), so every window sees the same frames;
* policy node (``max_rate_hz`` 10, ONNX Runtime), follower node (100 Hz; with the real-time option
  unless ``MINIPAMAYO_BENCH_FOLLOWER_RT=0``), text node (shipped ``config/text.yaml``) under a
  request storm at 1 kHz (``bench.bench_text --storm-source``): the issue's worst case;
* this process: the probe (``vla/trajectory``, ``vla/control``, ``diagnostics``).

Windows alternate ``steady`` (nothing else starts) and ``churn`` (every :data:`CHURN_PERIOD_S` one
more participant starts and lives :data:`CHURN_LIFE_S`, in turn: ``ros2 topic echo
/vla/trajectory``, ``ros2 node list --no-daemon``, a recorder subscribing to the camera
(``--recorder``), ``ros2 topic pub -r 2 /vla/explain_request``), so both cases share the run's load.

Measured per case: policy end-to-end latency (``Trajectory.end_to_end_latency_ms``: image stamp ->
publish) p50/p95/p99/p99.9/max and samples > 100 ms; ``/vla/control`` gaps between consecutive
header stamps (max, |gap - 10 ms| p99, gaps > 50 ms); the follower's own late ticks and longest
tick interval (``follower: control loop`` in /diagnostics, steady clock inside the node: tells a
stalled follower from commands lost on the way); every stall with its time since the last churn
event. Bars (issue 23): churn, no policy sample > 100 ms, no control gap > 50 ms, 0 late ticks.

``MINIPAMAYO_BENCH_SHM_HEALTHY_CHECK_MS=1000`` runs every process with Fast DDS's default shared-memory
health check instead of the shipped 60 ms (the A/B of docs/latency.md); ``MINIPAMAYO_BENCH_FOLLOWER_RT=0``
runs the follower without its real-time option.
"""

from __future__ import annotations

import os
import re
import signal
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.bench_follower import FOLLOWER_RT, follower_env, follower_rt_enabled
from bench.drive_feed import DriveFeed
from bench.result import BenchResult
from minipamayo_ros.bringup.processes import NodeProcess, ros_args
from minipamayo_ros.latency import summarize

ROOT = Path(__file__).resolve().parents[1]
CAMERA_HZ, ODOM_HZ, FOLLOWER_HZ, POLICY_HZ, STORM_HZ = 30.0, 50.0, 100.0, 10.0, 1000.0
CHURN_PERIOD_S, CHURN_LIFE_S = 5.0, 4.0  # [s] a participant starts every period and lives this long
E2E_BAR_MS, GAP_BAR_MS = 100.0, 50.0
#: what each participant prints once it is up and talking (checked in its log after the run)
UP_MARKERS = {"topic_echo": "sequence:", "node_list": "/follower", "recorder": "recorder:",
              "request_source": "publishing #"}
CHURN_COMMANDS: list[tuple[str, list[str]]] = [
    ("topic_echo", ["ros2", "topic", "echo", "/vla/trajectory"]),
    ("node_list", ["ros2", "node", "list", "--no-daemon"]),
    ("recorder", [sys.executable, "-m", "bench.bench_churn", "--recorder"]),
    ("request_source", ["ros2", "topic", "pub", "-r", "2", "/vla/explain_request", "std_msgs/msg/Empty",
                        "{}"]),
]


class ChurnStack:
    """The stack's processes, the probe (this process's node) and the churn participants."""

    def __init__(self, drive: Path, log_dir: Path) -> None:
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.node import Node

        from minipamayo_ros.msg import ControlCommand, Trajectory
        from minipamayo_ros.nodes.conversions import time_to_sec
        from minipamayo_ros.nodes.policy_node import TRAJECTORY_QOS

        self.env, self.log_dir, cfg = dict(os.environ), log_dir, ROOT / "config"
        follower = {"rate_hz": FOLLOWER_HZ, **(FOLLOWER_RT if follower_rt_enabled() else {})}
        self.procs = [
            NodeProcess.python_module("bench.bench_churn", ["--source", str(drive)], self.env, "source",
                                      log_dir / "source.log").start(),
            NodeProcess.python_module("minipamayo_ros.nodes.policy_node", ros_args(
                {"backend": "onnxruntime", "max_rate_hz": POLICY_HZ}, [cfg / "policy.yaml"]), self.env,
                "policy", log_dir / "policy.log").start(),
            NodeProcess.python_module("minipamayo_ros.nodes.follower_node", ros_args(
                follower, [cfg / "follower.yaml"]), follower_env(self.env), "follower",
                log_dir / "follower.log").start(),
            NodeProcess.python_module("minipamayo_ros.nodes.text_node", ros_args({}, [cfg / "text.yaml"]),
                                      self.env, "text", log_dir / "text.log").start(),
        ]
        self.churn: list[list[Any]] = []  # [process, started (monotonic), SIGINT sent at or None]
        self.events: list[tuple[float, str]] = []         # (monotonic, "start <name>" / "stop <name>")
        self.n_churn = 0
        self.churn_logs: list[tuple[str, Path]] = []
        self.ctx = Context()
        rclpy.init(context=self.ctx)
        self.e2e: list[tuple[float, float]] = []   # (monotonic at receipt, end-to-end [ms])
        self.ctl: list[float] = []                 # /vla/control header stamps [s]
        self.loop: list[dict[str, str]] = []       # follower control-loop reports
        node = self.node = Node("churn_bench_probe", context=self.ctx)

        def on_diag(m: DiagnosticArray) -> None:
            for st in m.status:
                if st.name.endswith(": control loop"):
                    self.loop.append({kv.key: kv.value for kv in st.values})

        node.create_subscription(Trajectory, "vla/trajectory",
                                 lambda m: self.e2e.append((time.monotonic(), m.end_to_end_latency_ms)),
                                 TRAJECTORY_QOS)
        node.create_subscription(ControlCommand, "vla/control",
                                 lambda m: self.ctl.append(time_to_sec(m.header.stamp)), 200)
        node.create_subscription(DiagnosticArray, "diagnostics", on_diag, 50)
        self.ex = SingleThreadedExecutor(context=self.ctx)
        self.ex.add_node(node)
        self._wait(lambda: len(self.e2e) >= 10 and len(self.ctl) > 100 and bool(self.loop), 120.0,
                   "camera/policy/follower")
        self._wait_log(self.procs[3], "text: events", 60.0)
        self.storm = NodeProcess.python_module("bench.bench_text", ["--storm-source", str(STORM_HZ)],
                                               self.env, "storm", log_dir / "storm.log").start()
        self._wait_log(self.storm, "storm source", 30.0)

    def _wait(self, ready: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not ready():
            self.ex.spin_once(timeout_sec=0.05)
            dead = [p.name for p in self.procs if p.poll() is not None]
            if dead:
                raise RuntimeError(f"{dead} exited; logs in {self.log_dir}")
        if not ready():
            raise RuntimeError(f"{what} not up within {timeout:.0f} s; logs in {self.log_dir}")

    def _wait_log(self, proc: NodeProcess, text: str, timeout: float) -> None:
        self._wait(lambda: text in proc.read_log(), timeout, proc.name)

    def run_window(self, seconds: float, churn: bool) -> dict[str, Any]:
        """Spin ``seconds`` (starting/stopping participants if ``churn``); the window's samples."""
        for buf in (self.e2e, self.ctl):
            buf.clear()
        n_loop = len(self.loop)
        late0 = int(self.loop[-1].get("late_ticks", "0"))
        start = time.monotonic()
        end, next_churn = start + seconds, start
        events0 = len(self.events)
        while time.monotonic() < end:
            now = time.monotonic()
            if churn and now >= next_churn:
                self._start_participant()
                next_churn += CHURN_PERIOD_S
            self._stop_expired(now)
            self.ex.spin_once(timeout_sec=0.005)
        window = {"e2e": list(self.e2e), "ctl": list(self.ctl), "seconds": seconds, "start": start,
                  "events": self.events[events0:]}
        n_end, deadline = len(self.loop), time.monotonic() + 2.5  # the follower's next 1 Hz report
        while time.monotonic() < deadline and (len(self.loop) <= n_end or self.churn):
            self._stop_expired(float("inf"))  # the window's last participants end before the next window
            self.ex.spin_once(timeout_sec=0.05)
        reports = self.loop[n_loop:]
        window["late_ticks"] = int(self.loop[-1].get("late_ticks", "0")) - late0
        window["tick_interval_max_ms"] = max((float(r.get("tick_interval_max_ms", "nan")) for r in reports),
                                             default=float("nan"))
        window["scheduling"] = self.loop[-1].get("scheduling", "")
        return window

    def _start_participant(self) -> None:
        name, cmd = CHURN_COMMANDS[self.n_churn % len(CHURN_COMMANDS)]
        self.n_churn += 1
        log = self.log_dir / f"churn_{self.n_churn:03d}_{name}.log"
        proc = NodeProcess(cmd, self.env, name, log).start()
        self.churn_logs.append((name, log))
        self.churn.append([proc, time.monotonic(), None])
        self.events.append((time.monotonic(), f"start {name}"))

    def _stop_expired(self, now: float) -> None:
        """SIGINT to participants past their life (without waiting: the probe keeps spinning); reap
        the ones that exited; escalate (``stop``) after 3 s."""
        for entry in list(self.churn):
            proc, t0, sigint_at = entry
            if proc.poll() is not None or (sigint_at is not None and time.monotonic() - sigint_at > 3.0):
                proc.stop(grace=0.1)
                self.churn.remove(entry)
                self.events.append((time.monotonic(), f"stop {proc.name}"))
            elif sigint_at is None and now - t0 >= CHURN_LIFE_S:
                proc.send_signal(signal.SIGINT)
                entry[2] = time.monotonic()

    def close(self) -> None:
        import rclpy

        try:
            self.ex.shutdown()
            self.node.destroy_node()
        finally:
            rclpy.try_shutdown(context=self.ctx)
            for p, _, _ in self.churn:
                p.stop()
            for p in [self.storm, *reversed(self.procs)]:
                p.stop()


def shm_healthy_check_ms(profile: Path) -> int:
    """The profile's SHM ``healthy_check_timeout_ms`` (Fast DDS's default 1000 when absent)."""
    m = re.search(r"<healthy_check_timeout_ms>(\d+)<", profile.read_text())
    return int(m.group(1)) if m else 1000


def _since_event(t: float, events: list[tuple[float, str]]) -> str:
    before = [(t - te, what) for te, what in events if te <= t]
    if not before:
        return "no churn event before"
    dt, what = min(before)
    return f"{dt:.2f} s after {what}"


def case_figures(windows: list[dict[str, Any]]) -> dict[str, Any]:
    """Pool the windows of one case."""
    period = 1.0 / FOLLOWER_HZ
    e2e = np.asarray([v for w in windows for _, v in w["e2e"]])
    gaps = np.concatenate([np.diff(np.asarray(w["ctl"])) for w in windows if len(w["ctl"]) > 1])
    if e2e.size < 10 or gaps.size < 100:
        raise RuntimeError(f"only {e2e.size} trajectories / {gaps.size} control gaps")
    lat, dev = summarize(e2e), summarize(np.abs(gaps - period) * 1e3)
    stalls = []
    for w in windows:
        events = w["events"]
        stalls += [{"kind": "policy_e2e", "ms": round(v, 1), "when": _since_event(t, events)}
                   for t, v in w["e2e"] if v > E2E_BAR_MS]
        stamps = np.asarray(w["ctl"])
        for i in np.flatnonzero(np.diff(stamps) > GAP_BAR_MS * 1e-3):
            # a gap's place in the window on the follower's clock, mapped to this process's clock
            t = w["start"] + float(stamps[i] - stamps[0])
            stalls.append({"kind": "control_gap", "ms": round(float(stamps[i + 1] - stamps[i]) * 1e3, 1),
                           "when": _since_event(t, events)})
    seconds = sum(w["seconds"] for w in windows)
    return {
        "seconds": round(seconds, 1), "policy_trajectories": int(e2e.size),
        "policy_rate_hz": round(e2e.size / seconds, 2),
        **{f"policy_e2e_{k}_ms": round(getattr(lat, k), 2) for k in ("p50", "p95", "p99", "max")},
        "policy_e2e_p99_9_ms": round(float(np.percentile(e2e, 99.9)), 2),
        "policy_e2e_over_100ms": int(np.sum(e2e > E2E_BAR_MS)),
        "control_gap_max_ms": round(float(gaps.max()) * 1e3, 2),
        "control_gaps_over_50ms": int(np.sum(gaps > GAP_BAR_MS * 1e-3)),
        "control_dev_p99_ms": round(dev.p99, 3),
        "control_missed_ticks": int(np.sum(np.maximum(np.round(gaps / period) - 1, 0)[gaps > 1.5 * period])),
        "follower_late_ticks_in_node": int(sum(w["late_ticks"] for w in windows)),
        "follower_tick_interval_max_ms": round(max(w["tick_interval_max_ms"] for w in windows), 2),
        "churn_participants": sum(1 for w in windows for _, what in w["events"] if what.startswith("start")),
        "stalls": stalls,
    }


def prepare(out_dir: Path) -> Path:
    """Loopback DDS on a leased domain (with the health-check override, if any) and the recorded drive
    the camera replays (``churn_drive.npz`` in ``out_dir``; the caller deletes it)."""
    from bench.bench_text import record_drive
    from minipamayo_ros.dds_env import PROFILE_VARIABLES, lease_domain_id, loopback_dds_env

    os.environ.update(loopback_dds_env(lease_domain_id()))
    override = os.environ.get("MINIPAMAYO_BENCH_SHM_HEALTHY_CHECK_MS")
    if override:  # A/B against Fast DDS's default (1000): every process of the run uses this copy
        profile = Path(os.environ[PROFILE_VARIABLES[0]])
        text = re.sub(r"<healthy_check_timeout_ms>\d+<", f"<healthy_check_timeout_ms>{int(override)}<",
                      profile.read_text())
        copy = out_dir / f"fastdds_healthy_check_{int(override)}.xml"
        copy.write_text(text)
        os.environ.update({name: str(copy) for name in PROFILE_VARIABLES})
    frames, size, odom = record_drive(10.0)  # replayed in a loop
    drive = out_dir / "churn_drive.npz"
    images = np.stack([np.frombuffer(f, np.uint8).reshape(*size, 3) for f in frames])
    np.savez(drive, frames=images, odom=odom)
    return drive


def profile_facts() -> dict[str, Any]:
    """The Fast DDS profile in effect and its shared-memory health check [ms]."""
    from minipamayo_ros.dds_env import PROFILE_VARIABLES

    profile = os.environ.get(PROFILE_VARIABLES[0], "")
    return {"fastdds_profile": profile, "shm_healthy_check_timeout_ms": shm_healthy_check_ms(Path(profile))}


def run(out_dir: Path, quick: bool) -> BenchResult:
    rounds, steady_s, churn_s = (1, 8.0, 12.0) if quick else (10, 30.0, 60.0)
    log_dir = out_dir / "churn_logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    drive = prepare(out_dir)
    windows: dict[str, list[dict[str, Any]]] = {"steady": [], "churn": []}
    loads: list[float] = []
    stack = ChurnStack(drive, log_dir)
    try:
        for i in range(rounds):  # interleaved, so that the machine's drift hits both cases alike
            for case, seconds in (("steady", steady_s), ("churn", churn_s)):
                print(f"[bench churn] round {i + 1}/{rounds}: {case} ({seconds:.0f} s) ...", flush=True)
                windows[case].append(stack.run_window(seconds, churn=case == "churn"))
                loads.append(os.getloadavg()[0])
    finally:
        stack.close()
        drive.unlink(missing_ok=True)
    results = {case: case_figures(w) for case, w in windows.items()}
    # a participant SIGINTed while Python was still importing never joined DDS (a loaded machine)
    up = [name for name, log in stack.churn_logs
          if log.exists() and UP_MARKERS[name] in log.read_text(errors="replace")]
    scheduling = windows["churn"][-1]["scheduling"]
    metrics: dict[str, Any] = {
        "loadavg_before": [round(v, 2) for v in load_before],
        "loadavg_after": [round(v, 2) for v in os.getloadavg()],
        "loadavg_1min_per_window": [round(v, 2) for v in loads], "cpus": os.cpu_count(),
        "schedule": f"{rounds} rounds x (steady {steady_s:g} s, churn {churn_s:g} s); a participant every "
                    f"{CHURN_PERIOD_S:g} s living {CHURN_LIFE_S:g} s",
        "follower_scheduling": scheduling, **profile_facts(),
        "churn_participants_up": len(up),
        "churn_participants_up_by_kind": {k: up.count(k) for k in UP_MARKERS},
    }
    for case, res in results.items():
        for k, v in res.items():
            metrics[f"{case}_{k}"] = v
    c = results["churn"]
    goals = {
        f"churn: no policy end-to-end sample > {E2E_BAR_MS:g} ms": c["policy_e2e_over_100ms"] == 0,
        f"churn: no /vla/control gap > {GAP_BAR_MS:g} ms": c["control_gaps_over_50ms"] == 0,
        "churn: follower 0 late ticks (in node)": c["follower_late_ticks_in_node"] == 0,
    }
    rows = ["| case | policy e2e p50 / p99 / p99.9 / max [ms] | > 100 ms | control gap max [ms] "
            "| gaps > 50 ms | dev p99 [ms] | late ticks (in follower) | longest tick interval [ms] "
            "| participants started |",
            "|---|---|---|---|---|---|---|---|---|"]
    for case, r in results.items():
        rows.append(f"| {case} | {r['policy_e2e_p50_ms']} / {r['policy_e2e_p99_ms']} / "
                    f"{r['policy_e2e_p99_9_ms']} / {r['policy_e2e_max_ms']} | {r['policy_e2e_over_100ms']} | "
                    f"{r['control_gap_max_ms']} | "
                    f"{r['control_gaps_over_50ms']} | {r['control_dev_p99_ms']} | "
                    f"{r['follower_late_ticks_in_node']} | {r['follower_tick_interval_max_ms']} | "
                    f"{r['churn_participants']} |")
    stall_lines = [f"- {case}: {st['kind']} {st['ms']} ms, {st['when']}" for case, r in results.items()
                   for st in r["stalls"]]
    md = (f"{metrics['cpus']} CPUs, load average {metrics['loadavg_before']} before / "
          f"{metrics['loadavg_after']} after; {metrics['schedule']}; follower {scheduling}; text node "
          "shipped config under a 1 kHz "
          f"request storm; Fast DDS profile {Path(metrics['fastdds_profile']).name} (SHM health check "
          f"{metrics['shm_healthy_check_timeout_ms']} ms); churn participants up "
          f"(output seen) {len(up)} of {len(stack.churn_logs)}.\n\n" + "\n".join(rows)
          + "\n\nStalls (policy sample > 100 ms, control gap > 50 ms):\n"
          + ("\n".join(stall_lines) if stall_lines else "none"))
    return BenchResult(metrics=metrics, summary_md=md, goals=goals)


def replay_source(drive: Path) -> None:
    """Camera (30 Hz, rgb8) and odometry (50 Hz) of a recorded drive until SIGINT, stamped now."""
    import rclpy
    from nav_msgs.msg import Odometry
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
    from rclpy.node import Node
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image


    data = np.load(drive)
    frames = [np.ascontiguousarray(f).tobytes() for f in data["frames"]]
    odom, (h, w) = data["odom"], data["frames"].shape[1:3]
    rclpy.init()
    node = Node("churn_bench_source")
    clock = node.get_clock()
    image_pub = node.create_publisher(Image, "camera/image_raw", qos_profile_sensor_data)
    odom_pub = node.create_publisher(Odometry, "odom", qos_profile_sensor_data)
    feed = DriveFeed(frames, (h, w), odom, lambda: clock.now().nanoseconds * 1e-9)

    def pub_odom() -> None:
        odom_pub.publish(feed.odometry())

    def pub_image() -> None:
        image_pub.publish(feed.image())

    node.create_timer(1.0 / ODOM_HZ, pub_odom)
    node.create_timer(1.0 / CAMERA_HZ, pub_image)
    ex = SingleThreadedExecutor()
    ex.add_node(node)
    print(f"replay source: {len(frames)} frames {w}x{h}", flush=True)
    try:
        ex.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


def recorder() -> None:
    """A bag-recorder stand-in: subscribes to the camera until SIGINT (a new participant and reader)."""
    import rclpy
    from rclpy.executors import ExternalShutdownException
    from rclpy.node import Node
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image

    rclpy.init()
    node = Node("churn_bench_recorder")
    n = [0]
    node.create_subscription(Image, "camera/image_raw", lambda m: n.__setitem__(0, n[0] + 1),
                             qos_profile_sensor_data)
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        print(f"recorder: {n[0]} images", flush=True)
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--source":
        replay_source(Path(sys.argv[2]))
    elif len(sys.argv) == 2 and sys.argv[1] == "--recorder":
        recorder()
    else:
        sys.exit("usage: python -m bench.bench_churn --source DRIVE.npz | --recorder "
                 "(the benchmark itself: python -m bench.run --only churn)")
