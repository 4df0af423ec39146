"""CudaRuntime / buffer bookkeeping of cuda_buffers.py without a GPU.

The CUDA binding is replaced by host memory (ctypes allocations, memmove for copies): what is tested
is this module's own logic — numpy views over raw pinned pointers, sizes, copy bounds, ownership and
release order. The real CUDA path (cuda-python on an H100) ran in bench/bench_inference_gpu.py
(`cuda_buffers` section of bench/results_gpu/inference_gpu_h100.json).
"""

from __future__ import annotations

import ctypes
import logging

import numpy as np
import pytest

from minipamayo_ros.inference import cuda_buffers
from minipamayo_ros.inference.cuda_buffers import CudaError, CudaRuntime, open_cuda


class DriverError(RuntimeError):
    """What a real driver reports for misuse (double free, use after context release, ...)."""


class HostMemoryApi:
    """Stands in for the CUDA runtime with its rules, not as a recorder of calls.

    'device' and 'pinned' memory are ctypes host buffers. Like the real thing, copies and memsets
    are *asynchronous*: they run only when their stream is synchronized (so data is visible only
    after the right stream was synchronized); an async host<->device copy needs page-locked host
    memory (pycuda's ``memcpy_*_async`` requires it; with pageable memory cuda-python's copy is no
    DMA) and a device address on the device side; freeing unknown/freed memory, destroying a stream
    with queued work, or closing the context with live allocations or streams are errors. Stream
    priorities behave as on a Hopper GPU: range (least, greatest) = (0, -5), out-of-range values
    silently clamped by the driver.
    """

    binding = "host-memory-test"
    PRIORITY_RANGE = (0, -5)

    def __init__(self) -> None:
        self._live: dict[int, ctypes.Array] = {}
        self._kind: dict[int, str] = {}  # ptr -> "pinned" | "device"
        self._streams: dict[int, list] = {}  # id -> queued operations
        self._priority: dict[int, int] = {}  # id -> priority the "driver" uses
        self._closed = False

    def _check_open(self) -> None:
        if self._closed:
            raise DriverError("context already released")

    def _alloc(self, nbytes: int, kind: str) -> int:
        self._check_open()
        buf = (ctypes.c_uint8 * nbytes)()
        self._live[ctypes.addressof(buf)] = buf
        self._kind[ctypes.addressof(buf)] = kind
        return ctypes.addressof(buf)

    def malloc_host(self, nbytes: int) -> int:
        return self._alloc(nbytes, "pinned")

    def malloc(self, nbytes: int) -> int:
        return self._alloc(nbytes, "device")

    def _require(self, ptr: int, nbytes: int, kind: str) -> None:
        """``ptr .. ptr + nbytes`` must lie inside one live allocation of ``kind``."""
        for base, buf in self._live.items():
            if self._kind[base] == kind and base <= ptr and ptr + nbytes <= base + len(buf):
                return
        raise DriverError(f"{nbytes} B at {ptr:#x} is not inside live {kind} memory")

    def _free(self, ptr: int) -> None:
        self._check_open()
        if ptr not in self._live:
            raise DriverError(f"free of unknown or freed pointer {ptr:#x}")
        del self._live[ptr], self._kind[ptr]

    free_host = free = _free

    def stream_priority_range(self) -> tuple[int, int]:
        return self.PRIORITY_RANGE

    def stream_create(self, priority: int | None = None) -> object:
        self._check_open()
        s = object()
        self._streams[id(s)] = []
        least, greatest = self.PRIORITY_RANGE
        self._priority[id(s)] = least if priority is None else min(max(priority, greatest), least)
        return s

    def stream_priority(self, stream: object) -> int:
        return self._priority[id(stream)]

    def stream_handle(self, stream: object) -> int:
        return id(stream)

    def _enqueue(self, stream: object, op) -> None:
        self._check_open()
        if id(stream) not in self._streams:
            raise DriverError("operation on a destroyed or unknown stream")
        self._streams[id(stream)].append(op)

    @property
    def live(self) -> dict[int, ctypes.Array]:
        """Allocations not yet freed (address -> buffer)."""
        return dict(self._live)

    def owns_stream(self, handle: int) -> bool:
        return handle in self._streams

    def launch(self, handle: int, kernel) -> None:
        """Queue work on the stream with integer ``handle`` (what ``execute_async_v3`` gets): it runs
        in stream order, after the copies queued before it."""
        self._check_open()
        if handle not in self._streams:
            raise DriverError(f"launch on unknown stream handle {handle:#x}")
        self._streams[handle].append(kernel)

    def stream_sync(self, stream: object) -> None:
        self._check_open()
        ops, self._streams[id(stream)] = self._streams[id(stream)], []
        for op in ops:
            op()

    def stream_destroy(self, stream: object) -> None:
        self._check_open()
        if self._streams.pop(id(stream)):
            raise DriverError("stream destroyed with queued work")

    def htod(self, dst: int, src: np.ndarray, stream: object) -> None:
        self._require(src.ctypes.data, src.nbytes, "pinned")
        self._require(dst, src.nbytes, "device")
        self._enqueue(stream, lambda: ctypes.memmove(dst, src.ctypes.data, src.nbytes))

    def dtoh(self, dst: np.ndarray, src: int, stream: object) -> None:
        self._require(dst.ctypes.data, dst.nbytes, "pinned")
        self._require(src, dst.nbytes, "device")
        self._enqueue(stream, lambda: ctypes.memmove(dst.ctypes.data, src, dst.nbytes))

    def dtod(self, dst: int, src: int, nbytes: int, stream: object) -> None:
        self._require(src, nbytes, "device")
        self._require(dst, nbytes, "device")
        self._enqueue(stream, lambda: ctypes.memmove(dst, src, nbytes))

    def memset(self, dst: int, value: int, nbytes: int, stream: object) -> None:
        self._require(dst, nbytes, "device")
        self._enqueue(stream, lambda: ctypes.memset(dst, value, nbytes))

    def close(self) -> None:
        self._check_open()
        if self._live or self._streams:
            raise DriverError(f"context released with {len(self._live)} allocations and "
                              f"{len(self._streams)} streams alive")
        self._closed = True


