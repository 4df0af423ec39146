"""The text node's cost to the policy and the follower: the whole stack, three cases, one run.

Every node in its own process over loopback DDS, on wall time: policy node (shipped tiny model,
ONNX Runtime, ``max_rate_hz`` 10) and follower node (``rate_hz`` 100) run for the whole benchmark;
the cases differ only in the text node:

* ``off``: no text node (stopped);
* ``storm``: text node with ``max_rate_hz`` 0 + ``/vla/explain_request`` at up to 1 kHz from a
  helper process at SCHED_IDLE (the text node's own class, so the source costs the policy no more
  than the text node does): a caption takes ~1-3 ms, so a request always waits and the node
  generates back-to-back (the design notes' worst case);
* ``storm_capped``: the same storm against the shipped configuration (``max_rate_hz`` 5);
* ``events``: text node on its own event detection (the normal event rate).

The text node is started for ``storm`` (after ``off``, which stops it) and switched between the
text cases by setting ``max_rate_hz`` on the running node (a restart put one node's exit and the
next one's start-up into the following window). The cases are interleaved in rounds (off, storm,
storm_capped, events, off, ...; 10 s windows
after 2 s of settling, 8 rounds) so that a shared machine's drift hits every case alike; each
case's figures pool its windows. ``<case>_window_p95_ms`` shows the spread of each case's windows.

The camera is the simulator: an expert drive on a validation road is rendered once
(``World.render``, the simulator node's 256x256 image) and replayed at 30 Hz with 50 Hz odometry
by this process, so that every case sees the same frames (a live simulator would feed each case a
different drive). Measured per case: policy end-to-end latency (``Trajectory.end_to_end_latency_ms``:
image stamp -> publish, policy node's clock) p50/p95/p99/max and achieved rate; follower timer
deviation |gap - 10 ms| p50/p99/max and missed ticks from consecutive ``/vla/control`` stamps as
this probe receives them (a gap is a late tick *or* commands lost on the way: a stalled probe lets
the publisher's keep-last-10 history overwrite them), and the follower's own count of late ticks
(``follower: control loop`` in /diagnostics, steady clock, inside the node), which tells the two apart;
explanations per second, their generation latency and the text node's counters. Ratios
storm/off, storm_capped/off and events/off against the bars: p95 <= 1.5 (design notes), goal p95 <= 1.15 and
p99 <= 1.3; follower p99 deviation <= 1.0 ms and no missed tick in the storm.
Also the generation latency of exactly 16 and 32 tokens (``ignore_eos``) in this process, idle.

``python -m bench.bench_text --storm-source HZ`` is the storm's request source (started by the
benchmark; it needs the benchmark's DDS environment).
"""

from __future__ import annotations

import os
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
from minipamayo_ros.params import load_node_yaml

ROOT = Path(__file__).resolve().parents[1]
CAMERA_HZ, ODOM_HZ, FOLLOWER_HZ, POLICY_HZ, STORM_HZ = 30.0, 50.0, 100.0, 10.0, 1000.0
CASES = ("off", "storm", "storm_capped", "events")

#: [Hz] the text node's ``max_rate_hz`` in the shipped ``config/text.yaml``
SHIPPED_TEXT_RATE_HZ = float(load_node_yaml(ROOT / "config" / "text.yaml", "text")["max_rate_hz"])
#: text node runtime parameters per case (None: no text node; started with the shipped config and
#: these, then switched by a parameter set) and whether the storm source runs
CASE_TEXT: dict[str, dict[str, Any] | None] = {"off": None, "storm": {"max_rate_hz": 0.0},
                                               "storm_capped": {"max_rate_hz": SHIPPED_TEXT_RATE_HZ},
                                               "events": {"max_rate_hz": SHIPPED_TEXT_RATE_HZ}}
STORMS = ("storm", "storm_capped")
SETTLE_S = 2.0  # [s] after switching a case, before its window
SEED = 1000  # a validation road (minipamayo_ros.seeds): a latency benchmark is no quality figure
DESIGN_P95, GOAL_P95, GOAL_P99, FOLLOWER_P99_MS = 1.5, 1.15, 1.3, 1.0


