"""The three conversions: Keras model -> TFLite float, TFLite int8 (PTQ) and LCE flatbuffer bytes.

Pure functions from an in-memory Keras model to flatbuffer bytes; the CLI adds loading,
checking and atomic writing around them.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import tensorflow as tf

from pipeline.env import quiet_tensorflow_logger

__all__ = ["to_tflite_float", "to_tflite_int8", "to_lce", "has_binary_layers", "binary_layer_names"]


_QUANTIZER_ATTRS = ("kernel_quantizer", "input_quantizer", "depthwise_quantizer", "pointwise_quantizer")


def binary_layer_names(model: tf.keras.Model) -> list[str]:
    """Names of the layers that quantize a kernel or an input to 1 bit (Larq binary layers).

    A Larq quantizer carries its bit width as ``precision`` (``ste_sign``, ``approx_sign``,
    ``swish_sign`` and ``magnitude_aware_sign`` have 1); nested models are searched too.
    """
    names = []
    for layer in _all_layers(model):
        for attr in _QUANTIZER_ATTRS:
            quantizer = getattr(layer, attr, None)
            if quantizer is not None and getattr(quantizer, "precision", None) == 1:
                names.append(layer.name)
                break
    return names


def has_binary_layers(model: tf.keras.Model) -> bool:
    """True when any layer quantizes its kernel or input to 1 bit (Larq binary layers)."""
    return bool(binary_layer_names(model))


def _all_layers(model: tf.keras.Model) -> Iterator[tf.keras.layers.Layer]:
    for layer in model.layers:
        yield layer
        if isinstance(layer, tf.keras.Model):
            yield from _all_layers(layer)


def to_tflite_float(model: tf.keras.Model) -> bytes:
    """Convert to a float32 flatbuffer with TFLite builtin ops only."""
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    return bytes(converter.convert())


def to_tflite_int8(model: tf.keras.Model, calibration_images: np.ndarray) -> bytes:
    """Full-integer post-training quantization with int8 input and output.

    Args:
        model: a single-input Keras model without binary layers, taking float32 raw values.
        calibration_images: uint8 or float examples ``(N, ...)`` holding as many values each as
            the model's input (any shape: each is reshaped to the input), fed one by one.
    """
    images = calibration_images.astype(np.float32).reshape((-1, *model.input_shape[1:]))

    def representative() -> Iterator[list[np.ndarray]]:
        for image in images:
            yield [image[None, ...]]

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    return bytes(converter.convert())


def to_lce(model: tf.keras.Model) -> bytes:
    """Convert with Larq Compute Engine (binary layers become ``Lce*`` custom ops)."""
    import larq_compute_engine as lce

    with quiet_tensorflow_logger():  # it saves the model first: a warning for every uncompiled one
        return bytes(lce.convert_keras_model(model))
