"""The ``bnn`` engine: compile an LCE flatbuffer to standalone, bit-packed, integer C99.

Pipeline (a small compiler): :mod:`.graph` reads the flatbuffer into a checked op chain,
:mod:`.lower` folds batch norm, pooling and sign into integer thresholds and packs weights
(:mod:`.fold` holds the maths, :mod:`.contract` the bit layout), :mod:`.emit` resolves each
layer for its template, :mod:`.planner` lays out the static activation buffers, and the Jinja
templates in ``firmware_gen/templates/bnn/`` write the C.

Generated files: ``bnn_model.h`` (API and memory figures), ``bnn_model.c`` (const weights,
thresholds, final affine, one static function per layer, ``bnn_predict``), ``bnn_kernels.h``
(build switches, helpers) and ``bnn_popcount.h`` (single-word popcount variants, from
:mod:`firmware_gen.baremetal.popcount`). API::

    int bnn_predict(const uint8_t pixels[28 * 28], int32_t scores[10]);

Kernels (what makes them fast, all exact): the pixel conv sums each group of 3 taps with one
lookup in an 8-entry table built per position, and skips windows of zero pixels (bit masks
of the nonzero pixels; S = 0 there). Binary convs count ``popcount(patch ^ w)`` with a
carry-save tree (:mod:`.csa`), go position by position over the channels still alive (a
channel is dropped at the first pool position with S >= threshold), and skip windows made of
the previous layer's background pixel. Each layer function also has a channel-inner form
(``BNN_CHANNEL_INNER``) whose innermost loop runs over output channels: SIMD hosts vectorize it.

Supported: sequential models of CONV_2D with +-c weights on (rescaled) pixels, LceBconv2d
(VALID, SAME with pad value 0 or 1, strides, fused RELU/RELU6/RELU_N1_TO_1, float or
bitpacked output), LceBMaxPool2d, MAX_POOL_2D, per-channel MUL/ADD (batch norm), RESHAPE
(flatten), LceQuantize/LceDequantize, FULLY_CONNECTED with +-c weights on +-1 inputs, and a
final SOFTMAX. Anything else is refused with one line naming the layer (operator index).

Exactness: LCE's own float arithmetic is replayed where its order is fixed (the bconv output
transform, MUL/ADD, clamps, the sign ``x < 0``), so those thresholds are bit-exact. Where LCE
sums floats in an unspecified order (the first CONV_2D, binary FULLY_CONNECTED, the float
correction of zero-padded borders) the exact real value decides; results can differ only on
float near-ties. The final scores are an int32 (int64 if needed) fixed point of the exact
affine, proven order-preserving at generation time. Non-goals: no malloc, no float, no
stdio, no branching graphs, no int8 activations.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from convert.flatbuffer import Model, read_model, read_model_bytes
from firmware_gen.bnn.emit import LayerCode, resolve_layer
from firmware_gen.bnn.graph import Graph, load_graph
from firmware_gen.bnn.lower import lower
from firmware_gen.engines import EngineOutput
from firmware_gen.targets import Board, Core
from pipeline.planner import Buffer, plan_buffers

__all__ = ["generate"]


def _popcount_header(model: Model, core: Core) -> tuple[bytes, str]:
    """``bnn_popcount.h`` (firmware_gen.baremetal.popcount: the variant measured fastest per core
    under QEMU) and the name of the variant it selects."""
    from firmware_gen.baremetal.popcount import POPCOUNT_CHOICE, popcount_header

    return popcount_header(model, core), POPCOUNT_CHOICE.get(core.name, "swar_mul")


def _signature(graph: Graph) -> dict[str, object]:
    """The API's shapes and types (``bnn_model.h``): raw uint8 input values, int32 scores."""
    _, height, width, channels = graph.input.shape
    return {
        "input_height": int(height),
        "input_width": int(width),
        "input_channels": int(channels),
        "input_type": "uint8_t",
        "num_classes": int(math.prod(graph.output.shape)),
        "score_type": "int32_t",
    }


