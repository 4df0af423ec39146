"""The model I/O contract: tensor names, shapes and dtypes of the policy and the text decoder.

Declared once, here, at the lowest layer: ONNX export (``model.export``), synthetic manifests
(``inference.torch_backend.io_specs``), the probe model (``policy.probe_model``) and the policy
node's startup check (``policy.model_loader.check_policy_contract``) all derive from it.

Policy: ``image`` uint8 (1, H, W, 3) RGB, ``state`` float32 (1, 10, 4) -> ``waypoints`` float32
(1, 20, 2) [m, base_link at the image stamp], ``speeds`` (1, 20) [m/s], ``uncertainty`` (1,) [m],
``context`` (1, C) (optional: the text node's input). Text: ``context`` float32 (1, C), ``event``
int64 (1,) -> ``tokens`` int32 (1, 32) word ids (PAD after the caption), ``length`` int32 (1,),
``confidence`` float32 (1,). ``None`` in a declared shape means "any size" (image size, C).

The contract has a version (:data:`CONTRACT_VERSION`), written into every manifest
(``contract_version``; a manifest without one is version 1). The policy node refuses a policy
manifest of another version, naming both, rather than feeding a model inputs it was not trained
on. History: 1 = ``state`` (1, 10, 3) (speed, yaw rate, acceleration); 2 = ``state`` (1, 10, 4),
the standing time added (``state_features``). The text decoder's tensors are the same in 1 and 2.
"""

from __future__ import annotations

from minipamayo_ros.language import MAX_CAPTION_TOKENS
from minipamayo_ros.manifest import TensorSpec
from minipamayo_ros.state_features import STATE_FEATURES, STATE_STEPS
from minipamayo_ros.trajectory import NUM_WAYPOINTS

#: version of this contract (module doc); manifests written now carry it
CONTRACT_VERSION = 2
#: what changed in each version (for error messages)
CONTRACT_HISTORY = {
    1: "state (1, 10, 3): speed, yaw rate, acceleration",
    2: f"state (1, {STATE_STEPS}, {len(STATE_FEATURES)}): {', '.join(STATE_FEATURES)}",
}

# tensor names
IMAGE, STATE = "image", "state"
WAYPOINTS, SPEEDS, UNCERTAINTY, CONTEXT = "waypoints", "speeds", "uncertainty", "context"
EVENT, TOKENS, LENGTH, CONFIDENCE = "event", "tokens", "length", "confidence"
LOGITS = "logits"

POLICY_INPUTS = (IMAGE, STATE)
POLICY_OUTPUTS = (WAYPOINTS, SPEEDS, UNCERTAINTY, CONTEXT)
#: a policy may omit these outputs (a model without a text head)
POLICY_OPTIONAL_OUTPUTS = (CONTEXT,)
TEXT_INPUTS = (CONTEXT, EVENT)
TEXT_OUTPUTS = (TOKENS, LENGTH, CONFIDENCE)
#: the text node's decoder, one token per call: ``tokens`` (BOS first) -> next-token ``logits``
TEXT_STEP_INPUTS = (CONTEXT, EVENT, TOKENS)
TEXT_STEP_OUTPUTS = (LOGITS,)
#: a declared dimension of this value is symbolic in the graph (any length at run time)
DYNAMIC = "steps"

Dim = int | None
Specs = tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]


def policy_specs(image_size: tuple[Dim, Dim] = (None, None), context_dim: Dim = None) -> Specs:
    """(inputs, outputs) of a policy; ``None`` leaves a dimension open (for checking manifests)."""
    h, w = image_size
    return ((TensorSpec(IMAGE, (1, h, w, 3), "uint8"),  # type: ignore[arg-type]
             TensorSpec(STATE, (1, STATE_STEPS, len(STATE_FEATURES)), "float32")),
            (TensorSpec(WAYPOINTS, (1, NUM_WAYPOINTS, 2), "float32"),
             TensorSpec(SPEEDS, (1, NUM_WAYPOINTS), "float32"),
             TensorSpec(UNCERTAINTY, (1,), "float32"),
             TensorSpec(CONTEXT, (1, context_dim), "float32")))  # type: ignore[arg-type]


def text_specs(context_dim: Dim = None, max_tokens: Dim = MAX_CAPTION_TOKENS) -> Specs:
    """(inputs, outputs) of the text decoder (greedy caption generation, ``max_tokens`` words; the
    shipped vocabulary's captions need :data:`~minipamayo_ros.language.MAX_CAPTION_TOKENS`)."""
    return ((TensorSpec(CONTEXT, (1, context_dim), "float32"),  # type: ignore[arg-type]
             TensorSpec(EVENT, (1,), "int64")),
            (TensorSpec(TOKENS, (1, max_tokens), "int32"),  # type: ignore[arg-type]
             TensorSpec(LENGTH, (1,), "int32"),
             TensorSpec(CONFIDENCE, (1,), "float32")))


def text_step_specs(context_dim: Dim = None, vocab_size: Dim = None) -> Specs:
    """(inputs, outputs) of the text step model (manifest kind ``text_step``): ``tokens`` int64
    (1, steps) with a dynamic length -> ``logits`` float32 (1, vocab)."""
    return ((TensorSpec(CONTEXT, (1, context_dim), "float32"),  # type: ignore[arg-type]
             TensorSpec(EVENT, (1,), "int64"),
             TensorSpec(TOKENS, (1, DYNAMIC), "int64")),
            (TensorSpec(LOGITS, (1, vocab_size), "float32"),))  # type: ignore[arg-type]


def version_problem(manifest_version: int, name: str) -> str | None:
    """Why a policy manifest of ``manifest_version`` cannot run with this contract, or None."""
    if manifest_version == CONTRACT_VERSION:
        return None
    old = CONTRACT_HISTORY.get(manifest_version, "unknown to this build")
    return (f"model '{name}' follows I/O contract v{manifest_version} ({old}); this build feeds I/O contract "
            f"v{CONTRACT_VERSION} ({CONTRACT_HISTORY[CONTRACT_VERSION]}): use a model exported for "
            f"v{CONTRACT_VERSION} (the shipped engines/, or retrain and release it: docs/model.md)")


def mismatch(found: TensorSpec, declared: TensorSpec) -> str | None:
    """Why ``found`` (a manifest's tensor) breaks ``declared`` (this contract), or None.

    A symbolic (string) batch dimension in ``found`` counts as 1: the node runs batch 1.
    """
    shape = tuple(1 if (i == 0 and isinstance(d, str)) else d for i, d in enumerate(found.shape))
    if found.dtype != declared.dtype:
        return f"tensor '{found.name}' is {found.dtype}, the contract says {declared.dtype}"
    ok = len(shape) == len(declared.shape) and all(
        isinstance(d, str) if e == DYNAMIC else isinstance(d, int) and (e is None or d == e)
        for d, e in zip(shape, declared.shape, strict=False))
    if not ok:
        want = "(" + ", ".join("any" if e is None else str(e) for e in declared.shape) + ")"
        return f"tensor '{found.name}' has shape {list(found.shape)}, the contract says {want}"
    return None
