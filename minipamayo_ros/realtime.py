"""Process scheduling for the nodes: real-time for the follower, the lowest for the text node (no ROS).

On Linux the scheduling policy, its priority, the nice value and the CPU affinity belong to each
*thread*: changing them for the calling thread leaves the threads that already exist (the DDS
middleware's, the executor's) as they were. Every function here therefore applies to all threads
listed in ``/proc/self/task``; threads created afterwards inherit from their creator.

What each request needs (docs/follower.md, "Real-time"):

* ``SCHED_FIFO`` / ``SCHED_RR`` at priority p (1-99): CAP_SYS_NICE, or ``RLIMIT_RTPRIO`` >= p
  (``limits.conf``: ``rtprio``; systemd: ``LimitRTPRIO=``). The kernel keeps 5 % of each second
  for other tasks (``sched_rt_runtime_us``), so a runaway real-time thread cannot lock a core up.
* ``mlockall(MCL_CURRENT | MCL_FUTURE)``: CAP_IPC_LOCK, or ``RLIMIT_MEMLOCK`` above the process's
  memory (``limits.conf``: ``memlock``; systemd: ``LimitMEMLOCK=``). Locked pages never page out
  (no major fault in the control loop).
* ``SCHED_IDLE`` (runs only when a CPU has nothing else to do) and nice 19 are allowed to anyone,
  though container seccomp profiles may refuse ``SCHED_IDLE``; nice 19 is its fallback. It is
  applied to one thread only (:func:`lower_thread_priority`), never to a process's DDS threads.
* CPU affinity: any CPU in the process's current set (cgroup/cpuset).

A refused request is never fatal: the result says what was granted, and ``detail`` names the
missing permission so that the node can log it.
"""

from __future__ import annotations

import ctypes
import errno
import os
import resource
import threading
from dataclasses import dataclass

from minipamayo_ros.params import ParameterError

#: scheduling policies by parameter value
POLICIES = ("other", "fifo", "rr", "idle")
_POLICY_CONSTANTS = {"other": "SCHED_OTHER", "fifo": "SCHED_FIFO", "rr": "SCHED_RR", "idle": "SCHED_IDLE"}
MCL_CURRENT, MCL_FUTURE = 1, 2  # <sys/mman.h> on Linux


@dataclass(frozen=True)
class PriorityResult:
    """What a process got (for the start-up log and /diagnostics)."""

    policy: str                     # e.g. "SCHED_FIFO 80", "SCHED_IDLE", "nice 19", "unchanged"
    threads: int                    # threads changed
    affinity: tuple[int, ...]       # CPUs the process may run on afterwards (empty = not queried)
    detail: str = ""                # what was refused and which permission is missing ('' = all granted)
    memory_locked: bool = False     # mlockall(MCL_CURRENT | MCL_FUTURE) succeeded


def thread_ids() -> list[int]:
    """Ids of this process's threads (``[0]``, the caller, where /proc is missing)."""
    try:
        return sorted(int(t) for t in os.listdir("/proc/self/task"))
    except OSError:
        return [0]


def parse_cpus(text: str, name: str = "cpu_affinity") -> list[int]:
    """``'1'`` / ``'2,3'`` / ``''`` -> CPU ids; :class:`ParameterError` naming parameter ``name``."""
    try:
        cpus = [int(c) for c in text.replace(" ", "").split(",") if c]
    except ValueError:
        raise ParameterError(f"parameter '{name}' = {text!r} must be comma-separated CPU ids, e.g. '1' or "
                             "'2,3' ('' = any CPU)") from None
    if any(c < 0 for c in cpus):
        raise ParameterError(f"parameter '{name}' = {text!r}: CPU ids are >= 0")
    return cpus


def set_affinity(cpus: list[int]) -> tuple[int, ...]:
    """Pin every thread to ``cpus`` (nothing when empty); returns the process's CPUs afterwards.

    Raises ``ValueError`` if ``cpus`` names CPUs this process may not use (a configuration error).
    """
    if not hasattr(os, "sched_getaffinity"):
        return ()
    if cpus:
        missing = sorted(set(cpus) - os.sched_getaffinity(0))
        if missing:
            raise ValueError(f"CPUs {missing} are not available to this process "
                             f"(available: {sorted(os.sched_getaffinity(0))})")
        for tid in thread_ids():
            try:
                os.sched_setaffinity(tid, cpus)
            except OSError:  # the thread ended meanwhile
                pass
    return tuple(sorted(os.sched_getaffinity(0)))


def _rlimit_text(limit: int) -> str:
    return "unlimited" if limit == resource.RLIM_INFINITY else str(limit)


def set_scheduler(policy: str, priority: int = 0) -> tuple[int, str]:
    """Every thread to ``policy`` (one of :data:`POLICIES`) at ``priority`` (1-99 for fifo/rr).

    Returns ``(threads changed, why refused)``; ``why`` is '' on success and names the missing
    permission (``RLIMIT_RTPRIO`` / CAP_SYS_NICE) when the kernel said no.
    """
    return _set_scheduler(thread_ids(), policy, priority)


