"""Environment for loopback-only DDS (tests, benchmarks, the demo, ``source scripts/env.sh``).

Every process this project starts on a development or CI machine gets this environment, so no
DDS discovery or data traffic leaves 127.0.0.1 and concurrent runs never see each other.

Loopback is guaranteed by the Fast DDS profile (SHM + UDPv4 whitelisted to 127.0.0.1, built-in
transports off) on every distro. The discovery-range variable is set as well, but only in the
spelling the running distro understands: Humble/Iron read ``ROS_LOCALHOST_ONLY=1``; Jazzy and
later read ``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST`` and print a deprecation warning in every
process when ``ROS_LOCALHOST_ONLY`` is set. Only when the distro cannot be told are both set.

    python -m minipamayo_ros.dds_env [--domain-id N]   # prints the shell exports (scripts/env.sh)
"""

from __future__ import annotations

import argparse
import fcntl
import functools
import importlib.metadata
import os
import shlex
import sys
from collections.abc import Mapping
from pathlib import Path

#: The Fast DDS profile: SHM + UDPv4 whitelisted to 127.0.0.1, built-in transports off.
FASTDDS_LOOPBACK_PROFILE = Path(__file__).resolve().parent / "resources" / "fastdds_loopback.xml"
#: The same without shared memory (UDPv4 on 127.0.0.1, unicast discovery to 127.0.0.1), for stacks
#: whose nodes are killed and restarted one at a time: a process restarted after ``kill -9`` may get
#: nothing over Fast DDS shared memory from the processes that survived it (see the profile).
FASTDDS_LOOPBACK_UDP_PROFILE = FASTDDS_LOOPBACK_PROFILE.with_name("fastdds_loopback_udp.xml")
#: The example vehicle profile (shared memory + UDPv4, the 60 ms health check) and the follower's
#: variant without shared memory (:func:`without_shared_memory`).
FASTDDS_VEHICLE_PROFILE = FASTDDS_LOOPBACK_PROFILE.with_name("fastdds_vehicle.xml")
FASTDDS_VEHICLE_UDP_PROFILE = FASTDDS_LOOPBACK_PROFILE.with_name("fastdds_vehicle_udp.xml")
#: The variable that names the XML profile file: Fast DDS 2.x (Humble: 2.6, Jazzy: 2.14) reads
#: FASTRTPS_DEFAULT_PROFILES_FILE, Fast DDS 3.x (Kilted and later) FASTDDS_DEFAULT_PROFILES_FILE. Both
#: are set. (Until issue 23 only the 3.x name was: on Jazzy the profile was never loaded, and the
#: participants used Fast DDS's built-in transports on every interface.)
PROFILE_VARIABLES = ("FASTRTPS_DEFAULT_PROFILES_FILE", "FASTDDS_DEFAULT_PROFILES_FILE")

#: distros that only know ROS_LOCALHOST_ONLY (ROS_AUTOMATIC_DISCOVERY_RANGE came with Jazzy)
LOCALHOST_ONLY_DISTROS = ("foxy", "galactic", "humble", "iron")
_KNOWN_DISTROS = ("humble", "iron", "jazzy", "kilted", "rolling")


@functools.cache
def _installed_distro() -> str:
    """The distro of the rclpy wheel installed from PyPI (``ros-<distro>-rclpy``), or ''."""
    for distro in _KNOWN_DISTROS:
        try:
            importlib.metadata.version(f"ros-{distro}-rclpy")
        except importlib.metadata.PackageNotFoundError:
            continue
        return distro
    return ""


def ros_distro(env: dict[str, str] | os._Environ[str] | None = None) -> str:
    """The running ROS 2 distro: ``$ROS_DISTRO`` (a distro's setup.bash sets it), else the
    distro of the PyPI rclpy wheels, else '' (unknown)."""
    env = os.environ if env is None else env
    return (env.get("ROS_DISTRO") or _installed_distro()).strip().lower()


