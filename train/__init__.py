"""Training stage: MNIST loading, the model zoo and `python -m train`.

Importing this package selects the legacy (tf-keras) Keras that Larq needs, so users never
have to set ``TF_USE_LEGACY_KERAS`` themselves.
"""

import os

os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

__all__: list[str] = []
