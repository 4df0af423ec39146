"""CUDA memory for the TensorRT backend: pinned host buffers, device buffers and one stream.

Two bindings are supported, tried in this order:

* **cuda-python** (``cuda.bindings.runtime``, or ``cuda.cudart`` in cuda-python < 12.6): NVIDIA's
  maintained binding, pip-installable on x86 and on JetPack 6;
* **pycuda**: what many Jetson images already ship (built against the JetPack CUDA).

Both work on the CUDA *primary* context of the device, the one TensorRT's runtime API uses, so
engine and buffers live in the same context. Host buffers are page-locked (pinned) so the
host<->device copies are true async DMA on the stream; their numpy views are written in place by
the backend (no per-frame allocation). Nothing here imports torch.

Usage::

    cuda = open_cuda(device=0)              # CudaError with the fix if no binding/GPU
    stream = cuda.stream()                  # or cuda.stream(priority="lowest"), see below
    host = cuda.pinned((1, 20, 2), np.float32)
    dev = cuda.device_buffer(host.nbytes)
    cuda.copy_htod(dev, host, stream); cuda.copy_dtoh(host, dev, stream); stream.synchronize()
    cuda.close()                            # frees everything it handed out

Stream priority (cuda-python only): ``cuda.stream(priority)`` takes an int (CUDA convention: lower
number = higher priority, clamped to the device's range) or ``"lowest"`` / ``"highest"`` (the ends of
the range, e.g. 0 / -5 on Hopper). Priority orders the dispatch of pending thread blocks; it never
preempts a running kernel (docs/text.md). pycuda's ``Stream(flags=0)`` has no priority argument, so
with pycuda a requested priority is ignored (default-priority stream, one warning) and
``CudaStream.priority`` is None.
"""

from __future__ import annotations

import ctypes
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

PRIORITY_NAMES = ("lowest", "highest")

_log = logging.getLogger("minipamayo_ros.inference")


class CudaError(RuntimeError):
    """A CUDA call failed or no usable CUDA binding / GPU exists (the message says which)."""


@dataclass(frozen=True)
class GpuInfo:
    """What identifies a GPU for engine compatibility (TensorRT engines are per GPU model)."""

    name: str
    compute_capability: tuple[int, int]
    total_memory_bytes: int

    @property
    def sm(self) -> str:
        return f"sm_{self.compute_capability[0]}{self.compute_capability[1]}"


def resolve_stream_priority(requested: int | str, least: int, greatest: int) -> int:
    """The CUDA stream priority for ``requested`` on a device whose range is ``[greatest, least]``.

    CUDA numbers priorities backwards: ``least`` (usually 0) is the lowest priority and the
    numerically greatest value, ``greatest`` (e.g. -5) the highest. ``"lowest"`` / ``"highest"`` pick
    those ends; an int is clamped into the range (as the driver would do silently, but here the
    caller learns the value actually used).
    """
    if isinstance(requested, str):
        name = requested.strip().lower()
        if name == "lowest":
            return least
        if name == "highest":
            return greatest
        try:
            requested = int(name)
        except ValueError:
            raise CudaError(f"stream priority {requested!r} is not an int or one of "
                            f"{PRIORITY_NAMES}") from None
    return min(max(int(requested), greatest), least)


def _import_cudart() -> Any:
    try:
        from cuda.bindings import runtime as cudart  # cuda-python >= 12.6 (cuda-bindings)
        return cudart
    except ImportError:
        pass
    from cuda import cudart  # cuda-python < 12.6 (JetPack 6 pip wheels); ImportError if neither
    return cudart


