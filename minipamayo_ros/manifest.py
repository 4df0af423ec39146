"""Model manifests: what a shipped model file is, checked before anything runs it.

``engines/<name>.manifest.json`` sits beside ``engines/<file>`` (ONNX). Schema::

    {
      "name": "minipamayo-tiny-policy",        # engine name
      "kind": "policy" | "text_decoder" | "text_step",
      "contract_version": 2,                   # io_contract.CONTRACT_VERSION it was exported for (absent: 1)
      "file": "minipamayo-tiny-policy.onnx",   # relative to the manifest
      "sha256": "<hex>",                       # of that file
      "inputs":  [{"name": "image", "shape": [1, 128, 128, 3], "dtype": "uint8"}, ...],
      "outputs": [{"name": "waypoints", "shape": [1, 20, 2], "dtype": "float32"}, ...],
      "config": {...},                          # model config (lib-specific)
      "training": {"data_seeds": [...], ...},
      "metrics": {...}                          # measured quality (ADE, FDE, ...)
    }

Dimensions may be strings (symbolic, e.g. "batch") where the graph is dynamic.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: the source checkout (manifests relative to it are found when running from a checkout)
SOURCE_ROOT = Path(__file__).resolve().parents[1]


#: the I/O contract version of a manifest that names none (written before versions existed)
LEGACY_CONTRACT_VERSION = 1


class ManifestError(RuntimeError):
    """A manifest or its model file is missing, corrupt or inconsistent (says what to fix)."""


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[int | str, ...]
    dtype: str  # numpy dtype name

    @staticmethod
    def from_dict(d: dict[str, Any]) -> TensorSpec:
        return TensorSpec(str(d["name"]), tuple(d["shape"]), str(d["dtype"]))

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}


@dataclass(frozen=True)
class ModelManifest:
    name: str
    kind: str
    model_path: Path  # absolute path of the model file
    sha256: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    config: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    #: ``io_contract.CONTRACT_VERSION`` the model was exported for (manifests without the key: 1)
    contract_version: int = LEGACY_CONTRACT_VERSION

    @property
    def model_id(self) -> str:
        """``<name>@<first 12 hex of sha256>``: the id every output message carries."""
        return f"{self.name}@{self.sha256[:12]}"

    def input(self, name: str) -> TensorSpec:
        return _by_name(self.inputs, name, "input", self.name)

    def output(self, name: str) -> TensorSpec:
        return _by_name(self.outputs, name, "output", self.name)


def _by_name(specs: tuple[TensorSpec, ...], name: str, what: str, model: str) -> TensorSpec:
    for s in specs:
        if s.name == name:
            return s
    raise ManifestError(f"model '{model}' has no {what} named '{name}' ({[s.name for s in specs]})")


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


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
    candidates.append(SOURCE_ROOT / p)
    for c in candidates:
        if c.exists():
            return c.resolve()
    return candidates[0]


def load_manifest(path: str | Path, verify_hash: bool = True) -> ModelManifest:
    """Load and check a manifest; raises :class:`ManifestError` with the fix in the message."""
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"model manifest not found: {path} (check the engine/manifest path parameter)")
    try:
        d = json.loads(path.read_text())
        model_path = (path.parent / d["file"]).resolve()
        manifest = ModelManifest(
            name=str(d["name"]),
            kind=str(d.get("kind", "policy")),
            model_path=model_path,
            sha256=str(d["sha256"]),
            inputs=tuple(TensorSpec.from_dict(x) for x in d["inputs"]),
            outputs=tuple(TensorSpec.from_dict(x) for x in d["outputs"]),
            config=dict(d.get("config", {})),
            training=dict(d.get("training", {})),
            metrics=dict(d.get("metrics", {})),
            contract_version=int(d.get("contract_version", LEGACY_CONTRACT_VERSION)),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise ManifestError(f"model manifest {path} is malformed: {exc!r}") from exc
    if not model_path.is_file():
        raise ManifestError(f"model file {model_path} named by {path} does not exist")
    if verify_hash:
        actual = sha256_of(model_path)
        if actual != manifest.sha256:
            raise ManifestError(
                f"model file {model_path} is corrupt or was replaced: sha256 {actual[:12]}... "
                f"!= manifest {manifest.sha256[:12]}...; re-export the model or fix the manifest"
            )
    return manifest


def write_manifest(path: str | Path, manifest: ModelManifest) -> None:
    """Write ``manifest`` as JSON (model file path stored relative to the manifest)."""
    path = Path(path)
    d = {
        "name": manifest.name,
        "kind": manifest.kind,
        "contract_version": manifest.contract_version,
        "file": str(Path(manifest.model_path).relative_to(path.parent.resolve())),
        "sha256": manifest.sha256,
        "inputs": [s.as_dict() for s in manifest.inputs],
        "outputs": [s.as_dict() for s in manifest.outputs],
        "config": manifest.config,
        "training": manifest.training,
        "metrics": manifest.metrics,
    }
    path.write_text(json.dumps(d, indent=2) + "\n")
