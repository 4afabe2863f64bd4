"""The ``bnn`` engine: compile an LCE flatbuffer (any Larq model) to dependency-free C99.

A small compiler, one module per job:

* :mod:`.graph` reads the flatbuffer into a DAG indexed by tensor (producers, consumers);
* :mod:`.signature` decides the API: input shape and C type, class count, score type;
* :mod:`.fusion` finds the chains the integer path compiles as one layer (a pixel conv, a
  binary conv or a binary dense with its float tail folded into integer thresholds, or into
  exact fixed-point class scores), :mod:`.fused` and :mod:`.fold` do the maths, :mod:`.binary`
  packs those layers for their templates (:mod:`.pixel` and :mod:`.pixel_code` the pixel conv's
  forms, :mod:`.contract` states the bit layout, :mod:`.csa` the popcount trees);
* every other op goes through its module in the registry :mod:`.ops` (``check``, ``lower``,
  one template each);
* :mod:`.lower` drives the passes, :mod:`.plan` places every buffer by its real lifetime
  (:func:`pipeline.planner.plan_buffers`), :mod:`.emit` writes the C.

Generated files: ``bnn_model.h`` (API: ``BNN_INPUT_HEIGHT/WIDTH/CHANNELS``, ``BNN_INPUT_TYPE``,
``BNN_NUM_CLASSES``, ``BNN_SCORE_TYPE``; memory figures), ``bnn_model.c`` (constants, one static
function per kernel, ``bnn_predict``), ``bnn_kernels.h`` (build switches, helpers) and
``bnn_popcount.h`` (the popcount variant measured fastest on the core)::

    int bnn_predict(const BNN_INPUT_TYPE input[BNN_INPUT_SIZE], BNN_SCORE_TYPE scores[BNN_NUM_CLASSES]);

Exactness: binary layers are exact integer XNOR/popcount code; LCE's own float arithmetic is
replayed where its order is fixed (the bconv output transform, MUL/ADD, clamps, the sign
``x < 0``), so those results are bit-exact; float ops whose result depends on a summation order
(CONV_2D, FULLY_CONNECTED, pooling averages, MEAN) or on ``exp`` follow TFLite's reference
kernels and agree to float rounding. Non-goals: malloc, stdio, libm, dynamic shapes.
"""

from __future__ import annotations

import os
from pathlib import Path

from convert.flatbuffer import Model, read_model, read_model_bytes
from firmware_gen.bnn.emit import emit_files
from firmware_gen.bnn.graph import load_graph
from firmware_gen.bnn.lower import Program, compile_graph
from firmware_gen.bnn.plan import SCORES, plan_memory
from firmware_gen.engines import EngineOutput, check_optimize
from firmware_gen.targets import Board, Core

__all__ = ["generate", "compile_model"]


def _popcount_header(model: Model, core: Core) -> tuple[bytes, str]:
    """``bnn_popcount.h`` (firmware_gen.baremetal.popcount: the variant measured fastest per core
    under QEMU) and the name of the variant it selects."""
    from firmware_gen.baremetal.popcount import POPCOUNT_CHOICE, popcount_header

    return popcount_header(model, core), POPCOUNT_CHOICE.get(core.name, "swar_mul")


def _as_model(model: Model | bytes | str | os.PathLike[str]) -> Model:
    if isinstance(model, Model):
        return model
    if isinstance(model, bytes | bytearray):
        return read_model_bytes(bytes(model))
    return read_model(Path(model))


def compile_model(model: Model | bytes | str | os.PathLike[str], input_type: str = "auto", dsp: bool = False) -> Program:
    """Read and lower a model without emitting C (tests and tools inspect the kernels).

    Args:
        model: the parsed flatbuffer (or its bytes, or a path).
        input_type: ``auto``, ``uint8`` or ``float32`` (:mod:`firmware_gen.bnn.signature`).
        dsp: lower for a core with the DSP extension (``Core.has_dsp``).

    Returns:
        The :class:`~firmware_gen.bnn.lower.Program`.

    Raises:
        InputError: see :func:`generate`.
    """
    return compile_graph(load_graph(_as_model(model)), input_type, dsp)


