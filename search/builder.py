"""Keras models for the search space: :func:`build_model` turns an :class:`~search.space.Arch` into Larq layers.

The layer pattern is the seed BCNN's (``train.models.build_bcnn``), generalised: inputs
rescaled to [-1, 1]; every convolution ``QuantConv2D`` with ``ste_sign`` kernels (an ``int8``
stem: :class:`train.quantizers.FixedPointWeights`; the stem keeps its float input, the others
binarize theirs) and no bias, then an optional 2x2
max-pool, then ``BatchNormalization(scale=False)``; flatten; hidden ``QuantDense`` layers with
batch norm; a ``QuantDense`` to the classes (``+-1`` weights, 8-bit ones when ``Arch.scores ==
"int8"``, or float weights when it is ``"float"``; binarized inputs always), batch norm, softmax. ``same`` binary
convolutions pad with +1 (``pad_values=1``), which the bnn engine compiles without masks. Like
every zoo model, the result takes raw pixels 0..255 (float32, ``(H, W, C)`` with ``Arch.input_size`` and
``Arch.input_channels``: 28x28x1 for MNIST, 32x32x3 for CIFAR-10).
"""

from __future__ import annotations

import larq as lq
import tensorflow as tf

from search.space import INPUT_RANGE, POOL, Arch, shape_problem
from train.quantizers import FixedPointWeights

__all__ = ["build_model"]
_BINARY = {"input_quantizer": "ste_sign", "kernel_quantizer": "ste_sign", "kernel_constraint": "weight_clip"}


def build_model(arch: Arch, name: str = "candidate") -> tf.keras.Model:
    """Build ``arch`` as an uncompiled Keras model.

    Args:
        arch: the architecture.
        name: the Keras model name.

    Returns:
        A ``tf.keras.Sequential`` taking raw pixels ``(N, H, W, C)`` float32.

    Raises:
        ValueError: ``arch`` cannot be built on its input size (see :func:`~search.space.shape_problem`).
    """
    problem = shape_problem(arch)
    if problem is not None:
        raise ValueError(f"architecture {arch.tag()}: {problem}")
    lo, hi = INPUT_RANGE
    layers: list[tf.keras.layers.Layer] = [
        tf.keras.layers.Rescaling(
            scale=(hi - lo) / 255.0, offset=lo, input_shape=(*arch.input_size, arch.input_channels), name="rescale"
        )
    ]
    stem = arch.stem
    layers.append(
        lq.layers.QuantConv2D(
            stem.channels,
            (stem.kernel, stem.kernel),
            padding=stem.padding,
            kernel_quantizer="ste_sign" if stem.precision == "binary" else FixedPointWeights(8),
            kernel_constraint="weight_clip",
            use_bias=False,
            name="stem",
        )
    )
    if stem.pool:
        layers.append(tf.keras.layers.MaxPooling2D((POOL, POOL), name="stem_pool"))
    layers.append(tf.keras.layers.BatchNormalization(scale=False, name="stem_bn"))
    for index, block in enumerate(arch.blocks, start=1):
        extra = {"pad_values": 1.0} if block.padding == "same" else {}
        layers.append(
            lq.layers.QuantConv2D(
                block.channels,
                (block.kernel, block.kernel),
                padding=block.padding,
                use_bias=False,
                name=f"block{index}",
                **extra,
                **_BINARY,
            )
        )
        if block.pool:
            layers.append(tf.keras.layers.MaxPooling2D((POOL, POOL), name=f"block{index}_pool"))
        layers.append(tf.keras.layers.BatchNormalization(scale=False, name=f"block{index}_bn"))
    layers.append(tf.keras.layers.Flatten(name="flatten"))
    for index, width in enumerate(arch.dense, start=1):
        layers.append(lq.layers.QuantDense(width, use_bias=False, name=f"dense{index}", **_BINARY))
        layers.append(tf.keras.layers.BatchNormalization(scale=False, name=f"dense{index}_bn"))
    scores = {
        "binary": _BINARY,
        "int8": {**_BINARY, "kernel_quantizer": FixedPointWeights(8)},
        "float": {"input_quantizer": "ste_sign"},
    }[arch.scores]
    layers.append(lq.layers.QuantDense(arch.classes, use_bias=False, name="scores", **scores))
    layers.append(tf.keras.layers.BatchNormalization(scale=False, name="scores_bn"))
    layers.append(tf.keras.layers.Activation("softmax", name="softmax"))
    return tf.keras.Sequential(layers, name=name)
