"""Loopback-only DDS environment: the discovery variable in the running distro's spelling only."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from minipamayo_ros.dds_env import (
    FASTDDS_LOOPBACK_PROFILE,
    FASTDDS_LOOPBACK_UDP_PROFILE,
    FASTDDS_VEHICLE_PROFILE,
    FASTDDS_VEHICLE_UDP_PROFILE,
    apply_overrides,
    loopback_dds_env,
    loopback_dds_settings,
    ros_distro,
    use_loopback_dds,
    without_shared_memory,
)


@pytest.mark.parametrize("distro", ["humble", "iron"])
def test_humble_gets_localhost_only_and_not_the_jazzy_variable(distro: str) -> None:
    env = loopback_dds_env(7, {"ROS_DISTRO": distro, "ROS_AUTOMATIC_DISCOVERY_RANGE": "SUBNET"})
    assert env["ROS_LOCALHOST_ONLY"] == "1"
    assert "ROS_AUTOMATIC_DISCOVERY_RANGE" not in env
    assert env["FASTDDS_DEFAULT_PROFILES_FILE"] == env["FASTRTPS_DEFAULT_PROFILES_FILE"] == str(
        FASTDDS_LOOPBACK_PROFILE)
    assert env["ROS_DOMAIN_ID"] == "7"


@pytest.mark.parametrize("distro", ["jazzy", "kilted", "rolling"])
def test_jazzy_and_later_get_the_discovery_range_only(distro: str) -> None:
    env = loopback_dds_env(7, {"ROS_DISTRO": distro, "ROS_LOCALHOST_ONLY": "1",
                               "ROS_STATIC_PEERS": "10.0.0.2"})
    assert env["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST"
    assert "ROS_LOCALHOST_ONLY" not in env and "ROS_STATIC_PEERS" not in env
    assert env["RMW_IMPLEMENTATION"] == "rmw_fastrtps_cpp"


def test_unknown_distro_sets_both_and_the_profile_always() -> None:
    settings, unset = loopback_dds_settings(3, "")
    assert settings["ROS_LOCALHOST_ONLY"] == "1" and settings["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST"
    assert unset == ()
    assert FASTDDS_LOOPBACK_PROFILE.is_file()
    with pytest.raises(ValueError, match="domain_id"):
        loopback_dds_settings(300, "jazzy")


@pytest.mark.parametrize("distro", ["humble", "jazzy", ""])
def test_without_shared_memory_the_udp_profile_alone_decides(distro: str) -> None:
    """LOCALHOST discovery would make rmw_fastrtps (Jazzy) append its own shared-memory transport
    and a UDPv4 transport on every interface to the profile's; Humble's would add its own too."""
    env = loopback_dds_env(7, {"ROS_DISTRO": distro, "ROS_LOCALHOST_ONLY": "1", "ROS_STATIC_PEERS": "x"},
                           shared_memory=False)
    assert env["FASTDDS_DEFAULT_PROFILES_FILE"] == env["FASTRTPS_DEFAULT_PROFILES_FILE"] == str(
        FASTDDS_LOOPBACK_UDP_PROFILE)
    assert env["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "SYSTEM_DEFAULT" and env["ROS_DOMAIN_ID"] == "7"
    assert "ROS_LOCALHOST_ONLY" not in env and "ROS_STATIC_PEERS" not in env


def test_this_environment_is_jazzy_from_the_wheels() -> None:
    # the dev/CI venv has the ros-jazzy-* wheels and no ROS_DISTRO
    assert ros_distro({}) == "jazzy"


def test_use_loopback_dds_removes_the_other_spelling(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROS_DISTRO", "jazzy")
    monkeypatch.setenv("ROS_LOCALHOST_ONLY", "1")
    monkeypatch.setenv("ROS_DOMAIN_ID", "99")  # monkeypatch restores the session's value afterwards
    use_loopback_dds(12)
    assert "ROS_LOCALHOST_ONLY" not in os.environ
    assert os.environ["ROS_DOMAIN_ID"] == "12"


def _lease_in_subprocess(lease_dir: str, first: int, hold_s: float) -> subprocess.Popen[str]:
    code = ("import sys, time; from minipamayo_ros import dds_env; "
            f"print(dds_env.lease_domain_id({first}), flush=True); time.sleep({hold_s})")
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "MINIPAMAYO_DOMAIN_LEASE_DIR": lease_dir})


def test_concurrent_leases_get_distinct_domains_and_a_dead_holder_frees_its_id(tmp_path: Path) -> None:
    # pid % 100 could hand two concurrent test sessions the same domain; leases cannot
    holders = [_lease_in_subprocess(str(tmp_path), first=42, hold_s=30) for _ in range(3)]
    try:
        ids = [int(p.stdout.readline()) for p in holders]  # type: ignore[union-attr]
        assert len(set(ids)) == 3 and all(1 <= i <= 100 for i in ids), ids
        assert 42 in ids
        holder_of_42 = holders[ids.index(42)]
        holder_of_42.kill()  # kill -9: the kernel drops the flock, the id is free again
        holder_of_42.wait()
        again = _lease_in_subprocess(str(tmp_path), first=42, hold_s=0)
        assert int(again.stdout.readline()) == 42  # type: ignore[union-attr]
        again.wait()
    finally:
        for p in holders:
            p.kill()
            p.wait()


def test_a_shell_that_sources_env_sh_leases_its_domain(tmp_path: Path) -> None:
    """``source scripts/env.sh`` without ROS_DOMAIN_ID holds a lease for the shell's life: a test
    or benchmark started meanwhile never lands on the shell's domain, even when its search starts
    exactly there."""
    repo = Path(__file__).resolve().parents[1]
    env = {k: v for k, v in os.environ.items() if k != "ROS_DOMAIN_ID"}
    env["MINIPAMAYO_DOMAIN_LEASE_DIR"] = str(tmp_path)
    probe = ("import os; from minipamayo_ros.dds_env import lease_domain_id; "
             "print(os.environ['ROS_DOMAIN_ID'], lease_domain_id(int(os.environ['ROS_DOMAIN_ID'])))")
    out = subprocess.run(["bash", "-c", f"cd {repo} && source scripts/env.sh && python -c \"{probe}\""],
                         env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    shell_id, python_id = (int(x) for x in out.stdout.split()[-2:])
    assert 1 <= shell_id <= 100 and python_id != shell_id, (shell_id, python_id)


def test_a_process_keeps_one_lease() -> None:
    from minipamayo_ros.dds_env import lease_domain_id

    assert lease_domain_id() == lease_domain_id()


@pytest.mark.parametrize("profile", [FASTDDS_LOOPBACK_PROFILE,
                                     FASTDDS_LOOPBACK_PROFILE.with_name("fastdds_vehicle.xml")])
def test_shipped_profiles_bound_the_shared_memory_health_check_sleep(profile: Path) -> None:
    """Opening a new participant's SHM port can sleep healthy_check_timeout_ms / 3 in the DDS receive
    thread while publish() waits (docs/latency.md): the ~330 ms stall with Fast DDS's default 1000."""
    import xml.etree.ElementTree as ET

    ns = {"f": "http://www.eprosima.com/XMLSchemas/fastRTPS_Profiles"}
    root = ET.parse(profile).getroot()
    shm = [d for d in root.iterfind(".//f:transport_descriptor", ns) if d.findtext("f:type", "", ns) == "SHM"]
    used = {e.text for e in root.iterfind(".//f:participant/f:rtps/f:userTransports/f:transport_id", ns)}
    assert len(shm) == 1 and shm[0].findtext("f:transport_id", "", ns) in used
    assert int(shm[0].findtext("f:healthy_check_timeout_ms", "1000", ns)) <= 60


