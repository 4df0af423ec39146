"""ONNX export of the policy and the text generator, parity check, and engine manifests.

Usage::

    python -m minipamayo_ros.model.export --weights engines/minipamayo-tiny.safetensors \
        --out engines [--metrics runs/tiny/metrics.json] [--training runs/tiny/training.json]

Writes ``<name>-policy.onnx``, ``<name>-text.onnx`` and ``<name>-text-step.onnx`` (the text node's
one-token-per-call decoder; ``--text-step-only`` adds it beside an existing export) (opset 17, batch 1,
fp32) with a manifest each (``minipamayo_ros.manifest``), after ``onnx.checker`` and an ONNX Runtime
vs PyTorch parity check (max abs diff <= 1e-4) that fails the export when violated.

Tensor names, shapes and dtypes: ``minipamayo_ros.io_contract`` (the export checks the written
graph against it).
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from minipamayo_ros import io_contract
from minipamayo_ros.io_contract import (
    POLICY_INPUTS,
    POLICY_OUTPUTS,
    TEXT_INPUTS,
    TEXT_OUTPUTS,
    TEXT_STEP_INPUTS,
    TEXT_STEP_OUTPUTS,
)
from minipamayo_ros.manifest import ModelManifest, TensorSpec, sha256_of, write_manifest
from minipamayo_ros.model.network import Minipamayo, load_model
from minipamayo_ros.model.text import TextGenerator

OPSET = 17
PARITY_TOL = 1e-4


def policy_example_inputs(model: Minipamayo, seed: int = 0) -> dict[str, np.ndarray]:
    """Deterministic realistic-range example inputs (random pixels, speeds 0..3 m/s)."""
    rng = np.random.default_rng(seed)
    h, w = model.cfg.image_size
    image = rng.integers(0, 256, (1, h, w, 3), dtype=np.uint8)
    state = np.zeros((1, model.cfg.state_steps, model.cfg.state_features), np.float32)
    state[..., 0] = rng.uniform(0.0, 3.0)
    state[..., 1] = rng.uniform(-0.5, 0.5)
    state[..., 2] = rng.normal(0.0, 0.3, model.cfg.state_steps)
    return {"image": image, "state": state}


def text_example_inputs(model: Minipamayo, context: np.ndarray, event: int = 1) -> dict[str, np.ndarray]:
    return {"context": context.astype(np.float32), "event": np.array([event], np.int64)}


def _export(module: nn.Module, args: tuple[torch.Tensor, ...], path: Path,
            inputs: tuple[str, ...], outputs: tuple[str, ...], fold: bool = True) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about python loops (intended unrolling)
        torch.onnx.export(module, args, str(path), input_names=list(inputs), output_names=list(outputs),
                          opset_version=OPSET, dynamo=False, do_constant_folding=fold)
    import onnx

    onnx.checker.check_model(onnx.load(str(path)), full_check=True)


class _PolicyGraph(nn.Module):
    def __init__(self, model: Minipamayo) -> None:
        super().__init__()
        self.policy = model.policy

    def forward(self, image: torch.Tensor, state: torch.Tensor):
        return self.policy(image, state)


def export_policy(model: Minipamayo, path: str | Path) -> Path:
    model = model.float().eval().cpu()
    ex = policy_example_inputs(model)
    args = (torch.from_numpy(ex["image"]), torch.from_numpy(ex["state"]))
    _export(_PolicyGraph(model), args, Path(path), POLICY_INPUTS, POLICY_OUTPUTS)
    return Path(path)


def export_text(model: Minipamayo, path: str | Path) -> Path:
    model = model.float().eval().cpu()
    args = (torch.zeros(1, model.cfg.context_dim), torch.tensor([1], dtype=torch.int64))
    # no constant folding: it would copy the position table once per unrolled step (33x the size)
    _export(TextGenerator(model.text), args, Path(path), TEXT_INPUTS, TEXT_OUTPUTS, fold=False)
    return Path(path)


class TextStep(nn.Module):
    """One decoding step: ``(context, event, tokens (1,T) starting with BOS) -> logits (1,vocab)`` of
    the next token. The text node loops over it (greedy), so it can check its deadline between tokens
    and stop at EOS or ``max_tokens``; the sequence dimension is dynamic (T = 1 .. max_tokens + 1)."""

    def __init__(self, decoder: nn.Module) -> None:
        super().__init__()
        self.decoder = decoder

    def forward(self, context: torch.Tensor, event: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        return self.decoder(context, event, tokens)[:, -1].float()


def export_text_step(model: Minipamayo, path: str | Path) -> Path:
    """The step graph of :class:`TextStep` (opset 17, batch 1, dynamic ``steps``)."""
    model = model.float().eval().cpu()
    args = (torch.zeros(1, model.cfg.context_dim), torch.tensor([1], dtype=torch.int64),
            torch.ones(1, 3, dtype=torch.int64))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(TextStep(model.text), args, str(path), input_names=list(TEXT_STEP_INPUTS),
                          output_names=list(TEXT_STEP_OUTPUTS), opset_version=OPSET, dynamo=False,
                          dynamic_axes={io_contract.TOKENS: {1: io_contract.DYNAMIC}})
    import onnx

    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    return path


def text_step_parity(step_path: str | Path, text_path: str | Path, contexts: np.ndarray,
                     events: np.ndarray) -> bool:
    """True if greedy decoding over the step graph yields the fixed-length graph's tokens exactly."""
    from minipamayo_ros.language import BOS, EOS, PAD

    step, full = ort_session(step_path), ort_session(text_path)
    for c, e in zip(contexts, events, strict=True):
        inp = {"context": c[None].astype(np.float32), "event": np.array([int(e)], np.int64)}
        want = run_onnx(full, inp)["tokens"][0]
        seq = [BOS]
        while len(seq) <= len(want):
            logits = run_onnx(step, {**inp, "tokens": np.array([seq], np.int64)})["logits"][0]
            seq.append(int(np.argmax(logits)))
            if seq[-1] == EOS:
                break
        got = np.full(len(want), PAD, np.int32)
        words = [t for t in seq[1:] if t != EOS][: len(want)]
        got[: len(words)] = words
        if not np.array_equal(got, want):
            return False
    return True


