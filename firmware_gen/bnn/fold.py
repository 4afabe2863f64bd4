"""Fold the float tail of a layer (batch norm, activations, max-pool, sign) into integers.

A layer's float output is a per-channel *monotone* function of its exact integer sum ``S``:
LCE's own float arithmetic (``float(2*pop) * -m + (b + K*m)``, then MUL, ADD, clamps, each one
IEEE float32 rounding) is monotone, so the sign that LceQuantize takes is a step function of
``S``. We replay that float32 arithmetic in numpy (bit-exact with the interpreter where LCE's
order of operations is known) and find the step by bisection, per channel. Max-pool commutes
with non-decreasing functions and becomes a min-pool for non-increasing ones; both are mapped
onto one kernel rule, ``bit = max(S) < T``, by negating weights and complementing bits
(see :class:`~firmware_gen.bnn.ir.Threshold`).

The last layer keeps an exact affine ``a_j * S_j + b_j`` (rationals from the float32
constants); :func:`score_epilogue` turns it into int32 fixed point and proves, by enumerating
every reachable ``(class, S)``, that the integer order equals the exact order.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from firmware_gen.bnn.ir import Scores, Threshold, Window

__all__ = ["Step", "Evaluator", "threshold_epilogue", "score_epilogue", "clamp_for", "MAX_SCORE_POINTS"]

Evaluator = Callable[[np.ndarray], np.ndarray]
"""Maps integer sums ``S`` of shape ``(C, m)`` (int64) to the float32 values ``(C, m)``."""

_INT32_MAX = 2**31 - 1
MAX_SCORE_POINTS = 1_000_000
"""Most reachable ``(class, S)`` pairs :func:`score_epilogue` sorts to prove the scores' order
(2,000,000 took 3.5 s and 630 MB; 10 classes of an 8-bit head on 512 features reach about
400,000); past it the last layer takes the float path."""


@dataclass(frozen=True)
class Step:
    """One op of a float tail: ``mul``/``add`` by a per-channel float32 vector, ``clamp``, ``pool``."""

    kind: str
    value: np.ndarray | None = None
    lo: float = float("-inf")
    hi: float = float("inf")
    pool: Window | None = None


def clamp_for(activation: str) -> tuple[float, float] | None:
    """Float clamp range of a TFLite fused activation, ``None`` for NONE.

    Raises:
        ValueError: an activation that is not a clamp (TANH, SIGN_BIT, ...).
    """
    table = {"NONE": None, "RELU": (0.0, float("inf")), "RELU6": (0.0, 6.0), "RELU_N1_TO_1": (-1.0, 1.0)}
    if activation not in table:
        raise ValueError(activation)
    return table[activation]


def _apply(steps: Sequence[Step], values: np.ndarray) -> np.ndarray:
    values = values.astype(np.float32)
    for step in steps:
        if step.kind == "mul":
            values = (values * step.value[:, None]).astype(np.float32)
        elif step.kind == "add":
            values = (values + step.value[:, None]).astype(np.float32)
        elif step.kind == "clamp":
            values = np.clip(values, np.float32(step.lo), np.float32(step.hi)).astype(np.float32)
        else:
            raise ValueError(f"unexpected step {step.kind}")
    return values


def _first_true(predicate: Callable[[np.ndarray], np.ndarray], lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Per channel, the smallest ``S`` in ``(lo, hi]`` with ``predicate`` true, given false at ``lo``
    and true at ``hi`` and monotone in between (vectorised bisection)."""
    lo, hi = lo.copy(), hi.copy()
    while np.any(hi - lo > 1):
        mid = (lo + hi) // 2
        mid = np.where(hi - lo > 1, mid, hi)
        ok = predicate(mid[:, None])[:, 0]
        hi = np.where(ok, mid, hi)
        lo = np.where(ok | (hi - lo <= 1), lo, mid)
    return hi


def threshold_epilogue(evaluate: Evaluator, steps: Sequence[Step], s_min: int, s_max: int, channels: int) -> Threshold:
    """Derive the per-channel thresholds of ``bit = max(S) < T`` for a tail ending in LceQuantize.

    Args:
        evaluate: the producer's float32 output as a function of ``S``.
        steps: the tail between the producer and LceQuantize (at most one ``pool``).
        s_min: smallest reachable ``S`` (every channel).
        s_max: largest reachable ``S``.
        channels: number of output channels ``C``.

    Returns:
        The :class:`Threshold` (with the fused pool window, if any).

    Raises:
        ValueError: more than one pool in the tail.
    """
    pools = [i for i, step in enumerate(steps) if step.kind == "pool"]
    if len(pools) > 1:
        raise ValueError("more than one max-pool between two binary layers")
    cut = pools[0] if pools else len(steps)
    before, after = list(steps[:cut]), list(steps[cut + 1 :])
    pool = steps[cut].pool if pools else None

    def pre(s: np.ndarray) -> np.ndarray:
        return _apply(before, evaluate(s))

    def negative(s: np.ndarray) -> np.ndarray:
        return _apply(after, pre(s)) < 0

    lo = np.full(channels, s_min, dtype=np.int64)
    hi = np.full(channels, s_max, dtype=np.int64)
    ends = np.stack([lo, hi], axis=1)
    pre_ends = pre(ends)
    min_pool = (pre_ends[:, 0] > pre_ends[:, 1]) if pool is not None else np.zeros(channels, dtype=bool)
    neg_ends = negative(ends)
    neg_lo, neg_hi = neg_ends[:, 0], neg_ends[:, 1]
    # Channels where the decision is constant: always -1 (bit 1) or always +1 (bit 0).
    thresholds = np.where(neg_lo, s_max + 1, s_min).astype(np.int64)
    negate = np.zeros(channels, dtype=bool)
    complement = np.zeros(channels, dtype=bool)
    falling = neg_lo & ~neg_hi  # negative below a step: d = [P < T], T = first S with d false
    rising = ~neg_lo & neg_hi  # negative above a step: d = [P > T - 1], T = first S with d true
    if np.any(falling):
        step_at = _first_true(lambda s: ~negative(s), lo, hi)
        thresholds = np.where(falling & ~min_pool, step_at, thresholds)
        thresholds = np.where(falling & min_pool, 1 - step_at, thresholds)
        negate |= falling & min_pool
        complement |= falling & min_pool
    if np.any(rising):
        step_at = _first_true(negative, lo, hi)
        thresholds = np.where(rising & ~min_pool, step_at, thresholds)
        thresholds = np.where(rising & min_pool, 1 - step_at, thresholds)
        negate |= rising & min_pool
        complement |= rising & ~min_pool
    return Threshold(thresholds, negate, complement, pool, s_min, s_max)