def test_the_profile_is_in_effect_in_a_participant(ros_env: dict[str, str]) -> None:
    """Fast DDS 2.x reads FASTRTPS_DEFAULT_PROFILES_FILE: with only the 3.x name set the profile was
    silently ignored (this domain's well-known ports bound to 0.0.0.0, not 127.0.0.1)."""
    code = ("import os, time, rclpy, psutil\n"
            "rclpy.init(); n = rclpy.create_node('profile_probe'); time.sleep(0.5)\n"
            "base = 7400 + 250 * int(os.environ['ROS_DOMAIN_ID'])\n"
            "print(sorted({c.laddr.ip for c in psutil.Process().net_connections('udp')\n"
            "              if base <= c.laddr.port < base + 250}))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ros_env,
                         timeout=60, check=True)
    assert out.stdout.strip().splitlines()[-1] == "['127.0.0.1']", out.stdout + out.stderr


def test_the_udp_profile_has_no_shared_memory_and_stays_on_loopback() -> None:
    import xml.etree.ElementTree as ET

    ns = {"f": "http://www.eprosima.com/XMLSchemas/fastRTPS_Profiles"}
    root = ET.parse(FASTDDS_LOOPBACK_UDP_PROFILE).getroot()
    types = [d.findtext("f:type", "", ns) for d in root.iterfind(".//f:transport_descriptor", ns)]
    assert types == ["UDPv4"]
    assert [a.text for a in root.iterfind(".//f:interfaceWhiteList/f:address", ns)] == ["127.0.0.1"]
    rtps = root.find(".//f:participant/f:rtps", ns)
    assert rtps is not None and rtps.findtext("f:useBuiltinTransports", "", ns) == "false"
    for where in ("metatrafficUnicastLocatorList", "initialPeersList"):
        assert [a.text for a in rtps.iterfind(f"f:builtin/f:{where}//f:address", ns)] == ["127.0.0.1"]
    assert rtps.find("f:builtin/f:metatrafficMulticastLocatorList", ns) is None


