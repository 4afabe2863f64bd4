"""Training stage: the model zoo, recipes and `python -m train`.

Importing it (like any stage) imports :mod:`pipeline`, which selects the legacy (tf-keras) Keras
that Larq needs, so users never have to set ``TF_USE_LEGACY_KERAS`` themselves.
"""

import pipeline  # noqa: F401  (pipeline.env: legacy Keras before TensorFlow loads)

__all__: list[str] = []