def _fixed_point(
    order: tuple[np.ndarray, np.ndarray], mul: list[Fraction], add: list[Fraction], bound: Fraction, bits: int
) -> tuple | None:
    """Largest power-of-two scale whose rounded affine keeps ``(score, -j)`` strictly increasing
    along ``order`` (the classes ``j`` and sums ``S`` of every reachable score, sorted exactly)."""
    limit = 2**bits - 1
    if bound == 0:
        return [0] * len(mul), [0] * len(add), 0
    top = 0
    while Fraction(2) ** (top + 1) * bound + 2 < limit:
        top += 1
    while top > -200 and Fraction(2) ** top * bound + 2 >= limit:
        top -= 1
    classes, sums = order
    # int64 holds every key of a 31-bit scale; a 63-bit one is checked in Python integers.
    dtype = np.int64 if bits < 32 else object
    sums = sums.astype(dtype)
    for shift in range(top, top - 8, -1):
        scale = Fraction(2) ** shift
        int_mul = [round(m * scale) for m in mul]
        int_add = [round(a * scale) for a in add]
        keys = np.array(int_mul, dtype=dtype)[classes] * sums + np.array(int_add, dtype=dtype)[classes]
        if max(abs(int(keys.max())), abs(int(keys.min()))) > limit:
            continue
        step = keys[1:] - keys[:-1]
        if np.all((step > 0) | ((step == 0) & (classes[1:] < classes[:-1]))):
            return int_mul, int_add, shift
    return None


def score_epilogue(mul: Sequence[Fraction], add: Sequence[Fraction], s_values: np.ndarray) -> Scores:
    """Integer fixed point of the exact affine ``mul[j] * S + add[j]`` that preserves every comparison.

    The scale is the largest power of two that keeps every reachable score inside int32; the
    result is then checked by sorting all reachable ``(j, S)`` values exactly by ``(value, -j)``
    (the order ``argmax`` with its first-index tie-break sees) and requiring the integer keys
    ``(score, -j)`` to be strictly increasing along it, which proves that the argmax over the
    integer scores equals the argmax over the exact values for every input. When int32 has
    too little resolution (many reachable sums whose values come closer than 2^-31 of their
    range), the same construction runs in int64 (``wide``): the class comes from the int64
    scores and the int32 scores the API returns are those divided by ``2**view_shift``.
    The exact values are sorted as integers over the common denominator of ``mul`` and ``add``.

    Args:
        mul: exact per-class multipliers.
        add: exact per-class offsets.
        s_values: every reachable ``S`` (a superset is fine).

    Returns:
        The :class:`Scores` epilogue.

    Raises:
        ValueError: not even int64 fixed point keeps the order exact, or more than
            :data:`MAX_SCORE_POINTS` reachable ``(class, S)`` pairs to check.
    """
    mul = [Fraction(m) for m in mul]
    add = [Fraction(a) for a in add]
    s_values = [int(s) for s in np.unique(s_values)]
    points = sum(len(s_values) if m != 0 else 1 for m in mul)
    if points > MAX_SCORE_POINTS:
        raise ValueError(f"{points:,} reachable (class, sum) pairs; the exactness check takes up to {MAX_SCORE_POINTS:,}")
    s_abs = max(abs(s) for s in s_values)
    bound = max(abs(m) * s_abs + abs(a) for m, a in zip(mul, add, strict=True))
    denominator = math.lcm(*(v.denominator for v in (*mul, *add)))
    numerators = [(int(m * denominator), int(a * denominator)) for m, a in zip(mul, add, strict=True)]
    exact = sorted((m * s + a, -j, s) for j, (m, a) in enumerate(numerators) for s in (s_values if m != 0 else s_values[:1]))
    order = np.array([-j for _, j, _ in exact], dtype=np.int64), np.array([s for _, _, s in exact], dtype=np.int64)
    found = _fixed_point(order, mul, add, bound, 31)
    if found is not None:
        int_mul, int_add, shift = found
        return Scores(np.array(int_mul, dtype=np.int64), np.array(int_add, dtype=np.int64), shift)
    found = _fixed_point(order, mul, add, bound, 63)
    if found is None:
        raise ValueError("no int32 or int64 fixed-point scale keeps the final scores' order exact")
    int_mul, int_add, shift = found
    peak = max(abs(m) * s_abs + abs(a) for m, a in zip(int_mul, int_add, strict=True))
    view_shift = max(0, peak.bit_length() - 31)
    return Scores(np.array(int_mul, dtype=np.int64), np.array(int_add, dtype=np.int64), shift, True, view_shift)
