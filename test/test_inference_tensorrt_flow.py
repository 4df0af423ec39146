"""The TensorRT backend's control flow, run end to end with stand-ins for TensorRT and CUDA.

TensorRT cannot be installed here. Its API is type-checked against the real stubs in
test_tensorrt_typecheck.py, and the CUDA buffer code ran on an H100; what is left untested there is
this backend's own logic: cache -> build (with progress) -> deserialize -> name-based binding ->
infer -> outputs, and rebuild when the TensorRT version changes. So this test injects a minimal
``tensorrt`` module whose "engine" executes the ONNX file with ONNX Runtime, reading its inputs
from and writing its outputs to the addresses the backend bound (host memory standing in for
device memory). The stand-in implements only what the TensorRT 10 docs specify for the calls used.
The backend module is imported fresh against the stand-in and removed again afterwards.
"""

from __future__ import annotations

import ctypes
import importlib
import importlib.machinery
import json
import sys
import types
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from test_inference_cuda_buffers import HostMemoryApi
from test_inference_graphs import policy_manifest, reference_outputs, sample_inputs

from minipamayo_ros.inference.backend import BackendError, BackendOptions
from minipamayo_ros.inference.cuda_buffers import CudaRuntime, GpuInfo

_NP = {"FLOAT": np.float32, "HALF": np.float16, "INT32": np.int32, "INT64": np.int64, "UINT8": np.uint8,
       "BOOL": np.bool_, "INT8": np.int8}
_ORT = {"tensor(float)": "FLOAT", "tensor(uint8)": "UINT8",
        "tensor(int64)": "INT64",
        "tensor(int32)": "INT32"}


