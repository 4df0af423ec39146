"""Open-loop evaluation on held-out simulator data: ADE/FDE, speed error, uncertainty, captions.

The same metric code scores the PyTorch model during training and the exported ONNX files
(fp32 and INT8), so the numbers in the manifests are comparable::

    python -m minipamayo_ros.model.evaluate --policy engines/minipamayo-tiny-policy.onnx \
        --text engines/minipamayo-tiny-text.onnx --data <dataset dir> [--limit 2000]
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

#: (images (B,H,W,3) uint8, state (B,10,4))
#: -> (waypoints (B,20,2), speeds (B,20), uncertainty (B,), context (B,C))
PolicyFn = Callable[[NDArray[np.uint8], NDArray[np.float32]], tuple[np.ndarray, ...]]
#: (context (B,C), event (B,)) -> tokens (B,32) int (PAD after the caption)
TextFn = Callable[[NDArray[np.float32], NDArray[np.int64]], np.ndarray]


class Dataset(Protocol):
    """What evaluation and training read (``minipamayo_ros.sim.dataset.DrivingDataset`` has it)."""

    images: np.ndarray
    state: np.ndarray
    waypoints: np.ndarray
    speeds: np.ndarray
    events: np.ndarray
    caption_tokens: np.ndarray


def trajectory_metrics(pred_wp: np.ndarray, true_wp: np.ndarray, pred_speed: np.ndarray,
                       true_speed: np.ndarray, uncertainty: np.ndarray | None = None) -> dict[str, float]:
    """ADE/FDE [m] (mean L2 over the 20 waypoints / at 2.0 s), p95 ADE, speed MAE [m/s],
    and how well ``uncertainty`` [m] tracks the per-sample ADE (MAE and Pearson r)."""
    err = np.linalg.norm(pred_wp - true_wp, axis=-1)  # (N, 20)
    ade_i = err.mean(axis=1)
    out = {
        "ade_m": float(ade_i.mean()),
        "fde_m": float(err[:, -1].mean()),
        "ade_p95_m": float(np.percentile(ade_i, 95)),
        "speed_mae_mps": float(np.abs(pred_speed - true_speed).mean()),
        "samples": int(len(ade_i)),
    }
    if uncertainty is not None:
        out["uncertainty_mae_m"] = float(np.abs(uncertainty - ade_i).mean())
        if ade_i.std() > 0 and uncertainty.std() > 0:
            out["uncertainty_ade_corr"] = float(np.corrcoef(uncertainty, ade_i)[0, 1])
    return out


def caption_exact_match(pred_tokens: np.ndarray, true_tokens: np.ndarray) -> float:
    """Fraction of captions whose word ids equal the expert's exactly (PAD-padded rows)."""
    pred = np.asarray(pred_tokens)[:, : true_tokens.shape[1]]
    return float(np.mean(np.all(pred == true_tokens, axis=1)))


def evaluate(ds: Dataset, policy: PolicyFn, text: TextFn | None = None, batch: int = 256,
             limit: int | None = None, progress: bool = False) -> dict[str, Any]:
    """Run ``policy`` (and ``text`` on the policy's context + the true event) over ``ds``."""
    n = len(ds.images) if limit is None else min(limit, len(ds.images))
    wps, sps, uncs, toks = [], [], [], []
    for i in range(0, n, batch):
        sl = slice(i, min(n, i + batch))
        wp, sp, unc, ctx = policy(ds.images[sl], ds.state[sl].astype(np.float32))
        wps.append(wp)
        sps.append(sp)
        uncs.append(unc)
        if text is not None:
            toks.append(text(ctx.astype(np.float32), ds.events[sl].astype(np.int64)))
        if progress and ((i // batch) % 8 == 7 or i + batch >= n):
            print(f"  eval {min(n, i + batch)}/{n}", flush=True)
    res: dict[str, Any] = {"policy": trajectory_metrics(
        np.concatenate(wps), ds.waypoints[:n], np.concatenate(sps), ds.speeds[:n], np.concatenate(uncs))}
    if text is not None:
        pred = np.concatenate(toks)
        per_event = {}
        for e in np.unique(ds.events[:n]):
            m = ds.events[:n] == e
            per_event[str(int(e))] = caption_exact_match(pred[m], ds.caption_tokens[:n][m])
        res["text"] = {"caption_exact_match": caption_exact_match(pred, ds.caption_tokens[:n]),
                       "caption_exact_match_per_event": per_event, "samples": int(n)}
    return res


def onnx_policy_fn(path: str, threads: int = 1) -> PolicyFn:
    """ONNX Runtime policy as a :data:`PolicyFn` (the batch-1 graph is looped)."""
    from minipamayo_ros.model.export import ort_session

    sess = ort_session(path, threads)
    names = ["waypoints", "speeds", "uncertainty", "context"]

    def fn(images: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, ...]:
        outs = [sess.run(names, {"image": images[j:j + 1], "state": state[j:j + 1]})
                for j in range(len(images))]
        return tuple(np.concatenate([o[k] for o in outs]) for k in range(4))

    return fn


def onnx_text_fn(path: str, threads: int = 1) -> TextFn:
    from minipamayo_ros.model.export import ort_session

    sess = ort_session(path, threads)

    def fn(context: np.ndarray, events: np.ndarray) -> np.ndarray:
        return np.concatenate([
            sess.run(["tokens"], {"context": context[j:j + 1], "event": events[j:j + 1]})[0]
            for j in range(len(context))])

    return fn


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Open-loop evaluation of exported minipamayo ONNX files")
    ap.add_argument("--policy", required=True)
    ap.add_argument("--text")
    ap.add_argument("--data", required=True, help="dataset written by minipamayo_ros.sim.dataset")
    ap.add_argument("--limit", type=int)
    a = ap.parse_args(argv)
    from minipamayo_ros.sim.dataset import load_dataset

    ds = load_dataset(a.data)
    res = evaluate(ds, onnx_policy_fn(a.policy), onnx_text_fn(a.text) if a.text else None, limit=a.limit)
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
