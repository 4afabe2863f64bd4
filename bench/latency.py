"""Per-image latency of the host interpreters, measured the way an application calls them.

Each runner builds one interpreter (one thread), runs a warm-up of :data:`WARMUP` images whose
results are discarded, then, for every image, times exactly one call sequence with
``time.perf_counter_ns``: set the input tensor, invoke, read the output tensor. Converting the
raw pixels to the input tensor's type (quantizing for int8) happens before the timed loop, so
the figure is invoke plus the I/O of one image, nothing else.

The scores come from the same timed calls, so accuracy and latency describe one pass. They are
the same scores as :mod:`convert.interpreters` returns for the same interpreter settings
(checked by the tests), dequantized for int8 outputs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from convert.interpreters import dequantize, prepare_images, quantize
from train.errors import InputError

__all__ = ["WARMUP", "TimedRun", "median_us", "time_calls", "time_tflite", "time_lce", "time_tflm"]

WARMUP = 20


@dataclass(frozen=True)
class TimedRun:
    """Scores and per-image times of one pass over the images.

    Attributes:
        scores: float32 ``(N, classes)``.
        nanoseconds: int64 ``(N,)``, one timed call per image.
        warmup: images run (untimed, discarded) before the timed pass.
    """

    scores: np.ndarray
    nanoseconds: np.ndarray
    warmup: int

    @property
    def median_us(self) -> float:
        """Median microseconds per image."""
        return median_us(self.nanoseconds)


def median_us(nanoseconds: np.ndarray) -> float:
    """Median of per-image nanoseconds, in microseconds.

    Raises:
        ValueError: no measurements.
    """
    values = np.asarray(nanoseconds)
    if values.size == 0:
        raise ValueError("no timings to take the median of")
    return float(np.median(values)) / 1000.0


def time_calls(call: Callable[[np.ndarray], np.ndarray], feed: np.ndarray, warmup: int = WARMUP) -> TimedRun:
    """Warm up, then time ``call(feed[i])`` once per image.

    Args:
        call: runs one prepared input and returns its raw output (any shape, flattened here).
        feed: prepared inputs, one per row.
        warmup: untimed calls on the first images before the timed pass.

    Returns:
        :class:`TimedRun` whose ``scores`` are the raw outputs, one flattened row per image
        (still quantized for int8 outputs).
    """
    for image in feed[: max(0, warmup)]:
        call(image)
    outputs = []
    spent = np.empty(len(feed), dtype=np.int64)
    clock = time.perf_counter_ns
    for i, image in enumerate(feed):
        start = clock()
        out = call(image)
        spent[i] = clock() - start
        outputs.append(np.asarray(out).reshape(-1))
    return TimedRun(np.stack(outputs), spent, min(max(0, warmup), len(feed)))


def _feed(pixels: np.ndarray, dtype: np.dtype, scale: float | None, zero_point: int | None, shape: tuple[int, ...]) -> np.ndarray:
    if dtype.kind in "iu":
        if not scale:
            raise InputError(f"the {dtype} input tensor has no quantization scale")
        values = quantize(pixels, float(scale), int(zero_point or 0), dtype)
    else:
        values = pixels.astype(dtype)
    return values.reshape((len(pixels), *shape))


def _scores(run: TimedRun, dtype: np.dtype, scale: float | None, zero_point: int | None) -> TimedRun:
    if dtype.kind in "iu" and scale:
        scores = dequantize(run.scores, float(scale), int(zero_point or 0))
    else:
        scores = run.scores.astype(np.float32)
    return TimedRun(scores, run.nanoseconds, run.warmup)


def _first(value: object) -> object:
    if isinstance(value, (list, tuple, np.ndarray)):
        return value[0] if len(value) else None
    return value


def time_tflite(model_bytes: bytes, images: np.ndarray, *, delegates: bool = True, warmup: int = WARMUP) -> TimedRun:
    """TensorFlow Lite's interpreter, one thread: ``set_tensor``, ``invoke``, ``get_tensor`` per image.

    Args:
        model_bytes: a builtin-op ``.tflite`` (float or int8).
        images: raw pixels ``(N, 28, 28)``.
        delegates: TFLite's default delegates (XNNPACK), as an application gets them.
        warmup: untimed images first.

    Returns:
        :class:`TimedRun` (scores dequantized for int8 outputs).

    Raises:
        InputError: TFLite cannot load the model (custom ops, corrupt file).
    """
    import tensorflow as tf

    pixels = prepare_images(images)
    resolver = tf.lite.experimental.OpResolverType
    try:
        interpreter = tf.lite.Interpreter(
            model_content=bytes(model_bytes),
            num_threads=1,
            experimental_op_resolver_type=resolver.AUTO if delegates else resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
        )
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as err:
        raise InputError(f"TFLite interpreter cannot load the model ({str(err).strip().splitlines()[0]})") from None
    (inp,) = interpreter.get_input_details()
    out = interpreter.get_output_details()[0]
    in_scale, in_zero = inp["quantization"]
    out_scale, out_zero = out["quantization"]
    feed = _feed(pixels, np.dtype(inp["dtype"]), in_scale, in_zero, tuple(inp["shape"]))
    in_index, out_index = inp["index"], out["index"]

    def call(image: np.ndarray) -> np.ndarray:
        interpreter.set_tensor(in_index, image)
        interpreter.invoke()
        return interpreter.get_tensor(out_index)

    return _scores(time_calls(call, feed, warmup), np.dtype(out["dtype"]), out_scale, out_zero)


def time_lce(model_bytes: bytes, images: np.ndarray, *, warmup: int = WARMUP) -> TimedRun:
    """Larq Compute Engine's interpreter, one thread, one image per call.

    LCE's Python wrapper has no separate set/invoke/get: its native ``predict([input])`` sets
    the input, invokes and copies the output out in one C++ call, which is what is timed.

    Args:
        model_bytes: a ``.lce.tflite`` (or any builtin ``.tflite``).
        images: raw pixels ``(N, 28, 28)``.
        warmup: untimed images first.

    Returns:
        :class:`TimedRun`.

    Raises:
        InputError: LCE cannot load the model.
    """
    from larq_compute_engine.tflite.python.interpreter import Interpreter

    pixels = prepare_images(images)
    try:
        wrapper = Interpreter(bytes(model_bytes), num_threads=1)
    except (ValueError, RuntimeError) as err:
        raise InputError(f"LCE interpreter cannot load the model ({str(err).strip().splitlines()[0]})") from None
    shape = tuple(wrapper.input_shapes[0])
    native = wrapper.interpreter
    feed = _feed(
        pixels,
        np.dtype(wrapper.input_types[0]),
        _first(wrapper.input_scales[0]),  # type: ignore[arg-type]
        _first(wrapper.input_zero_points[0]),  # type: ignore[arg-type]
        shape,
    )

    def call(image: np.ndarray) -> np.ndarray:
        return native.predict([image])[0]

    return _scores(
        time_calls(call, feed, warmup),
        np.dtype(wrapper.output_types[0]),
        _first(wrapper.output_scales[0]),  # type: ignore[arg-type]
        _first(wrapper.output_zero_points[0]),  # type: ignore[arg-type]
    )


def time_tflm(model_bytes: bytes, images: np.ndarray, *, warmup: int = WARMUP) -> TimedRun:
    """The TFLite-Micro interpreter (``tflite_micro`` wheel): ``set_input``, ``invoke``, ``get_output``.

    Args:
        model_bytes: a builtin-op ``.tflite`` whose ops TFLite-Micro implements.
        images: raw pixels ``(N, 28, 28)``.
        warmup: untimed images first.

    Returns:
        :class:`TimedRun`.

    Raises:
        InputError: TFLite-Micro cannot load the model (for example an op without a kernel).
    """
    from tflite_micro.python.tflite_micro import runtime

    pixels = prepare_images(images)
    try:
        interpreter = runtime.Interpreter.from_bytes(bytes(model_bytes), arena_size=len(model_bytes) * 10 + (1 << 20))
    except (RuntimeError, ValueError) as err:
        text = str(err).strip()
        raise InputError(f"TFLite-Micro cannot load the model ({text.splitlines()[0] if text else type(err).__name__})") from None
    inp, out = interpreter.get_input_details(0), interpreter.get_output_details(0)
    in_q, out_q = inp["quantization_parameters"], out["quantization_parameters"]
    in_scale = float(in_q["scales"][0]) if len(in_q["scales"]) else None
    in_zero = int(in_q["zero_points"][0]) if len(in_q["zero_points"]) else None
    out_scale = float(out_q["scales"][0]) if len(out_q["scales"]) else None
    out_zero = int(out_q["zero_points"][0]) if len(out_q["zero_points"]) else None
    feed = _feed(pixels, np.dtype(inp["dtype"]), in_scale, in_zero, tuple(int(d) for d in inp["shape"]))

    def call(image: np.ndarray) -> np.ndarray:
        interpreter.set_input(image, 0)
        interpreter.invoke()
        return interpreter.get_output(0)

    return _scores(time_calls(call, feed, warmup), np.dtype(out["dtype"]), out_scale, out_zero)
