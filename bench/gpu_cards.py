"""GPU result files named by the card that ran them, and the cards' data-sheet peaks.

The lent GPU machine may be an H100 or an H200 whatever was asked for, so a result file's name is
derived from the name the device reports (``torch.cuda.get_device_name``), never hard-coded:
``<bench>_<card slug>.json`` (``inference_gpu_h200.json``, ``inference_gpu_h100-80gb-hbm3.json``).
Summaries on a machine without CUDA read the newest committed result of a benchmark
(:func:`newest_result`: the ``measured_at`` stamp inside the file).
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results_gpu"

#: data-sheet peaks by card name (substring of the reported name, most specific first): HBM
#: bandwidth [GB/s] and dense tensor-core rates [TFLOPS / TOPS]
CARD_PEAKS: dict[str, dict[str, Any]] = {
    "H100 PCIe": {"bw_gbs": 2000.0, "tflops": {"fp16": 756.0, "bf16": 756.0, "int8": 1513.0, "fp32": 51.0}},
    "H100 NVL": {"bw_gbs": 3900.0, "tflops": {"fp16": 835.0, "bf16": 835.0, "int8": 1671.0, "fp32": 60.0}},
    "H100": {"bw_gbs": 3350.0, "tflops": {"fp16": 989.0, "bf16": 989.0, "int8": 1979.0, "fp32": 67.0}},
    "H200": {"bw_gbs": 4800.0, "tflops": {"fp16": 989.0, "bf16": 989.0, "int8": 1979.0, "fp32": 67.0}},
}


def card_slug(gpu_name: str) -> str:
    """File-name form of a card name: ``NVIDIA H100 80GB HBM3`` -> ``h100-80gb-hbm3``."""
    name = re.sub(r"^nvidia\s+", "", gpu_name.strip().lower())
    return re.sub(r"[^a-z0-9]+", "-", name).strip("-") or "unknown-gpu"


def card_peaks(gpu_name: str) -> dict[str, Any] | None:
    """Data-sheet peaks of ``gpu_name`` or None for a card not listed."""
    return next((v for k, v in CARD_PEAKS.items() if k.lower() in gpu_name.lower()), None)


def result_path(out_dir: Path, bench: str, gpu_name: str) -> Path:
    return Path(out_dir) / f"{bench}_{card_slug(gpu_name)}.json"


def stamp() -> str:
    """``measured_at`` value (UTC, ISO 8601) written into every GPU result."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def newest_result(bench: str, results_dir: Path = RESULTS_DIR,
                  require: str | None = None) -> tuple[Path, dict[str, Any]] | None:
    """The committed ``<bench>_<card>.json`` with the latest ``measured_at`` (files without one
    count as oldest; ``_run<N>`` extra runs are ignored), optionally only files holding key
    ``require``; None when there is none."""
    best: tuple[str, Path, dict[str, Any]] | None = None
    for path in sorted(Path(results_dir).glob(f"{bench}_*.json")):
        if "_run" in path.stem[len(bench):]:
            continue
        data = json.loads(path.read_text())
        if require is not None and require not in data:
            continue
        key = str(data.get("measured_at", ""))
        if best is None or key > best[0]:
            best = (key, path, data)
    return None if best is None else (best[1], best[2])
