"""Threshold folding and exact final scores, against brute force (no TensorFlow needed).

The references here replay the float tail literally (float32 numpy, max-pool of the float
values, sign ``x < 0``) for every input and compare with the folded integer rule
``bit = max(S over window) < T`` after the weight negation and bit complement it chose.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from firmware_gen.bnn.fold import MAX_SCORE_POINTS, Step, score_epilogue, threshold_epilogue
from firmware_gen.bnn.ir import Window

CHANNELS = 24
S_MIN, S_MAX = -40, 40


def affine_evaluator(mul: np.ndarray, bias: np.ndarray):
    def evaluate(s: np.ndarray) -> np.ndarray:
        return ((s.astype(np.float32) * mul[:, None]).astype(np.float32) + bias[:, None]).astype(np.float32)

    return evaluate


def brute_force(evaluate, steps, windows: np.ndarray) -> np.ndarray:
    """LCE's bit per channel for each window of S values ``(C, n_windows, window)``."""
    cut = next((i for i, s in enumerate(steps) if s.kind == "pool"), len(steps))
    values = np.empty(windows.shape, dtype=np.float32)
    for w in range(windows.shape[2]):
        v = evaluate(windows[:, :, w])
        for step in steps[:cut]:
            v = apply(step, v)
        values[:, :, w] = v
    pooled = values.max(axis=2)
    for step in steps[cut + 1 :]:
        pooled = apply(step, pooled)
    return pooled < 0


def apply(step: Step, v: np.ndarray) -> np.ndarray:
    if step.kind == "mul":
        return (v * step.value[:, None]).astype(np.float32)
    if step.kind == "add":
        return (v + step.value[:, None]).astype(np.float32)
    return np.clip(v, np.float32(step.lo), np.float32(step.hi)).astype(np.float32)


def folded(epilogue, windows: np.ndarray) -> np.ndarray:
    signed = np.where(epilogue.negate[:, None, None], -windows, windows)
    stored = signed.max(axis=2) < epilogue.thresholds[:, None]
    return stored ^ epilogue.complement[:, None]


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("pooled", [False, True])
def test_thresholds_match_brute_force(seed: int, pooled: bool) -> None:
    rng = np.random.default_rng(seed)
    mul = rng.normal(size=CHANNELS).astype(np.float32)
    mul[:2] = 0.0  # constant channels
    bias = rng.normal(size=CHANNELS).astype(np.float32) * 10
    bias[2] = 0.0  # an exact zero crossing at S = 0: sign(0) is +1
    scale = rng.normal(size=CHANNELS).astype(np.float32)  # BN multiplier of either sign
    shift = rng.normal(size=CHANNELS).astype(np.float32) * 3
    steps = [Step("mul", scale), Step("add", shift)]
    if pooled:
        pool = Window.make(4, 4, 2, 2, 2, 2, same=False)
        pre_scale = rng.normal(size=CHANNELS).astype(np.float32)  # negative: max-pool becomes a min-pool
        pre = [Step("mul", pre_scale), Step("add", rng.normal(size=CHANNELS).astype(np.float32))]
        steps = [*pre, Step("pool", pool=pool), *steps]
    if seed % 2:
        steps.append(Step("clamp", lo=-1.0, hi=1.0))  # RELU_N1_TO_1 after the batch norm
    epilogue = threshold_epilogue(affine_evaluator(mul, bias), steps, S_MIN, S_MAX, CHANNELS)
    width = 4 if pooled else 1
    windows = rng.integers(S_MIN, S_MAX + 1, size=(CHANNELS, 3000, width))
    windows[:, :81, 0] = np.arange(S_MIN, S_MAX + 1)  # every S at least once
    if pooled:
        windows[:, :81, 1:] = S_MIN
    np.testing.assert_array_equal(folded(epilogue, windows), brute_force(affine_evaluator(mul, bias), steps, windows))
    assert epilogue.thresholds.min() >= S_MIN - 1 and epilogue.thresholds.max() <= S_MAX + 1
    if pooled:
        assert epilogue.negate.any() and not epilogue.negate.all()
    assert epilogue.complement.any() and not epilogue.complement.all()


