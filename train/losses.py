"""Training losses for models that end in a softmax.

The seed BCNN ends in ``BatchNormalization(scale=False)`` then softmax, so its logits have
unit variance per class and the cross-entropy has a floor: an image classified right with the
widest margin the network can produce still pulls as hard as ~0.25 of a wrong one. Scaling the
logits inside the loss (``softmax(scale * logits)``; the model stays the same and so do its
predictions' argmax) lets confidently right images stop pulling, so training concentrates on
the images still wrong.
"""

from __future__ import annotations

from collections.abc import Callable

import tensorflow as tf

__all__ = ["scaled_sparse_crossentropy", "scaled_categorical_crossentropy"]

_TINY = 1e-7


def _check_scale(scale: float) -> None:
    if not scale > 0:
        raise ValueError(f"the logit scale must be positive, got {scale}")


def _scaled_logits(probabilities: tf.Tensor, scale: float) -> tf.Tensor:
    """``scale * log(probabilities)``: the logits times ``scale``, up to a per-image constant."""
    return scale * tf.math.log(tf.clip_by_value(probabilities, _TINY, 1.0))


def scaled_sparse_crossentropy(scale: float) -> Callable[[tf.Tensor, tf.Tensor], tf.Tensor]:
    """Sparse categorical cross-entropy of ``softmax(scale * log(probabilities))``.

    ``log(probabilities)`` equals the logits up to a per-image constant, which the softmax
    removes, so this is the cross-entropy of the logits multiplied by ``scale``.

    Args:
        scale: logit multiplier (> 0; 1 gives the plain cross-entropy).

    Returns:
        A Keras loss ``loss(labels, probabilities) -> per-image loss``.

    Raises:
        ValueError: ``scale`` is not positive.
    """
    _check_scale(scale)

    def loss(labels: tf.Tensor, probabilities: tf.Tensor) -> tf.Tensor:
        labels = tf.cast(tf.reshape(labels, [-1]), tf.int32)
        return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=_scaled_logits(probabilities, scale))

    loss.__name__ = f"scaled_sparse_crossentropy_{scale:g}"
    return loss


def scaled_categorical_crossentropy(scale: float) -> Callable[[tf.Tensor, tf.Tensor], tf.Tensor]:
    """Like :func:`scaled_sparse_crossentropy`, for ``(N, C)`` target distributions (distillation).

    Raises:
        ValueError: ``scale`` is not positive.
    """
    _check_scale(scale)

    def loss(targets: tf.Tensor, probabilities: tf.Tensor) -> tf.Tensor:
        logits = _scaled_logits(probabilities, scale)
        return tf.nn.softmax_cross_entropy_with_logits(labels=tf.cast(targets, logits.dtype), logits=logits)

    loss.__name__ = f"scaled_categorical_crossentropy_{scale:g}"
    return loss
