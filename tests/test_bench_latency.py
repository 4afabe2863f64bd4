"""bench.latency: the timed runners return the same scores as the project's untimed runners."""

from __future__ import annotations

import numpy as np
import pytest

from bench.latency import TimedRun, median_us, time_calls, time_lce, time_tflite, time_tflm
from train.errors import InputError

N = 30


def test_time_calls_warms_up_then_times_every_image_once():
    calls = []

    def call(image: np.ndarray) -> np.ndarray:
        calls.append(int(image[0]))
        return image * 2

    feed = np.arange(10).reshape(5, 2)
    run = time_calls(call, feed, warmup=3)
    assert calls == [0, 2, 4, 0, 2, 4, 6, 8]  # 3 warm-up calls, then each image once, in order
    np.testing.assert_array_equal(run.scores, feed * 2)
    assert run.nanoseconds.shape == (5,) and run.nanoseconds.dtype == np.int64 and (run.nanoseconds >= 0).all()
    assert run.warmup == 3
    assert time_calls(call, feed[:2], warmup=50).warmup == 2


def test_median_us():
    assert median_us(np.array([1000, 3000, 2000])) == 2.0
    assert TimedRun(np.zeros((2, 1)), np.array([4000, 6000]), 0).median_us == 5.0
    with pytest.raises(ValueError):
        median_us(np.array([]))


def test_timed_runners_equal_the_untimed_ones(tiny_cnn_tflite, mnist):
    from convert.interpreters import run_lce, run_tflite
    from emulator.backends import run_tflm

    images = mnist.x_test[:N]
    for path in (tiny_cnn_tflite["float"], tiny_cnn_tflite["int8"]):
        data = path.read_bytes()
        timed = time_tflite(data, images, warmup=2)
        assert timed.scores.shape == (N, 10) and timed.scores.dtype == np.float32 and timed.nanoseconds.shape == (N,)
        np.testing.assert_array_equal(timed.scores, run_tflite(data, images))  # XNNPACK, one thread, both
        builtin = time_tflite(data, images, delegates=False).scores
        np.testing.assert_array_equal(builtin, run_tflite(data, images, delegates=False))
        np.testing.assert_array_equal(time_tflm(data, images).scores, run_tflm(data, images))
        np.testing.assert_array_equal(time_lce(data, images).scores, run_lce(data, images))  # LCE runs builtins too
    with pytest.raises(InputError, match="cannot load"):
        time_tflite(b"TFL3 but not a model", images[:2])
