"""The project's own Larq quantizers: BinaryConnect's stochastic binarization and 8-bit fixed-point weights.

The maths is a pure function (:func:`stochastic_binary`); :class:`StochasticBinary` is the thin
Keras/Larq layer around it, registered where it is defined so an ``.h5`` that uses it reloads
with ``tf.keras.models.load_model`` once this module is imported (``convert`` and the emulator
import it before loading).

During training (``training=True``, which Keras passes down from ``model.fit`` through the
quantized layer to its kernel quantizer) each weight ``w`` becomes ``+1`` with probability
``hard_sigmoid(w) = clip((w + 1) / 2, 0, 1)`` and ``-1`` otherwise, so its expected value is
``2 * hard_sigmoid(w) - 1 = clip(w, -1, 1)`` (Courbariaux et al., 2015, "BinaryConnect").
Everywhere else (inference, ``model.predict``, conversion) it is the deterministic sign, with
``sign(0) = +1`` like Larq's ``ste_sign``. The gradient passes straight through to the real
weight, which the layer's ``weight_clip`` constraint keeps in ``[-1, 1]``.

``StochasticBinary(scale=H)`` keeps the latent weights in ``[-H, H]`` instead (BinaryConnect's
``H``; the constraint is then ``WeightClip(H)``) and draws ``+1`` with probability
``hard_sigmoid(w / H)``; its output is still +-1. A layer whose binary output is divided by
``sqrt(fan_in)`` takes ``H = 1 / sqrt(fan_in)``: the latent weight then lives on the scale of
the weight the layer effectively uses, as in the paper, and an optimizer step of a given size
moves the probability as much as it would there (with ``H = 1`` and a fan-in of 784 it would be
28 times smaller).

:class:`FixedPointWeights` rounds a weight to the nearest multiple of ``2**-(bits - 1)`` in
``[-(2**(bits - 1) - 1), 2**(bits - 1) - 1] / 2**(bits - 1)`` (8 bits: multiples of 1/128 up to
127/128), with a straight-through gradient inside ``[-1, 1]``. The quantized weights are exact
in float32, so a converted model's weights are integers ``k`` times one power-of-two unit: the
``bnn`` engine compiles a stem with such weights as an integer convolution on the raw pixels
(``int8_t`` weights, exact like the binary stem), where float weights would need float feature
maps. Registered here like :class:`StochasticBinary`.
"""

from __future__ import annotations

from typing import Any

import larq as lq
import tensorflow as tf

__all__ = ["hard_sigmoid", "stochastic_binary", "StochasticBinary", "fixed_point", "FixedPointWeights", "FIXED_POINT_BITS"]

FIXED_POINT_BITS = (2, 8)
"""Smallest and largest ``bits`` of :class:`FixedPointWeights` (8: the ``bnn`` engine's ``int8_t`` weights)."""


def hard_sigmoid(x: tf.Tensor) -> tf.Tensor:
    """BinaryConnect's hard sigmoid: ``clip((x + 1) / 2, 0, 1)``.

    Note that this is not Keras' ``hard_sigmoid`` (``clip(0.2 x + 0.5, 0, 1)``).
    """
    return tf.clip_by_value((x + 1.0) / 2.0, 0.0, 1.0)


def stochastic_binary(x: tf.Tensor, training: bool | tf.Tensor = False, seed: int | None = None, scale: float = 1.0) -> tf.Tensor:
    """Binarize ``x`` to +-1: sampled with ``P(+1) = hard_sigmoid(x / scale)`` when training, ``sign`` otherwise.

    Args:
        x: real values (the latent weights).
        training: sample (True) or take the deterministic sign (False); a boolean tensor is
            resolved in the graph.
        seed: operation seed of the uniform draw (``None``: TensorFlow's global seed alone).
        scale: the latent weights' range ``[-scale, scale]`` (BinaryConnect's ``H``; > 0).

    Returns:
        A tensor of ``x``'s shape and dtype holding only -1 and +1. Its gradient with respect
        to ``x`` is the incoming gradient unchanged (straight-through estimator).

    Raises:
        ValueError: ``scale`` is not positive.
    """
    if not scale > 0:
        raise ValueError(f"scale must be positive, got {scale}")
    x = tf.convert_to_tensor(x)

    @tf.custom_gradient
    def _binarize(value: tf.Tensor) -> tuple[tf.Tensor, Any]:
        def sampled() -> tf.Tensor:
            draw = tf.random.uniform(tf.shape(value), dtype=value.dtype, seed=seed)
            return tf.where(draw < hard_sigmoid(value / scale), tf.ones_like(value), -tf.ones_like(value))

        def deterministic() -> tf.Tensor:
            return lq.math.sign(value)

        if isinstance(training, bool):
            out = sampled() if training else deterministic()
        else:
            out = tf.cond(tf.cast(training, tf.bool), sampled, deterministic)

        def grad(upstream: tf.Tensor) -> tf.Tensor:
            return upstream

        return out, grad

    return _binarize(x)


