"""Static checks for the vehicle's platform: Python 3.10 and the ROS 2 Humble Python API.

The vehicle runs ROS 2 Humble on Python 3.10; this machine runs Jazzy on Python 3.11, so the tests
alone cannot show that the package works there. ``scripts/test.sh`` runs both checks:

* **vermin** (target 3.10): the language and standard-library floor of the package, the launch
  files, scripts, tests and benchmarks;
* **mypy** over the package and the launch files, as Python 3.10, with ``rclpy``, ``launch`` and
  ``launch_ros`` read from Humble's own Python sources (``shared/vendor/ros2-humble-python-api``
  in this checkout or a folder above it, found like scripts/setup.sh finds the Jazzy tools;
  ``MINIPAMAYO_HUMBLE_API=/path`` overrides). A module, class, function, attribute or keyword
  argument that Humble lacks is an error, keyword arguments that launch classes forward through
  ``**kwargs`` included (``scripts/mypy_forwarded_kwargs.py``). mypy sees a view of the venv's
  typed packages (PEP 561) with the installed Jazzy rclpy / launch / launch_ros left out: it
  would otherwise fall back to Jazzy for a module Humble lacks (``rclpy.event_handler``).

Newer API is allowed only behind a runtime test that mypy understands, whose other branch is a
Humble fallback (and is type-checked against Humble like everything else)::

    if hasattr(sub, "get_publisher_count"):      # Iron and later
        n = sub.get_publisher_count()
    else:                                        # Humble
        n = len(node.get_publishers_info_by_topic(sub.topic_name))

Without the Humble sources mypy checks against the installed (Jazzy) API and says so.

    python scripts/check_static.py                   # vermin + mypy
    python scripts/check_static.py mypy [FILE...]    # mypy only (default: package + launch files)
    python scripts/check_static.py vermin [PATH...]  # vermin only (default: see VERMIN_PATHS)
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HUMBLE_API = "shared/vendor/ros2-humble-python-api"
ROS_API = ("rclpy", "launch", "launch_ros")           # checked against Humble's sources
VERMIN_PATHS = ("minipamayo_ros", "launch", "scripts", "test", "bench")
MYPY_PATHS = ("minipamayo_ros", "launch/drive.launch.py", "launch/sim.launch.py")


def work_dir() -> Path:
    """Package views and mypy caches (one per API source): beside the venv, so that every checkout
    and CI run using it shares the third-party analysis (rclpy, numpy, torch: most of a cold run);
    in build/ when the venv is not writable."""
    for base in (Path(sys.prefix), ROOT / "build"):
        work = base / "minipamayo-static-checks"
        try:
            work.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        if os.access(work, os.W_OK):
            return work
    raise OSError(f"no writable folder for the static checks in {sys.prefix} or {ROOT / 'build'}")


def find_humble_api() -> Path | None:
    """The Humble sources: $MINIPAMAYO_HUMBLE_API, else shared/vendor/... here or in a folder above."""
    override = os.environ.get("MINIPAMAYO_HUMBLE_API")
    if override:
        return Path(override) if Path(override).is_dir() else None
    for d in (ROOT, *ROOT.parents):
        if (d / HUMBLE_API).is_dir():
            return d / HUMBLE_API
    return None


def _link(link: Path, target: Path) -> None:
    """``link`` -> ``target``, replaced atomically when it points elsewhere (concurrent runs)."""
    if link.is_symlink() and Path(os.readlink(link)) == target:
        return
    tmp = link.with_name(f".{link.name}.{os.getpid()}")
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(target)
    os.replace(tmp, link)


def package_view(work: Path, ros_api: dict[str, Path]) -> tuple[Path, list[str]]:
    """A folder of links to the venv's PEP 561 packages, with ``ros_api`` in place of the installed
    rclpy / launch / launch_ros. Returns it and the linked third-party package names."""
    view = work / "view"
    view.mkdir(parents=True, exist_ok=True)
    wanted = dict(ros_api)
    for site in dict.fromkeys((sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"])):
        for pkg in sorted(Path(site).iterdir()):
            if (pkg.name.isidentifier() and pkg.name not in ROS_API and (pkg / "py.typed").is_file()
                    and pkg.name not in wanted):
                wanted[pkg.name] = pkg
    for entry in view.iterdir():
        if entry.name not in wanted:
            entry.unlink()
    for name, target in wanted.items():
        _link(view / name, target)
    return view, sorted(set(wanted) - set(ros_api))


def installed_ros_api() -> dict[str, Path]:
    """The installed (Jazzy) rclpy / launch / launch_ros package folders."""
    found = {}
    for name in ROS_API:
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.origin:
            found[name] = Path(spec.origin).parent
    return found


def mypy_config(work: Path, view: Path, third_party: list[str]) -> Path:
    """The mypy configuration of the check (written next to the view)."""
    def modules(names: list[str] | tuple[str, ...]) -> str:
        return ",".join(f"{n},{n}.*" for n in names)

    text = f"""[mypy]
