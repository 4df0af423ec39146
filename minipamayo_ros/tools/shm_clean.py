"""Find and remove the Fast DDS shared-memory segments of processes that died without cleaning up.

A Fast DDS participant with the SHM transport owns a segment ``/dev/shm/fastrtps_<id>`` and holds a
``flock`` on ``fastrtps_<id>_el`` for its whole life; a normal shutdown (SIGINT, rclpy shutdown)
removes both. A process that is SIGKILLed, OOM-killed or crashes leaves both behind: nothing uses
them again, and on a vehicle that restarts nodes for weeks they pile up in RAM (``/dev/shm`` is
tmpfs). Fast DDS's own tool for this (``fastdds shm clean``) is not in the PyPI wheels; this is
the same rule: a segment whose ``_el`` lock nobody holds has no owner. The port files
(``fastrtps_port<N>``) are shared by every participant of a domain and are left alone.

    python -m minipamayo_ros.tools.shm_clean           # list ownerless segments
    python -m minipamayo_ros.tools.shm_clean --remove  # and remove them

The test suite uses it to clean up after the tests that kill nodes on purpose, and to name any test
whose processes left segments (test/conftest.py); ``scripts/flake_hunt.sh`` counts what a run left.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import re
from pathlib import Path

SHM = Path("/dev/shm")
_SEGMENT = re.compile(r"fastrtps_[0-9a-f]{16}")


def segments(shm: Path = SHM) -> set[str]:
    """Names of the Fast DDS participant segments in ``shm`` (not their ``_el`` files, not ports)."""
    try:
        return {p.name for p in shm.iterdir() if _SEGMENT.fullmatch(p.name)}
    except OSError:
        return set()


def is_ownerless(name: str, shm: Path = SHM) -> bool:
    """True when nobody holds the flock on ``<name>_el``: the owner died without cleaning up."""
    try:
        fd = os.open(shm / f"{name}_el", os.O_RDONLY)
    except OSError:
        return False  # no lock file: not a segment of this layout, or removed meanwhile
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False  # held: a live participant
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return True
    finally:
        os.close(fd)


def ownerless(names: set[str] | None = None, shm: Path = SHM) -> list[str]:
    """The ownerless ones among ``names`` (default: every segment in ``shm``), sorted."""
    return sorted(n for n in (segments(shm) if names is None else names) if is_ownerless(n, shm))


def remove(names: list[str], shm: Path = SHM) -> int:
    """Unlink each segment and its ``_el`` file; returns how many segments were removed.

    Safe beside live participants: only ownerless names should be passed, and a process that still
    maps a removed segment keeps its mapping until it unmaps it (POSIX shm semantics)."""
    removed = 0
    for name in names:
        for path in (shm / name, shm / f"{name}_el"):
            try:
                path.unlink()
            except FileNotFoundError:
                continue
            removed += path.name == name
    return removed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--remove", action="store_true", help="remove the ownerless segments found")
    ap.add_argument("--shm", type=Path, default=SHM, help="the shared-memory folder (default /dev/shm)")
    args = ap.parse_args(argv)
    found = ownerless(shm=args.shm)
    for name in found:
        print(name)
    if args.remove:
        print(f"removed {remove(found, args.shm)} ownerless Fast DDS segment(s) from {args.shm}")
    else:
        print(f"{len(found)} ownerless Fast DDS segment(s) in {args.shm} (--remove to remove them)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
