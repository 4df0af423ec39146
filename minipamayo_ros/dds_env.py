"""Environment for loopback-only DDS (tests, benchmarks, the demo on shared machines).

Every process this project starts on a development or CI machine gets this environment, so no
DDS discovery or data traffic leaves 127.0.0.1 and concurrent runs never see each other.
"""

from __future__ import annotations

import os
from pathlib import Path

#: The Fast DDS profile: SHM + UDPv4 whitelisted to 127.0.0.1, built-in transports off.
FASTDDS_LOOPBACK_PROFILE = Path(__file__).resolve().parent / "resources" / "fastdds_loopback.xml"


def pick_domain_id(seed: int | None = None) -> int:
    """A ROS domain id in [1, 100] derived from ``seed`` (default: this process id).

    Domain ids map to UDP ports; 1..100 stays well inside the range every DDS vendor supports.
    """
    return 1 + (os.getpid() if seed is None else seed) % 100


def loopback_dds_env(domain_id: int, base: dict[str, str] | None = None) -> dict[str, str]:
    """Return ``base`` (default ``os.environ``) updated for loopback-only DDS on ``domain_id``."""
    if not 0 <= domain_id <= 232:
        raise ValueError(f"domain_id must be in [0, 232], got {domain_id}")
    env = dict(os.environ if base is None else base)
    env.update(
        {
            "RMW_IMPLEMENTATION": "rmw_fastrtps_cpp",
            "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",  # Jazzy and later
            "ROS_LOCALHOST_ONLY": "1",  # Humble
            "FASTDDS_DEFAULT_PROFILES_FILE": str(FASTDDS_LOOPBACK_PROFILE),
            "ROS_DOMAIN_ID": str(domain_id),
        }
    )
    return env