def pick_domain_id(seed: int | None = None) -> int:
    """A ROS domain id in [1, 100] derived from ``seed`` (default: this process id).

    Deterministic, so two processes can collide: processes that must not share a domain with
    anything else on the machine (tests, the demo, benchmarks) use :func:`lease_domain_id`.
    Domain ids map to UDP ports; 1..100 stays well inside the range every DDS vendor supports.
    """
    return 1 + (os.getpid() if seed is None else seed) % 100


#: where domain leases are held (one lock file per id, shared by every checkout on the machine)
DOMAIN_LEASE_DIR = Path(os.environ.get("MINIPAMAYO_DOMAIN_LEASE_DIR", "/tmp/minipamayo_ros-domain-leases"))
_leases: dict[int, int] = {}  # domain id -> open lock file descriptor, held for the process's life


def lease_domain_id(first: int | None = None) -> int:
    """A ROS domain id in [1, 100] that no other process on this machine holds a lease on.

    Why: ``pick_domain_id`` (pid % 100) lets two concurrent test sessions, demos or benchmarks
    share a domain and see each other's topics. A lease is an exclusive ``flock`` on
    ``DOMAIN_LEASE_DIR/<id>.lock``, held until this process exits (the kernel releases it even
    on ``kill -9``, so a crashed run never leaks a domain). Child processes get the id through
    their environment; the lock's file descriptor is not inherited. Repeated calls in one
    process return the same id. The search starts at ``first`` (default: the pid-derived id)
    to spread concurrent callers over the range.
    """
    if _leases:
        return next(iter(_leases))
    DOMAIN_LEASE_DIR.mkdir(parents=True, exist_ok=True)
    start = pick_domain_id() if first is None else first
    for offset in range(100):
        domain = 1 + (start - 1 + offset) % 100
        fd = os.open(DOMAIN_LEASE_DIR / f"{domain}.lock", os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue
        _leases[domain] = fd
        return domain
    raise RuntimeError(f"all ROS domain ids 1..100 are leased by other processes ({DOMAIN_LEASE_DIR})")


def loopback_dds_settings(domain_id: int, distro: str,
                          shared_memory: bool = True) -> tuple[dict[str, str], tuple[str, ...]]:
    """``(variables to set, variables to unset)`` for loopback-only DDS on ``domain_id``.

    ``shared_memory=False``: the UDP-only profile, ``ROS_AUTOMATIC_DISCOVERY_RANGE=SYSTEM_DEFAULT``
    and no ``ROS_LOCALHOST_ONLY`` in every distro, so that the profile alone decides (with LOCALHOST,
    rmw_fastrtps on Jazzy appends its own shared-memory transport and a UDPv4 transport on every
    interface to the profile's; Humble ignores the range variable).
    """
    if not 0 <= domain_id <= 232:
        raise ValueError(f"domain_id must be in [0, 232], got {domain_id}")
    profile = FASTDDS_LOOPBACK_PROFILE if shared_memory else FASTDDS_LOOPBACK_UDP_PROFILE
    settings = {
        "RMW_IMPLEMENTATION": "rmw_fastrtps_cpp",
        **{name: str(profile) for name in PROFILE_VARIABLES},
        "ROS_DOMAIN_ID": str(domain_id),
    }
    unset: tuple[str, ...] = ()
    if not shared_memory:
        settings["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "SYSTEM_DEFAULT"
        unset = ("ROS_LOCALHOST_ONLY", "ROS_STATIC_PEERS")
    elif distro in LOCALHOST_ONLY_DISTROS:
        settings["ROS_LOCALHOST_ONLY"] = "1"
        unset = ("ROS_AUTOMATIC_DISCOVERY_RANGE",)
    elif distro:
        settings["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
        unset = ("ROS_LOCALHOST_ONLY", "ROS_STATIC_PEERS")
    else:  # unknown distro: both spellings (one of them may warn; the profile keeps it loopback)
        settings.update({"ROS_LOCALHOST_ONLY": "1", "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"})
    return settings, unset


def loopback_dds_env(domain_id: int, base: dict[str, str] | None = None,
                     shared_memory: bool = True) -> dict[str, str]:
    """A copy of ``base`` (default ``os.environ``) set up for loopback-only DDS on ``domain_id``
    (``shared_memory``: see :func:`loopback_dds_settings`)."""
    env = dict(os.environ if base is None else base)
    settings, unset = loopback_dds_settings(domain_id, ros_distro(env), shared_memory)
    for key in unset:
        env.pop(key, None)
    env.update(settings)
    return env


def without_shared_memory(env: Mapping[str, str]) -> dict[str, str] | None:
    """The variables that put one process of a stack started with ``env`` on DDS without Fast DDS's
    shared-memory transport (UDP only, same reach as the rest of the stack), or None when that cannot
    be derived from ``env`` (a site profile of its own: the caller warns and leaves it as it is).

    Why (docs/latency.md, "The follower without shared memory"): a process with the transport opens
    every newly discovered participant's port and may sleep in its health check while holding the
    participant's send lock, so each tool attached to the vehicle could delay the follower's 100 Hz
    command by 20-333 ms; and a process restarted alone after ``kill -9`` may receive nothing over
    shared memory (fastdds_loopback_udp.xml). Other RMW implementations: nothing to change (``{}``).

    A variable to remove maps to ``""`` (what launch's ``additional_env`` can express; rcl reads an
    empty discovery variable as unset); :func:`apply_overrides` removes it from a process environment.
    """
    rmw = env.get("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")
    if not rmw.startswith("rmw_fastrtps"):
        return {}
    profile = next((env[v] for v in PROFILE_VARIABLES if env.get(v)), "")
    localhost = (env.get("ROS_AUTOMATIC_DISCOVERY_RANGE", "").upper() == "LOCALHOST"
                 or env.get("ROS_LOCALHOST_ONLY", "") == "1")
    ours = {str(FASTDDS_LOOPBACK_PROFILE), str(FASTDDS_LOOPBACK_UDP_PROFILE)}
    vehicle = {"", str(FASTDDS_VEHICLE_PROFILE), str(FASTDDS_VEHICLE_UDP_PROFILE)}
    if profile in ours or (profile in vehicle and localhost):
        # loopback only: the UDP profile alone decides (rmw_fastrtps adds shared memory to LOCALHOST)
        settings = {name: str(FASTDDS_LOOPBACK_UDP_PROFILE) for name in PROFILE_VARIABLES}
        settings["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "SYSTEM_DEFAULT"
        settings.update({k: "" for k in ("ROS_LOCALHOST_ONLY", "ROS_STATIC_PEERS") if env.get(k)})
        return settings
    if profile in vehicle:
        return {name: str(FASTDDS_VEHICLE_UDP_PROFILE) for name in PROFILE_VARIABLES}
    return None


def apply_overrides(env: Mapping[str, str], overrides: Mapping[str, str]) -> dict[str, str]:
    """A copy of ``env`` with ``overrides`` applied; an empty value removes the variable."""
    out = {k: v for k, v in env.items() if k not in overrides}
    out.update({k: v for k, v in overrides.items() if v != ""})
    return out


def use_loopback_dds(domain_id: int) -> dict[str, str]:
    """Set this process's ``os.environ`` for loopback-only DDS (before ``rclpy.init``); returns it
    as a dict. Unlike ``os.environ.update(...)`` this also removes the other distro's variable."""
    env = loopback_dds_env(domain_id)
    for key in set(os.environ) - set(env):
        del os.environ[key]
    os.environ.update(env)
    return env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Print the shell commands for loopback-only DDS.")
    parser.add_argument("--domain-id", type=int, default=None, help="ROS_DOMAIN_ID (default: from the pid)")
    args = parser.parse_args(argv)
    domain = args.domain_id if args.domain_id is not None else pick_domain_id()
    settings, unset = loopback_dds_settings(domain, ros_distro())
    for key in unset:
        print(f"unset {key}")
    for key, value in settings.items():
        print(f"export {key}={shlex.quote(value)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
