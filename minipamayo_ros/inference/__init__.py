"""Inference backends behind one interface (ONNX Runtime, TensorRT, PyTorch). ROS-free, no torch
import at module level: runtime nodes import this package on an 8 GB robot.

    from minipamayo_ros.inference import BackendOptions, create_backend, load_manifest
    backend = create_backend(load_manifest(path), BackendOptions(backend="auto"))
    backend.warm_up(); outputs = backend.infer({"image": img, "state": state})
"""

from minipamayo_ros.inference.backend import (
    BackendError,
    BackendOptions,
    InferenceBackend,
    Tensors,
    check_inputs,
)
from minipamayo_ros.inference.factory import BACKENDS, choose_backend, create_backend, tensorrt_availability
from minipamayo_ros.manifest import ManifestError, ModelManifest, TensorSpec, load_manifest

__all__ = [
    "BACKENDS",
    "BackendError",
    "BackendOptions",
    "InferenceBackend",
    "ManifestError",
    "ModelManifest",
    "TensorSpec",
    "Tensors",
    "check_inputs",
    "choose_backend",
    "create_backend",
    "load_manifest",
    "tensorrt_availability",
]