def test_a_participant_without_shared_memory_maps_no_port_and_binds_only_loopback(
        udp_ros_env: dict[str, str]) -> None:
    """Every UDP socket of the process (not only the domain's well-known ports) on 127.0.0.1 and no
    Fast DDS shared-memory port mapped: nothing a killed process leaves behind can reach it."""
    code = ("import rclpy, time, psutil\n"
            "rclpy.init(); n = rclpy.create_node('udp_probe'); time.sleep(0.5)\n"
            "print(sorted({c.laddr.ip for c in psutil.Process().net_connections('udp')}))\n"
            "print(sum('fastrtps_port' in line for line in open('/proc/self/maps')))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=udp_ros_env,
                         timeout=60, check=True)
    ips, ports = out.stdout.strip().splitlines()[-2:]
    assert (ips, ports) == ("['127.0.0.1']", "0"), out.stdout + out.stderr


@pytest.mark.parametrize("distro", ["humble", "jazzy"])
def test_without_shared_memory_keeps_a_loopback_stack_on_loopback(distro: str) -> None:
    """The follower of a loopback stack (tests, demo, benchmarks) gets the loopback UDP profile and the
    variables that let the profile alone decide, exactly as ``loopback_dds_env(shared_memory=False)``."""
    stack = loopback_dds_env(9, {"ROS_DISTRO": distro})
    follower = apply_overrides(stack, without_shared_memory(stack) or {})
    assert follower == loopback_dds_env(9, {"ROS_DISTRO": distro}, shared_memory=False)
    assert follower["FASTRTPS_DEFAULT_PROFILES_FILE"] == str(FASTDDS_LOOPBACK_UDP_PROFILE)
    assert "ROS_LOCALHOST_ONLY" not in follower and follower["ROS_DOMAIN_ID"] == "9"


@pytest.mark.parametrize(("env", "profile"), [
    ({}, FASTDDS_VEHICLE_UDP_PROFILE),                                       # Fast DDS defaults
    ({"FASTRTPS_DEFAULT_PROFILES_FILE": str(FASTDDS_VEHICLE_PROFILE)}, FASTDDS_VEHICLE_UDP_PROFILE),
    ({"ROS_LOCALHOST_ONLY": "1"}, FASTDDS_LOOPBACK_UDP_PROFILE),              # Humble, one computer
    ({"ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
      "FASTRTPS_DEFAULT_PROFILES_FILE": str(FASTDDS_VEHICLE_PROFILE)}, FASTDDS_LOOPBACK_UDP_PROFILE),
])
def test_without_shared_memory_on_the_vehicle(env: dict[str, str], profile: Path) -> None:
    """Same reach as the rest of the stack: every interface, or loopback when the stack is
    localhost-only (rmw_fastrtps would add its own shared memory to a LOCALHOST participant)."""
    overrides = without_shared_memory(env)
    assert overrides is not None
    follower = apply_overrides(env, overrides)
    assert follower["FASTRTPS_DEFAULT_PROFILES_FILE"] == str(profile)
    assert follower["FASTDDS_DEFAULT_PROFILES_FILE"] == str(profile)
    assert follower.get("ROS_LOCALHOST_ONLY", "") != "1"
    assert follower.get("ROS_AUTOMATIC_DISCOVERY_RANGE", "") != "LOCALHOST"


def test_without_shared_memory_leaves_site_profiles_and_other_rmws_alone() -> None:
    assert without_shared_memory({"FASTRTPS_DEFAULT_PROFILES_FILE": "/etc/car/dds.xml"}) is None
    assert without_shared_memory({"RMW_IMPLEMENTATION": "rmw_cyclonedds_cpp"}) == {}
    assert apply_overrides({"A": "1", "B": "2"}, {"A": "", "C": "3"}) == {"B": "2", "C": "3"}


def test_the_vehicle_udp_profile_is_the_vehicle_profile_without_shared_memory() -> None:
    import xml.etree.ElementTree as ET

    ns = {"f": "http://www.eprosima.com/XMLSchemas/fastRTPS_Profiles"}

    def transports(path: Path) -> list[str]:
        root = ET.parse(path).getroot()
        assert root.findtext(".//f:participant/f:rtps/f:useBuiltinTransports", "", ns) == "false"
        return [d.findtext("f:type", "", ns) for d in root.iterfind(".//f:transport_descriptor", ns)]

    assert transports(FASTDDS_VEHICLE_PROFILE) == ["SHM", "UDPv4"]
    assert transports(FASTDDS_VEHICLE_UDP_PROFILE) == ["UDPv4"]
