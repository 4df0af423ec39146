"""Engine cache key logic (no TensorRT needed): a changed ONNX hash, TensorRT version, GPU or
precision invalidates; a tampered engine or key is never loaded; force_rebuild rebuilds."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from pathlib import Path

import pytest

from minipamayo_ros.inference.build_progress import BuildProgress
from minipamayo_ros.inference.engine_cache import (
    EngineCache,
    EngineCacheError,
    EngineKey,
    default_cache_dir,
)

KEY = EngineKey(onnx_sha256="a" * 64, tensorrt_version="10.3.0", gpu_name="Orin",
                compute_capability="8.7", precision="fp16", builder_flags=("FP16",), workspace_mb=1024,
                input_shapes=(("image", (1, 128, 128, 3)), ("state", (1, 10, 4))))


class Builder:
    """Counts builds; returns distinct engine bytes per build."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> bytes:
        self.calls += 1
        return f"engine-{self.calls}".encode() * 100


def test_miss_then_hit(tmp_path: Path) -> None:
    cache, build, logs = EngineCache(tmp_path / "c"), Builder(), []
    first = cache.load_or_build("policy", KEY, build, log=logs.append)
    assert first.built and build.calls == 1 and first.reason == "no cached engine"
    second = cache.load_or_build("policy", KEY, build, log=logs.append)
    assert not second.built and build.calls == 1 and second.data == first.data
    assert second.path == tmp_path / "c" / "policy.fp16.engine"
    key_file = json.loads((tmp_path / "c" / "policy.fp16.engine.key.json").read_text())
    assert EngineKey.from_dict(key_file["key"]) == KEY and key_file["engine_bytes"] == len(first.data)
    assert any("engine cache hit" in line for line in logs)


