"""GPU: the TensorRT backend's CUDA stream priorities, checked on a real GPU (no TensorRT needed).

    PYTHONPATH=. python3 -m bench.check_cuda_stream_priority --out $OUT     (on the lent GPU machine)

Exercises :mod:`minipamayo_ros.inference.cuda_buffers` through the cuda-python binding exactly as
``TensorRTBackend`` does: the device's priority range, streams created at ``"lowest"``,
``"highest"``, out-of-range ints (clamped) and the default, the priority the driver reports for each
(``cudaStreamGetPriority``) and its flags (non-blocking), and pinned host -> device -> device -> host
async copies plus a memset on the lowest- and highest-priority streams, synchronized and compared
bit for bit. A functional check, not a timing: the interference figures are bench_text_gpu.py's.
Writes ``cuda_stream_priority_<card>.json`` (``bench/gpu_cards.py``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.gpu_cards import result_path, stamp
from minipamayo_ros.inference.cuda_buffers import open_cuda


def _copies_round_trip(cuda: Any, stream: Any, nbytes: int, seed: int) -> dict[str, Any]:
    """htod -> dtod -> memset(src) -> dtoh on ``stream``; the data must come back unchanged."""
    n = nbytes // 4
    host_in = cuda.pinned((n,), np.float32)
    host_out = cuda.pinned((n,), np.float32)
    host_in.array[:] = np.random.default_rng(seed).standard_normal(n, dtype=np.float32)
    host_out.array[:] = 0.0
    a, b = cuda.device_buffer(host_in.nbytes), cuda.device_buffer(host_in.nbytes)
    t0 = time.perf_counter()
    cuda.copy_htod(a, host_in, stream)
    cuda.copy_dtod(b, a, host_in.nbytes, stream)
    cuda.memset(a, 0, stream)
    cuda.copy_dtoh(host_out, b, stream)
    stream.synchronize()
    ms = (time.perf_counter() - t0) * 1e3
    same = bool(np.array_equal(host_out.array, host_in.array))
    cuda.copy_dtoh(host_out, a, stream)
    stream.synchronize()
    zeroed = not host_out.array.any()
    return {"bytes": host_in.nbytes, "round_trip_equal": same, "memset_zeroed": zeroed,
            "wall_ms_incl_sync": round(ms, 3)}


def run(out: Path) -> dict[str, Any]:
    cuda = open_cuda(0, "cuda-python")
    api = cuda.api
    gpu = cuda.info()
    least, greatest = api.stream_priority_range()
    result: dict[str, Any] = {
        "what": "cuda_buffers (cuda-python runtime wrapper) stream priorities on a real GPU",
        "command": "PYTHONPATH=. python3 -m bench.check_cuda_stream_priority --out $OUT",
        "gpu": gpu.name, "sm": gpu.sm, "cuda": cuda.version(), "binding": cuda.binding,
        "python": sys.version.split()[0],
        "priority_range": {"least": least, "greatest": greatest},
        "streams": [],
    }
    try:
        import cuda.bindings as cb  # type: ignore[import-not-found]
        result["cuda_bindings_version"] = getattr(cb, "__version__", "?")
    except ImportError:
        pass
    streams = {}
    for requested in ("lowest", "highest", 100, -100, -1, None):
        s = cuda.stream(requested)
        flags = api._check(api.rt.cudaStreamGetFlags(s.native), "cudaStreamGetFlags")
        entry = {"requested": requested, "used": s.priority,
                 "driver_reports": api.stream_priority(s.native),
                 "non_blocking": int(flags) == int(api.rt.cudaStreamNonBlocking)}
        result["streams"].append(entry)
        streams[str(requested)] = s
    result["copies"] = {name: _copies_round_trip(cuda, streams[name], 64 << 20, seed)
                        for seed, name in enumerate(("lowest", "highest"))}
    expect = {"lowest": least, "highest": greatest, "100": least, "-100": greatest,
              "-1": min(max(-1, greatest), least), "None": 0}
    checks = {
        "used_equals_driver": all(e["used"] is None or e["used"] == e["driver_reports"]
                                  for e in result["streams"]),
        "resolved_as_expected": all(e["driver_reports"] == expect[str(e["requested"])]
                                    for e in result["streams"]),
        "all_non_blocking": all(e["non_blocking"] for e in result["streams"]),
        "copies_ok": all(c["round_trip_equal"] and c["memset_zeroed"] for c in result["copies"].values()),
    }
    try:
        import torch  # cross-check of the range only; the runtime path never imports torch

        result["torch_priority_range"] = list(torch.cuda.Stream.priority_range())
    except Exception as exc:  # torch missing or without that API
        result["torch_priority_range"] = f"n/a ({exc})"
    cuda.close()
    result["checks"] = checks
    result["ok"] = all(checks.values())
    out.mkdir(parents=True, exist_ok=True)
    result["measured_at"] = stamp()
    result_path(out, "cuda_stream_priority", gpu.name).write_text(json.dumps(result, indent=1) + "\n")
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results_gpu")
    res = run(ap.parse_args().out)
    print(json.dumps(res, indent=1))
    return 0 if res["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
