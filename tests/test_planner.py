"""The greedy memory planner (pipeline.planner) and the RAM of a flatbuffer (emulator.planner):
hand-made cases, invariants, and TFLite-Micro's own arena as reference."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

import emulator  # noqa: F401  (legacy Keras before TensorFlow loads)
from convert.flatbuffer import read_model
from emulator.planner import ALIGNMENT, plan_memory
from pipeline.planner import Buffer, Plan, buffers_overlap, plan_buffers


def buf(tensor: int, size: int, first: int, last: int) -> Buffer:
    return Buffer(f"t{tensor}", size, first, last, tensor=tensor)


def test_chain_reuses_memory_of_dead_buffers() -> None:
    # a -> b -> c -> d: only two neighbours live at once, so the plan needs the largest pair.
    buffers = [buf(0, 400, 0, 0), buf(1, 160, 0, 1), buf(2, 320, 1, 2), buf(3, 16, 2, 2)]
    plan = plan_buffers(buffers, 3)
    assert not buffers_overlap(plan)
    assert plan.total == max(400 + 160, 160 + 320, 320 + 16)
    assert plan.naive == 896


def test_chain_of_layers_ping_pongs() -> None:
    # The seed BCNN's bnn engine: 676, 200, 72 and 8 bytes, each read by the next layer only.
    buffers = [Buffer(f"b{i}", size, i, i + 1) for i, size in enumerate([676, 200, 72, 8])]
    plan = plan_buffers(buffers)
    assert not buffers_overlap(plan)
    assert plan.total == 676 + 200  # the largest live pair
    assert plan.offsets[2] == 0  # b2 reuses b0's space once b0 is dead
    assert plan.steps == 5


def test_largest_first_and_first_fit_gap() -> None:
    # 96 and 48 live together; 32 lives with neither of them at step 2 -> offset 0.
    plan = plan_buffers([buf(0, 96, 0, 1), buf(1, 48, 1, 1), buf(2, 32, 2, 2)], 3)
    assert plan.offsets == (0, 96, 0)
    assert plan.total == 144


def test_fills_a_gap_between_placed_buffers() -> None:
    # A (0..64) and C (128..192) live at steps 0..1; B (64..128) dies after step 0; D fits B's hole.
    buffers = [buf(0, 64, 0, 1), buf(1, 64, 0, 0), buf(2, 64, 0, 1), buf(3, 48, 1, 1)]
    plan = plan_buffers(buffers, 2)
    assert not buffers_overlap(plan)
    assert plan.total == 192
    assert plan.offsets[3] == plan.offsets[1]


def test_random_plans_never_overlap_live_buffers() -> None:
    rng = np.random.default_rng(0)
    for _ in range(200):
        count = int(rng.integers(1, 9))
        buffers = []
        for i in range(count):
            first = int(rng.integers(0, 6))
            buffers.append(Buffer(f"b{i}", int(rng.integers(0, 50)), first, first + int(rng.integers(0, 4))))
        plan = plan_buffers(buffers)
        assert not buffers_overlap(plan)
        assert plan.total <= sum(b.size for b in buffers)
        peak = max(sum(b.size for b in buffers if b.first <= t <= b.last) for t in range(10))
        assert plan.total >= peak
        assert plan_buffers(buffers) == plan


def test_overlap_check_detects_a_bad_plan() -> None:
    a, b = Buffer("a", 32, 0, 1), Buffer("b", 32, 1, 2)
    assert not buffers_overlap(plan_buffers([a, b]))
    assert buffers_overlap(Plan((a, b), (0, 16), 3))
    assert not buffers_overlap(Plan((a, b), (0, 32), 3))
    apart_in_time = (Buffer("a", 32, 0, 0), Buffer("b", 32, 1, 1))
    assert not buffers_overlap(Plan(apart_in_time, (0, 0), 2))
    assert plan_buffers([a, b]).describe() == ["a: 32 bytes at 0, steps 0..1", "b: 32 bytes at 32, steps 1..2"]


@pytest.mark.parametrize("bad", [Buffer("x", 16, 3, 1), Buffer("x", -16, 0, 1), Buffer("x", 16, -1, 1)])
def test_rejects_a_negative_size_or_a_broken_lifetime(bad: Buffer) -> None:
    with pytest.raises(ValueError, match="lifetime"):
        plan_buffers([bad], 4)


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
    assert not buffers_overlap(plan)
    assert abs(plan.total - head) <= 0.10 * head, plan.format()
    assert plan.total == head  # exact for these graphs: same lifetimes, alignment and strategy
    assert total > head  # the tail is the overhead the planner deliberately leaves out


def test_planner_on_lce_graph(emulator_artifacts: Path) -> None:
    model = read_model(emulator_artifacts / "bcnn.lce.tflite")
    plan = plan_memory(model)
    assert not buffers_overlap(plan)
    activations = [t for t in model.tensors if not t.is_constant]
    sizes = sorted((-(-t.nbytes // ALIGNMENT) * ALIGNMENT for t in activations), reverse=True)
    # never less than the two largest buffers that must coexist (conv output and its pooled copy)
    conv0 = model.operators[0]
    pooled = model.operators[1]
    lower = model.tensors[conv0.outputs[0]].nbytes + model.tensors[pooled.outputs[0]].nbytes
    assert lower <= plan.total <= sum(sizes)
    assert all(o % ALIGNMENT == 0 and b.size % ALIGNMENT == 0 for b, o in zip(plan.buffers, plan.offsets, strict=True))
    text = plan.format()
    assert f"memory plan: {plan.total} bytes" in text
    assert text.count("\nop ") == len(model.operators)


def test_negative_sizes_and_stray_indices_are_one_input_error(mini_flatbuffers) -> None:
    """A model the reader did not build (or an older reader let through): one line, not a planner ValueError."""
    import dataclasses

    from pipeline.errors import InputError

    model = read_model(mini_flatbuffers["cnn"])
    produced = model.operators[0].outputs[0]
    negative = dataclasses.replace(model.tensors[produced], shape=(1, -26, 26, 4))
    tensors = tuple(negative if t.index == produced else t for t in model.tensors)
    with pytest.raises(InputError, match="negative size"):
        plan_memory(dataclasses.replace(model, tensors=tensors))
    with pytest.raises(InputError, match="names tensor -7"):
        plan_memory(dataclasses.replace(model, inputs=(-7,)))
    assert plan_memory(model).total > 0
