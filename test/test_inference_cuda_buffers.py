"""CudaRuntime / buffer bookkeeping of cuda_buffers.py without a GPU.

The CUDA binding is replaced by host memory (ctypes allocations, memmove for copies): what is tested
is this module's own logic — numpy views over raw pinned pointers, sizes, copy bounds, ownership and
release order. The real CUDA path (cuda-python on an H100) ran in bench/bench_inference_gpu.py
(`cuda_buffers` section of bench/results_gpu/inference_gpu_h100.json).
"""

from __future__ import annotations

import ctypes

import numpy as np
import pytest

from minipamayo_ros.inference.cuda_buffers import CudaError, CudaRuntime, open_cuda


class HostMemoryApi:
    """Stands in for the CUDA runtime: 'device' and 'pinned' memory are both ctypes host buffers."""

    binding = "host-memory-test"

    def __init__(self) -> None:
        self.live: dict[int, ctypes.Array] = {}
        self.freed: list[str] = []
        self.synced = 0

    def _alloc(self, nbytes: int) -> int:
        buf = (ctypes.c_uint8 * nbytes)()
        self.live[ctypes.addressof(buf)] = buf
        return ctypes.addressof(buf)

    malloc_host = malloc = _alloc

    def free_host(self, ptr: int) -> None:
        del self.live[ptr]
        self.freed.append("host")

    def free(self, ptr: int) -> None:
        del self.live[ptr]
        self.freed.append("device")

    def stream_create(self) -> object:
        return object()

    def stream_handle(self, stream: object) -> int:
        return id(stream)

    def stream_sync(self, stream: object) -> None:
        self.synced += 1

    def stream_destroy(self, stream: object) -> None:
        self.freed.append("stream")

    def htod(self, dst: int, src: np.ndarray, stream: object) -> None:
        ctypes.memmove(dst, src.ctypes.data, src.nbytes)

    def dtoh(self, dst: np.ndarray, src: int, stream: object) -> None:
        ctypes.memmove(dst.ctypes.data, src, dst.nbytes)

    def dtod(self, dst: int, src: int, nbytes: int, stream: object) -> None:
        ctypes.memmove(dst, src, nbytes)

    def memset(self, dst: int, value: int, nbytes: int, stream: object) -> None:
        ctypes.memset(dst, value, nbytes)

    def close(self) -> None:
        self.freed.append("api")


def test_round_trip_through_pinned_views_and_device_buffers() -> None:
    api = HostMemoryApi()
    cuda = CudaRuntime(api)
    stream = cuda.stream()
    host_in = cuda.pinned((1, 20, 2), np.float32)
    assert host_in.array.shape == (1, 20, 2) and host_in.array.dtype == np.float32
    assert host_in.array.ctypes.data == host_in.ptr and host_in.nbytes == 160  # a view, not a copy
    src = np.arange(40, dtype=np.float32).reshape(1, 20, 2)
    np.copyto(host_in.array, src)
    dev_a, dev_b = cuda.device_buffer(host_in.nbytes), cuda.device_buffer(host_in.nbytes)
    cuda.copy_htod(dev_a, host_in, stream)
    cuda.copy_dtod(dev_b, dev_a, host_in.nbytes, stream)
    cuda.memset(dev_a, 0, stream)
    host_out = cuda.pinned((1, 20, 2), np.float32)
    cuda.copy_dtoh(host_out, dev_b, stream)
    stream.synchronize()
    np.testing.assert_array_equal(host_out.array, src)
    cuda.copy_dtoh(host_out, dev_a, stream)
    assert not host_out.array.any()
    assert stream.handle != 0 and api.synced == 1


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


def test_close_releases_everything_once_in_reverse_order() -> None:
    api = HostMemoryApi()
    cuda = CudaRuntime(api)
    cuda.stream()
    cuda.pinned((4,), np.int64)
    cuda.device_buffer(32)
    scalar = cuda.pinned((1,), np.float32)
    assert scalar.array.shape == (1,) and len(api.live) == 3
    cuda.close()
    assert api.live == {} and api.freed == ["host", "device", "host", "stream", "api"]
    cuda.close()  # idempotent
    assert api.freed == ["host", "device", "host", "stream", "api"]


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