class _CudaPythonApi:
    """Thin wrapper of the cuda-python runtime API: every call checked, pointers as ints."""

    binding = "cuda-python"

    def __init__(self, device: int) -> None:
        self.rt = _import_cudart()
        self.device = device
        self._check(self.rt.cudaSetDevice(device), "cudaSetDevice")  # selects the primary context

    def _check(self, result: Any, what: str) -> Any:
        err, rest = (result[0], result[1:]) if isinstance(result, tuple) else (result, ())
        if err != self.rt.cudaError_t.cudaSuccess:
            _, msg = self.rt.cudaGetErrorString(err)
            raise CudaError(f"{what} failed: {err} {msg.decode() if isinstance(msg, bytes) else msg}")
        return rest[0] if len(rest) == 1 else rest

    def version(self) -> str:
        drv = self._check(self.rt.cudaDriverGetVersion(), "cudaDriverGetVersion")
        rtv = self._check(self.rt.cudaRuntimeGetVersion(), "cudaRuntimeGetVersion")
        return f"driver {drv // 1000}.{drv % 1000 // 10}, runtime {rtv // 1000}.{rtv % 1000 // 10}"

    def info(self) -> GpuInfo:
        p = self._check(self.rt.cudaGetDeviceProperties(self.device), "cudaGetDeviceProperties")
        name = p.name.split(b"\0", 1)[0].decode() if isinstance(p.name, bytes) else str(p.name)
        return GpuInfo(name, (int(p.major), int(p.minor)), int(p.totalGlobalMem))

    def malloc_host(self, nbytes: int) -> int:
        return int(self._check(self.rt.cudaMallocHost(nbytes), "cudaMallocHost"))

    def free_host(self, ptr: int) -> None:
        self._check(self.rt.cudaFreeHost(ptr), "cudaFreeHost")

    def malloc(self, nbytes: int) -> int:
        return int(self._check(self.rt.cudaMalloc(nbytes), "cudaMalloc"))

    def free(self, ptr: int) -> None:
        self._check(self.rt.cudaFree(ptr), "cudaFree")

    def stream_priority_range(self) -> tuple[int, int]:
        """``(least, greatest)`` stream priority of the device (e.g. ``(0, -5)``)."""
        least, greatest = self._check(self.rt.cudaDeviceGetStreamPriorityRange(),
                                      "cudaDeviceGetStreamPriorityRange")
        return int(least), int(greatest)

    def stream_create(self, priority: int | None = None) -> Any:
        """A non-blocking stream; ``priority`` (already in range) or the default priority."""
        if priority is None:
            return self._check(self.rt.cudaStreamCreateWithFlags(self.rt.cudaStreamNonBlocking),
                               "cudaStreamCreateWithFlags")
        return self._check(self.rt.cudaStreamCreateWithPriority(self.rt.cudaStreamNonBlocking, priority),
                           "cudaStreamCreateWithPriority")

    def stream_priority(self, stream: Any) -> int:
        """The priority the driver reports for ``stream``."""
        return int(self._check(self.rt.cudaStreamGetPriority(stream), "cudaStreamGetPriority"))

    def stream_handle(self, stream: Any) -> int:
        return int(stream)

    def stream_sync(self, stream: Any) -> None:
        self._check(self.rt.cudaStreamSynchronize(stream), "cudaStreamSynchronize")

    def stream_destroy(self, stream: Any) -> None:
        self._check(self.rt.cudaStreamDestroy(stream), "cudaStreamDestroy")

    def _copy(self, dst: int, src: int, nbytes: int, kind: str, stream: Any) -> None:
        k = getattr(self.rt.cudaMemcpyKind, kind)
        self._check(self.rt.cudaMemcpyAsync(dst, src, nbytes, k, stream), f"cudaMemcpyAsync({kind})")

    def htod(self, dst: int, src: np.ndarray, stream: Any) -> None:
        self._copy(dst, src.ctypes.data, src.nbytes, "cudaMemcpyHostToDevice", stream)

    def dtoh(self, dst: np.ndarray, src: int, stream: Any) -> None:
        self._copy(dst.ctypes.data, src, dst.nbytes, "cudaMemcpyDeviceToHost", stream)

    def dtod(self, dst: int, src: int, nbytes: int, stream: Any) -> None:
        self._copy(dst, src, nbytes, "cudaMemcpyDeviceToDevice", stream)

    def memset(self, dst: int, value: int, nbytes: int, stream: Any) -> None:
        self._check(self.rt.cudaMemsetAsync(dst, value, nbytes, stream), "cudaMemsetAsync")

    def close(self) -> None:
        pass  # the primary context stays with the process (TensorRT may still use it)


