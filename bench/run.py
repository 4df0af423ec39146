"""Run every benchmark (or some) and write one JSON per benchmark plus summary.md.

    python -m bench.run [--only NAME ...] [--out results/bench-<time>] [--quick]

A benchmark is a module ``bench/bench_<name>.py`` with

    def run(out_dir: pathlib.Path, quick: bool) -> BenchResult

``quick`` shortens durations for a smoke check; reported figures come from full runs.
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import sys
import time
import traceback
from pathlib import Path

from bench.result import BenchResult

BENCH_DIR = Path(__file__).resolve().parent
#: run only when named with --only (too long for a run of everything)
ON_REQUEST = {"churn_soak": "30 minutes of churn"}


def discover() -> list[str]:
    return sorted(p.stem.removeprefix("bench_") for p in BENCH_DIR.glob("bench_*.py"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--only", nargs="*", default=None, help="benchmark names (default: all)")
    parser.add_argument("--out", type=Path, default=None, help="results folder")
    parser.add_argument("--quick", action="store_true", help="short smoke run")
    args = parser.parse_args(argv)

    names = args.only or [n for n in discover() if n not in ON_REQUEST]
    if not args.only:
        print(f"[bench] not run without --only: {', '.join(f'{k} ({v})' for k, v in ON_REQUEST.items())}",
              flush=True)
    unknown = sorted(set(names) - set(discover()))
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; available: {discover()}")
    out = args.out or Path("results") / time.strftime("bench-%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)

    host = {"python": sys.version.split()[0], "machine": platform.machine(),
            "processor": platform.processor(), "node": platform.node()}
    sections = [f"# Benchmark summary\n\nhost: `{json.dumps(host)}`; quick={args.quick}\n"]
    failed = []
    for name in names:
        print(f"[bench] {name} ...", flush=True)
        t0 = time.monotonic()
        try:
            module = importlib.import_module(f"bench.bench_{name}")
            result: BenchResult = module.run(out, args.quick)
        except Exception:
            traceback.print_exc()
            failed.append(name)
            sections.append(f"## {name}\n\nFAILED (see console)\n")
            continue
        payload = {"benchmark": name, "host": host, "quick": args.quick,
                   "wall_s": round(time.monotonic() - t0, 2), **result.as_dict()}
        (out / f"{name}.json").write_text(json.dumps(payload, indent=2))
        sections.append(f"## {name}\n\n{result.summary_md}\n")
        print(f"[bench] {name} done in {payload['wall_s']} s", flush=True)
    (out / "summary.md").write_text("\n".join(sections))
    print(f"[bench] results: {out}/ (summary.md + one JSON per benchmark)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
