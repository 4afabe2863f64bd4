"""The greedy memory planner: hand-made cases, invariants, and TFLite-Micro's own arena as reference."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import emulator  # noqa: F401  (legacy Keras before TensorFlow loads)
from convert.flatbuffer import read_model
from emulator.planner import ALIGNMENT, PlannedBuffer, does_any_buffers_overlap, plan_buffers, plan_memory


def buf(tensor: int, size: int, first: int, last: int) -> PlannedBuffer:
    return PlannedBuffer(tensor, f"t{tensor}", size, first, last)


def test_chain_reuses_memory_of_dead_buffers() -> None:
    # a -> b -> c -> d: only two neighbours live at once, so the plan needs the largest pair.
    buffers = [buf(0, 400, 0, 0), buf(1, 160, 0, 1), buf(2, 320, 1, 2), buf(3, 16, 2, 2)]
    plan = plan_buffers(buffers, 3)
    assert not does_any_buffers_overlap(plan)
    assert plan.total_bytes == max(400 + 160, 160 + 320, 320 + 16)
    assert plan.naive_bytes == 896


def test_largest_first_and_first_fit_gap() -> None:
    # 100 and 50 live together; 30 lives with neither of them at step 2 -> offset 0.
    plan = plan_buffers([buf(0, 96, 0, 1), buf(1, 48, 1, 1), buf(2, 32, 2, 2)], 3)
    offsets = {b.tensor: b.offset for b in plan.buffers}
    assert offsets == {0: 0, 1: 96, 2: 0}
    assert plan.total_bytes == 144


def test_fills_a_gap_between_placed_buffers() -> None:
    # A (0..64) and C (128..192) live at steps 0..1; B (64..128) dies after step 0; D fits B's hole.
    buffers = [buf(0, 64, 0, 1), buf(1, 64, 0, 0), buf(2, 64, 0, 1), buf(3, 48, 1, 1)]
    plan = plan_buffers(buffers, 2)
    assert not does_any_buffers_overlap(plan)
    assert plan.total_bytes == 192
    assert plan.buffers[3].offset == plan.buffers[1].offset


def test_overlap_check_detects_a_bad_plan() -> None:
    good = plan_buffers([buf(0, 32, 0, 1), buf(1, 32, 1, 2)], 3)
    assert not does_any_buffers_overlap(good)
    bad = type(good)((PlannedBuffer(0, "a", 32, 0, 1, 0), PlannedBuffer(1, "b", 32, 1, 2, 16)), 3)
    assert does_any_buffers_overlap(bad)
    apart_in_time = type(good)((PlannedBuffer(0, "a", 32, 0, 0, 0), PlannedBuffer(1, "b", 32, 1, 1, 0)), 2)
    assert not does_any_buffers_overlap(apart_in_time)


def test_rejects_a_lifetime_that_ends_before_it_starts() -> None:
    with pytest.raises(ValueError, match="lifetime"):
        plan_buffers([buf(0, 16, 3, 1)], 4)


def _arena_head(model_bytes: bytes) -> tuple[int, int]:
    """(head, total) from TFLite-Micro's own allocation report."""
    from firmware_gen.arena import arena_report

    text = arena_report(model_bytes)
    head = int(re.search(r"Arena allocation head (\d+) bytes", text).group(1))
    total = int(re.search(r"Arena allocation total (\d+) bytes", text).group(1))
    return head, total


@pytest.mark.parametrize("name", ["cnn.tflite", "cnn.int8.tflite", "mlp.tflite", "mlp.int8.tflite"])
def test_planner_matches_tflm_arena_head(emulator_artifacts: Path, name: str) -> None:
    """Like with like: the planned activations against the head of TFLM's arena.

    TFLM's arena total = head (non-persistent: the planned activation buffers, plus kernel
    scratch buffers, none for these reference kernels) + tail (persistent: TfLiteEvalTensor
    structs, node structs, quantization params, op data). The planner models the head only.
    """
    data = (emulator_artifacts / name).read_bytes()
    model = read_model(emulator_artifacts / name)
    plan = plan_memory(model)
    head, total = _arena_head(data)
    assert not does_any_buffers_overlap(plan)
    assert abs(plan.total_bytes - head) <= 0.10 * head, plan.format()
    assert plan.total_bytes == head  # exact for these graphs: same lifetimes, alignment and strategy
    assert total > head  # the tail is the overhead the planner deliberately leaves out


def test_planner_on_lce_graph(emulator_artifacts: Path) -> None:
    model = read_model(emulator_artifacts / "bcnn.lce.tflite")
    plan = plan_memory(model)
    assert not does_any_buffers_overlap(plan)
    activations = [t for t in model.tensors if not t.is_constant]
    sizes = sorted((-(-t.nbytes // ALIGNMENT) * ALIGNMENT for t in activations), reverse=True)
    # never less than the two largest buffers that must coexist (conv output and its pooled copy)
    conv0 = model.operators[0]
    pooled = model.operators[1]
    lower = model.tensors[conv0.outputs[0]].nbytes + model.tensors[pooled.outputs[0]].nbytes
    assert lower <= plan.total_bytes <= sum(sizes)
    assert all(b.offset % ALIGNMENT == 0 and b.size % ALIGNMENT == 0 for b in plan.buffers)
    text = plan.format()
    assert f"memory plan: {plan.total_bytes} bytes" in text
    assert text.count("\nop ") == len(model.operators)
