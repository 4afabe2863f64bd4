"""Firmware generation: targets and boards, Jinja templates, the tflm and bnn engines."""

import pipeline  # noqa: F401  (pipeline.env: legacy Keras before TensorFlow loads)

__all__: list[str] = []
