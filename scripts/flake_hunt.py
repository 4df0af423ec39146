"""Flake hunt: run the whole test suite N times from a fresh clone and tabulate every failure.

Why a fresh clone: CI runs ``.ci/run`` in a fresh clone of the submitted commit, so a test that
depends on files a developer's checkout happens to hold (build outputs, caches, results) or on
uncommitted changes shows up here as it would there. The clone sits in a temporary folder beside
``shared/`` (the vendored ROS 2 tools are found as in CI) and reuses the venv; ``setup.sh --dev``
builds it once. Each run:

* gets its own ROS domain id (leased by this process for the whole hunt, passed to pytest as
  ``MINIPAMAYO_TEST_DOMAIN_ID``), so the /dev/shm port files of this hunt can be told apart;
* optionally runs beside a CPU hog pinned to one core (``--load``: what a busy CI box or a second
  job does to timing) and in a shuffled order (``--shuffle``: pytest-random-order, bucket
  ``module``: modules and the tests inside each are shuffled; the seed is printed and tabulated,
  so a failing order can be replayed exactly);
* is checked afterwards for processes it left (every process started by the run carries the
  marker variable ``MINIPAMAYO_FLAKE_HUNT_RUN``; leftovers are listed, then killed by pid) and for
  Fast DDS files it left in /dev/shm: new segments without a live owner
  (``minipamayo_ros.tools.shm_clean``: left by a process that died without cleaning up; the suite
  removes those of the processes its tests kill, so any here escaped it; other users of the
  machine may add some) and new port files of this hunt's domain.

Writes ``flake-hunt.md`` and ``flake-hunt.json`` (per test: runs, failures, first failure's
message; per run: load, seed, exit code, duration, counts, leftovers) plus each run's log and
JUnit XML into ``--out`` (default ``results/flake-hunt-<time>/``). Exit 1 if any run failed.

    scripts/flake_hunt.sh --runs 10 --load-runs 5 --shuffle
    scripts/flake_hunt.sh --runs 1 -- test/test_text_node.py test/test_dds_env.py
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from pathlib import Path

from minipamayo_ros.tools import shm_clean

ROOT = Path(__file__).resolve().parents[1]
MARKER = "MINIPAMAYO_FLAKE_HUNT_RUN"
_PORT_FILE = re.compile(r"fastrtps_port(\d+)")
MESSAGE_CHARS = 300


@dataclass
class TestTally:
    runs: int = 0          # runs in which the test ran (not skipped)
    failures: int = 0      # failed or errored (setup/teardown included)
    skipped: int = 0
    first_failure_run: int | None = None
    first_failure: str = ""


@dataclass
class RunRecord:
    index: int
    loaded: bool
    seed: int | None
    exit_code: int
    seconds: float
    load_avg_before: float
    load_avg_after: float
    tests: int = 0
    failed: int = 0
    skipped: int = 0
    leftover_processes: list[str] = field(default_factory=list)
    shm_zombies: list[str] = field(default_factory=list)       # new segments whose owner is gone
    shm_ports: list[str] = field(default_factory=list)         # new port files of this hunt's domain
    note: str = ""


# --- JUnit XML -> per-test outcomes ---------------------------------------------------------------
def test_id(case: ET.Element) -> str:
    """``path::[Class::]name`` from a pytest xunit1 <testcase> (falls back to classname::name)."""
    name, classname, file = case.get("name", "?"), case.get("classname", ""), case.get("file")
    if not file:
        return f"{classname}::{name}"
    module = file.removesuffix(".py").replace("/", ".")
    if classname.startswith(module + "."):
        return f"{file}::{classname[len(module) + 1:]}::{name}"
    return f"{file}::{name}"


def outcomes(junit: Path) -> dict[str, tuple[str, str]]:
    """``{test id: (outcome, message)}``, outcome ``passed`` / ``failed`` / ``skipped``. A test
    that failed and errored (teardown) once counts once, as failed, with its first message."""
    result: dict[str, tuple[str, str]] = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        tid = test_id(case)
        bad = case.find("failure")
        if bad is None:
            bad = case.find("error")
        if bad is not None:
            detail = (bad.text or "").strip().splitlines()
            text = bad.get("message") or (detail[-1] if detail else bad.tag)
            message = " ".join(text.split())[:MESSAGE_CHARS]
            if result.get(tid, ("",))[0] != "failed":
                result[tid] = ("failed", message)
        elif case.find("skipped") is not None:
            result.setdefault(tid, ("skipped", ""))
        else:
            result.setdefault(tid, ("passed", ""))
    return result


def tally(per_run: list[dict[str, tuple[str, str]]]) -> dict[str, TestTally]:
    """Per test over all runs (``per_run[k]`` = outcomes of run k + 1)."""
    tests: dict[str, TestTally] = {}
    for k, run in enumerate(per_run, start=1):
        for tid, (outcome, message) in run.items():
            t = tests.setdefault(tid, TestTally())
            if outcome == "skipped":
                t.skipped += 1
                continue
            t.runs += 1
            if outcome == "failed":
                t.failures += 1
                if t.first_failure_run is None:
                    t.first_failure_run, t.first_failure = k, message
    return tests


# --- what a run leaves behind ----------------------------------------------------------------------
def marked_processes(tag: str) -> list[tuple[int, str]]:
    """``(pid, command line)`` of live processes whose environment holds ``MARKER=tag``."""
    needle = f"{MARKER}={tag}\0".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle not in (entry / "environ").read_bytes():
                continue
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:  # gone meanwhile, or a kernel thread
            continue
        found.append((int(entry.name), cmd[:200]))
    return found


def shm_files() -> set[str]:
    try:
        return {p.name for p in shm_clean.SHM.iterdir() if "fastrtps" in p.name}
    except OSError:
        return set()


def domain_of_port_file(name: str) -> int | None:
    """Fast DDS port ``7400 + 250 * domain + offset`` (RTPS well-known ports) -> domain, or None."""
    m = _PORT_FILE.search(name)
    return None if m is None else (int(m.group(1)) - 7400) // 250


# --- the hunt --------------------------------------------------------------------------------------
def clone_parent() -> Path:
    """A folder whose parent chain holds ``shared/vendor/ros2-jazzy-python`` (as CI's clone has)."""
    d = ROOT
    while d != d.parent:
        if (d / "shared" / "vendor" / "ros2-jazzy-python").is_dir() and d != ROOT:
            return d
        d = d.parent
    print("[flake-hunt] no shared/vendor/ros2-jazzy-python above this checkout: the clone will not "
          "find the vendored ROS 2 tools (launch tests skipped)", file=sys.stderr)
    return Path(tempfile.gettempdir())


def make_clone(keep: bool) -> tuple[Path, str]:
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.strip()
    if dirty:
        print("[flake-hunt] NOTE: uncommitted changes are not in the clone (it is HEAD, as CI sees it)",
              file=sys.stderr)
    tmp = Path(tempfile.mkdtemp(prefix=".flake-hunt-", dir=clone_parent()))
    clone = tmp / "minipamayo_ros"
    subprocess.run(["git", "clone", "--quiet", "--no-hardlinks", str(ROOT), str(clone)], check=True)
    commit = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=clone, capture_output=True,
                            text=True, check=True).stdout.strip()
    print(f"[flake-hunt] clone of {commit} in {clone}" + (" (kept)" if keep else ""), file=sys.stderr)
    return clone, commit