def export_text_step_beside(model: Minipamayo, out_dir: Path, name: str) -> dict[str, Path]:
    """``<name>-text-step.onnx`` + manifest beside ``<name>-text.onnx`` (whose training/metrics the
    manifest repeats), after checking that its greedy tokens equal the fixed-length graph's."""
    text_onnx = out_dir / f"{name}-text.onnx"
    text_manifest = json.loads((out_dir / f"{name}-text.manifest.json").read_text())
    step = export_text_step(model, out_dir / f"{name}-text-step.onnx")
    ctx = np.random.default_rng(0).normal(0, 1, (8, model.cfg.context_dim)).astype(np.float32)
    if not text_step_parity(step, text_onnx, ctx, np.arange(8) % 5):
        raise RuntimeError("text step ONNX: greedy decoding differs from the fixed-length text graph")
    m = write_engine_manifest(step, f"{name}-text-step", "text_step", model.cfg.as_dict(),
                              text_manifest.get("training", {}),
                              {**text_manifest.get("metrics", {}), "step_parity_tokens_equal": True})
    return {"text_step": step, "text_step_manifest": m}


def ort_session(path: str | Path, threads: int = 1):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def run_onnx(session, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, inputs), strict=True))


@torch.no_grad()
def policy_parity(model: Minipamayo, onnx_path: str | Path, seeds: range = range(3)) -> float:
    """Max abs difference ORT vs torch (fp32) over all policy outputs and a few inputs."""
    model = model.float().eval().cpu()
    sess = ort_session(onnx_path)
    worst = 0.0
    for s in seeds:
        ex = policy_example_inputs(model, s)
        ref = model.policy(torch.from_numpy(ex["image"]), torch.from_numpy(ex["state"]))
        got = run_onnx(sess, ex)
        for name, r in zip(POLICY_OUTPUTS, ref, strict=True):
            worst = max(worst, float(np.max(np.abs(got[name] - r.numpy()))))
    return worst


@torch.no_grad()
def text_parity(model: Minipamayo, onnx_path: str | Path, contexts: np.ndarray, events: np.ndarray
                ) -> tuple[float, bool]:
    """(max abs confidence difference, all tokens identical) ORT vs torch."""
    from minipamayo_ros.model.text import greedy_generate

    model = model.float().eval().cpu()
    sess = ort_session(onnx_path)
    worst, same = 0.0, True
    for c, e in zip(contexts, events, strict=True):
        inp = text_example_inputs(model, c[None], int(e))
        tok, ln, conf = greedy_generate(model.text, torch.from_numpy(inp["context"]),
                                        torch.from_numpy(inp["event"]))
        got = run_onnx(sess, inp)
        same &= bool(np.array_equal(got["tokens"], tok.numpy()) and np.array_equal(got["length"], ln.numpy()))
        worst = max(worst, float(np.max(np.abs(got["confidence"] - conf.numpy()))))
    return worst, same


def tensor_specs(onnx_path: str | Path) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
    """Input/output specs read from the ONNX graph itself (manifest can never disagree with it)."""
    import onnx
    from onnx import helper

    g = onnx.load(str(onnx_path)).graph

    def spec(v: Any) -> TensorSpec:
        t = v.type.tensor_type
        shape = tuple(d.dim_value if d.HasField("dim_value") else d.dim_param for d in t.shape.dim)
        return TensorSpec(v.name, shape, np.dtype(helper.tensor_dtype_to_np_dtype(t.elem_type)).name)

    return tuple(spec(v) for v in g.input), tuple(spec(v) for v in g.output)