def _set_scheduler(tids: list[int], policy: str, priority: int) -> tuple[int, str]:
    if policy not in POLICIES:
        raise ValueError(f"scheduling policy must be one of {POLICIES}, got {policy!r}")
    realtime = policy in ("fifo", "rr")
    if realtime and not 1 <= priority <= 99:
        raise ValueError(f"SCHED_{policy.upper()} priority must be in 1..99, got {priority}")
    constant = getattr(os, _POLICY_CONSTANTS[policy], None)
    if constant is None or not hasattr(os, "sched_setscheduler"):
        return 0, f"{_POLICY_CONSTANTS[policy]} is not available on this platform"
    param = os.sched_param(priority if realtime else 0)
    changed = 0
    for tid in tids:
        try:
            os.sched_setscheduler(tid, constant, param)
            changed += 1
        except ProcessLookupError:  # the thread ended meanwhile
            pass
        except PermissionError as exc:
            if not realtime:
                return changed, f"{_POLICY_CONSTANTS[policy]} refused ({exc})"
            soft, hard = resource.getrlimit(resource.RLIMIT_RTPRIO)
            return changed, (f"SCHED_{policy.upper()} priority {priority} refused: RLIMIT_RTPRIO is "
                             f"{_rlimit_text(soft)} (hard {_rlimit_text(hard)}) and the process lacks "
                             "CAP_SYS_NICE; allow it with 'rtprio' in /etc/security/limits.conf or "
                             f"LimitRTPRIO={priority} in the systemd unit")
        except OSError as exc:
            return changed, f"{_POLICY_CONSTANTS[policy]} refused ({exc})"
    return changed, ""


def lock_memory() -> str:
    """``mlockall(MCL_CURRENT | MCL_FUTURE)``; returns '' on success, else why (naming the permission)."""
    libc = ctypes.CDLL(None, use_errno=True)  # the process's own symbols: libc's mlockall
    if libc.mlockall(MCL_CURRENT | MCL_FUTURE) == 0:
        return ""
    err = ctypes.get_errno()
    soft, hard = resource.getrlimit(resource.RLIMIT_MEMLOCK)
    if err in (errno.EPERM, errno.ENOMEM):
        return (f"mlockall refused ({os.strerror(err)}): RLIMIT_MEMLOCK is {_rlimit_text(soft)} B (hard "
                f"{_rlimit_text(hard)}) and the process lacks CAP_IPC_LOCK; allow it with 'memlock "
                "unlimited' in /etc/security/limits.conf or LimitMEMLOCK=infinity in the systemd unit")
    return f"mlockall failed ({os.strerror(err)})"


def apply_process_priority(policy: str = "other", priority: int = 0, cpus: list[int] | None = None,
                           memory_lock: bool = False) -> PriorityResult:
    """The follower's request: CPU affinity, scheduling policy and memory lock for the whole process.

    Each part is attempted independently; what was refused is in ``detail`` (never raised), except
    a CPU this machine does not have (``ValueError``, a configuration error).
    """
    affinity = set_affinity(list(cpus or []))
    refused: list[str] = []
    threads, why = set_scheduler(policy, priority)
    if why:
        refused.append(why)
    locked = False
    if memory_lock:
        why = lock_memory()
        locked = not why
        if why:
            refused.append(why)
    return PriorityResult(current_policy(), threads, affinity, "; ".join(refused), locked)


def lower_thread_priority(lowest: bool = True) -> PriorityResult:
    """The text node's request for its generation thread: SCHED_IDLE (else nice 19), calling thread only.

    Only the thread doing the heavy work is lowered: a DDS thread at SCHED_IDLE can be starved for
    hundreds of ms while it holds Fast DDS's inter-process lock of another participant's
    shared-memory port (taken while opening it, across its health check), and every other process
    opening that port then waits for it (docs/latency.md). ``affinity`` is the process's CPU set.
    """
    affinity = set_affinity([])
    if not lowest:
        return PriorityResult("unchanged", 0, affinity, "lower_priority is false")
    tid = threading.get_native_id()
    changed, why = _set_scheduler([tid], "idle", 0)
    if not why:
        return PriorityResult("SCHED_IDLE", changed, affinity)
    try:
        os.setpriority(os.PRIO_PROCESS, tid, 19)  # on Linux PRIO_PROCESS with a tid is per thread
    except OSError as exc:
        return PriorityResult("unchanged", 0, affinity, f"{why}; nice 19 failed ({exc})")
    return PriorityResult("nice 19", 1, affinity, why)


def current_policy() -> str:
    """The calling thread's scheduling policy with its priority or nice value, e.g. ``SCHED_FIFO 80``,
    ``SCHED_OTHER nice 0`` (for the log and /diagnostics)."""
    names = {getattr(os, n): n for n in ("SCHED_OTHER", "SCHED_IDLE", "SCHED_BATCH", "SCHED_FIFO", "SCHED_RR")
             if hasattr(os, n)}
    try:
        pol = os.sched_getscheduler(0)
    except (AttributeError, OSError):
        return "unknown"
    name = names.get(pol, "unknown")
    if name in ("SCHED_FIFO", "SCHED_RR"):
        return f"{name} {os.sched_getparam(0).sched_priority}"
    return f"{name} nice {os.getpriority(os.PRIO_PROCESS, 0)}"