def start_hog() -> subprocess.Popen[bytes]:
    """One busy loop pinned to the last CPU (no marker: it is not a leftover of the run)."""
    env = {k: v for k, v in os.environ.items() if k != MARKER}
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"], env=env)
    os.sched_setaffinity(hog.pid, {max(os.sched_getaffinity(0))})
    return hog


def run_once(k: int, args: argparse.Namespace, clone: Path, out: Path, domain: int, tag: str,
             seed: int | None) -> tuple[RunRecord, dict[str, tuple[str, str]]]:
    loaded = args.load or k <= args.load_runs
    junit, log = out / f"run-{k}.xml", out / f"run-{k}.log"
    pytest_args = ["-p", "no:cacheprovider", f"--junitxml={junit}", "-o", "junit_family=xunit1"]
    if seed is not None:
        pytest_args += ["--random-order-bucket=module", f"--random-order-seed={seed}"]
    pytest_args += args.pytest_args
    env = {**os.environ, "MINIPAMAYO_TEST_DOMAIN_ID": str(domain), MARKER: f"{tag}/{k}"}
    shm_before = shm_files()
    hog = start_hog() if loaded else None
    load_before = os.getloadavg()[0]
    t0 = time.monotonic()
    try:
        with open(log, "wb") as f:
            rc = subprocess.run(["bash", "-c", 'source scripts/env.sh && exec python -m pytest "$@"',
                                 "pytest", *pytest_args], cwd=clone, env=env, stdout=f,
                                stderr=subprocess.STDOUT).returncode
    finally:
        if hog is not None:
            hog.kill()
            hog.wait()
    rec = RunRecord(k, loaded, seed, rc, round(time.monotonic() - t0, 1), round(load_before, 2),
                    round(os.getloadavg()[0], 2))
    time.sleep(2.0)  # a process stopped at the very end of the session gets to exit
    for pid, cmd in marked_processes(f"{tag}/{k}"):
        rec.leftover_processes.append(f"{pid}: {cmd}")
        try:
            os.kill(pid, signal.SIGKILL)  # ours (marked), so the next run starts clean
        except ProcessLookupError:
            pass
    new = sorted(shm_files() - shm_before)
    rec.shm_zombies = shm_clean.ownerless(set(new) & shm_clean.segments())
    rec.shm_ports = [n for n in new if domain_of_port_file(n) == domain]
    results: dict[str, tuple[str, str]] = {}
    if junit.exists():
        results = outcomes(junit)
    else:
        tail = log.read_text(errors="replace").strip().splitlines()[-1:] if log.exists() else []
        rec.note = f"no JUnit report (pytest exit {rc}): {' '.join(tail)[:MESSAGE_CHARS]}"
    rec.tests = sum(1 for o, _ in results.values() if o != "skipped")
    rec.failed = sum(1 for o, _ in results.values() if o == "failed")
    rec.skipped = sum(1 for o, _ in results.values() if o == "skipped")
    return rec, results


