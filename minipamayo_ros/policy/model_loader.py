"""Load the policy model for the node: manifest, I/O contract, backend, warm-up. Fatal on any error.

Everything that can be wrong with a model is found here, before the first trajectory, and raised
as :class:`PolicyModelError` with a message that says what to fix (the node exits non-zero).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from minipamayo_ros import io_contract
from minipamayo_ros.inference import BackendError, BackendOptions, InferenceBackend, create_backend
from minipamayo_ros.manifest import (
    ManifestError,
    ModelManifest,
    TensorSpec,
    load_manifest,
    resolve_manifest_path,
)


class PolicyModelError(RuntimeError):
    """The policy model cannot be used; the message says what to fix."""


@dataclass(frozen=True)
class PolicyIO:
    """What the node needs to know about the model's tensors (all read from the manifest)."""

    image_size: tuple[int, int]   # (height, width) [px] of the NHWC uint8 RGB input
    context_dim: int              # length of the context vector (0 if the model has none)


def _fixed(spec: TensorSpec) -> tuple[int, ...]:
    """``spec``'s shape with a symbolic batch dimension resolved to 1 (the node runs batch 1)."""
    shape = tuple(1 if (i == 0 and isinstance(d, str)) else d for i, d in enumerate(spec.shape))
    if not all(isinstance(d, int) for d in shape):
        raise PolicyModelError(f"manifest tensor '{spec.name}' has symbolic dimensions {list(spec.shape)}; "
                               "the policy node needs fixed shapes (re-export the model)")
    return shape  # type: ignore[return-value]


def check_policy_contract(manifest: ModelManifest) -> PolicyIO:
    """The manifest must describe a policy with the declared I/O (``minipamayo_ros.io_contract``), of
    this contract's version: a model trained for other inputs is refused before any tensor check."""
    old = io_contract.version_problem(manifest.contract_version, manifest.name)
    if old is not None:
        raise PolicyModelError(f"{old} (parameter 'manifest_path')")
    inputs, outputs = io_contract.policy_specs()
    found: dict[str, TensorSpec] = {}
    for declared, get in [*((s, manifest.input) for s in inputs), *((s, manifest.output) for s in outputs)]:
        try:
            found[declared.name] = get(declared.name)
        except ManifestError as exc:
            if declared.name in io_contract.POLICY_OPTIONAL_OUTPUTS:
                continue
            raise PolicyModelError(
                f"{exc}; a policy model needs inputs {', '.join(io_contract.POLICY_INPUTS)} and outputs "
                f"{', '.join(io_contract.POLICY_OUTPUTS)} ({', '.join(io_contract.POLICY_OPTIONAL_OUTPUTS)} "
                "optional)") from exc
        why = io_contract.mismatch(found[declared.name], declared)
        if why is not None:
            raise PolicyModelError(f"manifest {why} (see docs/policy.md); re-export the model or fix the "
                                   "manifest")
    _, h, w, _ = _fixed(found[io_contract.IMAGE])
    context = found.get(io_contract.CONTEXT)
    return PolicyIO(image_size=(h, w), context_dim=_fixed(context)[1] if context is not None else 0)


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
        outputs = backend.infer({s.name: np.zeros(_fixed(s), s.dtype)
                                 for s in manifest.inputs})
    except Exception as exc:  # any runtime failure on the manifest's own shapes is a model/manifest mismatch
        backend.close()
        raise PolicyModelError(f"model {manifest.model_path.name} fails on the manifest's input shapes: "
                               f"{exc}; re-export the model or fix the manifest") from exc
    for spec in manifest.outputs:
        got = outputs.get(spec.name)
        want = _fixed(spec)
        if got is None or tuple(got.shape) != want:
            backend.close()
            raise PolicyModelError(
                f"model output '{spec.name}' has shape {None if got is None else list(got.shape)}, "
                f"manifest says {list(spec.shape)}; re-export the model or fix the manifest")
    return manifest, backend, io
