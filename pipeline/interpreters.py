"""Run a model over raw inputs the way an application would: one input per invoke, timed or not.

Shared by ``convert`` (its checks against Keras), ``emulator`` (its ``keras``, ``tflite``,
``lce`` and ``tflm`` backends) and ``bench`` (per-image latency). Each interpreter is opened
once as an :class:`Session`; a session runs untimed (:meth:`Session.run`) or timed
(:meth:`Session.time`) through the same per-input call, so scores and latencies always come
from one implementation.

Inputs are raw values (for the zoo: pixels 0..255) of any numeric dtype, shaped ``(N, ...)``
with as many values per row as the model's input tensor holds; each row is reshaped to the
input tensor's shape. Int8/uint8/int16 input and output tensors are (de)quantized with the
tensor's own scale and zero point, so the float32 scores of every runner are comparable.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.errors import InputError, first_line

if TYPE_CHECKING:
    import tensorflow as tf

__all__ = [
    "WARMUP",
    "Session",
    "TimedRun",
    "prepare_inputs",
    "quantize",
    "dequantize",
    "median_us",
    "time_calls",
    "open_tflite",
    "open_lce",
    "open_lce_native",
    "open_tflm",
    "tflite_wrapper_session",
    "tflm_arena_guess",
    "run_tflite",
    "run_lce",
    "run_tflm",
    "run_keras",
    "time_tflite",
    "time_lce",
    "time_tflm",
]

WARMUP = 20
_INT_RANGES = {np.dtype(np.int8): (-128, 127), np.dtype(np.uint8): (0, 255), np.dtype(np.int16): (-32768, 32767)}


def prepare_inputs(inputs: np.ndarray, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """Validate raw inputs and flatten them to float32 ``(N, values)``.

    Args:
        inputs: ``(N, ...)`` numeric array, one input per row.
        shape: the model's input tensor shape (batch dimension included); when given, each row
            must hold exactly ``prod(shape[1:])`` values.

    Returns:
        A float32 ``(N, values)`` array of the same values.

    Raises:
        InputError: the array is empty, not numeric, or does not fit ``shape``.
    """
    inputs = np.asarray(inputs)
    if inputs.ndim < 2 or inputs.shape[0] == 0:
        raise InputError(f"inputs must be (N, ...) with N >= 1, got shape {inputs.shape}")
    if not np.issubdtype(inputs.dtype, np.number):
        raise InputError(f"inputs must be numeric, got dtype {inputs.dtype}")
    values = math.prod(inputs.shape[1:])
    if shape is not None and values != math.prod(shape[1:]):
        raise InputError(
            f"inputs of shape {tuple(inputs.shape[1:])} ({values} values each) do not fit the model input {tuple(shape)}"
        )
    return inputs.reshape(inputs.shape[0], values).astype(np.float32)


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


@dataclass(frozen=True)
class TimedRun:
    """Scores and per-input times of one pass.

    Attributes:
        scores: float32 ``(N, outputs)``.
        nanoseconds: int64 ``(N,)``, one timed call per input.
        warmup: inputs run (untimed, discarded) before the timed pass.
    """

    scores: np.ndarray
    nanoseconds: np.ndarray
    warmup: int

    @property
    def median_us(self) -> float:
        """Median microseconds per input."""
        return median_us(self.nanoseconds)


def median_us(nanoseconds: np.ndarray) -> float:
    """Median of per-input nanoseconds, in microseconds.

    Raises:
        ValueError: no measurements.
    """
    values = np.asarray(nanoseconds)
    if values.size == 0:
        raise ValueError("no timings to take the median of")
    return float(np.median(values)) / 1000.0


def time_calls(call: Callable[[np.ndarray], np.ndarray], feed: np.ndarray, warmup: int = WARMUP) -> TimedRun:
    """Warm up, then time ``call(feed[i])`` once per input with ``time.perf_counter_ns``.

    Args:
        call: runs one prepared input and returns its raw output (any shape, flattened here).
        feed: prepared inputs, one per row.
        warmup: untimed calls on the first inputs before the timed pass.

    Returns:
        :class:`TimedRun` whose ``scores`` are the raw outputs, one flattened row per input.
    """
    for item in feed[: max(0, warmup)]:
        call(item)
    outputs = []
    spent = np.empty(len(feed), dtype=np.int64)
    clock = time.perf_counter_ns
    for i, item in enumerate(feed):
        start = clock()
        out = call(item)
        spent[i] = clock() - start
        outputs.append(np.asarray(out).reshape(-1))
    return TimedRun(np.stack(outputs), spent, min(max(0, warmup), len(feed)))


@dataclass(frozen=True)
class Session:
    """One loaded interpreter, ready to run single inputs.

    Attributes:
        kind: ``tflite``, ``lce`` or ``tflm``.
        input_shape: the input tensor's shape (batch dimension 1 included).
        input_dtype: the input tensor's type.
        input_quant: ``(scale, zero_point)`` of a quantized input, else ``None``.
        output_dtype: the output tensor's type.
        output_quant: ``(scale, zero_point)`` of a quantized output, else ``None``.
        call: one prepared input (already of the input type and shape) -> its raw output.
        native: the interpreter object underneath, for inspection (``None`` when not kept).
    """

    kind: str
    input_shape: tuple[int, ...]
    input_dtype: np.dtype
    input_quant: tuple[float, int] | None
    output_dtype: np.dtype
    output_quant: tuple[float, int] | None
    call: Callable[[np.ndarray], np.ndarray]
    native: Any = None

    def feed(self, inputs: np.ndarray) -> np.ndarray:
        """Raw inputs ``(N, ...)`` -> ``(N, *input_shape)`` values of the input tensor's type.

        Raises:
            InputError: the inputs do not fit, or a quantized input has no scale.
        """
        values = prepare_inputs(inputs, self.input_shape)
        if self.input_dtype in _INT_RANGES:
            if self.input_quant is None:
                raise InputError(f"the {self.input_dtype} input tensor has no quantization scale")
            values = quantize(values, *self.input_quant, self.input_dtype)
        else:
            values = values.astype(self.input_dtype)
        return values.reshape((len(values), *self.input_shape))

    def scores(self, raw: np.ndarray) -> np.ndarray:
        """Raw outputs ``(N, outputs)`` -> float32 scores (dequantized for quantized outputs)."""
        if self.output_dtype in _INT_RANGES and self.output_quant is not None:
            return dequantize(raw, *self.output_quant)
        return np.asarray(raw, np.float32)

    def run(self, inputs: np.ndarray, progress: str | None = None) -> np.ndarray:
        """Float32 scores ``(N, outputs)``, one invoke per input.

        Args:
            inputs: raw inputs, see :func:`prepare_inputs`.
            progress: label of a tqdm bar (shown on terminals only), or ``None`` for none.

        Raises:
            InputError: the inputs do not fit the model, or the interpreter fails.
        """
        feed = self.feed(inputs)
        items: Any = feed
        if progress is not None:
            from tqdm import tqdm

            items = tqdm(feed, desc=progress, unit="input", disable=None, leave=False)
        return self.scores(np.stack([np.asarray(self.call(item)).reshape(-1) for item in items]))

    def time(self, inputs: np.ndarray, warmup: int = WARMUP) -> TimedRun:
        """Like :meth:`run`, with each call timed after ``warmup`` untimed ones (see :func:`time_calls`)."""
        timed = time_calls(self.call, self.feed(inputs), warmup)
        return TimedRun(self.scores(timed.scores), timed.nanoseconds, timed.warmup)


def _quant(scale: Any, zero_point: Any) -> tuple[float, int] | None:
    """``(scale, zero_point)`` from per-tensor values, lists or arrays; ``None`` when unquantized."""
    if isinstance(scale, (list, tuple, np.ndarray)):
        scale = scale[0] if len(scale) else None
    if isinstance(zero_point, (list, tuple, np.ndarray)):
        zero_point = zero_point[0] if len(zero_point) else None
    if not scale:
        return None
    return float(scale), int(zero_point or 0)


def open_tflite(model_bytes: bytes, *, num_threads: int = 1, delegates: bool = True) -> Session:
    """TensorFlow Lite's interpreter: ``set_tensor``, ``invoke``, ``get_tensor`` per input.

    Args:
        model_bytes: a builtin-op ``.tflite`` (float or quantized input/output).
        num_threads: interpreter threads.
        delegates: TFLite's default delegates (XNNPACK), as an application gets them. ``False``
            runs TFLite's builtin kernels only: int8 results are then bit-exact with
            TFLite-Micro's, and TFLite prints no "Created XNNPACK delegate" line on stderr.

    Raises:
        InputError: the flatbuffer cannot be loaded (corrupt, or it uses custom ops such as
            LCE's: run those with :func:`open_lce`) or has several inputs.
    """
    import tensorflow as tf

    resolver = tf.lite.experimental.OpResolverType
    try:
        interpreter = tf.lite.Interpreter(
            model_content=bytes(model_bytes),
            num_threads=num_threads,
            experimental_op_resolver_type=resolver.AUTO if delegates else resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
        )
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as err:
        raise InputError(f"TFLite interpreter cannot load the model ({first_line(err)})") from None
    inputs = interpreter.get_input_details()
    if len(inputs) != 1:
        raise InputError(f"TFLite model has {len(inputs)} inputs, expected 1")
    inp, out = inputs[0], interpreter.get_output_details()[0]
    in_index, out_index = inp["index"], out["index"]

    def call(item: np.ndarray) -> np.ndarray:
        interpreter.set_tensor(in_index, item)
        interpreter.invoke()
        return interpreter.get_tensor(out_index)

    return Session(
        "tflite",
        tuple(int(d) for d in inp["shape"]),
        np.dtype(inp["dtype"]),
        _quant(*inp["quantization"]),
        np.dtype(out["dtype"]),
        _quant(*out["quantization"]),
        call,
    )


def open_lce(model_bytes: bytes, *, num_threads: int = 1) -> Session:
    """Larq Compute Engine's interpreter (LCE custom ops and builtins), one input per call.

    LCE's Python wrapper has no separate set/invoke/get: its native ``predict([input])`` sets
    the input, invokes and copies the output out in one C++ call (what its batch ``predict``
    does per row), which is what is called (and timed).

    Args:
        model_bytes: the ``.lce.tflite`` (or any ``.tflite``) file's bytes.
        num_threads: interpreter threads.

    Raises:
        InputError: the flatbuffer cannot be loaded or has several inputs.
    """
    from larq_compute_engine.tflite.python import interpreter_wrapper_lite

    return open_lce_native(interpreter_wrapper_lite, model_bytes, num_threads=num_threads)


def open_lce_native(module: Any, model_bytes: bytes, *, num_threads: int = 1) -> Session:
    """:func:`open_lce` on LCE's native wrapper module ``interpreter_wrapper_lite`` as given.

    :mod:`pipeline.child` loads that module straight from its file (without the
    ``larq_compute_engine`` package, which imports TensorFlow) and passes it here.

    Raises:
        InputError: the flatbuffer cannot be loaded or has several inputs.
    """
    try:
        native = module.LiteInterpreter(bytes(model_bytes), num_threads, False, False, False)
    except (ValueError, RuntimeError) as err:
        raise InputError(f"LCE interpreter cannot load the model ({first_line(err)})") from None
    if len(native.input_shapes) != 1:
        raise InputError(f"LCE model has {len(native.input_shapes)} inputs, expected 1")

    def call(item: np.ndarray) -> np.ndarray:
        try:
            return native.predict([item])[0]
        except (ValueError, RuntimeError) as err:
            raise InputError(f"LCE interpreter failed ({first_line(err)})") from None

    return Session(
        "lce",
        tuple(int(d) for d in native.input_shapes[0]),
        np.dtype(native.input_types[0]),
        _quant(native.input_scales[0], native.input_zero_points[0]),
        np.dtype(native.output_types[0]),
        _quant(native.output_scales[0], native.output_zero_points[0]),
        call,
    )


def tflite_wrapper_session(module: Any, model_bytes: bytes, *, delegates: bool = False) -> Session:
    """A TFLite session on TensorFlow's native ``_pywrap_tensorflow_interpreter_wrapper`` module as given.

    What :func:`open_tflite` does through ``tf.lite.Interpreter``, on the wrapper underneath it
    (the pinned TensorFlow's: op resolver 1 is the default with delegates, 3 the builtin kernels
    without them). :mod:`pipeline.child` loads the module without importing TensorFlow.

    Raises:
        InputError: the flatbuffer cannot be loaded or allocated, or has several inputs or outputs.
    """
    model = bytes(model_bytes)
    try:
        wrapper = module.CreateWrapperFromBuffer(model, 1 if delegates else 3, [], [], False, False)
        wrapper.AllocateTensors()
    except (ValueError, RuntimeError) as err:
        raise InputError(f"TFLite interpreter cannot load the model ({first_line(err)})") from None
    inputs, outputs = list(wrapper.InputIndices()), list(wrapper.OutputIndices())
    if len(inputs) != 1 or len(outputs) != 1:
        raise InputError(f"TFLite model has {len(inputs)} inputs and {len(outputs)} outputs, expected 1 and 1")
    in_index, out_index = int(inputs[0]), int(outputs[0])

    def call(item: np.ndarray) -> np.ndarray:
        try:
            wrapper.SetTensor(in_index, item)
            wrapper.Invoke()
            return np.array(wrapper.GetTensor(out_index))
        except (ValueError, RuntimeError) as err:
            raise InputError(f"TFLite interpreter failed ({first_line(err)})") from None

    call.model = model  # type: ignore[attr-defined]  # the wrapper reads the flatbuffer in place: keep it alive
    return Session(
        "tflite",
        tuple(int(d) for d in wrapper.TensorSize(in_index, 0)),
        np.dtype(wrapper.TensorType(in_index, 0)),
        _quant(*wrapper.TensorQuantization(in_index, 0)),
        np.dtype(wrapper.TensorType(out_index, 0)),
        _quant(*wrapper.TensorQuantization(out_index, 0)),
        call,
        native=wrapper,
    )


def tflm_arena_guess(model_bytes: bytes) -> int:
    """Arena bytes to give the Python TFLite-Micro interpreter before its real need is known:
    ten times the flatbuffer plus 1 MiB (the real figure comes from :mod:`firmware_gen.arena`)."""
    return len(model_bytes) * 10 + (1 << 20)


def open_tflm(model_bytes: bytes, *, arena_size: int | None = None) -> Session:
    """The TFLite-Micro interpreter (``tflite_micro`` wheel): ``set_input``, ``invoke``, ``get_output``.

    Args:
        model_bytes: a builtin-op ``.tflite`` whose ops TFLite-Micro implements.
        arena_size: tensor arena bytes (default :func:`tflm_arena_guess`).

    Raises:
        InputError: TFLite-Micro cannot load the model (for example an op without a kernel).
    """
    from tflite_micro.python.tflite_micro import runtime

    try:
        interpreter = runtime.Interpreter.from_bytes(bytes(model_bytes), arena_size=arena_size or tflm_arena_guess(model_bytes))
    except (RuntimeError, ValueError) as err:
        raise InputError(f"TFLite-Micro cannot load the model ({first_line(err)})") from None
    inp, out = interpreter.get_input_details(0), interpreter.get_output_details(0)
    in_q, out_q = inp["quantization_parameters"], out["quantization_parameters"]

    def call(item: np.ndarray) -> np.ndarray:
        interpreter.set_input(item, 0)
        interpreter.invoke()
        return interpreter.get_output(0)

    return Session(
        "tflm",
        tuple(int(d) for d in inp["shape"]),
        np.dtype(inp["dtype"]),
        _quant(in_q["scales"], in_q["zero_points"]),
        np.dtype(out["dtype"]),
        _quant(out_q["scales"], out_q["zero_points"]),
        call,
    )


def run_tflite(
    model_bytes: bytes, inputs: np.ndarray, num_threads: int = 1, *, delegates: bool = True, progress: str | None = None
) -> np.ndarray:
    """Scores of a builtin-op flatbuffer in TFLite (see :func:`open_tflite`, :meth:`Session.run`)."""
    return open_tflite(model_bytes, num_threads=num_threads, delegates=delegates).run(inputs, progress)


def run_lce(model_bytes: bytes, inputs: np.ndarray, num_threads: int = 1, *, progress: str | None = None) -> np.ndarray:
    """Scores of a flatbuffer in the LCE interpreter (see :func:`open_lce`, :meth:`Session.run`)."""
    return open_lce(model_bytes, num_threads=num_threads).run(inputs, progress)


def run_tflm(model_bytes: bytes, inputs: np.ndarray, *, progress: str | None = None) -> np.ndarray:
    """Scores of a builtin-op flatbuffer in TFLite-Micro (see :func:`open_tflm`, :meth:`Session.run`)."""
    return open_tflm(model_bytes).run(inputs, progress)


def time_tflite(model_bytes: bytes, inputs: np.ndarray, *, delegates: bool = True, warmup: int = WARMUP) -> TimedRun:
    """TFLite, one thread, each input timed (see :func:`open_tflite`, :meth:`Session.time`)."""
    return open_tflite(model_bytes, delegates=delegates).time(inputs, warmup)


def time_lce(model_bytes: bytes, inputs: np.ndarray, *, warmup: int = WARMUP) -> TimedRun:
    """LCE, one thread, each input timed (see :func:`open_lce`, :meth:`Session.time`)."""
    return open_lce(model_bytes).time(inputs, warmup)


def time_tflm(model_bytes: bytes, inputs: np.ndarray, *, warmup: int = WARMUP) -> TimedRun:
    """TFLite-Micro, each input timed (see :func:`open_tflm`, :meth:`Session.time`)."""
    return open_tflm(model_bytes).time(inputs, warmup)


def run_keras(model: tf.keras.Model, inputs: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Run a Keras model (inference mode) on raw inputs, in batches.

    Args:
        model: a single-input Keras model.
        inputs: raw inputs, see :func:`prepare_inputs`.
        batch_size: inputs per forward pass (results do not depend on it beyond float rounding).

    Returns:
        float32 scores ``(N, outputs)``.

    Raises:
        InputError: the model's input shape is not fully defined or does not fit the inputs.
    """
    in_shape = tuple(model.input_shape[1:])
    if None in in_shape:
        raise InputError(f"Keras model input shape {in_shape} is not fully defined")
    values = prepare_inputs(inputs, (1, *in_shape))
    feed = values.reshape((len(values), *in_shape))
    scores = [np.asarray(model(feed[i : i + batch_size], training=False)) for i in range(0, len(feed), batch_size)]
    return np.concatenate(scores).reshape(len(values), -1).astype(np.float32)
