"""Run a model over raw MNIST images the way an application would: one image per invoke.

Shared by ``convert`` (its checks against Keras) and ``emulator`` (its ``keras``, ``tflite``
and ``lce`` backends). Every runner takes raw pixels 0..255 as ``(N, 28, 28)`` (uint8 or any
numeric type; ``(N, 784)`` and ``(N, 28, 28, 1)`` work too) and returns float32 scores
``(N, classes)``. Int8/uint8 input and output tensors are (de)quantized with the tensor's
own scale and zero point, so the scores of every runner are comparable.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from train.errors import InputError

if TYPE_CHECKING:
    import tensorflow as tf

__all__ = [
    "IMAGE_PIXELS",
    "prepare_images",
    "quantize",
    "dequantize",
    "run_tflite",
    "run_lce",
    "run_keras",
    "run_flatbuffer",
]

IMAGE_PIXELS = 28 * 28
_INT_RANGES = {np.dtype(np.int8): (-128, 127), np.dtype(np.uint8): (0, 255), np.dtype(np.int16): (-32768, 32767)}


def prepare_images(images: np.ndarray) -> np.ndarray:
    """Validate raw images and flatten them to float32 ``(N, 784)``.

    Args:
        images: ``(N, 28, 28)``, ``(N, 28, 28, 1)`` or ``(N, 784)`` raw pixels 0..255.

    Returns:
        A float32 ``(N, 784)`` array of the same pixel values.

    Raises:
        InputError: the array is empty or does not hold 784 values per image.
    """
    images = np.asarray(images)
    if images.ndim < 2 or images.shape[0] == 0 or int(np.prod(images.shape[1:])) != IMAGE_PIXELS:
        raise InputError(f"images must be (N, 28, 28) raw pixels with N >= 1, got shape {images.shape}")
    if not np.issubdtype(images.dtype, np.number):
        raise InputError(f"images must be numeric, got dtype {images.dtype}")
    return images.reshape(images.shape[0], IMAGE_PIXELS).astype(np.float32)


def quantize(values: np.ndarray, scale: float, zero_point: int, dtype: np.dtype | type) -> np.ndarray:
    """Affine-quantize real ``values``: ``clip(round(values / scale) + zero_point)``.

    Args:
        values: real values.
        scale: the tensor's scale (> 0).
        zero_point: the tensor's zero point.
        dtype: int8, uint8 or int16.

    Returns:
        The quantized array of ``dtype`` (numpy rounding: half to even).
    """
    dtype = np.dtype(dtype)
    lo, hi = _INT_RANGES[dtype]
    return np.clip(np.round(np.asarray(values, np.float64) / scale) + zero_point, lo, hi).astype(dtype)


def dequantize(values: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """Real values of quantized ``values``: ``scale * (values - zero_point)`` as float32."""
    return (scale * (np.asarray(values, np.float64) - zero_point)).astype(np.float32)


def _first_line(err: BaseException) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[0][:240] if lines else type(err).__name__


def _to_input(pixels: np.ndarray, dtype: np.dtype, scale: float, zero_point: int) -> np.ndarray:
    """Raw float pixels -> values of the input tensor's type."""
    if dtype in _INT_RANGES:
        if not scale:
            raise InputError(f"the {dtype} input tensor has no quantization scale")
        return quantize(pixels, scale, zero_point, dtype)
    return pixels.astype(dtype)


def _from_output(values: np.ndarray, dtype: np.dtype, scale: float, zero_point: int) -> np.ndarray:
    if dtype in _INT_RANGES and scale:
        return dequantize(values, scale, zero_point)
    return np.asarray(values, np.float32)


def _check_input_shape(shape: tuple[int, ...], kind: str) -> None:
    if int(np.prod(shape)) != IMAGE_PIXELS:
        raise InputError(f"{kind} model input has shape {tuple(shape)}, which does not take one 28x28 image")


def run_tflite(model_bytes: bytes, images: np.ndarray, num_threads: int = 1, *, delegates: bool = True) -> np.ndarray:
    """Run a builtin-ops flatbuffer in TensorFlow Lite's interpreter, one image per invoke.

    Args:
        model_bytes: the ``.tflite`` file's bytes (float or int8 input/output).
        images: raw pixels, see :func:`prepare_images`.
        num_threads: interpreter threads.
        delegates: use TFLite's default delegates (XNNPACK). ``False`` runs TFLite's builtin
            kernels only: int8 results are then bit-exact with TFLite-Micro's, and TFLite
            prints no "Created XNNPACK delegate" line on stderr.

    Returns:
        float32 scores ``(N, classes)``, dequantized when the output tensor is int8.

    Raises:
        InputError: the flatbuffer cannot be loaded (corrupt, or it uses custom ops such as
            LCE's: run those with :func:`run_lce`), or its input is not one 28x28 image.
    """
    pixels = prepare_images(images)
    import tensorflow as tf

    try:
        resolver = tf.lite.experimental.OpResolverType
        interpreter = tf.lite.Interpreter(
            model_content=bytes(model_bytes),
            num_threads=num_threads,
            experimental_op_resolver_type=resolver.AUTO if delegates else resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
        )
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as err:
        raise InputError(f"TFLite interpreter cannot load the model ({_first_line(err)})") from None
    (inp,) = interpreter.get_input_details()
    out = interpreter.get_output_details()[0]
    _check_input_shape(tuple(inp["shape"]), "TFLite")
    in_scale, in_zero = inp["quantization"]
    out_scale, out_zero = out["quantization"]
    in_dtype, out_dtype = np.dtype(inp["dtype"]), np.dtype(out["dtype"])
    feed = _to_input(pixels, in_dtype, in_scale, in_zero).reshape((len(pixels), *inp["shape"]))
    raw = np.empty((len(pixels), int(np.prod(out["shape"]))), dtype=out_dtype)
    in_index, out_index = inp["index"], out["index"]
    for i, image in enumerate(feed):
        interpreter.set_tensor(in_index, image)
        interpreter.invoke()
        raw[i] = interpreter.get_tensor(out_index).reshape(-1)
    return _from_output(raw, out_dtype, out_scale, out_zero)


