"""Greedy caption generation over the text *step* model, token by token, under a deadline.

The step graph (``engines/<name>-text-step.onnx``, manifest kind ``text_step``) maps ``context``
(1,C) float32, ``event`` (1,) int64 and ``tokens`` (1,T) int64 (BOS first) to ``logits`` (1,V) of
the next token. Looping here rather than inside one fixed-length graph is what lets the node

* stop at EOS (short captions cost only their length),
* stop at ``max_tokens`` (16–32) and flag the caption ``truncated``,
* check the wall-clock deadline between tokens and abandon a generation that runs over it.

Greedy argmax over float32 logits is deterministic for a given (context, event): the same inputs
give the same tokens on every run (tested; it also equals the fixed-length graph's output).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from minipamayo_ros import io_contract, language
from minipamayo_ros.inference import (
    BackendError,
    BackendOptions,
    InferenceBackend,
    ManifestError,
    ModelManifest,
    create_backend,
    load_manifest,
)
from minipamayo_ros.manifest import resolve_manifest_path

TEXT_STEP_KIND = "text_step"


class TextModelError(RuntimeError):
    """The text model cannot be used; the message says what to fix."""


@dataclass(frozen=True)
class Caption:
    """One generation's result."""

    token_ids: tuple[int, ...]   # caption words (no BOS/EOS)
    text: str
    truncated: bool              # stopped at max_tokens before an EOS
    abandoned: bool              # stopped at the deadline (the caption is incomplete: do not publish)
    latency_ms: float            # [ms] wall time of the whole generation
    steps: int                   # model calls made


class CaptionGenerator:
    """Greedy decoding loop around a loaded ``text_step`` backend."""

    def __init__(self, backend: InferenceBackend, context_dim: int,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.backend = backend
        self.context_dim = context_dim
        self._clock = clock

    @property
    def model_id(self) -> str:
        return self.backend.manifest.model_id

    def generate(self, context: NDArray[np.floating], event: int, max_tokens: int,
                 max_generation_ms: float = float("inf"), ignore_eos: bool = False) -> Caption:
        """Caption of ``context`` conditioned on ``event`` (an ``events.Event`` value).

        At most ``max_tokens`` words; before every step after the first, the elapsed wall time is
        compared with ``max_generation_ms`` and the generation is abandoned when it is over.
        ``ignore_eos`` always runs ``max_tokens`` steps (the worst case, for benchmarks).
        """
        ctx = np.asarray(context, dtype=np.float32).reshape(1, -1)
        if ctx.shape[1] != self.context_dim:
            raise ValueError(f"context has {ctx.shape[1]} values, the text model needs {self.context_dim}")
        if not np.all(np.isfinite(ctx)):
            raise ValueError("context contains NaN or inf")
        feed: dict[str, np.ndarray] = {"context": ctx, "event": np.array([int(event)], np.int64)}
        seq = [language.BOS]
        words: list[int] = []
        t0 = self._clock()
        steps = 0
        ended = abandoned = False
        while len(words) < max_tokens:
            if steps and (self._clock() - t0) * 1e3 > max_generation_ms:
                abandoned = True
                break
            logits = self.backend.infer({**feed, "tokens": np.array([seq], np.int64)})["logits"]
            steps += 1
            nxt = int(np.argmax(logits[0]))
            if nxt == language.EOS and not ignore_eos:
                ended = True
                break
            seq.append(nxt)
            words.append(nxt)
        # one more step tells a caption of exactly max_tokens words from a cut one; skipped past the
        # deadline (then the flag errs on the side of "truncated")
        if (not ended and not abandoned and len(words) >= max_tokens
                and (self._clock() - t0) * 1e3 <= max_generation_ms):
            logits = self.backend.infer({**feed, "tokens": np.array([seq], np.int64)})["logits"]
            steps += 1
            ended = int(np.argmax(logits[0])) == language.EOS
        latency = (self._clock() - t0) * 1e3
        return Caption(tuple(words), language.decode(words), truncated=not ended and not abandoned,
                       abandoned=abandoned, latency_ms=latency, steps=steps)


def check_text_contract(manifest: ModelManifest) -> int:
    """The manifest must describe a ``text_step`` model with the generator's I/O; returns context dim."""
    if manifest.kind != TEXT_STEP_KIND:
        raise TextModelError(f"manifest '{manifest.name}' describes a '{manifest.kind}' model; the text node "
                             f"needs kind '{TEXT_STEP_KIND}' (engines/<name>-text-step.manifest.json, "
                             "parameter 'manifest_path')")
    found = {s.name: s for s in manifest.inputs + manifest.outputs}
    declared_in, declared_out = io_contract.text_step_specs()
    checks = [io_contract.mismatch(found[d.name], d) if d.name in found else f"missing tensor '{d.name}'"
              for d in declared_in + declared_out]
    problems = [p for p in checks if p]
    ctx, logits = found.get("context"), found.get("logits")
    if not problems and logits is not None and int(logits.shape[1]) < language.VOCAB_SIZE:
        problems.append(f"logits has {logits.shape[1]} classes, the vocabulary {language.VOCAB_SIZE} words")
    if problems or ctx is None:
        raise TextModelError(f"text step model '{manifest.name}' breaks the I/O contract "
                             f"(io_contract.text_step_specs): {'; '.join(problems)}; re-export it")
    return int(ctx.shape[1])


def load_text_generator(manifest_path: str | Path, options: BackendOptions, verify_hash: bool = True,
                        logger: object | None = None) -> CaptionGenerator:
    """Manifest -> checked, warmed-up generator. Raises :class:`TextModelError` on any problem."""
    path = resolve_manifest_path(str(manifest_path))
    try:
        manifest = load_manifest(path, verify_hash=verify_hash)
    except ManifestError as exc:
        raise TextModelError(f"{exc} (parameter 'manifest_path')") from exc
    context_dim = check_text_contract(manifest)
    try:
        backend = create_backend(manifest, options, logger)  # type: ignore[arg-type]
    except BackendError as exc:
        raise TextModelError(f"cannot load the text model: {exc} (parameter 'manifest_path')") from exc
    generator = CaptionGenerator(backend, context_dim)
    try:
        for _ in range(max(1, options.warmup_runs)):
            generator.generate(np.zeros(context_dim, np.float32), 0, language.MAX_CAPTION_TOKENS)
    except Exception as exc:
        backend.close()
        raise TextModelError(f"text model {manifest.model_path.name} fails on its own input shapes: {exc}; "
                             "re-export it (python -m minipamayo_ros.model.export --text-step-only)") from exc
    backend.warmed_up = True
    return generator
