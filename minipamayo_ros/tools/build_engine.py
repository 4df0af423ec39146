"""Build (or reuse) the TensorRT engine of shipped models, like trtexec for this model family.

    ros2 run minipamayo_ros build_engine --manifest engines/minipamayo-tiny-policy.manifest.json
    ros2 run minipamayo_ros build_engine --engines-dir <share>/minipamayo_ros/engines --precision fp16

Each manifest's ONNX is hash-checked, then the engine cache is consulted (key: ONNX sha256,
TensorRT version, GPU, precision, builder settings): a valid engine is reused, anything else is
rebuilt with progress on the console (Orin Nano builds take minutes). The engine is then
timed (``--runs``, after warm-up) and described. Run it once after installing or upgrading
JetPack so the nodes start without a build. Exit status: 0 ok, 1 build/load failed, 2 no TensorRT.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np

from minipamayo_ros.inference.backend import BackendError, BackendOptions, concrete_shape
from minipamayo_ros.inference.engine_cache import EngineCacheError
from minipamayo_ros.inference.factory import import_tensorrt, tensorrt_availability
from minipamayo_ros.latency import summarize
from minipamayo_ros.manifest import ManifestError, load_manifest


def manifests_in(args: argparse.Namespace) -> list[Path]:
    paths = [Path(p) for p in args.manifest or []]
    if args.engines_dir:
        paths += sorted(Path(args.engines_dir).glob("*.manifest.json"))
    return paths


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="build_engine", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--manifest", action="append", help="model manifest (repeatable)")
    p.add_argument("--engines-dir", help="build every *.manifest.json in this directory")
    p.add_argument("--precision", default="fp16", choices=["fp32", "fp16", "bf16", "int8"],
                   help="fp16 (default); int8 needs the quantized (Q/DQ) ONNX variant")
    p.add_argument("--cache-dir", default="", help="engine cache directory (default: beside the ONNX, "
                   "or ~/.cache/minipamayo_ros/engines if that is read-only)")
    p.add_argument("--workspace-mb", type=int, default=1024, help="builder workspace limit [MiB]")
    p.add_argument("--force", action="store_true", help="rebuild even if a valid cached engine exists")
    p.add_argument("--runs", type=int, default=100, help="timed inferences after the build (0: none)")
    p.add_argument("--progress-interval", type=float, default=5.0, help="seconds between progress lines")
    p.add_argument("--device", default="cuda:0")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    paths = manifests_in(args)
    if not paths:
        parser().error("give --manifest and/or --engines-dir")
    trt, why = import_tensorrt()
    ok, reason = tensorrt_availability()
    if trt is None or not ok:
        print(f"build_engine: TensorRT is not usable here: {reason or why}. On the Jetson: JetPack 6 "
              "(python3-libnvinfer) plus cuda-python (pip install cuda-python) or pycuda.", file=sys.stderr)
        return 2
    from minipamayo_ros.inference.tensorrt_backend import TensorRTBackend

    failed = 0
    for path in paths:
        try:
            manifest = load_manifest(path)
            options = BackendOptions(backend="tensorrt", precision=args.precision,
                                     engine_cache_dir=args.cache_dir, force_rebuild=args.force,
                                     device=args.device, warmup_runs=10,
                                     extra={"workspace_mb": args.workspace_mb, "build_log": print,
                                            "progress_interval_s": args.progress_interval})
            backend = TensorRTBackend(manifest, options)
            backend.warm_up()
            ms = []
            dummy = {s.name: np.zeros(concrete_shape(s.shape), s.dtype) for s in manifest.inputs}
            for _ in range(args.runs):
                backend.infer(dummy)
                ms.append(backend.last_infer_ms)
            for k, v in backend.describe().items():
                print(f"  {k}: {v}")
            if ms:
                s = summarize(ms)
                print(f"  latency over {s.count} runs (H2D + engine + D2H): p50 {s.p50:.2f} ms, "
                      f"p95 {s.p95:.2f} ms, p99 {s.p99:.2f} ms, max {s.max:.2f} ms")
            backend.close()
        except (ManifestError, BackendError, EngineCacheError) as exc:
            print(f"build_engine: {path}: {exc}", file=sys.stderr)
            failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