def test_min_pool_path_is_taken_for_negative_pre_pool_scale() -> None:
    mul = np.array([-1.0, 1.0, -0.5], dtype=np.float32)
    bias = np.array([0.5, 0.5, -3.25], dtype=np.float32)
    steps = [Step("pool", pool=Window.make(2, 2, 2, 2, 2, 2, same=False))]
    epilogue = threshold_epilogue(affine_evaluator(mul, bias), steps, -8, 8, 3)
    assert epilogue.negate.tolist() == [True, False, True]
    windows = np.array([[[s, t] for s in range(-8, 9) for t in range(-8, 9)]] * 3)
    np.testing.assert_array_equal(folded(epilogue, windows), brute_force(affine_evaluator(mul, bias), steps, windows))


def test_more_than_one_pool_is_refused() -> None:
    pool = Window.make(4, 4, 2, 2, 2, 2, same=False)
    evaluate = affine_evaluator(np.ones(1, np.float32), np.zeros(1, np.float32))
    with pytest.raises(ValueError, match="more than one max-pool"):
        threshold_epilogue(evaluate, [Step("pool", pool=pool), Step("pool", pool=pool)], -4, 4, 1)


def argmax_exact(mul, add, s: np.ndarray) -> np.ndarray:
    values = [[Fraction(m) * int(x) + Fraction(a) for m, a, x in zip(mul, add, row, strict=True)] for row in s]
    return np.array([max(range(len(row)), key=lambda j, row=row: (row[j], -j)) for row in values])


@pytest.mark.parametrize("n", [64, 1617, 20_000])
def test_scores_are_order_exact(n: int) -> None:
    # 20,000: the sums of an 8-bit class layer (|S| <= sum(|k|)), 200,010 reachable scores
    rng = np.random.default_rng(n)
    mul = [Fraction(float(np.float32(v))) for v in rng.uniform(0.001, 0.1, 10) * np.where(rng.random(10) < 0.3, -1, 1)]
    add = [Fraction(float(np.float32(v))) for v in rng.normal(size=10)]
    scores = score_epilogue(mul, add, np.arange(-n, n + 1, 2))
    assert scores.wide == (n > 1000)  # int32 has too little resolution for 10 x 1,618 values
    s = rng.integers(-n // 2, n // 2 + 1, size=(3000, 10)) * 2 + (n % 2)
    ints = s * scores.mul[None, :] + scores.add[None, :]
    limit = 2**63 if scores.wide else 2**31
    assert np.abs(ints).max() < limit
    np.testing.assert_array_equal(ints.argmax(axis=1), argmax_exact(mul, add, s))


def test_scores_keep_exact_ties_with_first_index_winning() -> None:
    mul = [Fraction(1, 2), Fraction(1, 4), Fraction(1, 2)]
    add = [Fraction(0), Fraction(1, 8), Fraction(0)]
    scores = score_epilogue(mul, add, np.arange(-6, 7))
    s = np.array([[2, 4, 2], [0, 0, 0], [-2, -4, -2], [1, 2, 1]])
    ints = s * scores.mul[None, :] + scores.add[None, :]
    np.testing.assert_array_equal(ints.argmax(axis=1), argmax_exact(mul, add, s))


def test_scores_with_too_many_reachable_sums_are_refused() -> None:
    # 1,000 classes of +-2,100 sums (4.2 M pairs): past MAX_SCORE_POINTS, refused at once (the layer takes the float path)
    mul, add = [Fraction(1, 3)] * 1000, [Fraction(0)] * 1000
    with pytest.raises(ValueError, match="reachable"):
        score_epilogue(mul, add, np.arange(-2100, 2101))
    assert MAX_SCORE_POINTS < 1000 * 4201  # the premise: this many pairs is past the limit
