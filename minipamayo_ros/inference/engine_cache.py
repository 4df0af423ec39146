"""A TensorRT engine cache that never loads a stale engine.

A serialized TensorRT engine is only valid for the exact TensorRT version and GPU model it was
built with; loading one after a JetPack upgrade fails late and obscurely (the most common
complaint in Isaac ROS / jetson-inference issues). So every cached engine has a key file beside it:

    <cache_dir>/<model name>.<precision>.engine            the serialized engine
    <cache_dir>/<model name>.<precision>.engine.key.json   its key + the engine's own sha256

The key holds everything the engine depends on: the ONNX file's sha256, the TensorRT version, the
GPU name and compute capability, the precision flags and the builder settings (workspace, input
shapes). An engine is loaded only if its stored key equals the current key *and* the engine file
still has the sha256 recorded at build time (a half-written or replaced file is never loaded).
Otherwise it is rebuilt, and the log says which key fields changed. Writes are atomic (temp file +
rename, key written last) and builds of one engine are serialised with a file lock, so two
processes starting together build once. Pure Python: no TensorRT import here.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from minipamayo_ros.inference.backend import BackendError, concrete_shape
from minipamayo_ros.inference.cuda_buffers import GpuInfo
from minipamayo_ros.manifest import ModelManifest

KEY_SCHEMA = 1
PRECISIONS = ("fp32", "fp16", "bf16", "int8")


@dataclass(frozen=True)
class EngineKey:
    """What a serialized engine depends on; equal keys <=> the engine may be reused."""

    onnx_sha256: str
    tensorrt_version: str
    gpu_name: str
    compute_capability: str           # "8.7" (Orin), "9.0" (H100)
    precision: str                    # fp32 | fp16 | bf16 | int8
    builder_flags: tuple[str, ...]    # TensorRT BuilderFlag names set, sorted
    workspace_mb: int
    input_shapes: tuple[tuple[str, tuple[int, ...]], ...]  # (name, shape) the profile was built for
    schema: int = KEY_SCHEMA

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["builder_flags"] = list(self.builder_flags)
        d["input_shapes"] = {name: list(shape) for name, shape in self.input_shapes}
        return d

    @staticmethod
    def from_dict(d: dict[str, Any]) -> EngineKey:
        return EngineKey(
            onnx_sha256=str(d["onnx_sha256"]), tensorrt_version=str(d["tensorrt_version"]),
            gpu_name=str(d["gpu_name"]), compute_capability=str(d["compute_capability"]),
            precision=str(d["precision"]), builder_flags=tuple(d["builder_flags"]),
            workspace_mb=int(d["workspace_mb"]),
            input_shapes=tuple((str(k), tuple(int(x) for x in v)) for k, v in d["input_shapes"].items()),
            schema=int(d.get("schema", 0)))

    def digest(self) -> str:
        """Short stable hash of the key (for logs and describe())."""
        return hashlib.sha256(json.dumps(self.as_dict(), sort_keys=True).encode()).hexdigest()[:16]

    def differences(self, other: EngineKey) -> list[str]:
        """Human-readable ``field: old -> new`` for every field that differs."""
        out = []
        for f in fields(self):
            a, b = getattr(other, f.name), getattr(self, f.name)
            if a != b:
                if f.name == "onnx_sha256":
                    a, b = str(a)[:12], str(b)[:12]
                out.append(f"{f.name}: {a} -> {b}")
        return out


def builder_flag_names(precision: str) -> tuple[str, ...]:
    """TensorRT BuilderFlag names for ``precision`` (int8 keeps fp16 for non-quantized layers)."""
    flags = {"fp32": (), "fp16": ("FP16",), "bf16": ("BF16",), "int8": ("FP16", "INT8")}
    if precision not in flags:
        raise BackendError(f"unknown TensorRT precision '{precision}'; choose one of {list(PRECISIONS)}")
    return tuple(sorted(flags[precision]))


def engine_key(manifest: ModelManifest, gpu: GpuInfo, precision: str, workspace_mb: int,
               tensorrt_version: str) -> EngineKey:
    """The cache key of ``manifest``'s engine built by TensorRT ``tensorrt_version`` on ``gpu``."""
    return EngineKey(
        onnx_sha256=manifest.sha256, tensorrt_version=tensorrt_version, gpu_name=gpu.name,
        compute_capability=f"{gpu.compute_capability[0]}.{gpu.compute_capability[1]}",
        precision=precision, builder_flags=builder_flag_names(precision), workspace_mb=int(workspace_mb),
        input_shapes=tuple((s.name, concrete_shape(s.shape)) for s in manifest.inputs))