def test_round_trip_through_pinned_views_and_device_buffers() -> None:
    cuda = CudaRuntime(HostMemoryApi())
    stream = cuda.stream()
    host_in = cuda.pinned((1, 20, 2), np.float32)
    assert host_in.array.shape == (1, 20, 2) and host_in.array.dtype == np.float32
    src = np.arange(40, dtype=np.float32).reshape(1, 20, 2)
    np.copyto(host_in.array, src)  # written through the view: must reach the device copy
    dev_a, dev_b = cuda.device_buffer(host_in.nbytes), cuda.device_buffer(host_in.nbytes)
    cuda.copy_htod(dev_a, host_in, stream)
    cuda.copy_dtod(dev_b, dev_a, host_in.nbytes, stream)
    cuda.memset(dev_a, 0, stream)
    host_out = cuda.pinned((1, 20, 2), np.float32)
    host_out.array[...] = -1.0
    cuda.copy_dtoh(host_out, dev_b, stream)
    stream.synchronize()
    np.testing.assert_array_equal(host_out.array, src)  # htod -> dtod -> dtoh, in stream order
    cuda.copy_dtoh(host_out, dev_a, stream)
    stream.synchronize()
    assert not host_out.array.any()  # the memset ran after the dtod, before this copy
    cuda.close()


def test_copies_larger_than_the_buffer_are_refused() -> None:
    cuda = CudaRuntime(HostMemoryApi())
    stream = cuda.stream()
    big, small = cuda.pinned((1, 64, 64, 3), np.uint8), cuda.device_buffer(16)
    with pytest.raises(CudaError, match="host->device copy of 12288 bytes exceeds the 16-byte buffer"):
        cuda.copy_htod(small, big, stream)
    with pytest.raises(CudaError, match="device->host"):
        cuda.copy_dtoh(big, small, stream)
    with pytest.raises(CudaError, match="device->device"):
        cuda.copy_dtod(small, cuda.device_buffer(64), 64, stream)


def test_close_releases_everything_once() -> None:
    """The driver refuses to release a context with anything alive, a double free, or work on a
    destroyed stream: close() must free every buffer and stream it handed out, each exactly once,
    before the context, and be idempotent."""
    cuda = CudaRuntime(HostMemoryApi())
    stream = cuda.stream()
    cuda.pinned((4,), np.int64)
    dev = cuda.device_buffer(32)
    scalar = cuda.pinned((1,), np.float32)
    assert scalar.array.shape == (1,)
    cuda.memset(dev, 1, stream)
    stream.synchronize()
    cuda.close()
    cuda.close()  # idempotent: no double free
    with pytest.raises((CudaError, DriverError)):
        cuda.device_buffer(8)  # the context is gone


def test_open_cuda_without_binding_or_gpu_says_what_to_install() -> None:
    with pytest.raises(CudaError, match="unknown CUDA binding 'cupy'"):
        open_cuda(0, "cupy")
    try:
        cuda = open_cuda(0)
    except CudaError as exc:  # this machine: no driver / no GPU / no binding
        assert "pip install cuda-python" in str(exc) and "pycuda" in str(exc)
    else:  # a GPU machine
        assert cuda.info().compute_capability[0] >= 5
        cuda.close()


@pytest.mark.parametrize(("requested", "used"), [
    ("lowest", 0), ("highest", -5), (7, 0), (-99, -5), (-2, -2), ("-3", -3), (" Lowest ", 0)])