def fake_tensorrt(version: str, builds: list[str],
                  launch: Callable[[int, Callable[[], None]], None]) -> types.ModuleType:
    """A ``tensorrt`` stand-in: the parts of the TensorRT 10 Python API the backend uses.

    ``launch(stream_handle, work)`` queues the engine's execution on the CUDA stream it was given
    (``execute_async_v3`` is asynchronous: it runs after the input copies queued before it, and its
    outputs exist only once that stream is synchronized)."""
    import onnxruntime as ort

    trt = types.ModuleType("tensorrt")
    trt.__spec__ = importlib.machinery.ModuleSpec("tensorrt", None)
    trt.__version__ = version

    class _Severity(int):
        pass

    class ILogger:
        Severity = types.SimpleNamespace(INTERNAL_ERROR=_Severity(0), ERROR=_Severity(1),
                                         WARNING=_Severity(2), INFO=_Severity(3), VERBOSE=_Severity(4))

        def __init__(self) -> None:
            pass

    class IProgressMonitor:
        def __init__(self) -> None:
            pass

    trt.ILogger, trt.IProgressMonitor = ILogger, IProgressMonitor
    trt.DataType = types.SimpleNamespace(**{k: k for k in _NP})
    trt.nptype = lambda dt: _NP[dt]
    trt.TensorIOMode = types.SimpleNamespace(INPUT="INPUT", OUTPUT="OUTPUT")
    trt.MemoryPoolType = types.SimpleNamespace(WORKSPACE="WORKSPACE")
    trt.BuilderFlag = types.SimpleNamespace(FP16="FP16", BF16="BF16", INT8="INT8")
    trt.Dims = lambda shape: tuple(shape)

    trt.LayerType = types.SimpleNamespace(QUANTIZE="QUANTIZE", DEQUANTIZE="DEQUANTIZE", OTHER="OTHER")

    class Network:
        def __init__(self) -> None:
            self.inputs: list[types.SimpleNamespace] = []
            self.layers: list[str] = []

        @property
        def num_layers(self) -> int:
            return len(self.layers)

        def get_layer(self, i: int) -> types.SimpleNamespace:
            return types.SimpleNamespace(type=self.layers[i])

        @property
        def num_inputs(self) -> int:
            return len(self.inputs)

        def get_input(self, i: int) -> types.SimpleNamespace:
            return self.inputs[i]

    class OnnxParser:
        def __init__(self, network: Network, logger: ILogger) -> None:
            self.network, self.num_errors = network, 0

        def parse_from_file(self, path: str) -> bool:
            sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
            self.network.inputs = [types.SimpleNamespace(name=i.name, shape=tuple(i.shape))
                                   for i in sess.get_inputs()]
            import onnx

            ops = {"QuantizeLinear": "QUANTIZE", "DequantizeLinear": "DEQUANTIZE"}
            self.network.layers = [ops.get(n.op_type, "OTHER") for n in onnx.load(path).graph.node]
            self.network.path = path
            return True

    class Config:
        def __init__(self) -> None:
            self.flags: list[str] = []
            self.progress_monitor: IProgressMonitor | None = None

        def set_memory_pool_limit(self, pool: str, size: int) -> None:
            self.workspace = size

        def set_flag(self, flag: str) -> None:
            self.flags.append(flag)

        def add_optimization_profile(self, profile: object) -> int:
            return 0

    class Builder:
        def __init__(self, logger: ILogger) -> None:
            pass

        def create_network(self, flags: int = 0) -> Network:
            return Network()

        def create_builder_config(self) -> Config:
            return Config()

        def create_optimization_profile(self) -> object:
            return types.SimpleNamespace(set_shape=lambda *a: None)

        def build_serialized_network(self, network: Network, config: Config) -> bytes:
            mon = config.progress_monitor
            assert mon is not None
            mon.phase_start("Building engine", None, 2)
            mon.phase_start("Tactic selection", "Building engine", 3)
            for step in range(3):
                assert mon.step_complete("Tactic selection", step)
            mon.phase_finish("Tactic selection")
            mon.phase_finish("Building engine")
            builds.append(network.path)
            return json.dumps({"onnx": network.path, "flags": config.flags}).encode()

    class Context:
        def __init__(self, engine: Engine) -> None:
            self.engine, self.addr, self.shapes = engine, {}, {}

        def set_input_shape(self, name: str, shape: tuple[int, ...]) -> bool:
            self.shapes[name] = tuple(shape)
            return True

        def get_tensor_shape(self, name: str) -> tuple[int, ...]:
            return self.shapes.get(name) or self.engine.out_shapes[name]

        def set_tensor_address(self, name: str, ptr: int) -> bool:
            self.addr[name] = ptr
            return True

        def execute_async_v3(self, stream_handle: int) -> bool:
            addr, shapes = dict(self.addr), dict(self.shapes)  # bound at enqueue time

            def run() -> None:
                feed = {}
                for i in self.engine.sess.get_inputs():
                    dt = np.dtype(_NP[_ORT[i.type]])
                    n = int(np.prod(shapes[i.name])) * dt.itemsize
                    raw = ctypes.string_at(addr[i.name], n)
                    feed[i.name] = np.frombuffer(raw, dt).reshape(shapes[i.name])
                names = [o.name for o in self.engine.sess.get_outputs()]
                for name, value in zip(names, self.engine.sess.run(names, feed), strict=True):
                    value = np.ascontiguousarray(value)
                    ctypes.memmove(addr[name], value.ctypes.data, value.nbytes)

            launch(stream_handle, run)
            return True

    class Engine:
        def __init__(self, data: bytes) -> None:
            meta = json.loads(data)
            self.sess = ort.InferenceSession(meta["onnx"], providers=["CPUExecutionProvider"])
            ins, outs = self.sess.get_inputs(), self.sess.get_outputs()
            self.io = [(a.name, "INPUT", a) for a in ins] + [(a.name, "OUTPUT", a) for a in outs]
            self.out_shapes = {a.name: tuple(a.shape) for a in outs}

        @property
        def num_io_tensors(self) -> int:
            return len(self.io)

        def get_tensor_name(self, i: int) -> str:
            return self.io[i][0]

        def _arg(self, name: str):
            return next(a for n, _, a in self.io if n == name)

        def get_tensor_mode(self, name: str) -> str:
            return next(m for n, m, _ in self.io if n == name)

        def get_tensor_shape(self, name: str) -> tuple[int, ...]:
            return tuple(self._arg(name).shape)

        def get_tensor_dtype(self, name: str) -> str:
            return _ORT[self._arg(name).type]

        def create_execution_context(self) -> Context:
            return Context(self)

    class Runtime:
        def __init__(self, logger: ILogger) -> None:
            pass

        def deserialize_cuda_engine(self, data: bytes) -> Engine:
            return Engine(data)

    trt.Builder, trt.OnnxParser, trt.Runtime = Builder, OnnxParser, Runtime
    return trt


@pytest.fixture()
def trt_backend_module(monkeypatch):
    """Import tensorrt_backend against the stand-in; yields (module, builds, set_version)."""
    builds: list[str] = []
    apis: list[HostMemoryApi] = []

    def launch(handle: int, work: Callable[[], None]) -> None:
        next(a for a in apis if a.owns_stream(handle)).launch(handle, work)

    monkeypatch.setitem(sys.modules, "tensorrt", fake_tensorrt("10.3.0", builds, launch))
    monkeypatch.delitem(sys.modules, "minipamayo_ros.inference.tensorrt_backend", raising=False)
    mod = importlib.import_module("minipamayo_ros.inference.tensorrt_backend")

    def host_cuda(device: int = 0, binding: str = "auto") -> CudaRuntime:
        api = HostMemoryApi()
        api.info = lambda: GpuInfo("Orin", (8, 7), 8 << 30)  # type: ignore[attr-defined]
        api.version = lambda: "host memory"  # type: ignore[attr-defined]
        apis.append(api)
        return CudaRuntime(api)

    monkeypatch.setattr(mod, "open_cuda", host_cuda)
    yield mod, builds, apis
    sys.modules.pop("minipamayo_ros.inference.tensorrt_backend", None)


