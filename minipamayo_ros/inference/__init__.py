"""Inference backends behind one interface (ONNX Runtime, TensorRT, PyTorch). ROS-free, no torch
import at module level: runtime nodes import this package on an 8 GB robot."""
