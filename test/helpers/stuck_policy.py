"""Test helper process: the real policy node whose inference call never returns (the backend stand-in
``GatedBackend`` with its gate closed: a hung TensorRT call). It feeds itself 1.5 s of odometry and
one frame, logs ``inference call in progress`` once the call is inside the backend, and is run
through the same ``run_node`` as the shipped executable, so a stop signal takes the vehicle's path.
``close()`` waits ``STOP_TIMEOUT_S`` instead of the shipped 5 s to keep the test short.
"""

import sys
import threading
import time

import numpy as np
from slow_backend import gate_backends

from minipamayo_ros.geometry import Pose2D
from minipamayo_ros.nodes.node_main import run_node
from minipamayo_ros.nodes.policy_node import PolicyNode
from minipamayo_ros.params import ParameterError
from minipamayo_ros.policy.model_loader import PolicyModelError
from minipamayo_ros.policy.pipeline import Frame
from minipamayo_ros.pose_history import OdometrySample

STOP_TIMEOUT_S = 1.0
BACKENDS = gate_backends(setattr)


class StuckPolicy(PolicyNode):
    def __init__(self) -> None:
        super().__init__()
        backend = BACKENDS[-1]
        backend.gate.clear()  # from now on no inference call returns
        now = self.get_clock().now().nanoseconds * 1e-9
        for t in np.arange(now - 1.5, now, 0.02):
            sample = OdometrySample(float(t), Pose2D(3.0 * (t - now), 0.0, 0.0), 3.0, 0.0)
            self.pipeline.add_odometry(sample, now)
        image = np.zeros((64, 64, 3), np.uint8)
        self.offer_frame(Frame(now, lambda: image, "64x64 test image", now, time.monotonic()))

        def announce() -> None:
            if backend.entered.wait(30.0):
                self.get_logger().info("inference call in progress")

        threading.Thread(target=announce, daemon=True).start()

    def close(self, timeout: float = STOP_TIMEOUT_S) -> bool:
        return super().close(timeout)


if __name__ == "__main__":
    sys.exit(run_node(StuckPolicy, (PolicyModelError, ParameterError), sys.argv))
