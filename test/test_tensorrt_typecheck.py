"""Type-check the TensorRT backend against the real TensorRT 10 Python API (``tensorrt-stubs``).

TensorRT cannot be installed on this machine, so this is what stands between a renamed or removed
TensorRT call and the robot: mypy --strict over the TensorRT backend (and the CUDA buffer, engine
cache and build progress modules it uses) against the stubs from PyPI
(requirements/stubs-nodeps.txt, 10.8 — the robot runs 10.3; the backend uses only API present in
both). A control file using TensorRT 8 API that TensorRT 10 removed must be *rejected*, which
proves the stubs are really consulted (not silently treated as ``Any``).

The published stubs need two repairs before mypy can read them (done on a temporary copy): plugin
methods with a parameter named ``in`` (a Python keyword) and one signature with a non-default
parameter after defaulted ones. Errors inside the stubs themselves are ignored.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CHECKED = ["minipamayo_ros/inference/tensorrt_backend.py", "minipamayo_ros/inference/cuda_buffers.py",
           "minipamayo_ros/inference/engine_cache.py", "minipamayo_ros/inference/build_progress.py"]

CONTROL = '''
import tensorrt as trt

def old_api(engine: trt.ICudaEngine, context: trt.IExecutionContext, builder: trt.Builder) -> None:
    engine.get_binding_index("image")          # removed in TensorRT 10
    context.execute_async_v2([0], 0)           # removed in TensorRT 10
    builder.max_workspace_size = 1 << 20       # removed in TensorRT 10
    context.set_tensor_address("image", "0")   # wrong type: address is an int
'''


def _stub_copy(dst: Path) -> Path:
    spec = importlib.util.find_spec("tensorrt_bindings")
    assert spec is not None and spec.submodule_search_locations, (
        "tensorrt-stubs is not installed: bash scripts/setup.sh --dev (requirements/stubs-nodeps.txt)")
    bindings = Path(next(iter(spec.submodule_search_locations)))
    shutil.copytree(bindings, dst / "tensorrt_bindings")
    shutil.copytree(bindings.parent / "tensorrt", dst / "tensorrt")
    stub = dst / "tensorrt_bindings" / "tensorrt.pyi"
    text = stub.read_text()
    text = re.sub(r"([(,] *)in: ", r"\1in_: ", text)  # parameter named after a keyword
    text = text.replace(", channel_axis: int) -> IScaleLayer", ", channel_axis: int = ...) -> IScaleLayer")
    stub.write_text(text)
    return dst


def test_tensorrt_backend_type_checks_against_tensorrt_stubs(tmp_path: Path) -> None:
    stubs = _stub_copy(tmp_path / "stubs")
    (tmp_path / "control_trt8_api.py").write_text(CONTROL)
    config = tmp_path / "mypy.ini"
    config.write_text(f"""[mypy]
python_version = 3.11
strict = True
follow_imports = silent
mypy_path = {stubs}
cache_dir = {tmp_path / "cache"}
[mypy-tensorrt_bindings.*]
ignore_errors = True
[mypy-tensorrt.*]
ignore_errors = True
[mypy-cuda.*]
ignore_missing_imports = True
[mypy-pycuda.*]
ignore_missing_imports = True
""")
    res = subprocess.run([sys.executable, "-m", "mypy", "--config-file", str(config), *CHECKED,
                          str(tmp_path / "control_trt8_api.py")],
                         cwd=REPO, capture_output=True, text=True, timeout=180)
    out = res.stdout + res.stderr
    errors = [line for line in out.splitlines() if ": error:" in line]
    ours = [e for e in errors if not e.startswith(str(tmp_path))]
    assert not ours, "mypy errors in the TensorRT backend:\n" + "\n".join(ours)
    control = [e for e in errors if "control_trt8_api.py" in e]
    for needle in ("get_binding_index", "execute_async_v2", "max_workspace_size", "set_tensor_address"):
        assert any(needle in e or _line_of(needle) in e for e in control), (
            f"stubs did not reject removed/mistyped API {needle}:\n{out}")


def _line_of(needle: str) -> str:
    """``control_trt8_api.py:<line>:`` of the CONTROL line containing ``needle``."""
    for i, line in enumerate(CONTROL.splitlines(), start=1):
        if needle in line:
            return f"control_trt8_api.py:{i}:"
    raise AssertionError(needle)
