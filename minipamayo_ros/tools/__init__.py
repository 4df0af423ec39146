"""Command-line tools for the robot: ``build_engine`` and ``verify_engine`` (TensorRT engines)."""
