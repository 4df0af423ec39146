"""A stand-in for a slow inference call (a long TensorRT run, a stalled GPU): the real backend behind
a gate the test closes and opens, recording what happened while a call was inside it.

``gate_backends(setattr)`` makes the policy's model loader wrap every backend it creates (the node
builds its backend through ``policy.model_loader.create_backend``); pass ``monkeypatch.setattr``
in a test, or plain ``setattr`` in a helper process.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from minipamayo_ros.inference import InferenceBackend, Tensors


class GatedBackend(InferenceBackend):
    """The real backend; ``infer`` waits while ``gate`` is closed (cleared). Counts the calls in
    progress and whether ``close()`` came while one was (a use-after-free on TensorRT)."""

    def __init__(self, inner: InferenceBackend) -> None:
        super().__init__(inner.manifest, inner.options)
        self.inner = inner
        self.selection = inner.selection
        self.gate = threading.Event()
        self.gate.set()                    # open: calls go straight through (warm-up at load)
        self.entered = threading.Event()   # a call has reached infer() since the last clear()
        self.calls_in_progress = 0
        self.closed = False
        self.closed_during_call = False
        self._lock = threading.Lock()

    def infer(self, inputs: Tensors) -> Tensors:
        with self._lock:
            self.calls_in_progress += 1
        self.entered.set()
        try:
            self.gate.wait()
            out = self.inner.infer(inputs)
            self.last_infer_ms = self.inner.last_infer_ms
            return out
        finally:
            with self._lock:
                self.calls_in_progress -= 1

    def describe(self) -> dict[str, str]:
        return self.inner.describe()

    def close(self) -> None:
        with self._lock:
            self.closed_during_call |= self.calls_in_progress > 0
            self.closed = True
        print(f"[gated backend] closed ({'DURING a call' if self.closed_during_call else 'no call running'})",
              flush=True)
        self.inner.close()


def gate_backends(set_attr: Callable[[object, str, object], None]) -> list[GatedBackend]:
    """Wrap every backend the policy loader creates from now on; returns them as they come."""
    from minipamayo_ros.policy import model_loader

    created: list[GatedBackend] = []
    real = model_loader.create_backend

    def create(*args: object, **kwargs: object) -> GatedBackend:
        created.append(GatedBackend(real(*args, **kwargs)))  # type: ignore[arg-type]
        return created[-1]

    set_attr(model_loader, "create_backend", create)
    return created