class _PyCudaApi:
    """The same operations through pycuda, on the retained primary context of ``device``."""

    binding = "pycuda"

    def __init__(self, device: int) -> None:
        import pycuda.driver as drv

        self.drv = drv
        drv.init()
        self.device = device
        self._dev = drv.Device(device)
        self._ctx = self._dev.retain_primary_context()
        self._ctx.push()
        self._pinned: dict[int, Any] = {}  # ptr -> pagelocked ndarray (keeps it alive)
        self._allocs: dict[int, Any] = {}  # ptr -> DeviceAllocation

    def version(self) -> str:
        v = self.drv.get_driver_version()
        return f"driver {v // 1000}.{v % 1000 // 10}, pycuda"

    def info(self) -> GpuInfo:
        cc = self._dev.compute_capability()
        return GpuInfo(str(self._dev.name()), (int(cc[0]), int(cc[1])), int(self._dev.total_memory()))

    def malloc_host(self, nbytes: int) -> int:
        arr = self.drv.pagelocked_empty(nbytes, np.uint8)
        ptr = int(arr.ctypes.data)
        self._pinned[ptr] = arr
        return ptr

    def free_host(self, ptr: int) -> None:
        arr = self._pinned.pop(ptr, None)
        if arr is not None:
            arr.base.free()

    def malloc(self, nbytes: int) -> int:
        alloc = self.drv.mem_alloc(nbytes)
        self._allocs[int(alloc)] = alloc
        return int(alloc)

    def free(self, ptr: int) -> None:
        alloc = self._allocs.pop(ptr, None)
        if alloc is not None:
            alloc.free()

    def stream_priority_range(self) -> None:
        """pycuda wraps no priority API (``Stream(flags=0)``, no cuCtxGetStreamPriorityRange)."""
        return None

    def stream_create(self, priority: int | None = None) -> Any:
        return self.drv.Stream()  # pycuda.driver.Stream(flags=0): no priority argument exists

    def stream_handle(self, stream: Any) -> int:
        return int(stream.handle)

    def stream_sync(self, stream: Any) -> None:
        stream.synchronize()

    def stream_destroy(self, stream: Any) -> None:
        pass  # freed with its Python object

    def htod(self, dst: int, src: np.ndarray, stream: Any) -> None:
        self.drv.memcpy_htod_async(dst, src, stream)

    def dtoh(self, dst: np.ndarray, src: int, stream: Any) -> None:
        self.drv.memcpy_dtoh_async(dst, src, stream)

    def dtod(self, dst: int, src: int, nbytes: int, stream: Any) -> None:
        self.drv.memcpy_dtod_async(dst, src, nbytes, stream)

    def memset(self, dst: int, value: int, nbytes: int, stream: Any) -> None:
        self.drv.memset_d8_async(dst, value, nbytes, stream)

    def close(self) -> None:
        self._ctx.pop()


class PinnedHostBuffer:
    """Page-locked host memory seen as a numpy array of ``shape``/``dtype`` (``.array``)."""

    def __init__(self, api: Any, shape: tuple[int, ...], dtype: np.dtype | type) -> None:
        self.dtype = np.dtype(dtype)
        self.shape = tuple(int(d) for d in shape)
        self.nbytes = max(1, int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize)
        self._api = api
        self.ptr = api.malloc_host(self.nbytes)
        raw = (ctypes.c_uint8 * self.nbytes).from_address(self.ptr)
        flat = np.frombuffer(memoryview(raw).cast("B"), dtype=np.uint8)
        n = int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize
        self.array: np.ndarray = flat[:n].view(self.dtype).reshape(self.shape)

    def free(self) -> None:
        if self.ptr:
            self.array = np.empty(0, self.dtype)
            self._api.free_host(self.ptr)
            self.ptr = 0


class DeviceBuffer:
    """``nbytes`` of device memory; ``ptr`` is the address TensorRT's set_tensor_address takes."""

    def __init__(self, api: Any, nbytes: int) -> None:
        self.nbytes = max(1, int(nbytes))
        self._api = api
        self.ptr = api.malloc(self.nbytes)

    def free(self) -> None:
        if self.ptr:
            self._api.free(self.ptr)
            self.ptr = 0


class CudaStream:
    """One CUDA stream; ``handle`` is the integer execute_async_v3 takes.

    ``priority`` argument: None (default priority), an int, "lowest" or "highest". The ``priority``
    attribute is the one used (an int within the device's range), or None for a default-priority
    stream (none asked for, or a binding without priorities: logged once).
    """

    _warned_no_priority = False

    def __init__(self, api: Any, priority: int | str | None = None) -> None:
        self._api = api
        self.priority: int | None = None
        if priority is not None:
            prange = api.stream_priority_range()
            if prange is None:
                if not CudaStream._warned_no_priority:
                    CudaStream._warned_no_priority = True
                    _log.warning("CUDA stream priority %r ignored: the %s binding has no stream priorities "
                                 "(default-priority stream; install cuda-python for priorities)",
                                 priority, api.binding)
            else:
                self.priority = resolve_stream_priority(priority, *prange)
        self._stream = api.stream_create(self.priority)
        self.handle = api.stream_handle(self._stream)

    @property
    def native(self) -> Any:
        return self._stream

    def synchronize(self) -> None:
        self._api.stream_sync(self._stream)

    def destroy(self) -> None:
        if self._stream is not None:
            self._api.stream_destroy(self._stream)
            self._stream = None


