"""Emulation: run any artifact on the test set; accuracy, flash and RAM against a budget."""

import pipeline  # noqa: F401  (pipeline.env: legacy Keras before TensorFlow loads)

__all__: list[str] = []