@dataclass(frozen=True)
class CacheLookup:
    hit: bool
    engine_path: Path
    reason: str  # why it is (not) usable, for the log


@dataclass(frozen=True)
class CachedEngine:
    data: bytes
    path: Path
    built: bool   # True: built now; False: loaded from the cache
    reason: str


class EngineCacheError(RuntimeError):
    """The cache directory is unusable (the message says what to fix)."""


class EngineCache:
    """Engines for several models/precisions in one directory (created on first use)."""

    def __init__(self, cache_dir: str | Path) -> None:
        self.dir = Path(cache_dir).expanduser()

    def paths(self, model_name: str, precision: str) -> tuple[Path, Path]:
        engine = self.dir / f"{model_name}.{precision}.engine"
        return engine, engine.with_name(engine.name + ".key.json")

    def lookup(self, model_name: str, key: EngineKey) -> CacheLookup:
        engine, key_file = self.paths(model_name, key.precision)
        if not engine.is_file():
            return CacheLookup(False, engine, "no cached engine")
        if not key_file.is_file():
            return CacheLookup(False, engine, f"cached engine has no key file {key_file.name} "
                                              "(unknown origin, not loaded)")
        try:
            stored = json.loads(key_file.read_text())
            stored_key = EngineKey.from_dict(stored["key"])
            engine_sha = str(stored["engine_sha256"])
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            return CacheLookup(False, engine, f"key file {key_file.name} is unreadable ({exc!r})")
        if stored_key != key:
            changed = "; ".join(key.differences(stored_key))
            return CacheLookup(False, engine, f"cached engine is stale: {changed}")
        if _sha256_file(engine) != engine_sha:
            return CacheLookup(False, engine, "cached engine file does not match its recorded sha256 "
                                              "(truncated or replaced)")
        return CacheLookup(True, engine, f"cached engine {engine.name} matches key {key.digest()}")

    def store(self, model_name: str, key: EngineKey, data: bytes) -> Path:
        """Write engine then key, each atomically; returns the engine path."""
        engine, key_file = self.paths(model_name, key.precision)
        self._ensure_dir()
        key_file.unlink(missing_ok=True)  # an engine without a (matching) key is never loaded
        _atomic_write(engine, data)
        meta = {"key": key.as_dict(), "key_digest": key.digest(),
                "engine_sha256": hashlib.sha256(data).hexdigest(), "engine_bytes": len(data)}
        _atomic_write(key_file, (json.dumps(meta, indent=2) + "\n").encode())
        return engine

    @contextmanager
    def build_lock(self, model_name: str, precision: str) -> Iterator[None]:
        """Exclusive lock for building one engine (other processes wait, then find it cached)."""
        self._ensure_dir()
        engine, _ = self.paths(model_name, precision)
        with open(engine.with_name(engine.name + ".lock"), "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def load_or_build(self, model_name: str, key: EngineKey, build: Callable[[], bytes],
                      force_rebuild: bool = False, log: Callable[[str], Any] = print) -> CachedEngine:
        """The cached engine if its key matches (and not ``force_rebuild``), else ``build()`` + store."""
        with self.build_lock(model_name, key.precision):
            found = self.lookup(model_name, key)
            if found.hit and not force_rebuild:
                log(f"engine cache hit: {found.reason}")
                return CachedEngine(found.engine_path.read_bytes(), found.engine_path, False, found.reason)
            reason = "force_rebuild requested" if found.hit else found.reason
            log(f"building TensorRT engine for {model_name} ({key.precision}): {reason}")
            data = build()
            path = self.store(model_name, key, data)
            log(f"engine written to {path} ({len(data) / 1e6:.1f} MB, key {key.digest()})")
            return CachedEngine(data, path, True, reason)

    def _ensure_dir(self) -> None:
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise EngineCacheError(f"cannot create engine cache directory {self.dir}: {exc}; set the "
                                   "engine_cache_dir parameter to a writable directory") from exc
        if not os.access(self.dir, os.W_OK):
            raise EngineCacheError(f"engine cache directory {self.dir} is not writable; set the "
                                   "engine_cache_dir parameter to a writable directory")


def default_cache_dir(model_path: Path, configured: str = "") -> Path:
    """``configured`` if set; else beside the model when writable; else ~/.cache/minipamayo_ros/engines."""
    if configured:
        return Path(configured).expanduser()
    if os.access(model_path.parent, os.W_OK):
        return model_path.parent
    return Path.home() / ".cache" / "minipamayo_ros" / "engines"


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()