def replay_command(seed: int | None, pytest_args: list[str]) -> str:
    cmd = "source scripts/env.sh && python -m pytest"
    if seed is not None:
        cmd += f" --random-order-bucket=module --random-order-seed={seed}"
    return cmd + "".join(f" {a}" for a in pytest_args)


def markdown(meta: dict[str, object], runs: list[RunRecord], tests: dict[str, TestTally]) -> str:
    lines = [f"# Flake hunt {meta['started']}", "",
             f"Commit `{meta['commit']}`, {meta['cpus']} CPUs, {len(runs)} run(s) of `python -m pytest "
             f"{' '.join(meta['pytest_args']) or '(whole suite)'}` from a fresh clone; ROS domain "  # type: ignore[arg-type]
             f"{meta['domain']}; load = one busy loop pinned to CPU {meta['hog_cpu']}; shuffle: "
             f"pytest-random-order, bucket module.", "",
             "| run | load | seed | exit | s | load avg before/after | tests | failed | skipped | "
             "leftover processes | /dev/shm: ownerless segments / port files (this domain) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in runs:
        procs = "; ".join(r.leftover_processes) or "none"
        seed = "-" if r.seed is None else r.seed
        lines.append(f"| {r.index} | {'yes' if r.loaded else 'no'} | {seed} | "
                     f"{r.exit_code} | {r.seconds:.0f} | {r.load_avg_before} / {r.load_avg_after} | "
                     f"{r.tests} | {r.failed} | {r.skipped} | {procs} | {len(r.shm_zombies)} / "
                     f"{len(r.shm_ports)} |" + (f" {r.note}" if r.note else ""))
    failing = sorted(((tid, t) for tid, t in tests.items() if t.failures),
                     key=lambda item: (-item[1].failures, item[0]))
    total_fail = sum(t.failures for t in tests.values())
    lines += ["", f"{len(tests)} tests, {total_fail} failure(s) in {len(runs)} run(s); "
                  f"{len(failing)} test(s) failed at least once.", ""]
    if failing:
        lines += ["| test | runs | failures | first failure (run: message) |", "|---|---|---|---|"]
        for tid, t in failing:
            msg = t.first_failure.replace("|", "\\|")
            lines.append(f"| `{tid}` | {t.runs} | {t.failures} | {t.first_failure_run}: {msg} |")
        lines += ["", "Replay a failed run's order (in the clone, or any checkout of the same commit):", ""]
        for r in runs:
            if r.failed or r.exit_code:
                lines.append(f"- run {r.index}: `{replay_command(r.seed, meta['pytest_args'])}`"  # type: ignore[arg-type]
                             + (" (with a busy loop on one core)" if r.loaded else ""))
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    argv = list(sys.argv[1:] if argv is None else argv)
    pytest_args: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, pytest_args = argv[:cut], argv[cut + 1:]
    p = argparse.ArgumentParser(prog="scripts/flake_hunt.sh", description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=5, help="number of whole-suite runs (default 5)")
    p.add_argument("--load", action="store_true", help="a busy loop on one CPU during every run")
    p.add_argument("--load-runs", type=int, default=0, metavar="M",
                   help="only the first M runs under load (e.g. --runs 10 --load-runs 5)")
    p.add_argument("--shuffle", action="store_true", help="shuffled order (pytest-random-order)")
    p.add_argument("--seed", type=int, default=None,
                   help="first shuffle seed (run k uses seed + k - 1; default: random, printed)")
    p.add_argument("--out", type=Path, default=None, help="report folder (default results/flake-hunt-<time>)")
    p.add_argument("--keep", action="store_true", help="keep the clone (default: removed at the end)")
    args = p.parse_args(argv)
    if args.runs < 1:
        p.error("--runs must be >= 1")
    args.pytest_args = pytest_args
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from minipamayo_ros.dds_env import lease_domain_id

    started = time.strftime("%Y%m%d-%H%M%S")
    out = (args.out or ROOT / "results" / f"flake-hunt-{started}").resolve()
    out.mkdir(parents=True, exist_ok=True)
    domain = lease_domain_id()  # held until this process exits: no other session gets it meanwhile
    if args.shuffle and importlib.util.find_spec("random_order") is None:
        print("[flake-hunt] --shuffle needs pytest-random-order (requirements/dev.txt, "
              "scripts/setup.sh --dev)", file=sys.stderr)
        return 2
    first_seed = None
    if args.shuffle:
        first_seed = args.seed if args.seed is not None else random.randrange(1, 10**6)
    if first_seed is not None:
        print(f"[flake-hunt] shuffle seeds {first_seed}..{first_seed + args.runs - 1} (--seed {first_seed} "
              "replays this hunt)", file=sys.stderr)
    clone, commit = make_clone(args.keep)
    meta: dict[str, object] = {"started": started, "commit": commit, "cpus": os.cpu_count(), "domain": domain,
                               "hog_cpu": max(os.sched_getaffinity(0)), "pytest_args": args.pytest_args,
                               "clone": str(clone), "first_seed": first_seed}
    runs: list[RunRecord] = []
    per_run: list[dict[str, tuple[str, str]]] = []
    try:
        with open(out / "setup.log", "wb") as f:
            subprocess.run(["bash", "scripts/setup.sh", "--dev"], cwd=clone, stdout=f,
                           stderr=subprocess.STDOUT, check=True)
        for k in range(1, args.runs + 1):
            seed = None if first_seed is None else first_seed + k - 1
            rec, results = run_once(k, args, clone, out, domain, started, seed)
            runs.append(rec)
            per_run.append(results)
            print(f"[flake-hunt] run {k}/{args.runs} ({'load' if rec.loaded else 'no load'}"
                  f"{'' if seed is None else f', seed {seed}'}): exit {rec.exit_code}, {rec.tests} tests, "
                  f"{rec.failed} failed, {rec.skipped} skipped in {rec.seconds:.0f} s; leftover processes "
                  f"{len(rec.leftover_processes)}, ownerless /dev/shm segments {len(rec.shm_zombies)}"
                  + (f"; {rec.note}" if rec.note else ""), file=sys.stderr)
            tests = tally(per_run)
            (out / "flake-hunt.md").write_text(markdown(meta, runs, tests))
            (out / "flake-hunt.json").write_text(json.dumps(
                {"meta": meta, "runs": [asdict(r) for r in runs],
                 "tests": {tid: asdict(t) for tid, t in sorted(tests.items())}}, indent=1))
    finally:
        if not args.keep:
            shutil.rmtree(clone.parent, ignore_errors=True)
    print(f"[flake-hunt] report: {out / 'flake-hunt.md'}", file=sys.stderr)
    print((out / "flake-hunt.md").read_text() if runs else "no run finished")
    return 0 if runs and all(r.exit_code == 0 and r.failed == 0 for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