def record_drive(seconds: float, seed: int = SEED) -> tuple[list[bytes], tuple[int, int], np.ndarray]:
    """Camera frames (30 Hz) and odometry (50 Hz: t, speed, yaw rate) of an expert drive."""
    from minipamayo_ros.evaluation.closed_loop import ClosedLoopSettings, ExpertPolicy, run_episode

    frames: list[bytes] = []
    odom: list[tuple[float, float, float]] = []
    shape = [0, 0]

    class Recorder(ExpertPolicy):
        uses_camera = True

        def add_odometry(self, sample: Any) -> None:
            odom.append((sample.stamp, sample.speed, sample.yaw_rate))

        def __call__(self, obs: Any) -> Any:
            img = obs.camera()
            shape[:] = img.shape[:2]
            frames.append(np.ascontiguousarray(img).tobytes())
            return super().__call__(obs)

    run_episode(seed, Recorder(), settings=ClosedLoopSettings(policy_rate_hz=CAMERA_HZ, max_seconds=seconds))
    return frames, (shape[0], shape[1]), np.asarray(odom)


def generation_latency(n: int) -> dict[str, float]:
    """Exactly 16 / 32 generated tokens, idle, in this process (ONNX Runtime 1+1 threads)."""
    from minipamayo_ros.inference import BackendOptions
    from minipamayo_ros.text.generator import load_text_generator

    gen = load_text_generator(ROOT / "engines/minipamayo-tiny-text-step.manifest.json",
                              BackendOptions(backend="onnxruntime"))
    ctx = np.random.default_rng(0).normal(0, 1, gen.context_dim).astype(np.float32)
    out: dict[str, float] = {}
    for tokens in (16, 32):
        ms = [gen.generate(ctx, 1, tokens, ignore_eos=True).latency_ms for _ in range(n)]
        s = summarize(ms)
        out.update({f"gen{tokens}_p50_ms": round(s.p50, 2), f"gen{tokens}_p95_ms": round(s.p95, 2),
                    f"gen{tokens}_max_ms": round(s.max, 2)})
    gen.backend.close()
    return out


