"""Interface contract of every backend available here, on the shipped tiny models, and
same-inputs parity ONNX Runtime vs PyTorch on CPU (<= 1e-4).

Backends are listed by what this environment can run (ONNX Runtime always; PyTorch where torch and
the model code import; TensorRT where real bindings and a GPU exist), so on a Jetson the same file
checks the TensorRT engine against the same contract.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from minipamayo_ros.inference import BackendError, BackendOptions, create_backend, load_manifest
from minipamayo_ros.inference.factory import tensorrt_availability

ENGINES = Path(__file__).resolve().parents[1] / "engines"
# every shipped model (the INT8 and INT4 variants too); parity only for the float ones
MODELS = sorted(p.name.removesuffix(".manifest.json") for p in ENGINES.glob("*.manifest.json"))
FLOAT_MODELS = [m for m in MODELS if "int8" not in m and "int4" not in m]
# the text node's one-token-per-call decoder (dynamic length) runs on ONNX Runtime only; its tokens
# equal the fixed-length text graph's (test_text_core), which is checked against PyTorch here
TORCH_MODELS = [m for m in FLOAT_MODELS if not m.endswith("-text-step")]


def _available() -> list[BackendOptions]:
    opts = [BackendOptions(backend="onnxruntime")]
    if importlib.util.find_spec("torch") is not None:
        opts.append(BackendOptions(backend="torch", device="cpu", precision="fp32", warmup_runs=1))
    if tensorrt_availability()[0]:
        opts.append(BackendOptions(backend="tensorrt", precision="fp16"))
    return opts


BACKENDS = _available()


def sample(manifest, seed: int) -> dict[str, np.ndarray]:
    """Valid random inputs for a policy or text manifest."""
    rng = np.random.default_rng(seed)
    out = {}
    for s in manifest.inputs:
        shape = tuple(d if isinstance(d, int) else 1 for d in s.shape)
        if s.dtype == "uint8":
            out[s.name] = rng.integers(0, 256, shape, dtype=np.uint8)
        elif s.name == "event":
            out[s.name] = rng.integers(0, 7, shape).astype(s.dtype)
        else:
            out[s.name] = rng.normal(0, 1, shape).astype(s.dtype)
    return out


@pytest.fixture(scope="module", params=MODELS)
def manifest(request):
    return load_manifest(ENGINES / f"{request.param}.manifest.json")


@pytest.mark.parametrize("options", BACKENDS, ids=[o.backend for o in BACKENDS])
def test_backend_contract(manifest, options: BackendOptions) -> None:
    if manifest.kind == "text_step" and options.backend == "torch":
        with pytest.raises(BackendError, match="text_step"):
            create_backend(manifest, options)
        return
    backend = create_backend(manifest, options)
    d = backend.describe()
    assert d["backend"] == options.backend and d["model_id"] == manifest.model_id
    assert {"precision", "device", "selection"} <= d.keys()
    backend.warm_up()
    assert backend.warmed_up and np.isfinite(backend.last_infer_ms) and backend.last_infer_ms >= 0
    x = sample(manifest, 3)
    out = backend.infer(x)
    assert list(out) == [s.name for s in manifest.outputs]
    for s in manifest.outputs:
        assert out[s.name].shape == s.shape and out[s.name].dtype == np.dtype(s.dtype), s.name
        assert np.all(np.isfinite(out[s.name]))
    # outputs are the caller's: changing them does not change the next result
    keep = {k: v.copy() for k, v in out.items()}
    for v in out.values():
        v[...] = 0
    again = backend.infer(x)
    for k in keep:
        np.testing.assert_array_equal(again[k], keep[k])
    # a different input gives a different answer (the input reaches the model)
    other = backend.infer(sample(manifest, 4))
    assert any(not np.array_equal(other[k], keep[k]) for k in keep)
    with pytest.raises(BackendError, match="has dtype float64"):
        backend.infer({k: v.astype(np.float64) for k, v in x.items()})
    backend.close()


@pytest.mark.parametrize("fused_attention", [True, False], ids=["sdpa", "matmul_attn"])
@pytest.mark.parametrize("name", TORCH_MODELS)
def test_onnxruntime_pytorch_parity_cpu(name: str, fused_attention: bool) -> None:
    manifest = load_manifest(ENGINES / f"{name}.manifest.json")
    ort = create_backend(manifest, BackendOptions(backend="onnxruntime"))
    pt = create_backend(manifest, BackendOptions(backend="torch", device="cpu", precision="fp32",
                                                 extra={"fused_attention": fused_attention}))
    assert pt.describe()["fused_attention"] == str(fused_attention).lower()
    worst = 0.0
    for seed in range(3):
        x = sample(manifest, seed)
        a, b = ort.infer(x), pt.infer(x)
        for s in manifest.outputs:
            if s.dtype.startswith("int"):
                np.testing.assert_array_equal(a[s.name], b[s.name], err_msg=s.name)
            else:
                worst = max(worst, float(np.abs(a[s.name].astype(np.float64) - b[s.name]).max()))
    assert worst <= 1e-4, f"max abs difference ONNX Runtime vs PyTorch {worst:.2e} > 1e-4"


def test_shipped_models_are_covered() -> None:
    assert {"minipamayo-tiny-policy", "minipamayo-tiny-text"} <= set(FLOAT_MODELS)


def test_torch_backend_missing_weights_is_a_clear_error(tmp_path: Path) -> None:
    manifest = load_manifest(ENGINES / "minipamayo-tiny-policy.manifest.json")
    options = BackendOptions(backend="torch", device="cpu", precision="fp32",
                             extra={"weights": str(tmp_path / "none.safetensors")})
    with pytest.raises(BackendError, match="none.safetensors not found"):
        create_backend(manifest, options)
    with pytest.raises(BackendError, match="int8 runs on TensorRT / ONNX Runtime"):
        create_backend(manifest, BackendOptions(backend="torch", device="cpu", precision="int8"))


def test_torch_backend_sdpa_backends_restrict_the_attention_kernel() -> None:
    """``extra["sdpa_backends"]`` reaches the forward: the math kernel gives the default's outputs,
    a kernel CPU lacks (memory-efficient) makes the call fail, an unknown name is refused."""
    manifest = load_manifest(ENGINES / "minipamayo-tiny-policy.manifest.json")
    x = sample(manifest, 5)

    def backend(names):
        return create_backend(manifest, BackendOptions(backend="torch", device="cpu", precision="fp32",
                                                       extra={"sdpa_backends": names}))

    ref = backend(None).infer(x)
    math = backend(["math"])
    assert math.describe()["sdpa_backends"] == "MATH"
    for k, v in math.infer(x).items():
        np.testing.assert_allclose(v, ref[k], atol=1e-5, err_msg=k)
    with pytest.raises(RuntimeError, match="No viable backend"):
        backend("efficient").infer(x)
    with pytest.raises(BackendError, match="unknown sdpa_backends"):
        backend(["flash", "fast"])