class CudaRuntime:
    """Hands out buffers and streams on one device and frees all of them on :meth:`close`."""

    def __init__(self, api: Any) -> None:
        self.api = api
        self.binding: str = api.binding
        self._owned: list[PinnedHostBuffer | DeviceBuffer | CudaStream] = []
        self._closed = False

    def info(self) -> GpuInfo:
        info: GpuInfo = self.api.info()
        return info

    def version(self) -> str:
        return str(self.api.version())

    def pinned(self, shape: tuple[int, ...], dtype: np.dtype | type) -> PinnedHostBuffer:
        buf = PinnedHostBuffer(self.api, shape, dtype)
        self._owned.append(buf)
        return buf

    def device_buffer(self, nbytes: int) -> DeviceBuffer:
        buf = DeviceBuffer(self.api, nbytes)
        self._owned.append(buf)
        return buf

    def stream(self, priority: int | str | None = None) -> CudaStream:
        """A new stream; ``priority`` as in :class:`CudaStream` (None: default priority)."""
        s = CudaStream(self.api, priority)
        self._owned.append(s)
        return s

    def copy_htod(self, dst: DeviceBuffer, src: PinnedHostBuffer, stream: CudaStream) -> None:
        _check_fits(src.array.nbytes, dst.nbytes, "host->device")
        self.api.htod(dst.ptr, src.array, stream.native)

    def copy_dtoh(self, dst: PinnedHostBuffer, src: DeviceBuffer, stream: CudaStream) -> None:
        _check_fits(dst.array.nbytes, src.nbytes, "device->host")
        self.api.dtoh(dst.array, src.ptr, stream.native)

    def copy_dtod(self, dst: DeviceBuffer, src: DeviceBuffer, nbytes: int, stream: CudaStream) -> None:
        _check_fits(nbytes, min(dst.nbytes, src.nbytes), "device->device")
        self.api.dtod(dst.ptr, src.ptr, nbytes, stream.native)

    def memset(self, dst: DeviceBuffer, value: int, stream: CudaStream) -> None:
        self.api.memset(dst.ptr, value, dst.nbytes, stream.native)

    def close(self) -> None:
        """Free every buffer and stream handed out (newest first), then release the binding; idempotent."""
        if self._closed:
            return
        for obj in reversed(self._owned):
            if isinstance(obj, CudaStream):
                obj.destroy()
            else:
                obj.free()
        self._owned.clear()
        self.api.close()
        self._closed = True


def _check_fits(nbytes: int, capacity: int, what: str) -> None:
    if nbytes > capacity:
        raise CudaError(f"{what} copy of {nbytes} bytes exceeds the {capacity}-byte buffer")


def open_cuda(device: int = 0, binding: str = "auto") -> CudaRuntime:
    """A :class:`CudaRuntime` on ``device`` via ``binding`` (auto | cuda-python | pycuda)."""
    order = {"auto": ["cuda-python", "pycuda"], "cuda-python": ["cuda-python"], "pycuda": ["pycuda"]}
    if binding not in order:
        raise CudaError(f"unknown CUDA binding '{binding}' (auto | cuda-python | pycuda)")
    reasons = []
    for name in order[binding]:
        try:
            api = _CudaPythonApi(device) if name == "cuda-python" else _PyCudaApi(device)
            return CudaRuntime(api)
        except ImportError as exc:
            reasons.append(f"{name}: not installed ({exc})")
        except Exception as exc:  # driver missing, no device, ...
            reasons.append(f"{name}: {exc}")
    raise CudaError("no usable CUDA: " + "; ".join(reasons) +
                    " (install cuda-python, e.g. `pip install cuda-python`, or pycuda, on a machine with "
                    "an NVIDIA GPU and driver)")


def probe_gpu(device: int = 0) -> tuple[GpuInfo | None, str]:
    """``(GpuInfo, "")`` when a GPU is usable through a CUDA binding, else ``(None, reason)``."""
    try:
        cuda = open_cuda(device)
    except CudaError as exc:
        return None, str(exc)
    try:
        return cuda.info(), ""
    except CudaError as exc:
        return None, str(exc)
    finally:
        cuda.close()