def _as_model(model: Model | bytes | str | os.PathLike[str]) -> Model:
    if isinstance(model, Model):
        return model
    if isinstance(model, bytes | bytearray):
        return read_model_bytes(bytes(model))
    return read_model(Path(model))


def generate(model: Model | bytes | str | os.PathLike[str], core: Core, board: Board | None = None) -> EngineOutput:
    """Compile an LCE flatbuffer to C.

    Args:
        model: the parsed flatbuffer (or its bytes, or a path).
        core: the target core.
        board: the board or ``None`` (only named in the banner).

    Returns:
        :class:`~firmware_gen.engines.EngineOutput` with ``bnn_model.h``, ``bnn_model.c``,
        ``bnn_kernels.h``, ``bnn_popcount.h`` and a report (``model_data_bytes``, ``activation_ram_bytes``,
        ``layers``, ``buffer_plan`` (printable) and ``arena_buffers`` (name, bytes, byte offset,
        first and last layer of each static activation buffer), ``popcount``).

    Raises:
        InputError: the model uses an op or option outside the supported set (one line naming
            the layer index and op), or is not a readable flatbuffer.
    """
    from firmware_gen.render import banner_context, render

    parsed = _as_model(model)
    graph = load_graph(parsed)
    layers = lower(graph)
    codes: list[LayerCode] = []
    for i, layer in enumerate(layers):
        codes.append(resolve_layer(layer, i, codes[-1].background if codes else None))
    # Buffers in bytes (every one a whole number of uint32_t words); the arena is a uint32_t array.
    buffers = [Buffer(f"layer{i}_out", 4 * code.out_words, i, i + 1) for i, code in enumerate(codes[:-1])]
    plan = plan_buffers(buffers)
    calls = []
    for i, code in enumerate(codes):
        source = "input" if i == 0 else f"bnn_arena + {plan.offsets[i - 1] // 4}"
        target = "scores" if i == len(codes) - 1 else f"bnn_arena + {plan.offsets[i] // 4}"
        calls.append(f"{code.context['fn']}({source}, {target})")
    final_call = calls.pop()
    arrays = [array for code in codes for array in code.arrays]
    model_data_bytes = sum(array.nbytes for array in arrays)
    scale_log2 = codes[-1].context["scale_log2"] - codes[-1].context["view_shift"]
    common = {
        **banner_context(parsed, "bnn engine", core, board),
        "model_data_bytes": model_data_bytes,
        "arena_bytes": plan.total,
    }
    layer_rows = [
        f"{c.context['title']}: weights {c.weight_bytes} B, thresholds {c.threshold_bytes} B, out {4 * c.out_words} B"
        for c in codes
    ]
    popcount_h, popcount = _popcount_header(parsed, core)
    files = {
        "bnn_kernels.h": render("bnn/bnn_kernels.h.j2", popcount_choice=popcount, **common),
        "bnn_model.h": render("bnn/bnn_model.h.j2", layer_rows=layer_rows, scale_log2=scale_log2, **_signature(graph), **common),
        "bnn_model.c": render(
            "bnn/bnn_model.c.j2",
            arrays=arrays,
            inner_arrays=[array for code in codes for array in code.inner_arrays],
            arena_words=max(plan.total // 4, 1),
            plan_lines=plan.describe(),
            layers=[c.context | {"template": c.template, "inner_template": c.inner_template} for c in codes],
            calls=calls,
            final_call=final_call,
            **common,
        ),
    }
    report = {
        "engine": "bnn",
        "model_data_bytes": model_data_bytes,
        "activation_ram_bytes": plan.total,
        "layers": [c.report for c in codes],
        "buffer_plan": plan.describe(),
        "arena_buffers": [
            {"name": b.name, "bytes": b.size, "offset": o, "first_layer": b.first, "last_layer": b.last}
            for b, o in zip(plan.buffers, plan.offsets, strict=True)
        ],
        "popcount": "carry-save trees, then one SWAR pass over the weighted words",
        "score_scale_log2": scale_log2,
        "score_int64": bool(codes[-1].context["wide"]),
    }
    encoded = {name: text.encode("utf-8") for name, text in files.items()}
    return EngineOutput({**encoded, "bnn_popcount.h": popcount_h}, report)
