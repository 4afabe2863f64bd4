"""Write the C files of a compiled program: ``bnn_model.h``, ``bnn_model.c``, ``bnn_kernels.h``.

Templates hold the layout (``firmware_gen/templates/bnn/``); this module only names things:
kernel ``N`` becomes ``static ... bnn_layerN(...)`` with its constants prefixed ``lN_``, its
parameters are one pointer per input value then the output (``in0``, ``in1``, ..., ``out``:
the model's ``input``, the caller's ``scores`` or an offset into the static arena), and
``bnn_predict`` calls the kernels in order and returns the argmax of the scores (first
maximum), or what the fused integer head returns. The arena is a ``uint32_t`` array when it
holds bit-packed values only, else a union of typed views.
"""

from __future__ import annotations

from typing import Any

from firmware_gen.bnn.kernel import Kernel
from firmware_gen.bnn.plan import INPUT, SCORES, MemoryPlan
from firmware_gen.bnn.signature import Signature
from firmware_gen.bnn.values import Value
from firmware_gen.render import render

__all__ = ["emit_files", "kernel_title"]

_VIEWS = {"uint32_t": ("u32", 4), "float": ("f32", 4), "int8_t": ("i8", 1), "uint8_t": ("u8", 1)}


def kernel_title(position: int, kernel: Kernel, value: Value, output_is_scores: bool) -> str:
    """One line naming a kernel, its ops and its output (comments and reports)."""
    if output_is_scores and value.dtype == "int32":
        shape = f"{value.size} int32 scores"
    elif output_is_scores:
        shape = f"{value.size} {'float' if value.dtype == 'float32' else value.dtype} scores"
    else:
        shape = value.describe()
    return f"layer {position}: {' + '.join(kernel.ops)} (flatbuffer op {kernel.index}) -> {shape}"


def _pointer(tensor: int, values: dict[int, Value], memory: MemoryPlan, single_view: bool) -> str:
    place = memory.place(tensor)
    if place == INPUT:
        return "input"
    if place == SCORES:
        return "scores"
    view, size = _VIEWS[values[tensor].ctype]
    offset = int(place) // size
    return f"bnn_arena + {offset}" if single_view else f"bnn_arena.{view} + {offset}"


def _row(title: str, kernel: Kernel, values: dict[int, Value], memory: MemoryPlan) -> str:
    out = 0 if memory.place(kernel.output) == SCORES else values[kernel.output].nbytes
    if kernel.weight_bytes is None:
        return f"{title}: constants {kernel.data_bytes} B, out {out} B"
    if kernel.layer is None:
        return (
            f"{title}: weights {kernel.weight_bytes} B, other constants {kernel.data_bytes - kernel.weight_bytes} B, out {out} B"
        )
    return f"{title}: weights {kernel.weight_bytes} B, thresholds {kernel.data_bytes - kernel.weight_bytes} B, out {out} B"


def _params(kernel: Kernel, values: dict[int, Value], output_type: str) -> tuple[str, list[str]]:
    in_types = [values[t].ctype for t in kernel.inputs]
    names = [f"const {ctype} *in{i}" for i, ctype in enumerate(in_types)]
    return ", ".join([*names, f"{output_type} *out"]), in_types


def emit_files(
    kernels: list[Kernel],
    values: dict[int, Value],
    memory: MemoryPlan,
    signature: Signature,
    output_tensor: int,
    common: dict[str, Any],
    popcount_choice: str,
) -> dict[str, str]:
    """Render the three engine files.

    Args:
        kernels: in execution order.
        values: tensor -> value.
        memory: the plan of :func:`firmware_gen.bnn.plan.plan_memory`.
        signature: the API.
        output_tensor: the model output (written to ``scores``).
        common: banner variables plus ``model_data_bytes`` and ``arena_bytes``.
        popcount_choice: the single-word popcount variant of the core (comment).

    Returns:
        File name -> text.
    """
    single_view = memory.ctypes in ((), ("uint32_t",))
    layers, calls = [], []
    score_type = "float" if signature.score_dtype == "float32" else "int32_t"
    for position, kernel in enumerate(kernels):
        is_scores = memory.place(kernel.output) == SCORES
        out_type = score_type if is_scores else values[kernel.output].ctype
        params, in_types = _params(kernel, values, out_type)
        title = kernel_title(position, kernel, values[kernel.output], is_scores)
        context = {
            **kernel.context,
            "fn": f"bnn_layer{position}",
            "prefix": f"l{position}_",
            "title": title,
            "params": params,
            "in_types": in_types,
            "out_type": out_type,
            "template": kernel.template,
            "inner_template": kernel.inner_template,
        }
        layers.append(context)
        args = [_pointer(t, values, memory, single_view) for t in (*kernel.inputs, kernel.output)]
        call = f"{context['fn']}({', '.join(args)})"
        calls.append({"call": call, "barrier": position in memory.barriers})
    final = kernels[-1]
    returns = calls.pop()["call"] if final.returns_class else None
    arrays = [array for kernel in kernels for array in kernel.arrays]
    float_code = any(v.dtype == "float32" for v in values.values()) or signature.input_dtype == "float32"
    needs = {
        "need_float": float_code,
        "need_exp": any(k.context.get("uses_exp") for k in kernels),
        "need_round": any(k.context.get("uses_round") or k.context.get("output") == "int8" for k in kernels),
        "need_int8": any(k.context.get("uses_int8") for k in kernels),
        "need_barrier": bool(memory.barriers),
        "need_smlad": any(k.context.get("form") == "pairs" for k in kernels),
        "argmax_type": None if returns else score_type,
    }
    views = [(_VIEWS[t][0], t, memory.total // _VIEWS[t][1]) for t in memory.ctypes]
    layer_rows = [_row(row["title"], kernel, values, memory) for row, kernel in zip(layers, kernels, strict=True)]
    model_c = render(
        "bnn/bnn_model.c.j2",
        arrays=arrays,
        inner_arrays=[array for kernel in kernels for array in kernel.inner_arrays],
        arena_words=max(memory.total // 4, 1),
        int8_stem=next((k.context["form"] for k in kernels if k.kind == "PixelConv" and k.context.get("integer")), None),
        int8_dense=any(kernel.context.get("integer") and kernel.kind == "BinaryDense" for kernel in kernels),
        single_view=single_view,
        views=views,
        plan_lines=memory.plan.describe(),
        layers=layers,
        calls=calls,
        final_call=returns,
        **needs,
        **common,
    )
    header = render(
        "bnn/bnn_model.h.j2",
        layer_rows=layer_rows,
        scale_log2=final.layer.epilogue.scale_log2 - final.layer.epilogue.view_shift if returns else None,
        float_code=float_code,
        **signature.macros(),
        **common,
    )
    kernels_h = render("bnn/bnn_kernels.h.j2", popcount_choice=popcount_choice, **needs, **common)
    return {"bnn_kernels.h": kernels_h, "bnn_model.h": header, "bnn_model.c": model_c}
