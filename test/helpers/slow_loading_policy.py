"""Test helper process: the real policy node whose model load takes ``LOAD_S`` (a stand-in).

Environment ``MINIPAMAYO_TEST_LOAD`` says where the load spends its time:

* ``native``: a TensorRT engine build (10+ minutes on the vehicle). The main thread waits in native
  code, where a stop signal's Python handler cannot run until the call returns (emulated by holding
  SIGINT/SIGTERM for the main thread while it waits), and the build's own threads report progress
  through the real ``BuildProgress``, stopping when it asks them to cancel, as TensorRT does with its
  ``IProgressMonitor``;
* ``python``: loading in Python code: the handler runs at once.

After the load the real backend is created, so a node that ignores the signal becomes ready.
"""

import os
import signal
import sys
import threading
import time

import minipamayo_ros.policy.model_loader as model_loader
from minipamayo_ros.inference.backend import BackendError
from minipamayo_ros.inference.build_progress import BuildProgress
from minipamayo_ros.nodes import policy_node

LOAD_S = 60.0
STEP_S = 0.05
LOAD = os.environ.get("MINIPAMAYO_TEST_LOAD", "native")
real_create_backend = model_loader.create_backend


def native_build(log) -> bool:
    """A build of ``LOAD_S`` in TensorRT's shape; True when it ran to its end, False when cancelled."""
    progress = BuildProgress(log, interval_s=1.0)
    steps = int(LOAD_S / STEP_S)
    finished = threading.Event()
    completed = []

    def builder_thread() -> None:
        progress.phase_start("Building engine", None, steps)
        for step in range(steps):
            time.sleep(STEP_S)
            if not progress.step_complete("Building engine", step):
                break
        else:
            completed.append(True)
        progress.phase_finish("Building engine")
        finished.set()

    threading.Thread(target=builder_thread, daemon=True).start()
    held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        finished.wait()  # "native": no Python signal handler runs in this thread meanwhile
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)
    return bool(completed)


def slow_create_backend(manifest, options, logger=None):
    if LOAD == "native":
        if not native_build(logger.info if logger is not None else print):
            raise BackendError("engine build cancelled")
    else:
        time.sleep(LOAD_S)
    return real_create_backend(manifest, options, logger)


model_loader.create_backend = slow_create_backend

if __name__ == "__main__":
    sys.exit(policy_node.main(sys.argv))