def test_stream_priority_is_resolved_and_clamped_to_the_device_range(requested, used: int) -> None:
    """The priority the stream reports is the one the driver runs it at (0 = lowest on CUDA)."""
    api = HostMemoryApi()
    cuda = CudaRuntime(api)
    stream = cuda.stream(requested)
    assert stream.priority == used == api.stream_priority(stream.native)
    assert cuda.stream().priority is None  # default stream priority unless asked
    cuda.close()


def test_unknown_stream_priority_name_is_refused() -> None:
    cuda = CudaRuntime(HostMemoryApi())
    with pytest.raises(CudaError, match="'low' is not an int or one of"):
        cuda.stream("low")
    cuda.close()


class FakeCudart:
    """cuda-python's runtime module as far as the stream calls go: (error, value...) tuples, a
    device with priority range [-5, 0], the driver's silent clamping."""

    class cudaError_t:  # noqa: N801 - cuda-python's spelling
        cudaSuccess = 0  # noqa: N815

    cudaStreamNonBlocking = 1  # noqa: N815

    def __init__(self) -> None:
        self.created: list[tuple[str, int, int | None]] = []  # (call, flags, priority)
        self.priority: dict[int, int] = {}

    def cudaSetDevice(self, device: int) -> tuple[int]:  # noqa: N802
        return (0,)

    def cudaGetErrorString(self, err: int) -> tuple[int, bytes]:  # noqa: N802
        return 0, b"invalid argument"

    def cudaDeviceGetStreamPriorityRange(self) -> tuple[int, int, int]:  # noqa: N802
        return 0, 0, -5

    def _new(self, call: str, flags: int, priority: int | None) -> tuple[int, int]:
        if flags != self.cudaStreamNonBlocking:
            return 1, 0
        handle = 0x1000 + len(self.created)
        self.created.append((call, flags, priority))
        self.priority[handle] = 0 if priority is None else min(max(priority, -5), 0)
        return 0, handle

    def cudaStreamCreateWithFlags(self, flags: int) -> tuple[int, int]:  # noqa: N802
        return self._new("flags", flags, None)

    def cudaStreamCreateWithPriority(self, flags: int, priority: int) -> tuple[int, int]:  # noqa: N802
        return self._new("priority", flags, priority)

    def cudaStreamGetPriority(self, stream: int) -> tuple[int, int]:  # noqa: N802
        return (0, self.priority[stream]) if stream in self.priority else (1, 0)

    def cudaStreamDestroy(self, stream: int) -> tuple[int]:  # noqa: N802
        return (0,) if self.priority.pop(stream, None) is not None else (1,)


def test_cuda_python_wrapper_creates_non_blocking_streams_at_the_resolved_priority(monkeypatch) -> None:
    rt = FakeCudart()
    monkeypatch.setattr(cuda_buffers, "_import_cudart", lambda: rt)
    api = cuda_buffers._CudaPythonApi(0)
    assert api.stream_priority_range() == (0, -5)
    cuda = CudaRuntime(api)
    low, high, plain = cuda.stream("lowest"), cuda.stream(-40), cuda.stream()
    assert rt.created == [("priority", 1, 0), ("priority", 1, -5), ("flags", 1, None)]
    assert (api.stream_priority(low.native), api.stream_priority(high.native)) == (0, -5)
    assert (low.priority, high.priority, plain.priority) == (0, -5, None)
    cuda.close()
    assert rt.priority == {}  # every stream destroyed
    with pytest.raises(CudaError, match="cudaStreamGetPriority failed"):
        api.stream_priority(low.native)


def test_pycuda_has_no_stream_priority_default_stream_and_one_warning(monkeypatch) -> None:
    """pycuda.driver.Stream(flags=0) takes no priority: the stream is a default one, said once."""
    made: list[tuple] = []
    drv = type("drv", (), {"Stream": lambda *a, **k: made.append((a, k)) or object()})
    api = object.__new__(cuda_buffers._PyCudaApi)
    api.drv = drv
    monkeypatch.setattr(cuda_buffers.CudaStream, "_warned_no_priority", False)
    monkeypatch.setattr(api, "stream_handle", id, raising=False)
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append  # type: ignore[method-assign]
    logging.getLogger("minipamayo_ros.inference").addHandler(handler)
    try:
        first = cuda_buffers.CudaStream(api, "lowest")
        second = cuda_buffers.CudaStream(api, -3)
    finally:
        logging.getLogger("minipamayo_ros.inference").removeHandler(handler)
    assert first.priority is None and second.priority is None and made == [((), {}), ((), {})]
    assert len(records) == 1 and "pycuda binding has no stream priorities" in records[0].getMessage()