def _single(values: Any) -> Any:
    """First element of a per-tensor list, or the value itself; ``None`` stays ``None``."""
    if isinstance(values, (list, tuple)):
        return values[0] if values else None
    return values


def run_lce(model_bytes: bytes, images: np.ndarray, num_threads: int = 1) -> np.ndarray:
    """Run a flatbuffer in Larq Compute Engine's interpreter (LCE custom ops and builtins).

    LCE's ``Interpreter.predict`` takes a batch and invokes the model once per image
    (batch dimension 1), which is what this runner relies on.

    Args:
        model_bytes: the ``.lce.tflite`` (or any ``.tflite``) file's bytes.
        images: raw pixels, see :func:`prepare_images`.
        num_threads: interpreter threads.

    Returns:
        float32 scores ``(N, classes)``, dequantized when the output tensor is int8.

    Raises:
        InputError: the flatbuffer cannot be loaded, or its input is not one 28x28 image.
    """
    pixels = prepare_images(images)
    from larq_compute_engine.tflite.python.interpreter import Interpreter

    try:
        interpreter = Interpreter(bytes(model_bytes), num_threads=num_threads)
    except (ValueError, RuntimeError) as err:
        raise InputError(f"LCE interpreter cannot load the model ({_first_line(err)})") from None
    if len(interpreter.input_shapes) != 1:
        raise InputError(f"LCE model has {len(interpreter.input_shapes)} inputs, expected 1")
    in_shape = tuple(interpreter.input_shapes[0])
    _check_input_shape(in_shape, "LCE")
    in_dtype = np.dtype(interpreter.input_types[0])
    out_dtype = np.dtype(interpreter.output_types[0])
    in_scale, in_zero = _single(interpreter.input_scales[0]), _single(interpreter.input_zero_points[0])
    out_scale, out_zero = _single(interpreter.output_scales[0]), _single(interpreter.output_zero_points[0])
    feed = _to_input(pixels, in_dtype, in_scale or 0.0, in_zero or 0).reshape((len(pixels), *in_shape[1:]))
    try:
        raw = interpreter.predict(feed)
    except (ValueError, RuntimeError) as err:
        raise InputError(f"LCE interpreter failed ({_first_line(err)})") from None
    raw = np.asarray(raw).reshape(len(pixels), -1)
    return _from_output(raw, out_dtype, out_scale or 0.0, out_zero or 0)


def run_keras(model: tf.keras.Model, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Run a Keras model (inference mode) on raw images.

    Args:
        model: a single-input Keras model taking raw pixels (784 values per image in any shape).
        images: raw pixels, see :func:`prepare_images`.
        batch_size: images per forward pass (results do not depend on it beyond float rounding).

    Returns:
        float32 scores ``(N, classes)``.

    Raises:
        InputError: the model's input is not one 28x28 image.
    """
    pixels = prepare_images(images)
    in_shape = tuple(model.input_shape[1:])
    if None in in_shape:
        raise InputError(f"Keras model input shape {in_shape} is not fully defined")
    _check_input_shape(in_shape, "Keras")
    feed = pixels.reshape((len(pixels), *in_shape))
    scores = [np.asarray(model(feed[i : i + batch_size], training=False)) for i in range(0, len(feed), batch_size)]
    return np.concatenate(scores).reshape(len(pixels), -1).astype(np.float32)


def run_flatbuffer(model_bytes: bytes, images: np.ndarray, num_threads: int = 1) -> np.ndarray:
    """Run any flatbuffer in the matching interpreter: LCE's when it has LCE ops, else TFLite's.

    Args:
        model_bytes: ``.tflite`` bytes.
        images: raw pixels, see :func:`prepare_images`.
        num_threads: interpreter threads.

    Returns:
        float32 scores ``(N, classes)``.

    Raises:
        InputError: the flatbuffer is invalid or cannot run.
    """
    from convert.flatbuffer import read_model_bytes

    model = read_model_bytes(bytes(model_bytes))
    runner = run_lce if model.has_lce_ops else run_tflite
    return runner(model_bytes, images, num_threads=num_threads)