def check_contract(inputs: tuple[TensorSpec, ...], outputs: tuple[TensorSpec, ...], kind: str,
                   config: dict[str, Any]) -> None:
    """Raise ValueError unless the graph's I/O is exactly the declared contract (``io_contract``)."""
    h, w = config["image_size"]
    if kind == "policy":
        d_in, d_out = io_contract.policy_specs((h, w), config["context_dim"])
    elif kind == "text_step":
        d_in, d_out = io_contract.text_step_specs(config["context_dim"], config["text"]["vocab_size"])
    else:
        d_in, d_out = io_contract.text_specs(config["context_dim"], config["text"]["max_tokens"])
    for found, declared in ((inputs, d_in), (outputs, d_out)):
        if [s.name for s in found] != [s.name for s in declared]:
            raise ValueError(f"{kind} graph tensors {[s.name for s in found]} != contract "
                             f"{[s.name for s in declared]}")
        for f, d in zip(found, declared, strict=True):
            why = io_contract.mismatch(f, d)
            if why is not None:
                raise ValueError(f"{kind} graph: {why}")


def write_engine_manifest(onnx_path: str | Path, name: str, kind: str, config: dict[str, Any],
                          training: dict[str, Any], metrics: dict[str, Any]) -> Path:
    """``<onnx stem>.manifest.json`` beside the ONNX file (sha256 and I/O from the file)."""
    onnx_path = Path(onnx_path).resolve()
    inputs, outputs = tensor_specs(onnx_path)
    check_contract(inputs, outputs, kind, config)
    manifest = ModelManifest(name=name, kind=kind, model_path=onnx_path, sha256=sha256_of(onnx_path),
                             inputs=inputs, outputs=outputs, config=config, training=training,
                             metrics=metrics, contract_version=io_contract.CONTRACT_VERSION)
    path = onnx_path.with_name(onnx_path.stem + ".manifest.json")
    write_manifest(path, manifest)
    return path


def export_all(model: Minipamayo, out_dir: str | Path, name: str, training: dict[str, Any],
               metrics: dict[str, Any]) -> dict[str, Path]:
    """Export policy + text, check parity, write manifests. Raises when parity fails."""
    out_dir = Path(out_dir)
    cfg = model.cfg.as_dict()
    pol = export_policy(model, out_dir / f"{name}-policy.onnx")
    p_diff = policy_parity(model, pol)
    if not p_diff <= PARITY_TOL:
        raise RuntimeError(f"policy ONNX parity {p_diff:.2e} > {PARITY_TOL}")
    txt = export_text(model, out_dir / f"{name}-text.onnx")
    ctx = np.random.default_rng(0).normal(0, 1, (3, model.cfg.context_dim)).astype(np.float32)
    t_diff, t_same = text_parity(model, txt, ctx, np.array([0, 1, 2]))
    if not (t_diff <= PARITY_TOL and t_same):
        raise RuntimeError(f"text ONNX parity failed: confidence diff {t_diff:.2e}, tokens equal {t_same}")
    pm = write_engine_manifest(pol, f"{name}-policy", "policy", cfg, training,
                               {**metrics.get("policy", {}), "onnx_parity_max_abs": p_diff})
    tm = write_engine_manifest(txt, f"{name}-text", "text_decoder", cfg, training,
                               {**metrics.get("text", {}), "onnx_parity_max_abs": t_diff})
    return {"policy": pol, "policy_manifest": pm, "text": txt, "text_manifest": tm,
            **export_text_step_beside(model, out_dir, name)}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--weights", required=True, help="safetensors written by train.py")
    ap.add_argument("--out", default="engines")
    ap.add_argument("--name", default="minipamayo-tiny")
    ap.add_argument("--metrics", help="JSON {'policy': {...}, 'text': {...}} from train/evaluate")
    ap.add_argument("--training", help="JSON with data seeds etc. for the manifest")
    ap.add_argument("--text-step-only", action="store_true",
                    help="only (re)write <name>-text-step.onnx + manifest beside an existing "
                         "<name>-text.onnx")
    a = ap.parse_args(argv)
    model = load_model(a.weights)
    if a.text_step_only:
        for k, v in export_text_step_beside(model, Path(a.out), a.name).items():
            print(f"{k}: {v}")
        return
    metrics = json.loads(Path(a.metrics).read_text()) if a.metrics else {}
    training = json.loads(Path(a.training).read_text()) if a.training else {}
    for k, v in export_all(model, a.out, a.name, training, metrics).items():
        print(f"{k}: {v}")


if __name__ == "__main__":
    main()
