"""Process scheduling (minipamayo_ros.realtime), ROS-free: granted as root, refused without permission.

Each case runs in a child process (a real-time pytest would be a bad neighbour); the refused case
drops to an unprivileged user after lowering RLIMIT_RTPRIO / RLIMIT_MEMLOCK (root's CAP_SYS_NICE and
CAP_IPC_LOCK would override the limits).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from minipamayo_ros.params import ParameterError
from minipamayo_ros.realtime import current_policy, parse_cpus, set_scheduler

REPO_ROOT = Path(__file__).resolve().parents[1]

CHILD = """
import json, os, resource, sys, threading, time
from minipamayo_ros.realtime import apply_process_priority
t = threading.Thread(target=time.sleep, args=(2,), daemon=True); t.start()   # a thread that exists before
if sys.argv[1] == 'refused':
    resource.setrlimit(resource.RLIMIT_RTPRIO, (0, 0))
    resource.setrlimit(resource.RLIMIT_MEMLOCK, (65536, 65536))
    os.setgid(65534); os.setuid(65534)                                        # nobody: no capabilities
cpu = sorted(os.sched_getaffinity(0))[0]
r = apply_process_priority('fifo', 10, [cpu], memory_lock=True)
tids = [int(x) for x in os.listdir('/proc/self/task')]
print(json.dumps({'policy': r.policy, 'threads': r.threads, 'n': len(tids), 'detail': r.detail,
                  'locked': r.memory_locked, 'affinity': list(r.affinity), 'cpu': cpu,
                  'fifo': [os.sched_getscheduler(x) == os.SCHED_FIFO for x in tids],
                  'vmlck': [l for l in open('/proc/self/status') if l.startswith('VmLck')][0].split()[1]}))
"""


def _child(mode: str) -> dict:
    env = {**os.environ, "PYTHONPATH": f"{REPO_ROOT}:{os.environ.get('PYTHONPATH', '')}"}
    out = subprocess.run([sys.executable, "-c", CHILD, mode], capture_output=True, text=True, env=env,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.splitlines()[-1])


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root (the project's machines run as root)")
def test_fifo_affinity_and_memory_lock_granted_to_every_thread() -> None:
    r = _child("granted")
    assert r["detail"] == "" and r["policy"] == "SCHED_FIFO 10"
    assert r["threads"] == r["n"] >= 2 and all(r["fifo"])      # the thread started before, too
    assert r["locked"] and int(r["vmlck"]) > 0
    assert r["affinity"] == [r["cpu"]]


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop to an unprivileged user")
def test_refused_request_names_the_missing_permission_and_is_not_fatal() -> None:
    r = _child("refused")
    assert r["policy"].startswith("SCHED_OTHER") and not any(r["fifo"])
    assert "RLIMIT_RTPRIO is 0" in r["detail"] and "LimitRTPRIO=10" in r["detail"]
    assert "RLIMIT_MEMLOCK is 65536" in r["detail"] and "CAP_IPC_LOCK" in r["detail"]
    assert not r["locked"] and r["vmlck"] == "0"
    assert r["affinity"] == [r["cpu"]]                         # what needs no permission is still applied


def test_parse_cpus() -> None:
    assert parse_cpus("") == [] and parse_cpus(" 1, 3") == [1, 3]
    with pytest.raises(ParameterError, match="cpu_affinity"):
        parse_cpus("1,x")
    with pytest.raises(ParameterError, match=">= 0"):
        parse_cpus("-1")


def test_invalid_requests_are_refused_before_any_change() -> None:
    before = current_policy()
    with pytest.raises(ValueError, match="1..99"):
        set_scheduler("fifo", 0)
    with pytest.raises(ValueError, match="one of"):
        set_scheduler("deadline", 10)
    assert current_policy() == before
