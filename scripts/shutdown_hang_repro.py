"""Hunt the policy node's rare shutdown hang (seen once, 2026-12-07; closing note of that stop).

    source scripts/env.sh && python scripts/shutdown_hang_repro.py [RUNS]

Repeats ``test_stop_signals_launch``'s ``sigint-launch-twice`` sequence: ``ros2 launch
minipamayo_ros sim.launch.py``, wait until the follower tracks, two SIGINTs to launch 50 ms apart.
A ``policy_node`` still alive 3 s later is dumped with py-spy (Python stacks, then native ones,
``pip install py-spy``) into ``results/shutdown-hang/``: the hang ignored SIGTERM too, so the
stack that matters is native. Run it under load (e.g. beside the test suite) to raise the odds.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "test" / "launch"))
from launch_support import LaunchProcess, stop_ros2_daemon  # noqa: E402 - the tests' own launcher


def main(runs: int) -> int:
    out = ROOT / "results" / "shutdown-hang"
    out.mkdir(parents=True, exist_ok=True)
    hangs = 0
    for i in range(runs):
        lp = LaunchProcess(["sim.launch.py", "backend:=onnxruntime"], out / f"launch{i}.log",
                           env=dict(os.environ))
        tracking = lp.wait_for("TRACKING: trajectory", 120.0)
        time.sleep(1.0)
        lp.proc.send_signal(signal.SIGINT)
        time.sleep(0.05)
        lp.proc.send_signal(signal.SIGINT)
        time.sleep(3.0)
        kids = psutil.Process(lp.proc.pid).children(recursive=True) if lp.proc.poll() is None else []
        hung = [p for p in kids if "policy_node" in " ".join(p.cmdline())]
        if hung:
            hangs += 1
            for extra in ([], ["--native"]):
                r = subprocess.run(["py-spy", "dump", "--pid", str(hung[0].pid), *extra],
                                   capture_output=True, text=True, check=False)
                (out / f"dump{i}{''.join(extra)}.txt").write_text(r.stdout + r.stderr)
        print(f"run {i}: {'HUNG, dumped' if hung else 'ok'} (tracking: {tracking})", flush=True)
        lp.stop()
        for p in kids:
            if p.is_running():
                p.kill()
    stop_ros2_daemon()
    print(f"{hangs} hang(s) in {runs} runs; logs and dumps in {out}")
    return 1 if hangs else 0


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]) if len(sys.argv) > 1 else 20))
