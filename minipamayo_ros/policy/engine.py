"""Load the policy model for the node: manifest, I/O contract, backend, warm-up. Fatal on any error.

Everything that can be wrong with a model is found here, before the first trajectory, and raised
as :class:`PolicyModelError` with a message that says what to fix (the node exits non-zero).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from minipamayo_ros.inference import (
    BackendError,
    BackendOptions,
    InferenceBackend,
    ManifestError,
    ModelManifest,
    create_backend,
    load_manifest,
)
from minipamayo_ros.inference.manifest import TensorSpec
from minipamayo_ros.state_features import STATE_FEATURES, STATE_STEPS
from minipamayo_ros.trajectory import NUM_WAYPOINTS

REPO_ROOT = Path(__file__).resolve().parents[2]


class PolicyModelError(RuntimeError):
    """The policy model cannot be used; the message says what to fix."""


@dataclass(frozen=True)
class PolicyIO:
    """What the node needs to know about the model's tensors (all read from the manifest)."""

    image_size: tuple[int, int]   # (height, width) [px] of the NHWC uint8 RGB input
    context_dim: int              # length of the context vector (0 if the model has none)


def resolve_manifest_path(path: str) -> Path:
    """Absolute manifest path: as given, else relative to the working dir, the package share, the repo."""
    p = Path(path).expanduser()
    if p.is_absolute() or p.exists():
        return p.resolve()
    candidates = [Path.cwd() / p]
    try:
        from ament_index_python.packages import get_package_share_directory

        candidates.append(Path(get_package_share_directory("minipamayo_ros")) / p)
    except Exception:  # not installed through colcon (plain checkout): fall through
        pass
    candidates.append(REPO_ROOT / p)
    for c in candidates:
        if c.exists():
            return c.resolve()
    return candidates[0]


def _fixed(spec: TensorSpec, expected: tuple[int | None, ...], what: str) -> tuple[int, ...]:
    """``spec``'s shape with batch dims resolved to 1, checked against ``expected`` (None = any)."""
    shape = tuple(1 if (i == 0 and isinstance(d, str)) else d for i, d in enumerate(spec.shape))
    ok = len(shape) == len(expected) and all(isinstance(d, int) for d in shape) and all(
        e is None or d == e for d, e in zip(shape, expected, strict=False))
    if not ok:
        want = "(" + ", ".join("any" if e is None else str(e) for e in expected) + ")"
        raise PolicyModelError(f"manifest tensor '{spec.name}' has shape {list(spec.shape)}; the policy "
                               f"node needs {what} {want}")
    return shape  # type: ignore[return-value]


def check_policy_contract(manifest: ModelManifest) -> PolicyIO:
    """The manifest must describe a policy with the node's I/O (see ``docs/policy.md``)."""
    try:
        image = manifest.input("image")
        state = manifest.input("state")
        waypoints = manifest.output("waypoints")
        speeds = manifest.output("speeds")
        uncertainty = manifest.output("uncertainty")
    except ManifestError as exc:
        raise PolicyModelError(f"{exc}; a policy model needs inputs image, state and outputs "
                               "waypoints, speeds, uncertainty (context optional)") from exc
    if image.dtype != "uint8" or state.dtype != "float32":
        raise PolicyModelError(f"policy inputs must be image uint8 and state float32, manifest says "
                               f"image {image.dtype}, state {state.dtype}")
    _, h, w, _ = _fixed(image, (1, None, None, 3), "NHWC RGB")
    _fixed(state, (1, STATE_STEPS, len(STATE_FEATURES)), "state history")
    _fixed(waypoints, (1, NUM_WAYPOINTS, 2), "waypoints")
    _fixed(speeds, (1, NUM_WAYPOINTS), "speeds")
    _fixed(uncertainty, (1,), "uncertainty")
    context_dim = 0
    if any(s.name == "context" for s in manifest.outputs):
        context_dim = _fixed(manifest.output("context"), (1, None), "context")[1]
    return PolicyIO(image_size=(h, w), context_dim=context_dim)


def load_policy(
    manifest_path: str, options: BackendOptions, verify_hash: bool = True, logger: object | None = None
) -> tuple[ModelManifest, InferenceBackend, PolicyIO]:
    """Manifest -> checked, warmed-up backend. Raises :class:`PolicyModelError` on any problem."""
    path = resolve_manifest_path(manifest_path)
    try:
        manifest = load_manifest(path, verify_hash=verify_hash)
    except ManifestError as exc:
        raise PolicyModelError(f"{exc} (parameter 'manifest_path')") from exc
    if manifest.kind != "policy":
        raise PolicyModelError(f"manifest {path} describes a '{manifest.kind}' model, not a policy "
                               "(parameter 'manifest_path')")
    io = check_policy_contract(manifest)
    try:
        backend = create_backend(manifest, options, logger)  # type: ignore[arg-type]
    except BackendError as exc:
        raise PolicyModelError(f"cannot load the policy model: {exc}. To fix: re-export the model or fix the "
                               "manifest (parameter 'manifest_path'), or choose another 'backend'") from exc
    try:
        backend.warm_up()
        outputs = backend.infer({s.name: np.zeros(_fixed(s, (None,) * len(s.shape), "input"), s.dtype)
                                 for s in manifest.inputs})
    except Exception as exc:  # any runtime failure on the manifest's own shapes is a model/manifest mismatch
        backend.close()
        raise PolicyModelError(f"model {manifest.model_path.name} fails on the manifest's input shapes: "
                               f"{exc}; re-export the model or fix the manifest") from exc
    for spec in manifest.outputs:
        got = outputs.get(spec.name)
        want = _fixed(spec, (None,) * len(spec.shape), "output")
        if got is None or tuple(got.shape) != want:
            backend.close()
            raise PolicyModelError(
                f"model output '{spec.name}' has shape {None if got is None else list(got.shape)}, "
                f"manifest says {list(spec.shape)}; re-export the model or fix the manifest")
    return manifest, backend, io
