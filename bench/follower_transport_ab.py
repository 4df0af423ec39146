"""The follower on DDS shared memory vs UDP only, while DDS participants come and go, in one run.

    python -m bench.follower_transport_ab [--rounds 3] [--seconds 150] [--period 0.8] [--out FILE.json]

Why (docs/latency.md, "The follower without shared memory"): a process with Fast DDS's shared-memory
transport opens the port of every participant it discovers and may sleep in the port's health check
holding the participant's send lock, so the follower's 100 Hz command waits. Setup per case: the
follower node (100 Hz, shipped ``config/follower.yaml``, the real-time option of the whole-stack
benchmarks) in its own process, fed odometry at 50 Hz by this process; every ``--period`` s one more
participant starts (a Python rclpy node subscribing ``vla/control``, shared memory + UDP as every
tool in the loopback domain) and lives 2.5 s. Cases alternate per round: ``shm`` (the follower in the
stack's environment) and ``udp`` (``bench_follower.follower_env``: what the launch files give it).
Measured from the follower's own ``control loop`` diagnostics (steady clock in the node): late
ticks (> 2 periods) during the churn and the longest tick gap since its start.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.bench_follower import FOLLOWER_MODULE, FOLLOWER_RT, follower_env
from minipamayo_ros.bringup.processes import NodeProcess, ros_args
from minipamayo_ros.dds_env import lease_domain_id, use_loopback_dds

REPO = Path(__file__).resolve().parents[1]
LIFE_S = 2.5  # [s] each churn participant's life
PARTICIPANT = ("import sys, time, rclpy\nfrom minipamayo_ros.msg import ControlCommand\n"
               "rclpy.init(); n = rclpy.create_node('churn_' + sys.argv[1])\n"
               "n.create_subscription(ControlCommand, 'vla/control', lambda m: None, 10)\n"
               "t = time.monotonic()\nwhile time.monotonic() - t < float(sys.argv[2]):\n"
               "    rclpy.spin_once(n, timeout_sec=0.1)\n")


class Probe:
    """This process's node: odometry for the follower, its control-loop diagnostics back."""

    def __init__(self) -> None:
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from nav_msgs.msg import Odometry
        from rclpy.executors import SingleThreadedExecutor

        rclpy.init()
        self.node = rclpy.create_node("transport_ab_probe")
        self.loop: dict[str, str] = {}
        self.node.create_subscription(DiagnosticArray, "diagnostics", self._on_diag, 50)
        pub = self.node.create_publisher(Odometry, "odom", 50)

        def odom() -> None:
            m = Odometry()
            m.header.frame_id, m.child_frame_id = "odom", "base_link"
            m.header.stamp = self.node.get_clock().now().to_msg()
            m.pose.pose.orientation.w = 1.0
            pub.publish(m)

        self.node.create_timer(0.02, odom)
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)

    def _on_diag(self, msg: Any) -> None:
        for st in msg.status:
            if st.name.endswith(": control loop"):
                self.loop.update({kv.key: kv.value for kv in st.values})

    def spin(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.executor.spin_once(timeout_sec=0.01)


def window(probe: Probe, case: str, env: dict[str, str], seconds: float, period: float,
           log_dir: Path) -> dict[str, Any]:
    """One follower process under churn for ``seconds``; its late ticks and longest gaps."""
    follower = NodeProcess.python_module(FOLLOWER_MODULE, ros_args(
        {"rate_hz": 100.0, **FOLLOWER_RT}, [REPO / "config" / "follower.yaml"]), env, "follower",
        log_dir / f"follower-{case}.log").start()
    try:
        probe.loop.clear()
        deadline = time.monotonic() + 30.0
        while "late_ticks" not in probe.loop and time.monotonic() < deadline:
            probe.spin(0.1)
        probe.spin(3.0)
        late0 = int(probe.loop["late_ticks"])
        kids: list[subprocess.Popen[bytes]] = []
        n, start = 0, time.monotonic()
        while time.monotonic() - start < seconds:
            if time.monotonic() >= start + n * period:
                kids.append(subprocess.Popen([sys.executable, "-c", PARTICIPANT, str(n), str(LIFE_S)],
                                             env=dict(os.environ), cwd=REPO))
                n += 1
            probe.spin(0.01)
            kids = [k for k in kids if k.poll() is None]
        for k in kids:
            k.wait()
        probe.spin(2.5)  # the next diagnostics report
        return {"case": case, "participants": n, "late_ticks": int(probe.loop["late_ticks"]) - late0,
                "longest_tick_gap_ms": float(probe.loop["longest_tick_gap_ms"]),
                "tick_interval_p99_ms": float(probe.loop["tick_interval_p99_ms"]),
                "loadavg_1min": round(os.getloadavg()[0], 2)}
    finally:
        follower.stop()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=150.0)
    ap.add_argument("--period", type=float, default=0.8, help="[s] between two participants' starts")
    ap.add_argument("--out", type=Path)
    a = ap.parse_args(argv)
    stack_env = use_loopback_dds(lease_domain_id())
    envs = {"shm": dict(stack_env), "udp": follower_env(stack_env)}
    log_dir = Path(os.environ.get("TMPDIR", "/tmp")) / f"follower_transport_ab_{os.getpid()}"
    log_dir.mkdir(parents=True, exist_ok=True)
    probe = Probe()
    runs = []
    for r in range(a.rounds):
        for case, env in envs.items():
            res = {"round": r, **window(probe, case, env, a.seconds, a.period, log_dir)}
            runs.append(res)
            print(json.dumps(res), flush=True)
    total = {c: {"participants": sum(x["participants"] for x in runs if x["case"] == c),
                 "late_ticks": sum(x["late_ticks"] for x in runs if x["case"] == c),
                 "longest_tick_gap_ms": max(x["longest_tick_gap_ms"] for x in runs if x["case"] == c)}
             for c in envs}
    for c, t in total.items():
        print(f"{c}: {t['late_ticks']} late ticks in {t['participants']} participant starts, "
              f"longest tick gap {t['longest_tick_gap_ms']:.1f} ms")
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        record = {"benchmark": "follower_transport_ab", "args": vars(a) | {"out": str(a.out)},
                  "cpu_count": os.cpu_count(), "runs": runs, "total": total}
        a.out.write_text(json.dumps(record, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