@pytest.mark.parametrize("change, field", [
    ({"onnx_sha256": "b" * 64}, "onnx_sha256: aaaaaaaaaaaa -> bbbbbbbbbbbb"),
    ({"tensorrt_version": "10.7.0"}, "tensorrt_version: 10.3.0 -> 10.7.0"),
    ({"gpu_name": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0"}, "compute_capability: 8.7 -> 9.0"),
    ({"gpu_name": "Orin (nvgpu)"}, "gpu_name: Orin -> Orin (nvgpu)"),
    ({"builder_flags": ("BF16",)}, "builder_flags"),
    ({"workspace_mb": 512}, "workspace_mb: 1024 -> 512"),
    ({"input_shapes": (("image", (1, 320, 320, 3)), ("state", (1, 10, 4)))}, "input_shapes"),
])
def test_changed_key_invalidates_and_says_why(tmp_path: Path, change: dict, field: str) -> None:
    cache, build = EngineCache(tmp_path), Builder()
    cache.load_or_build("policy", KEY, build, log=lambda _: None)
    new_key = dataclasses.replace(KEY, **change)
    found = cache.lookup("policy", new_key)
    assert not found.hit and found.reason.startswith("cached engine is stale:") and field in found.reason
    rebuilt = cache.load_or_build("policy", new_key, build, log=lambda _: None)
    assert rebuilt.built and build.calls == 2
    assert not cache.lookup("policy", KEY).hit  # the old key no longer matches the file either
    assert cache.lookup("policy", new_key).hit


def test_precisions_are_cached_side_by_side(tmp_path: Path) -> None:
    cache, build = EngineCache(tmp_path), Builder()
    int8 = dataclasses.replace(KEY, precision="int8", builder_flags=("FP16", "INT8"))
    cache.load_or_build("policy", KEY, build, log=lambda _: None)
    cache.load_or_build("policy", int8, build, log=lambda _: None)
    assert cache.lookup("policy", KEY).hit and cache.lookup("policy", int8).hit and build.calls == 2


def test_force_rebuild(tmp_path: Path) -> None:
    cache, build = EngineCache(tmp_path), Builder()
    cache.load_or_build("policy", KEY, build, log=lambda _: None)
    again = cache.load_or_build("policy", KEY, build, force_rebuild=True, log=lambda _: None)
    assert again.built and again.reason == "force_rebuild requested" and build.calls == 2


def test_tampered_or_orphan_engines_are_never_loaded(tmp_path: Path) -> None:
    cache, build = EngineCache(tmp_path), Builder()
    cache.load_or_build("policy", KEY, build, log=lambda _: None)
    engine, key_file = cache.paths("policy", "fp16")
    engine.write_bytes(engine.read_bytes()[:50])  # truncated copy
    assert "does not match its recorded sha256" in cache.lookup("policy", KEY).reason
    key_file.unlink()  # an engine copied in by hand, without a key
    assert "has no key file" in cache.lookup("policy", KEY).reason
    key_file.write_text("{not json")
    assert "is unreadable" in cache.lookup("policy", KEY).reason
    assert not cache.lookup("policy", KEY).hit
    assert cache.load_or_build("policy", KEY, build, log=lambda _: None).built


def test_failed_build_leaves_no_engine(tmp_path: Path) -> None:
    cache = EngineCache(tmp_path)

    def broken() -> bytes:
        raise RuntimeError("parser error")

    with pytest.raises(RuntimeError, match="parser error"):
        cache.load_or_build("policy", KEY, broken, log=lambda _: None)
    assert not cache.lookup("policy", KEY).hit
    assert not list(tmp_path.glob("*.engine*.tmp"))


def test_concurrent_loaders_build_once(tmp_path: Path) -> None:
    cache, results = EngineCache(tmp_path), []
    calls = []

    def slow_build() -> bytes:
        calls.append(1)
        time.sleep(0.2)
        return b"engine" * 10

    threads = [threading.Thread(target=lambda: results.append(
        EngineCache(tmp_path).load_or_build("policy", KEY, slow_build, log=lambda _: None)))
        for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(calls) == 1 and sum(r.built for r in results) == 1 and len(results) == 3
    assert cache.lookup("policy", KEY).hit


def test_key_round_trip_and_digest() -> None:
    again = EngineKey.from_dict(json.loads(json.dumps(KEY.as_dict())))
    assert again == KEY and again.digest() == KEY.digest()
    assert dataclasses.replace(KEY, tensorrt_version="10.3.1").digest() != KEY.digest()


def test_unwritable_cache_dir_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(EngineCacheError, match="set the engine_cache_dir parameter"):
        EngineCache(blocker / "sub").load_or_build("policy", KEY, Builder(), log=lambda _: None)


def test_default_cache_dir(tmp_path: Path) -> None:
    model = tmp_path / "m.onnx"
    assert default_cache_dir(model, "/var/cache/x") == Path("/var/cache/x")
    assert default_cache_dir(model) == tmp_path
    unwritable = tmp_path / "missing" / "m.onnx"  # (a root-owned install dir behaves the same)
    assert default_cache_dir(unwritable).parts[-3:] == (".cache", "minipamayo_ros", "engines")


def test_build_progress_is_visible_throttled_and_cancellable() -> None:
    now = [0.0]
    lines: list[str] = []
    p = BuildProgress(lines.append, interval_s=5.0, clock=lambda: now[0])
    p.phase_start("Building engine", None, 3)           # top-level: logged at once
    p.phase_start("Tactic selection", "Building engine", 10)
    for step in range(4):
        now[0] += 1.0
        assert p.step_complete("Tactic selection", step)
    now[0] += 2.0
    p.step_complete("Tactic selection", 4)              # 6 s after the last line: logged
    assert lines == ["[engine build 0 s] Building engine 0/3 (0%)",
                     "[engine build 6 s] Building engine 0/3 > Tactic selection 5/10 (50%)"]
    p.phase_finish("Tactic selection")
    p.step_complete("Building engine", 0)
    assert p.render() == "[engine build 6 s] Building engine 1/3 (33%)"
    p.cancel()
    assert p.step_complete("Building engine", 1) is False


def test_engine_key_from_manifest_and_gpu(tmp_path: Path) -> None:
    """The key the TensorRT backend computes: re-export, TensorRT upgrade or another GPU invalidate."""
    from test_inference_graphs import policy_manifest

    from minipamayo_ros.inference.backend import BackendError
    from minipamayo_ros.inference.cuda_buffers import GpuInfo
    from minipamayo_ros.inference.engine_cache import builder_flag_names, engine_key

    orin = GpuInfo("Orin", (8, 7), 8 * 2**30)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    m1, _ = policy_manifest(tmp_path / "a", seed=0)
    m2, _ = policy_manifest(tmp_path / "b", seed=1)  # same graph, other weights: another sha256
    key = engine_key(m1, orin, "fp16", 1024, "10.3.0")
    assert key.compute_capability == "8.7" and key.builder_flags == ("FP16",)
    assert key.input_shapes == (("image", (1, 32, 32, 3)), ("state", (1, 10, 4)))
    cache = EngineCache(tmp_path / "cache")
    cache.store(m1.name, key, b"engine")
    assert cache.lookup(m1.name, key).hit
    for other, field in [
        (engine_key(m2, orin, "fp16", 1024, "10.3.0"), "onnx_sha256"),             # re-exported model
        (engine_key(m1, orin, "fp16", 1024, "10.7.0.23"), "tensorrt_version"),     # JetPack upgrade
        (engine_key(m1, GpuInfo("NVIDIA H100 80GB HBM3", (9, 0), 80 * 2**30), "fp16", 1024, "10.3.0"),
         "gpu_name"),
    ]:
        found = cache.lookup(m1.name, other)
        assert not found.hit and field in found.reason
    assert builder_flag_names("int8") == ("FP16", "INT8") and builder_flag_names("fp32") == ()
    with pytest.raises(BackendError, match="unknown TensorRT precision 'fp8'"):
        builder_flag_names("fp8")


def test_a_stop_request_cancels_a_build_in_progress() -> None:
    """A stop signal cannot interrupt the native build call; the node's signal watcher sets the
    process's stop event instead, and the build's next step asks TensorRT to cancel."""
    stop = threading.Event()
    p = BuildProgress(lambda _line: None, stop=stop)
    p.phase_start("Building engine", None, 3)
    assert p.step_complete("Building engine", 0)
    stop.set()
    assert p.step_complete("Building engine", 1) is False
