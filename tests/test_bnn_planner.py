"""The static activation planner: no live overlap, tight on chains, deterministic."""

from __future__ import annotations

import numpy as np

from firmware_gen.bnn.planner import Buffer, any_buffers_overlap, plan_buffers


def test_chain_of_layers_ping_pongs() -> None:
    # The seed BCNN: 676, 200, 72 and 8 bytes, each read by the next layer only.
    buffers = [Buffer(f"b{i}", words, i, i + 1) for i, words in enumerate([169, 50, 18, 2])]
    plan = plan_buffers(buffers)
    assert not any_buffers_overlap(plan)
    assert plan.total_words == 169 + 50  # the largest live pair
    assert plan.offsets[2] == 0  # b2 reuses b0's space once b0 is dead


def test_random_plans_never_overlap_live_buffers() -> None:
    rng = np.random.default_rng(0)
    for _ in range(200):
        count = int(rng.integers(1, 9))
        buffers = []
        for i in range(count):
            first = int(rng.integers(0, 6))
            buffers.append(Buffer(f"b{i}", int(rng.integers(0, 50)), first, first + int(rng.integers(0, 4))))
        plan = plan_buffers(buffers)
        assert not any_buffers_overlap(plan)
        assert plan.total_words <= sum(b.words for b in buffers)
        peak = max(sum(b.words for b in buffers if b.first <= t <= b.last) for t in range(10))
        assert plan.total_words >= peak
        assert plan_buffers(buffers) == plan


def test_overlap_check_detects_a_broken_plan() -> None:
    from firmware_gen.bnn.planner import Plan

    a, b = Buffer("a", 4, 0, 1), Buffer("b", 4, 1, 2)
    assert any_buffers_overlap(Plan((a, b), (0, 2), 6))
    assert not any_buffers_overlap(Plan((a, b), (0, 4), 8))
    assert plan_buffers([a, b]).describe() == ["a: 16 bytes at byte 0, layers 0..1", "b: 16 bytes at byte 16, layers 1..2"]
