"""The Keras side of a study model: test predictions, batched time per image, parameter counts."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["KERAS_BATCH", "keras_figures"]

KERAS_BATCH = 1000


def keras_figures(h5: Path, images: np.ndarray) -> dict[str, Any]:
    """Load ``h5``, classify ``images`` in batches of :data:`KERAS_BATCH` and count its parameters.

    The timed pass follows an untimed one over the same images (graph tracing, caches).

    Args:
        h5: the trained model.
        images: uint8 test images ``(N, 28, 28)``.

    Returns:
        ``predictions`` (``(N,)``), ``us_per_image`` (wall time of the timed pass / N),
        ``params``, ``trainable_params``, ``binary_weights`` (kernel entries of layers whose
        kernel quantizer has ``precision == 1``), ``binary_layers``.
    """
    import tensorflow as tf

    from convert.converter import binary_layer_names
    from convert.keras_io import load_keras_model

    tf.get_logger().setLevel("ERROR")  # predict() on a new model per call: TensorFlow warns about retracing
    model = load_keras_model(h5)
    feed = images.astype(np.float32)[..., None]
    model.predict(feed, batch_size=KERAS_BATCH, verbose=0)
    start = time.perf_counter()
    scores = model.predict(feed, batch_size=KERAS_BATCH, verbose=0)
    seconds = time.perf_counter() - start
    binary = 0
    for layer in model.layers:
        quantizer = getattr(layer, "kernel_quantizer", None)
        if quantizer is not None and getattr(quantizer, "precision", None) == 1:
            binary += int(np.prod(layer.kernel.shape))
    return {
        "predictions": np.argmax(scores, axis=1),
        "us_per_image": 1e6 * seconds / len(feed),
        "batch_size": KERAS_BATCH,
        "params": int(model.count_params()),
        "trainable_params": int(sum(int(np.prod(w.shape)) for w in model.trainable_weights)),
        "binary_weights": binary,
        "binary_layers": binary_layer_names(model),
    }
