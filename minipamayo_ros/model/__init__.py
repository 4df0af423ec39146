"""The reference minipamayo model: config family, network, training, export, INT8, evaluation.

Offline tooling only (PyTorch). Runtime nodes never import this package: they load the exported
ONNX files in ``engines/`` through ``minipamayo_ros.inference``. ``config`` is torch-free; every
other module here imports torch.

Entry points (see ``docs/model.md``):

* ``model.config.load_config(name_or_path)`` -> :class:`~minipamayo_ros.model.config.ModelConfig`
* ``model.network.build_model(config)`` / ``load_model(config, safetensors_path)``
* ``model.network.Minipamayo.policy(image_uint8_nhwc, state)`` -> waypoints, speeds, uncertainty,
  context; ``model.text.greedy_generate(...)`` -> caption tokens
* ``python -m minipamayo_ros.model.train`` (sim data -> weights), ``.release`` (export, held-out
  ONNX evaluation, INT8, manifests into ``engines/``); also ``.export``, ``.quantize``, ``.evaluate``
"""
