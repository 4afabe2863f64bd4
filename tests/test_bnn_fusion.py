"""The fusion pass's weight checks: which float weight rows the integer pixel conv and dense layer take."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from firmware_gen.bnn.fusion import MAX_INT_WEIGHT, integer_rows


def test_binary_rows_are_plus_minus_one_times_their_magnitude() -> None:
    weights = np.array([[0.5, -0.5, 0.5], [-2.0, -2.0, 2.0]], dtype=np.float32)
    ints, units = integer_rows(weights)
    np.testing.assert_array_equal(ints, [[1, -1, 1], [-1, -1, 1]])
    assert units == [Fraction(1, 2), Fraction(2)]


def test_folded_8_bit_weights_give_back_their_integers() -> None:
    # The converter folds the [-1, 1] rescaling into an 8-bit stem: float32(k / 128 * 2 / 255).
    rng = np.random.default_rng(0)
    ks = rng.integers(-127, 128, size=(16, 27))
    ks[:, 0] = 127  # every row reaches the largest weight, so its unit is 1/128 * 2/255
    weights = (ks / 128 * (np.float32(2) / np.float32(255))).astype(np.float32)
    ints, units = integer_rows(weights.reshape(16, 3, 3, 3))
    assert ints.dtype == np.int8 and ints.shape == (16, 3, 3, 3)
    np.testing.assert_array_equal(ints.reshape(16, 27), ks)
    for unit in units:  # up to the float32 rounding of the largest weight
        assert abs(float(unit) / (2 / (128 * 255)) - 1) <= 2.0**-23


def test_a_common_factor_gives_the_largest_unit() -> None:
    ints, units = integer_rows(np.array([[0.5, -1.5, 0.0, 1.0]], dtype=np.float32))
    np.testing.assert_array_equal(ints, [[1, -3, 0, 2]])
    assert units == [Fraction(1, 2)]


def test_wide_rows_are_screened_then_checked_whole() -> None:
    # 2,000 weights a row: the first 16 share a factor of 4 (the screen also admits units 4 and 2
    # times too large), the rest do not; the whole-row check keeps the right unit.
    rng = np.random.default_rng(1)
    ks = rng.integers(-127, 128, size=(3, 2000))
    ks[:, :16] = 4 * rng.integers(-31, 32, size=(3, 16))
    ks[:, 16] = 127
    ints, units = integer_rows((ks / 128).astype(np.float32))
    np.testing.assert_array_equal(ints, ks)
    assert units == [Fraction(1, 128)] * 3
    # the same rows with one float weight past the screen: refused
    weights = (ks / 128).astype(np.float32)
    weights[1, 1500] += np.float32(1 / 1024)
    assert integer_rows(weights) is None


@pytest.mark.parametrize(
    "row",
    [
        [0.1234, 0.5, -0.77, 0.31],  # float weights: no small integers times one unit
        [1.0, 1.0 / (MAX_INT_WEIGHT + 1)],  # needs k = 128
        [0.0, 0.0, 0.0],  # an all-zero row has no unit
        [np.nan, 1.0],
        [np.inf, 1.0],
    ],
)
def test_rows_without_a_small_integer_form_are_refused(row: list[float]) -> None:
    weights = np.array([[1.0] * len(row), row], dtype=np.float32)
    assert integer_rows(weights) is None
