"""convert.validation through the reader: every invalid graph a consumer tripped over is one InputError line.

Each case takes a real flatbuffer (the session's mini models), changes one field with the
schema's object API and packs it again. Before the validation the reader accepted every one of
these and a later stage failed: the bnn engine (IndexError, OverflowError on an infinite
weight, ValueError, TypeError), the tflm engine (IndexError on a missing zero point), the
planner (negative sizes), or TFLite-Micro in-process (SIGSEGV on a graph input of -1).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import pytest
from fuzzing import edit_model

from convert.flatbuffer import read_model, read_model_bytes
from pipeline.errors import InputError


def _g(model):
    return model.subgraphs[0]


def _in(model, op: int, slot: int) -> int:
    """Tensor index of input ``slot`` of operator ``op`` (the seeds' operator order is fixed; tensor numbers are not)."""
    return int(_g(model).operators[op].inputs[slot])


def _out(model, op: int) -> int:
    return int(_g(model).operators[op].outputs[0])


def _tensor(model, index: int):
    return _g(model).tensors[index]


def _set_float(op: int, slot: int, value: float):
    """Put ``value`` in the middle of the float constant in input ``slot`` of operator ``op``."""

    def edit(model) -> None:
        buffer = model.buffers[_tensor(model, _in(model, op, slot)).buffer]
        values = np.array(buffer.data, dtype=np.uint8).view(np.float32).copy()
        values[len(values) // 2] = value
        buffer.data = np.frombuffer(values.tobytes(), np.uint8)

    return edit


def _set_output(op: int, index_of: Callable) -> Callable:
    def edit(model) -> None:
        _g(model).operators[op].outputs[0] = index_of(model)

    return edit


def _two_subgraphs(model) -> None:
    import copy

    model.subgraphs.append(copy.deepcopy(model.subgraphs[0]))


def _sparse(model) -> None:
    from tensorflow.lite.python import schema_py_generated as schema

    _tensor(model, _in(model, 0, 1)).sparsity = schema.SparsityParametersT()


def _list_custom_option(model) -> None:
    """Operator 5 of bcnn.lce is LceBconv2d: its channels_in becomes a list (fuzz mutant 22603)."""
    from flatbuffers import flexbuffers

    op = _g(model).operators[5]
    options = dict(flexbuffers.Loads(bytes(bytearray(op.customOptions))))
    options["channels_in"] = [1, 2]
    op.customOptions = np.frombuffer(flexbuffers.Dumps(options), np.uint8)


def _shape(index_of: Callable, shape: list[int]) -> Callable:
    def edit(model) -> None:
        _tensor(model, index_of(model)).shape = np.array(shape, np.int32)

    return edit


def _graph_input(model) -> int:
    return int(_g(model).inputs[0])


def _conv_out(model) -> int:
    return _out(model, 0)


def _conv_weights(model) -> int:
    return _in(model, 0, 1)


# Operators of the seeds: cnn and cnn.int8 are CONV_2D, MAX_POOL_2D, RESHAPE, FULLY_CONNECTED, SOFTMAX;
# bcnn.lce starts CONV_2D, MAX_POOL_2D, MUL, ADD (the first batch norm), LceQuantize, LceBconv2d, ...
CASES = {
    # name: (seed, edit, what the one-line error says)
    "graph input -1": ("cnn", lambda m: _g(m).inputs.__setitem__(0, -1), "graph input names tensor -1"),
    "graph output out of range": ("cnn", lambda m: _g(m).outputs.__setitem__(0, 99), "graph output names tensor 99"),
    "op output -1": ("cnn", lambda m: _g(m).operators[0].outputs.__setitem__(0, -1), "output 0 names tensor -1"),
    "op data input -1": ("cnn", lambda m: _g(m).operators[1].inputs.__setitem__(0, -1), "input 0 names tensor -1"),
    "op input out of range": ("cnn.int8", lambda m: _g(m).operators[3].inputs.__setitem__(1, 99), "input 1 names tensor 99"),
    "negative dimension": ("cnn", _shape(_conv_out, [1, -3, 26, 4]), "negative dimension"),
    "zero-element input": ("cnn", _shape(_graph_input, [1, 0, 28, 1]), "has no elements"),
    "unknown tensor type": ("cnn", lambda m: setattr(_tensor(m, _conv_out(m)), "type", 99), "not a TFLite tensor type"),
    "NaN weight": ("cnn", _set_float(0, 1, float("nan")), "NaN or infinite"),
    "infinite weight (bnn engine: OverflowError)": ("bcnn.lce", _set_float(0, 1, float("inf")), "NaN or infinite"),
    "infinite batch-norm constant": ("bcnn.lce", _set_float(2, 1, -float("inf")), "NaN or infinite"),
    "missing zero point (tflm engine: IndexError)": (
        "cnn.int8",
        lambda m: setattr(_tensor(m, _graph_input(m)).quantization, "zeroPoint", None),
        "1 quantization scales but 0 zero points",
    ),
    "NaN scale": (
        "cnn.int8",
        lambda m: setattr(_tensor(m, _conv_out(m)).quantization, "scale", np.array([np.nan], np.float32)),
        "negative or not finite",
    ),
    "per-channel scales on the wrong axis": (
        "cnn.int8",
        lambda m: setattr(_tensor(m, _conv_weights(m)).quantization, "quantizedDimension", 3),
        "per-channel scales on dimension 3",
    ),
    "schema version 2": ("cnn", lambda m: setattr(m, "version", 2), "schema version 2"),
    "two subgraphs": ("cnn", _two_subgraphs, "2 subgraphs"),
    "tensor both input and output of one op": ("cnn", _set_output(1, lambda m: _in(m, 1, 0)), "reads and writes tensor"),
    "op writes a constant": ("cnn", _set_output(1, lambda m: _in(m, 3, 1)), "a constant"),
    "tensor written twice": ("cnn", _set_output(2, _conv_out), "already written by operator 0"),
    "op writes the graph input": ("cnn", _set_output(1, _graph_input), "a graph input"),
    "read before write": (
        "cnn",
        lambda m: _g(m).operators.__setitem__(slice(0, 2), [_g(m).operators[1], _g(m).operators[0]]),
        "which no earlier operator writes",
    ),
    "graph output written by no op": ("cnn", lambda m: _g(m).operators.pop(), "is written by no operator"),
    "unknown builtin op code": (
        "cnn",
        lambda m: setattr(m.operatorCodes[_g(m).operators[1].opcodeIndex], "builtinCode", 250),
        "BUILTIN_250",
    ),
    "tensor over 2 GiB": ("cnn", _shape(_conv_out, [1, 65536, 65536, 4]), "over TFLite's 2 GiB limit"),
    "activations over 1 GiB": ("cnn", _shape(_conv_out, [1, 16384, 16384, 1]), "activation tensors need"),
    "sparse tensor": ("cnn", _sparse, "sparse"),
    "custom option a list (emulator.layers: TypeError)": (
        "bcnn.lce",
        _list_custom_option,
        "operator 5: custom option 'channels_in' of LceBconv2d is list",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_invalid_graph_is_one_input_error(mini_flatbuffers, case: str) -> None:
    seed, edit, message = CASES[case]
    data = edit_model(mini_flatbuffers[seed].read_bytes(), edit)
    with pytest.raises(InputError) as caught:
        read_model_bytes(data, "mutant.tflite")
    text = str(caught.value)
    assert message in text and "\n" not in text and text.startswith("mutant.tflite: "), text


def test_the_seeds_themselves_are_valid(mini_flatbuffers) -> None:
    """An omitted optional input (-1 in a later slot, here FULLY_CONNECTED's bias) is what TFLite writes: accepted."""
    for path in mini_flatbuffers.values():
        model = read_model(path)
        assert model.inputs and model.outputs
    cnn = read_model(mini_flatbuffers["cnn"])
    assert any(op.inputs[1:].count(-1) for op in cnn.operators)


def test_a_constant_numpy_cannot_hold_is_an_input_error(mini_flatbuffers) -> None:
    """STRING/INT4 constants: array() names the tensor with an InputError (it raised ValueError, which engines let through)."""
    model = read_model(mini_flatbuffers["cnn"])
    weights = next(t for t in model.tensors if t.is_constant and t.dtype == "FLOAT32")
    odd = dataclasses.replace(weights, dtype="STRING")
    with pytest.raises(InputError, match="STRING constant"):
        odd.array()


def test_huge_dimensions_do_not_overflow(mini_flatbuffers) -> None:
    """Sizes are exact integers: int64 products used to wrap around to small or negative sizes."""
    model = read_model(mini_flatbuffers["cnn"])
    tensor = dataclasses.replace(model.tensors[5], shape=(2**31 - 1, 2**31 - 1, 2**31 - 1, 4))
    assert tensor.size == (2**31 - 1) ** 3 * 4 and tensor.nbytes > 2**64
