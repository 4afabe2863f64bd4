"""The comparison study: MNIST EDA, six models full-precision and binarized, one table (``python -m study``).

Importing it (like any stage) imports :mod:`pipeline`, which selects the legacy (tf-keras) Keras.
"""

import pipeline  # noqa: F401  (pipeline.env: legacy Keras before TensorFlow loads)

__all__: list[str] = []