def _report_rows(program: Program, memory) -> list[dict]:
    rows = []
    for position, kernel in enumerate(program.kernels):
        value = program.values[kernel.output]
        data = kernel.data_bytes
        weights = data if kernel.weight_bytes is None else kernel.weight_bytes
        rows.append(
            {
                "position": position,
                "op_index": kernel.index,
                "ops": list(kernel.ops),
                "kind": kernel.kind,
                "output": value.describe() if memory.place(kernel.output) != SCORES else f"{value.size} scores",
                "packed_weight_bytes": weights if kernel.layer is not None else kernel.weight_bytes or 0,
                "threshold_bytes": data - weights if kernel.layer is not None else 0,
                "constant_bytes": data,
                "activation_bytes": 0 if memory.place(kernel.output) == SCORES else value.nbytes,
                "notes": list(kernel.notes),
            }
        )
    return rows


def generate(
    model: Model | bytes | str | os.PathLike[str],
    core: Core,
    board: Board | None = None,
    *,
    input_type: str = "auto",
    optimize: str = "speed",
) -> EngineOutput:
    """Compile an LCE flatbuffer to C.

    Args:
        model: the parsed flatbuffer (or its bytes, or a path).
        core: the target core.
        board: the board or ``None`` (only named in the banner).
        input_type: ``auto``, ``uint8`` or ``float32``: the C type of a FLOAT32 model input
            (:mod:`firmware_gen.bnn.signature`; ``firmware_gen --input-type``).
        optimize: ``speed`` (every binary layer's XOR-popcount unrolled into its own carry-save
            tree, :mod:`.csa`) or ``size`` (every layer calls one shared word loop: less code,
            more instructions); ``firmware_gen --optimize``. Both compute the same integers.

    Returns:
        :class:`~firmware_gen.engines.EngineOutput` with ``bnn_model.h``, ``bnn_model.c``,
        ``bnn_kernels.h``, ``bnn_popcount.h`` and a report (``signature``, ``model_data_bytes``,
        ``activation_ram_bytes``, ``layers``, ``buffer_plan`` (printable), ``arena_buffers`` (name,
        bytes, byte offset, first and last layer of each static activation buffer), ``notes``, ...).

    Raises:
        InputError: the model uses an op, option or type outside the supported set (one line
            naming the layer index and op), or is not a readable flatbuffer.
    """
    from firmware_gen.render import banner_context

    check_optimize(optimize)
    parsed = _as_model(model)
    program = compile_graph(load_graph(parsed), input_type, core.has_dsp)
    memory = plan_memory(program.kernels, program.values, program.graph.input.index, program.output)
    model_data_bytes = sum(kernel.data_bytes for kernel in program.kernels)
    common = {
        **banner_context(parsed, "bnn engine", core, board),
        "model_data_bytes": model_data_bytes,
        "arena_bytes": memory.total,
        "optimize": optimize,
    }
    popcount_h, popcount = _popcount_header(parsed, core)
    files = emit_files(program.kernels, program.values, memory, program.signature, program.output, common, popcount)
    final = program.kernels[-1]
    fixed_point = final.returns_class
    report = {
        "engine": "bnn",
        "signature": program.signature.as_json(),
        "model_data_bytes": model_data_bytes,
        "activation_ram_bytes": memory.total,
        "layers": _report_rows(program, memory),
        "buffer_plan": memory.plan.describe(),
        "notes": list(program.notes),
        "arena_buffers": [
            {"name": b.name, "bytes": b.size, "offset": o, "first_layer": b.first, "last_layer": b.last}
            for b, o in zip(memory.plan.buffers, memory.plan.offsets, strict=True)
        ],
        "optimize": optimize,
        "popcount": "one shared XOR-popcount word loop (byte counts summed per 31 words)"
        if optimize == "size"
        else "carry-save trees, then one SWAR pass over the weighted words",
        "score_scale_log2": final.layer.epilogue.scale_log2 - final.layer.epilogue.view_shift if fixed_point else None,
        "score_int64": bool(final.layer.epilogue.wide) if fixed_point else False,
    }
    encoded = {name: text.encode("utf-8") for name, text in files.items()}
    return EngineOutput({**encoded, "bnn_popcount.h": popcount_h}, report)