def test_build_bind_infer_cache_and_rebuild(trt_backend_module, tmp_path: Path) -> None:
    mod, builds, apis = trt_backend_module
    manifest, _ = policy_manifest(tmp_path)
    lines: list[str] = []
    options = BackendOptions(backend="tensorrt", precision="fp16", engine_cache_dir=str(tmp_path / "cache"),
                             extra={"build_log": lines.append, "progress_interval_s": 0.0})
    backend = mod.TensorRTBackend(manifest, options)
    assert len(builds) == 1 and any("Tactic selection 3/3" in line for line in lines)
    backend.warm_up()
    x = sample_inputs()
    out = backend.infer(x)
    ref = reference_outputs(**x)
    for spec in manifest.outputs:
        assert out[spec.name].shape == spec.shape and out[spec.name].dtype == np.dtype(spec.dtype)
        np.testing.assert_allclose(out[spec.name], ref[spec.name], rtol=1e-5, atol=1e-5)
    out["waypoints"][...] = 0  # the caller's copy, not the pinned buffer
    np.testing.assert_allclose(backend.infer(x)["waypoints"], ref["waypoints"], atol=1e-5)
    d = backend.describe()
    assert d["backend"] == "tensorrt" and d["device"] == "Orin (sm_87)" and d["tensorrt"] == "10.3.0"
    assert Path(d["engine"]).name == "test-policy.fp16.engine"
    backend.close()
    assert apis[0].live == {}  # every pinned/device buffer released
    # second start: the cached engine is reused, no build
    again = mod.TensorRTBackend(manifest, options)
    assert len(builds) == 1 and any("engine cache hit" in line for line in lines)
    again.close()
    # JetPack upgrade: another TensorRT version never loads the old engine
    sys.modules["tensorrt"].__version__ = "10.7.0"
    upgraded = mod.TensorRTBackend(manifest, options)
    assert len(builds) == 2 and any("tensorrt_version: 10.3.0 -> 10.7.0" in line for line in lines)
    upgraded.close()


def test_manifest_engine_mismatch_and_bad_precision(trt_backend_module, tmp_path: Path) -> None:
    mod, _, apis = trt_backend_module
    manifest, _ = policy_manifest(tmp_path)
    opts = BackendOptions(backend="tensorrt", engine_cache_dir=str(tmp_path / "c"),
                          extra={"build_log": print})
    renamed = manifest.__class__(**{**manifest.__dict__, "outputs": manifest.outputs[:3]})
    with pytest.raises(BackendError, match="does not match manifest"):
        mod.TensorRTBackend(renamed, opts)
    assert apis[-1].live == {}  # failed load released its buffers
    int8 = BackendOptions(backend="tensorrt", precision="int8", engine_cache_dir=str(tmp_path / "c"),
                          extra={"build_log": print})
    with pytest.raises(BackendError, match="int8 needs an explicitly quantized"):
        mod.TensorRTBackend(manifest, int8)  # the float test graph has no Q/DQ nodes
    with pytest.raises(BackendError, match="unknown TensorRT precision 'fp8'"):
        mod.TensorRTBackend(manifest, BackendOptions(backend="tensorrt", precision="fp8"))


def test_factory_sends_build_progress_to_the_callers_logger(trt_backend_module, tmp_path: Path) -> None:
    """A node passes its ROS logger to create_backend: the (long) engine build must show up there."""
    from minipamayo_ros.inference.factory import create_backend

    manifest, _ = policy_manifest(tmp_path)
    lines: list[str] = []

    class NodeLogger:
        def info(self, msg: str) -> None:
            lines.append(msg)

    options = BackendOptions(backend="tensorrt", engine_cache_dir=str(tmp_path / "c"),
                             extra={"progress_interval_s": 0.0})
    backend = create_backend(manifest, options, logger=NodeLogger())
    assert lines[0].startswith(f"inference backend for {manifest.model_id}: tensorrt")
    assert any("building TensorRT engine" in line for line in lines)
    assert any(line.startswith("[engine build") for line in lines)
    assert backend.describe()["selection"] == "backend=tensorrt requested"
    backend.close()


@pytest.mark.parametrize(("requested", "used"), [("lowest", "0"), (-9, "-5"), (None, "default")])
def test_cuda_stream_priority_reaches_the_engine_stream(trt_backend_module, tmp_path: Path,
                                                        requested, used: str) -> None:
    """``extra["cuda_stream_priority"]`` (the torch backend's key) sets the priority of the stream
    the engine is enqueued on, clamped to the device's range [-5, 0]; describe() reports it."""
    mod, _, apis = trt_backend_module
    manifest, _ = policy_manifest(tmp_path)
    extra: dict = {"build_log": print}
    if requested is not None:
        extra["cuda_stream_priority"] = requested
    backend = mod.TensorRTBackend(manifest, BackendOptions(backend="tensorrt", extra=extra,
                                                           engine_cache_dir=str(tmp_path / "c")))
    assert backend.describe()["cuda_stream_priority"] == used
    if requested is not None:
        assert apis[-1].stream_priority(backend._stream.native) == int(used)  # what the "driver" runs
    x = sample_inputs()
    np.testing.assert_allclose(backend.infer(x)["waypoints"], reference_outputs(**x)["waypoints"], atol=1e-5)
    backend.close()
