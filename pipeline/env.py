"""The process environment every stage needs before TensorFlow loads (the one place that sets it).

Larq 0.14 and Larq Compute Engine 0.16 work with the legacy Keras 2 (``tf-keras``), which
TensorFlow 2.16 selects only when ``TF_USE_LEGACY_KERAS=1`` is set before ``import
tensorflow``. :func:`configure_environment` sets it, and quiets TensorFlow's C++ logging unless
the user chose a level. Importing :mod:`pipeline` calls it, and every stage package imports
:mod:`pipeline`, so ``python -m STAGE`` and library users get the right Keras without setting
anything themselves.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["LEGACY_KERAS_VARIABLE", "configure_environment", "quiet_tensorflow_logger"]

LEGACY_KERAS_VARIABLE = "TF_USE_LEGACY_KERAS"


def configure_environment() -> None:
    """Select legacy Keras (``TF_USE_LEGACY_KERAS=1``) and default TensorFlow's log level to errors.

    Idempotent. It must run before TensorFlow is first imported; later calls change nothing
    TensorFlow has already read.
    """
    os.environ[LEGACY_KERAS_VARIABLE] = "1"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


@contextmanager
def quiet_tensorflow_logger() -> Iterator[None]:
    """Raise TensorFlow's Python logger to ERROR inside the block, then restore its level.

    For library calls whose warnings say nothing to the user: loading a ``.h5`` without its
    training configuration, or LCE's converter saving an uncompiled model ("Compiled the loaded
    model, but the compiled metrics have yet to be built").
    """
    import tensorflow as tf

    logger = tf.get_logger()
    level = logger.level
    logger.setLevel("ERROR")
    try:
        yield
    finally:
        logger.setLevel(level)