python_version = 3.10
ignore_missing_imports = True
warn_unused_ignores = True
no_site_packages = True
mypy_path = {view}
cache_dir = {work / "mypy-cache"}
plugins = {ROOT / "scripts" / "mypy_forwarded_kwargs.py"}
# the third-party packages and the ROS API sources: read, never reported on
[mypy-{modules(third_party)}]
follow_imports = silent
ignore_errors = True
# a module Humble lacks (rclpy.event_handler) must be an error, not Any
[mypy-{modules(ROS_API)}]
follow_imports = silent
ignore_errors = True
ignore_missing_imports = False
"""
    config = work / "mypy.ini"
    tmp = work / f".mypy.ini.{os.getpid()}"
    tmp.write_text(text)
    os.replace(tmp, config)  # concurrent runs each read a whole file
    return config


def run_mypy(files: list[str], cache_dir: Path | None = None) -> int:
    """mypy on ``files``; ``cache_dir`` (default: the shared one beside the view) for a run that must
    neither see nor leave other runs' entries (the planted files of test_static_checks)."""
    humble = find_humble_api()
    if humble is not None:
        ros_api = {name: humble / name / name for name in ROS_API}
        print(f"[static] mypy (Python 3.10, ROS 2 Humble API from {humble})", flush=True)
    else:
        ros_api = installed_ros_api()
        print(f"[static] NOTE: ROS 2 Humble API sources NOT found (no {HUMBLE_API} in {ROOT} or any folder\n"
              "[static]       above it; set MINIPAMAYO_HUMBLE_API=/path). Checking against the INSTALLED\n"
              "[static]       rclpy / launch / launch_ros instead: calls that Humble lacks are NOT caught.",
              flush=True)
    work = work_dir() / ("humble" if humble is not None else "installed")
    view, third_party = package_view(work, ros_api)
    config = mypy_config(work, view, third_party)
    cache = [] if cache_dir is None else ["--cache-dir", str(cache_dir)]
    return subprocess.run([sys.executable, "-m", "mypy", "--config-file", str(config), *cache, *files],
                          cwd=ROOT, check=False).returncode


def run_vermin(paths: list[str]) -> int:
    print("[static] vermin (target Python 3.10)", flush=True)
    vermin = Path(sys.executable).with_name("vermin")  # its console script (no ``python -m vermin``)
    return subprocess.run([str(vermin), "--target=3.10-", "--violations", "--no-tips", "--eval-annotations",
                           "--quiet", *paths], cwd=ROOT, check=False).returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("check", nargs="?", choices=("all", "mypy", "vermin"), default="all")
    parser.add_argument("paths", nargs="*", help="files or folders (default: what the check covers)")
    parser.add_argument("--mypy-cache-dir", type=Path, default=None,
                        help="mypy's cache for this run (default: the one shared beside the venv)")
    args = parser.parse_args(argv)
    rc = 0
    if args.check in ("all", "vermin"):
        t0 = time.monotonic()
        rc |= run_vermin(args.paths or list(VERMIN_PATHS))
        print(f"[static] vermin: {'ok' if rc == 0 else 'FAILED'} ({time.monotonic() - t0:.1f} s)", flush=True)
    if args.check in ("all", "mypy"):
        t0 = time.monotonic()
        status = run_mypy(args.paths or list(MYPY_PATHS), args.mypy_cache_dir)
        print(f"[static] mypy: {'ok' if status == 0 else 'FAILED'} ({time.monotonic() - t0:.1f} s)",
              flush=True)
        rc |= status
    return rc


if __name__ == "__main__":
    sys.exit(main())