class Stack:
    """Policy + follower for the whole run; the text node started / stopped per case; this process is
    the camera (30 Hz replay) and odometry (50 Hz); the storm's request source is its own process."""

    def __init__(self, frames: list[bytes], size: tuple[int, int], odom: np.ndarray, log_dir: Path) -> None:
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from nav_msgs.msg import Odometry
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.node import Node
        from rclpy.qos import qos_profile_sensor_data
        from sensor_msgs.msg import Image
        from std_msgs.msg import Empty

        from minipamayo_ros.msg import ControlCommand, Explanation, Trajectory
        from minipamayo_ros.nodes.conversions import time_to_sec
        from minipamayo_ros.nodes.policy_node import TRAJECTORY_QOS

        self.env, self.log_dir, self.cfg = dict(os.environ), log_dir, ROOT / "config"
        self.procs = [NodeProcess.python_module("minipamayo_ros.nodes.policy_node", ros_args(
                          {"backend": "onnxruntime", "max_rate_hz": POLICY_HZ}, [self.cfg / "policy.yaml"]),
                          self.env, "policy", log_dir / "policy.log").start(),
                      NodeProcess.python_module("minipamayo_ros.nodes.follower_node", ros_args(
                          {"rate_hz": FOLLOWER_HZ, **(FOLLOWER_RT if follower_rt_enabled() else {})},
                          [self.cfg / "follower.yaml"]), follower_env(self.env), "follower",
                          log_dir / "follower.log").start()]
        self.text: NodeProcess | None = None
        self.text_params: dict[str, Any] | None = None
        self.n_text = 0
        self.ctx = Context()
        rclpy.init(context=self.ctx)
        self.e2e: list[float] = []
        self.ctl: list[float] = []
        self.expl: list[Explanation] = []
        self.diags: list[DiagnosticArray] = []
        self.follower_loop: dict[str, str] = {}
        self.follower_scheduling = ""
        self.n_follower_loop = 0
        self.storm_proc: NodeProcess | None = None
        node = self.node = Node("text_bench_probe", context=self.ctx)
        clock = node.get_clock()

        def now() -> float:
            return clock.now().nanoseconds * 1e-9

        def on_diag(m: DiagnosticArray) -> None:
            if m.status and "text explanations" in m.status[0].name:
                self.diags.append(m)
            for st in m.status:  # the follower's own tick timing (steady clock, in the node)
                if st.name.endswith(": control loop"):
                    self.follower_loop = {kv.key: kv.value for kv in st.values}
                    self.follower_scheduling = self.follower_loop.get("scheduling", "")
                    self.n_follower_loop += 1

        node.create_subscription(Trajectory, "vla/trajectory",
                                 lambda m: self.e2e.append(m.end_to_end_latency_ms), TRAJECTORY_QOS)
        node.create_subscription(ControlCommand, "vla/control",
                                 lambda m: self.ctl.append(time_to_sec(m.header.stamp)), 100)
        node.create_subscription(Explanation, "vla/explanation", self.expl.append, 100)
        node.create_subscription(DiagnosticArray, "/diagnostics", on_diag, 10)
        self.image_pub = node.create_publisher(Image, "camera/image_raw", qos_profile_sensor_data)
        odom_pub = node.create_publisher(Odometry, "odom", qos_profile_sensor_data)
        self.req_pub = node.create_publisher(Empty, "vla/explain_request", 10)
        feed = DriveFeed(frames, size, odom, now)

        def pub_odom() -> None:
            odom_pub.publish(feed.odometry())

        def pub_image() -> None:
            self.image_pub.publish(feed.image())

        node.create_timer(1.0 / ODOM_HZ, pub_odom)
        self.ex = SingleThreadedExecutor(context=self.ctx)
        self.ex.add_node(node)
        self._wait(lambda: self.image_pub.get_subscription_count() > 0 and bool(self.ctl), 90.0,
                   "policy/follower")
        node.create_timer(1.0 / CAMERA_HZ, pub_image)
        self.spin(4.0)  # odometry history, first trajectories, caches

    def _wait(self, ready: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not ready():
            self.ex.spin_once(timeout_sec=0.05)
            extra = [p for p in (self.text, self.storm_proc) if p is not None]
            dead = [p.name for p in self.procs + extra if p.poll() is not None]
            if dead:
                raise RuntimeError(f"{dead} exited; logs in {self.log_dir}")
        if not ready():
            raise RuntimeError(f"{what} not up within {timeout:.0f} s; logs in {self.log_dir}")

    def spin(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.ex.spin_once(timeout_sec=0.01)

    def set_text(self, params: dict[str, Any] | None) -> None:
        """Text node with these parameters (runtime parameters: set on the running node, as an
        operator would; a restart between two text cases put the old node's exit and the new one's
        start-up into the next window), or none."""
        if params is None and self.text is not None:
            self.text.stop()  # returns once the process has exited (DDS may list it a while longer)
            self.text = None
        elif params is not None and self.text is not None and params != self.text_params:
            self._set_parameters("text", params)
        self.text_params = params
        if params is not None and self.text is None:
            self.n_text += 1
            self.text = NodeProcess.python_module(
                "minipamayo_ros.nodes.text_node", ros_args(params, [self.cfg / "text.yaml"]), self.env,
                f"text{self.n_text}", self.log_dir / f"text{self.n_text}.log").start()
            text = self.text
            # its startup line (a stopped node's subscription may still be listed by DDS for a while)
            self._wait(lambda: "text: events" in text.read_log()
                       and self.req_pub.get_subscription_count() > 0, 60.0, "text node")

    def _set_parameters(self, node_name: str, params: dict[str, Any]) -> None:
        """``ros2 param set`` from the probe: every value accepted, or RuntimeError."""
        from rcl_interfaces.srv import SetParameters
        from rclpy.parameter import Parameter

        client = self.node.create_client(SetParameters, f"{node_name}/set_parameters")
        try:
            if not client.wait_for_service(timeout_sec=10.0):
                raise RuntimeError(f"{node_name}/set_parameters not available")
            future = client.call_async(SetParameters.Request(
                parameters=[Parameter(k, value=v).to_parameter_msg() for k, v in params.items()]))
            self._wait(future.done, 10.0, f"{node_name}/set_parameters")
            refused = [r.reason for r in future.result().results if not r.successful]
            if refused:
                raise RuntimeError(f"{node_name} refused {params}: {refused}")
        finally:
            self.node.destroy_client(client)

    def set_storm(self, on: bool) -> None:
        """Start / stop the request source (its own SCHED_IDLE process, see :func:`storm_source`)."""
        if on and self.storm_proc is None:
            self.storm_proc = NodeProcess.python_module(
                "bench.bench_text", ["--storm-source", str(STORM_HZ)], self.env, "storm",
                self.log_dir / "storm.log").start()
            proc = self.storm_proc
            self._wait(lambda: "storm source" in proc.read_log(), 30.0, "storm source")
        elif not on and self.storm_proc is not None:
            self.storm_proc.stop()
            self.storm_proc = None

    def measure(self, seconds: float) -> dict[str, Any]:
        """Samples of one window: e2e latencies, control stamps, explanations, the last text counters."""
        for buf in (self.e2e, self.ctl, self.expl):
            buf.clear()
        late0 = int(self.follower_loop.get("late_ticks", "0"))
        self.spin(seconds)
        out = {"e2e": list(self.e2e), "ctl": list(self.ctl), "expl": list(self.expl), "seconds": seconds}
        n, deadline = self.n_follower_loop, time.monotonic() + 2.5  # its next 1 Hz report
        while time.monotonic() < deadline and self.n_follower_loop <= n:
            self.ex.spin_once(timeout_sec=0.05)
        # late ticks counted inside the follower (> 2 periods between tick starts, steady clock); the
        # count spans the window plus up to one diagnostics period at either end
        out["follower_late_in_node"] = int(self.follower_loop.get("late_ticks", "0")) - late0
        out["follower_longest_gap_ms"] = float(self.follower_loop.get("longest_tick_gap_ms", "nan"))
        if self.text is not None:
            n = len(self.diags)
            deadline = time.monotonic() + 2.5
            while time.monotonic() < deadline and len(self.diags) <= n:
                self.ex.spin_once(timeout_sec=0.05)
            if self.diags:
                d = {kv.key: kv.value for kv in self.diags[-1].status[0].values}
                out["counters"] = {k: int(d[k]) for k in ("requested", "replaced", "dropped_stale", "started",
                                                          "generated", "abandoned", "failed") if k in d}
                out["cpu_priority"] = d.get("cpu_priority", "")
        return out

    def close(self) -> None:
        import rclpy

        try:
            self.ex.shutdown()
            self.node.destroy_node()
        finally:
            rclpy.try_shutdown(context=self.ctx)
            for p in [p for p in (self.storm_proc, self.text) if p is not None] + self.procs:
                p.stop()


def case_figures(windows: list[dict[str, Any]]) -> dict[str, Any]:
    """Pool the windows of one case: policy e2e, follower deviation (gaps within a window), text."""
    period = 1.0 / FOLLOWER_HZ
    e2e = [v for w in windows for v in w["e2e"]]
    gaps = np.concatenate([np.diff(np.asarray(w["ctl"])) for w in windows if len(w["ctl"]) > 1])
    expl = [e for w in windows for e in w["expl"]]
    seconds = sum(w["seconds"] for w in windows)
    if len(e2e) < 10 or gaps.size < 100:
        raise RuntimeError(f"only {len(e2e)} trajectories / {gaps.size} control gaps")
    lat, dev = summarize(e2e), summarize(np.abs(gaps - period) * 1e3)
    out: dict[str, Any] = {
        "seconds": round(seconds, 1), "policy_rate_hz": round(len(e2e) / seconds, 2),
        **{f"policy_e2e_{k}_ms": round(getattr(lat, k), 2) for k in ("p50", "p95", "p99", "max")},
        "follower_rate_hz": round(gaps.size / max(float(gaps.sum()), 1e-9), 2),
        **{f"follower_dev_{k}_ms": round(getattr(dev, k), 3) for k in ("p50", "p99", "max")},
        "follower_missed_ticks": int(np.sum(np.maximum(np.round(gaps / period) - 1, 0)[gaps > 1.5 * period])),
        "follower_late_ticks_in_node": int(sum(w.get("follower_late_in_node", 0) for w in windows)),
        "explanations": len(expl), "explanations_per_s": round(len(expl) / seconds, 2),
    }
    if expl:
        g = summarize([e.generation_latency_ms for e in expl])
        out.update({"generation_p50_ms": round(g.p50, 1), "generation_p95_ms": round(g.p95, 1),
                    "tokens_mean": round(float(np.mean([e.token_count for e in expl])), 1),
                    "event_age_p95_ms": round(summarize([e.event_age_ms for e in expl]).p95, 1)})
    last = [w for w in windows if "counters" in w]
    if last:
        out["text_counters_last_window"] = last[-1]["counters"]
        out["text_cpu_priority"] = last[-1].get("cpu_priority", "")
    return out


def run(out_dir: Path, quick: bool) -> BenchResult:
    from minipamayo_ros.dds_env import lease_domain_id, loopback_dds_env

    os.environ.update(loopback_dds_env(lease_domain_id()))
    window, rounds = (5.0, 1) if quick else (10.0, 8)
    log_dir = out_dir / "text_logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()[0]
    metrics: dict[str, Any] = generation_latency(10 if quick else 60)
    frames, size, odom = record_drive(12.0 if quick else 40.0)
    windows: dict[str, list[dict[str, Any]]] = {c: [] for c in CASES}
    stack = Stack(frames, size, odom, log_dir)
    try:
        for r in range(rounds):  # interleaved, so that the machine's drift hits every case alike
            for case in CASES:
                print(f"[bench text] round {r + 1}/{rounds}: {case} ({window:.0f} s) ...", flush=True)
                stack.set_text(CASE_TEXT[case])
                stack.set_storm(case in STORMS)
                stack.spin(SETTLE_S)
                windows[case].append(stack.measure(window))
                stack.set_storm(False)
        follower_scheduling = stack.follower_scheduling
    finally:
        stack.close()
    results = {case: case_figures(w) for case, w in windows.items()}
    metrics["loadavg_1min_before"] = round(load_before, 2)
    metrics["loadavg_1min_after"] = round(os.getloadavg()[0], 2)
    metrics["cpus"] = os.cpu_count()
    metrics["follower_scheduling"] = follower_scheduling
    metrics["camera"] = f"{size[1]}x{size[0]} rgb8 at {CAMERA_HZ:g} Hz (seed {SEED} expert drive, replayed)"
    metrics["schedule"] = f"{rounds} rounds x ({', '.join(CASES)}), {window:g} s windows"
    # drift check: the spread of the off windows' p95 (one process pair for the whole run)
    for case in CASES:  # every case's too: one disturbed window shows as an outlier there
        metrics[f"{case}_window_p95_ms"] = [round(summarize(w["e2e"]).p95, 1) for w in windows[case]]
    for case, r in results.items():
        for k, v in r.items():
            metrics[f"{case}_{k}"] = v
    base = results["off"]
    goals: dict[str, bool] = {}
    for case in CASES[1:]:
        for q in ("p50", "p95", "p99"):
            metrics[f"{case}_vs_off_{q}_ratio"] = round(results[case][f"policy_e2e_{q}_ms"]
                                                        / base[f"policy_e2e_{q}_ms"], 3)
        p95, p99 = metrics[f"{case}_vs_off_p95_ratio"], metrics[f"{case}_vs_off_p99_ratio"]
        goals[f"{case}: policy p95 ratio <= {DESIGN_P95} (design)"] = p95 <= DESIGN_P95
        goals[f"{case}: p95 ratio <= {GOAL_P95} and p99 ratio <= {GOAL_P99} (goal)"] = (
            p95 <= GOAL_P95 and p99 <= GOAL_P99)
    goals[f"storm: follower p99 deviation <= {FOLLOWER_P99_MS} ms"] = (
        results["storm"]["follower_dev_p99_ms"] <= FOLLOWER_P99_MS)
    goals["storm: no missed follower tick"] = results["storm"]["follower_missed_ticks"] == 0
    rows = ["| case | policy e2e p50 / p95 / p99 / max [ms] | rate [Hz] | follower dev p50 / p99 / max [ms] "
            "| missed (probe) | late ticks (in follower) | explanations/s | generation p50 / p95 [ms] |",
            "|---|---|---|---|---|---|---|---|"]
    for case, r in results.items():
        rows.append(f"| {case} | {r['policy_e2e_p50_ms']} / {r['policy_e2e_p95_ms']} / "
                    f"{r['policy_e2e_p99_ms']} / {r['policy_e2e_max_ms']} | {r['policy_rate_hz']} | "
                    f"{r['follower_dev_p50_ms']} / "
                    f"{r['follower_dev_p99_ms']} / {r['follower_dev_max_ms']} | "
                    f"{r['follower_missed_ticks']} | {r['follower_late_ticks_in_node']} | "
                    f"{r['explanations_per_s']} | {r.get('generation_p50_ms', '—')} / "
                    f"{r.get('generation_p95_ms', '—')} |")
    ratios = ", ".join(f"{c}/off p50 {metrics[f'{c}_vs_off_p50_ratio']}, "
                       f"p95 {metrics[f'{c}_vs_off_p95_ratio']}, p99 {metrics[f'{c}_vs_off_p99_ratio']}"
                       for c in CASES[1:])
    md = (f"{metrics['cpus']} CPUs, load average {metrics['loadavg_1min_before']} before / "
          f"{metrics['loadavg_1min_after']} after (a shared machine is noisy: compare within one run). "
          f"Camera {metrics['camera']}, policy <= {POLICY_HZ:g} Hz, follower {FOLLOWER_HZ:g} Hz, "
          f"{metrics['schedule']}; follower {follower_scheduling}; p95 per window [ms]: "
          + "; ".join(f"{c} {metrics[f'{c}_window_p95_ms']}" for c in CASES) + "; text node CPU "
          "priority "
          f"{results['storm'].get('text_cpu_priority', '?')}.\n\n" + "\n".join(rows)
          + f"\n\nRatios: {ratios}. Generation of exactly 16 / 32 tokens (idle, this process): p50 "
          f"{metrics['gen16_p50_ms']} / {metrics['gen32_p50_ms']} ms, p95 {metrics['gen16_p95_ms']} / "
          f"{metrics['gen32_p95_ms']} ms. Storm counters (text node of the last storm window): "
          f"{results['storm'].get('text_counters_last_window')}.")
    return BenchResult(metrics=metrics, summary_md=md, goals=goals)


def storm_source(hz: float) -> None:
    """Publish ``std_msgs/Empty`` on ``/vla/explain_request`` at up to ``hz`` until SIGINT, at SCHED_IDLE."""
    import rclpy
    from rclpy.node import Node
    from std_msgs.msg import Empty

    from minipamayo_ros.realtime import lower_thread_priority

    rclpy.init()
    node = Node("text_bench_storm")
    pub = node.create_publisher(Empty, "vla/explain_request", 10)
    prio = lower_thread_priority()  # the publishing loop's thread; DDS threads stay normal
    print(f"storm source: {hz:g} Hz, {prio.policy}", flush=True)
    period, n = 1.0 / hz, 0
    try:
        next_t = time.monotonic()
        while rclpy.ok():
            try:
                pub.publish(Empty())
            except Exception:  # the context was shut down by SIGINT between ok() and publish()
                break
            n += 1
            next_t = max(next_t + period, time.monotonic())
            time.sleep(max(0.0, next_t - time.monotonic()))
    except KeyboardInterrupt:
        pass
    finally:
        print(f"storm source: {n} requests", flush=True)
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--storm-source":
        storm_source(float(sys.argv[2]))
    else:
        sys.exit("usage: python -m bench.bench_text --storm-source HZ "
                 "(the benchmark itself: python -m bench.run --only text)")
