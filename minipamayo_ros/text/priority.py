"""Lowest CPU priority for a whole process: SCHED_IDLE where permitted, else nice 19.

On Linux scheduling policy, nice value and CPU affinity are per *thread*: changing them for the
calling thread leaves the threads that already exist (the DDS middleware's, the executor's) at
normal priority. :func:`lower_process_priority` therefore applies them to every thread listed in
``/proc/self/task``; threads created afterwards inherit them from their creator.

``SCHED_IDLE`` runs a thread only when a CPU has nothing else to do (weight ~1/1024 of a nice-0
thread, below nice 19's ~15/1024); Linux lets unprivileged processes switch to it, but container
seccomp profiles or missing ``os.sched_setscheduler`` may refuse it. nice 19 is the fallback.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class PriorityResult:
    policy: str            # "SCHED_IDLE", "nice 19", or "unchanged"
    threads: int           # threads changed
    affinity: tuple[int, ...]  # CPUs the process may run on afterwards (empty = not queried)
    detail: str            # why the fallback was used / what failed (for the log)


def _thread_ids() -> list[int]:
    try:
        return sorted(int(t) for t in os.listdir("/proc/self/task"))
    except OSError:
        return [0]


def lower_process_priority(cpus: list[int] | None = None, lowest: bool = True) -> PriorityResult:
    """Apply SCHED_IDLE (else nice 19) and optionally a CPU affinity to all threads of this process.

    Raises ``ValueError`` if ``cpus`` names CPUs this machine does not have (a configuration error).
    """
    tids = _thread_ids()
    detail = []
    affinity: tuple[int, ...] = ()
    if cpus:
        available = os.sched_getaffinity(0)
        missing = sorted(set(cpus) - available)
        if missing:
            raise ValueError(f"CPUs {missing} are not available to this process "
                             f"(available: {sorted(available)})")
        for tid in tids:
            try:
                os.sched_setaffinity(tid, cpus)
            except OSError:  # the thread ended meanwhile
                pass
    if hasattr(os, "sched_getaffinity"):
        affinity = tuple(sorted(os.sched_getaffinity(0)))
    if not lowest:
        return PriorityResult("unchanged", 0, affinity, "lower_priority is false")
    changed = 0
    if hasattr(os, "SCHED_IDLE"):
        try:
            for tid in tids:
                try:
                    os.sched_setscheduler(tid, os.SCHED_IDLE, os.sched_param(0))
                    changed += 1
                except ProcessLookupError:
                    pass
            return PriorityResult("SCHED_IDLE", changed, affinity, "")
        except OSError as exc:
            detail.append(f"SCHED_IDLE refused ({exc})")
    else:
        detail.append("SCHED_IDLE not available on this platform")
    changed = 0
    for tid in tids:
        try:
            os.setpriority(os.PRIO_PROCESS, tid, 19)  # on Linux PRIO_PROCESS with a tid is per thread
            changed += 1
        except (ProcessLookupError, PermissionError):
            pass
        except OSError as exc:
            detail.append(f"nice 19 failed for thread {tid} ({exc})")
    return PriorityResult("nice 19" if changed else "unchanged", changed, affinity, "; ".join(detail))


def current_policy() -> str:
    """The calling thread's scheduling policy and nice value, e.g. ``SCHED_IDLE nice 0`` (for diagnostics)."""
    names = {getattr(os, n): n for n in ("SCHED_OTHER", "SCHED_IDLE", "SCHED_BATCH", "SCHED_FIFO", "SCHED_RR")
             if hasattr(os, n)}
    try:
        pol = names.get(os.sched_getscheduler(0), "unknown")
    except (AttributeError, OSError):
        pol = "unknown"
    return f"{pol} nice {os.getpriority(os.PRIO_PROCESS, 0)}"