@lq.utils.register_keras_custom_object
class StochasticBinary(lq.quantizers.Quantizer):
    """Larq quantizer: BinaryConnect's stochastic binarization (see :func:`stochastic_binary`).

    Use it as a ``kernel_quantizer`` with ``kernel_constraint=larq.constraints.WeightClip(scale)``
    (``"weight_clip"`` for the default scale 1). ``precision = 1`` tells Larq's summary and
    ``convert`` that the weights are binary.

    Args:
        seed: operation seed of the draw (``None``: TensorFlow's global seed alone).
        scale: the latent weights' range ``[-scale, scale]`` (see :func:`stochastic_binary`).
        **kwargs: passed to the Keras layer (``name``, ``dtype``...).

    Raises:
        ValueError: ``scale`` is not positive.
    """

    precision = 1

    def __init__(self, seed: int | None = None, scale: float = 1.0, **kwargs: Any) -> None:
        if not scale > 0:
            raise ValueError(f"scale must be positive, got {scale}")
        self.seed = seed
        self.scale = float(scale)
        super().__init__(**kwargs)

    def call(self, inputs: tf.Tensor, training: bool | tf.Tensor | None = None) -> tf.Tensor:
        """Sample when ``training`` is true, else the deterministic sign (``None`` means inference)."""
        return stochastic_binary(inputs, training=False if training is None else training, seed=self.seed, scale=self.scale)

    def get_config(self) -> dict[str, Any]:
        """The layer config plus ``seed`` and ``scale``."""
        return {**super().get_config(), "seed": self.seed, "scale": self.scale}


def fixed_point(x: tf.Tensor, bits: int = 8) -> tf.Tensor:
    """Round ``x`` to multiples of ``2**-(bits - 1)``, clipped to ``+-(2**(bits - 1) - 1)`` of them.

    The gradient passes straight through where ``|x| <= 1`` and is 0 outside (like ``ste_sign``'s
    clipped estimator); rounding is half to even (``tf.round``).
    """
    levels = float(2 ** (bits - 1))

    @tf.custom_gradient
    def _quantize(value: tf.Tensor) -> tuple[tf.Tensor, Any]:
        def grad(upstream: tf.Tensor) -> tf.Tensor:
            return upstream * tf.cast(tf.abs(value) <= 1.0, upstream.dtype)

        return tf.clip_by_value(tf.round(value * levels), 1.0 - levels, levels - 1.0) / levels, grad

    return _quantize(x)


@lq.utils.register_keras_custom_object
class FixedPointWeights(lq.quantizers.Quantizer):
    """Larq quantizer: ``bits``-bit fixed-point weights (see :func:`fixed_point`).

    Use it as a ``kernel_quantizer`` with ``kernel_constraint="weight_clip"``. ``precision`` is
    ``bits`` (Larq's summary counts the weights at that width).

    Args:
        bits: bits per weight, in :data:`FIXED_POINT_BITS`.
        **kwargs: passed to the Keras layer (``name``, ``dtype``...).

    Raises:
        ValueError: ``bits`` out of range.
    """

    def __init__(self, bits: int = 8, **kwargs: Any) -> None:
        lo, hi = FIXED_POINT_BITS
        if isinstance(bits, bool) or not isinstance(bits, int) or not lo <= bits <= hi:
            raise ValueError(f"bits must be an integer in [{lo}, {hi}], got {bits!r}")
        self.bits = bits
        self.precision = bits
        super().__init__(**kwargs)

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        """The fixed-point weights (the same in training and inference)."""
        return fixed_point(inputs, self.bits)

    def get_config(self) -> dict[str, Any]:
        """The layer config plus ``bits``."""
        return {**super().get_config(), "bits": self.bits}
