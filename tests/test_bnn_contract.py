"""The layout contract (firmware_gen/bnn/contract.py) against LCE, Keras and the C helpers.

* Python packing: explicit bit positions, round trips, flatten storage positions.
* LCE: the packed filter of a converted QuantConv2D unpacks to the signs of the Keras kernel
  (40 input channels: two words, the second one partial).
* C: a probe compiled with the generated ``bnn_kernels.h`` evaluates the popcount helpers under
  every build switch on random words; Python computes the same.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

import pipeline  # noqa: F401  (pipeline.env: legacy Keras before TensorFlow loads)
from emulator.host import C_FLAGS, compiler
from firmware_gen.bnn import generate
from firmware_gen.bnn.contract import (
    activation_word_index,
    flat_storage_bit,
    pack_signs,
    pixel_group_entries,
    unpack_lce_filter,
    unpack_words,
    words_for,
)
from firmware_gen.targets import get_core


def test_bit_order_is_lsb_first_and_one_means_negative() -> None:
    negative = np.zeros(40, dtype=bool)
    negative[[0, 5, 33]] = True
    words = pack_signs(negative)
    assert words.dtype == np.uint32 and words.tolist() == [1 | 1 << 5, 1 << 1]  # bit 33 -> word 1, bit 1
    assert words_for(32) == 1 and words_for(33) == 2 and words_for(1) == 1


def test_pack_unpack_round_trip_with_zero_padding_bits() -> None:
    rng = np.random.default_rng(0)
    for channels in (1, 3, 32, 33, 64, 100):
        bits = rng.random((5, 7, channels)) < 0.5
        words = pack_signs(bits)
        assert words.shape == (5, 7, words_for(channels))
        np.testing.assert_array_equal(unpack_words(words, channels), bits)
        assert not np.any(unpack_words(words, words_for(channels) * 32)[..., channels:])


def test_flatten_storage_matches_activation_index() -> None:
    h, w, c = 3, 4, 40
    for index in range(h * w * c):
        y, rest = divmod(index, w * c)
        x, ch = divmod(rest, c)
        word, bit = activation_word_index(y, x, ch, w, c)
        assert flat_storage_bit(index, c) == 32 * word + bit


def test_pixel_entries_index_the_group_tables() -> None:
    negative = np.array([[1, 0, 1, 0, 0, 1, 1], [0, 0, 0, 1, 1, 1, 0]], dtype=bool)  # 7 taps: 3 groups
    entries = pixel_group_entries(negative)
    assert entries.tolist() == [[0b101, 8 + 0b100, 16 + 0b001], [0, 8 + 0b111, 16]]
    # Entry 8 g + p of a table holds the group's sum with tap 3 g + j negated for bit j of p.
    rng = np.random.default_rng(3)
    q = rng.integers(0, 256, 9)
    signs = rng.random((4, 9)) < 0.5
    tables = [[sum((-1 if (p >> j) & 1 else 1) * q[3 * g + j] for j in range(3)) for p in range(8)] for g in range(3)]
    for o, entry in enumerate(pixel_group_entries(signs)):
        s = sum(tables[e // 8][e % 8] for e in entry)
        assert s == int(np.where(signs[o], -q, q).sum())


def test_lce_filter_unpacks_to_keras_kernel_signs() -> None:
    import larq as lq
    import tensorflow as tf

    from convert.converter import to_lce
    from convert.flatbuffer import read_model_bytes

    layer = lq.layers.QuantConv2D(5, 3, input_quantizer="ste_sign", kernel_quantizer="ste_sign", use_bias=False)
    model = tf.keras.Sequential([tf.keras.Input((6, 6, 40)), layer])
    kernel = np.random.default_rng(1).normal(size=(3, 3, 40, 5)).astype(np.float32)
    kernel[0, 0, :3, 0] = 0.0  # ste_sign(0) = +1
    layer.set_weights([kernel])
    parsed = read_model_bytes(to_lce(model))
    bconv = next(op for op in parsed.operators if op.name == "LceBconv2d")
    packed = parsed.tensors[bconv.inputs[1]].array()
    assert packed.shape == (5, 3, 3, 2)
    expected = np.where(kernel < 0, -1, 1).transpose(3, 0, 1, 2)  # HWIO -> OHWI
    np.testing.assert_array_equal(unpack_lce_filter(packed, 40), expected)


PROBE = r"""
#include <stdio.h>
#include "bnn_kernels.h"
int main(void) {
    static uint32_t a[64], b[64];
    unsigned i;
    FILE *f = fopen("words.bin", "rb");
    if (!f || fread(a, 4, 64, f) != 64 || fread(b, 4, 64, f) != 64) return 1;
    fclose(f);
    for (i = 0; i < 64; ++i) printf("%u\n", (unsigned)(bnn_popcount_lanes(a[i] ^ b[i]) + bnn_popcount32(a[i])));
    return 0;
}
"""


def _expected(a: np.ndarray, b: np.ndarray) -> list[int]:
    return [bin(int(x) ^ int(y)).count("1") + bin(int(x)).count("1") for x, y in zip(a, b, strict=True)]


@pytest.fixture(scope="module")
def kernels_headers(tiny_bconv_flatbuffer: bytes) -> dict[str, dict[str, bytes]]:
    return {core: generate(tiny_bconv_flatbuffer, get_core(core)).files for core in ("cortex-m0", "cortex-m4")}


@pytest.fixture(scope="module")
def tiny_bconv_flatbuffer() -> bytes:
    import larq as lq
    import tensorflow as tf

    from convert.converter import to_lce

    binary = {"input_quantizer": "ste_sign", "kernel_quantizer": "ste_sign", "use_bias": False}
    model = tf.keras.Sequential(
        [
            tf.keras.Input((28, 28, 1)),
            lq.layers.QuantConv2D(4, 3, kernel_quantizer="ste_sign", use_bias=False),
            tf.keras.layers.BatchNormalization(),
            tf.keras.layers.Flatten(),
            lq.layers.QuantDense(10, **binary),
        ]
    )
    return to_lce(model)


@pytest.mark.parametrize("core", ["cortex-m0", "cortex-m4"])
@pytest.mark.parametrize("variant", [[], ["-DBNN_POPCOUNT_BUILTIN"], ["-DBNN_WORD_POPCOUNT"], ["-DBNN_BLOCK_POPCOUNT"]])
def test_c_helpers_follow_the_contract(kernels_headers, core: str, variant: list[str], tmp_path: Path) -> None:
    for name, data in kernels_headers[core].items():
        if name.endswith(".h"):
            (tmp_path / name).write_bytes(data)
    (tmp_path / "probe.c").write_text(PROBE)
    rng = np.random.default_rng(7)
    a, b = (rng.integers(0, 2**32, 64, dtype=np.uint64).astype(np.uint32) for _ in range(2))
    (tmp_path / "words.bin").write_bytes(a.astype("<u4").tobytes() + b.astype("<u4").tobytes())
    exe = tmp_path / "probe"
    build = subprocess.run(
        [compiler(), *C_FLAGS, *variant, "probe.c", "-o", str(exe)], cwd=tmp_path, capture_output=True, text=True
    )
    assert build.returncode == 0, build.stderr
    run = subprocess.run([str(exe)], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert [int(v) for v in run.stdout.split()] == _expected(a, b)
