"""The pixel conv on colour (multi-channel) images, every kernel form, against the LCE interpreter.

Tiny Larq models on raw uint8 images of C channels (rescaled to [-1, 1], or to [0, 1] where the
padded stem's rescaled 0 is pixel 0): a first ``QuantConv2D`` with 8-bit weights
(``FixedPointWeights(8)``) or +-1 ones and no input quantizer, optionally a 2x2 max-pool, a batch
norm set from the data (about 40 % negative scales), optionally a binary conv, then binary class
scores (exact integers: a flipped stem bit moves a logit by a few hundredths). Each model compiles for Cortex-M4 (the
pair form; SMLAD's C equivalent on the host) and Cortex-M0 (the int8 or table form). On 300 inputs
(random pixels, all 0, all 255, sparse images with all-zero windows) the C built with gcc, the
channel-inner host build, clang and ASan/UBSan give the same scores, equal to LCE's logits; and the
stem's bits, computed in numpy from the lowered layer, equal the signs of LCE's float output of the
same layers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from bnn_c import lce_run, run_c, write_engine
from test_bnn_models import assert_logits_match

import pipeline  # noqa: F401  (pipeline.env: legacy Keras before TensorFlow loads)
from firmware_gen.bnn import compile_model
from firmware_gen.bnn.ir import PixelConv, Window
from firmware_gen.bnn.pixel import pixel_form
from train.quantizers import FixedPointWeights

N_RANDOM = 290
FAST = ("-O3", "-DBNN_CHANNEL_INNER")

# name: (input shape, stem options, pool options or None, binary conv after the stem, rescaling
# to [0, 1] instead of [-1, 1], expected forms on (Cortex-M0, Cortex-M4))
SPECS = {
    "rgb_3x3_valid_pool": ((17, 13, 3), {"kernel_size": 3}, {}, True, False, ("int8", "pairs")),
    "rgb_5x5_same": ((17, 13, 3), {"kernel_size": 5, "padding": "same", "filters": 10}, None, False, False, ("int8", "pairs")),
    "rgb_3x3_same_pool_same": (
        (17, 13, 3),
        {"kernel_size": 3, "padding": "same"},
        {"padding": "same"},
        True,
        False,
        ("int8", "pairs"),
    ),
    "rgb_3x3_stride2_same_pool": (
        (32, 32, 3),
        {"kernel_size": 3, "strides": 2, "padding": "same"},
        {},
        False,
        False,
        ("int8", "pairs"),
    ),
    "rgba_3x3_same_pool_same": (
        (11, 9, 4),
        {"kernel_size": 3, "padding": "same", "filters": 13},
        {"padding": "same"},
        False,
        False,
        ("int8", "pairs"),
    ),
    "rgb_zero_padded_unit_range": ((15, 13, 3), {"kernel_size": 3, "padding": "same"}, {}, False, True, ("int8", "pairs")),
    "rgb_binary_3x3_table": ((17, 13, 3), {"kernel_size": 3, "binary": True}, {}, True, False, ("table", "table")),
    "rgb_binary_5x5_past_table": (
        (17, 13, 3),
        {"kernel_size": 5, "padding": "same", "binary": True},
        {},
        False,
        False,
        ("int8", "pairs"),
    ),
    "sixteen_channels_looped_gather": ((8, 8, 16), {"kernel_size": 3}, None, False, False, ("int8", "pairs")),
    "grey_70_wide": ((6, 70, 1), {"kernel_size": 3}, {}, False, False, ("int8", "pairs")),
}


def build(name: str, seed: int = 7):
    """The spec's model, batch norms set from random images."""
    import larq as lq
    import tensorflow as tf

    shape, stem, pool, bconv, unit_range, _ = SPECS[name]
    stem = dict(stem)
    quantizer = "ste_sign" if stem.pop("binary", False) else FixedPointWeights(8)
    filters = stem.pop("filters", 12)  # 10 and 13 leave a partial block of the pair form
    tf.keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    rescale = tf.keras.layers.Rescaling(1 / 255.0) if unit_range else tf.keras.layers.Rescaling(1 / 127.5, -1.0)
    layers = [
        rescale,
        lq.layers.QuantConv2D(filters, kernel_quantizer=quantizer, kernel_constraint="weight_clip", use_bias=False, **stem),
    ]
    layers += [tf.keras.layers.MaxPooling2D(2, **pool)] if pool is not None else []
    layers.append(tf.keras.layers.BatchNormalization())
    binary = {
        "input_quantizer": "ste_sign",
        "kernel_quantizer": "ste_sign",
        "kernel_constraint": "weight_clip",
        "use_bias": False,
    }
    if bconv:
        layers += [lq.layers.QuantConv2D(32, 3, **binary), tf.keras.layers.BatchNormalization()]
    layers += [
        tf.keras.layers.Flatten(),
        lq.layers.QuantDense(10, **binary),
        tf.keras.layers.BatchNormalization(),
        tf.keras.layers.Activation("softmax"),
    ]
    model = tf.keras.Sequential([tf.keras.Input(shape), *layers])
    x = tf.constant(rng.integers(0, 256, (64, *shape)).astype(np.float32))
    for layer in model.layers:
        if isinstance(layer, lq.layers.QuantConv2D | lq.layers.QuantDense):
            layer.set_weights([rng.normal(size=layer.get_weights()[0].shape).astype(np.float32) * 0.3])
        if isinstance(layer, tf.keras.layers.BatchNormalization):
            acts = x.numpy()
            axes = tuple(range(acts.ndim - 1))
            mean, var = acts.mean(axis=axes), acts.var(axis=axes) + 1e-3
            n = mean.shape[0]
            gamma = rng.uniform(0.5, 1.5, n) * np.where(rng.random(n) < 0.4, -1.0, 1.0)
            mean = mean + rng.normal(size=n) * np.sqrt(var) * 0.3
            layer.set_weights([a.astype(np.float32) for a in (gamma, rng.normal(size=n) * 0.2, mean, var)])
        x = layer(x, training=False)
    return model


def inputs(shape: tuple[int, ...], seed: int = 11) -> np.ndarray:
    """Random pixels, all 0, all 255, and sparse images (a few nonzero pixels: all-zero windows)."""
    rng = np.random.default_rng(seed)
    random = rng.integers(0, 256, (N_RANDOM, *shape)).astype(np.uint8)
    sparse = np.where(rng.random((8, *shape)) < 0.03, rng.integers(1, 256, (8, *shape)), 0).astype(np.uint8)
    edges = np.stack([np.zeros(shape, np.uint8), np.full(shape, 255, np.uint8)])
    return np.concatenate([edges, sparse, random])


@pytest.fixture(scope="module")
def flatbuffers() -> dict[str, bytes]:
    """name -> LCE flatbuffer (converted once per module, lazily)."""
    from convert.converter import to_lce

    class Lazy(dict):
        def __missing__(self, name: str) -> bytes:
            self[name] = to_lce(build(name))
            return self[name]

    return Lazy()


def stem_bits(layer: PixelConv, images: np.ndarray) -> np.ndarray:
    """LCE's stored bits of the stem for ``images`` ``(N, H, W, C)``, from the layer's integers in numpy."""
    conv, pool = layer.conv, layer.epilogue.pool
    q = images.astype(np.int64) * layer.unit - layer.zero
    padded = np.zeros((len(images), conv.in_h + conv.kh + conv.sh * conv.out_h, conv.in_w + conv.kw + conv.sw * conv.out_w,
                       q.shape[3]), dtype=np.int64)  # fmt: skip
    padded[:, conv.pad_top : conv.pad_top + conv.in_h, conv.pad_left : conv.pad_left + conv.in_w] = q
    s = np.zeros((len(images), conv.out_h, conv.out_w, layer.signs.shape[0]), dtype=np.int64)
    for ky in range(conv.kh):
        for kx in range(conv.kw):
            window = padded[:, ky : ky + conv.sh * conv.out_h : conv.sh, kx : kx + conv.sw * conv.out_w : conv.sw]
            s += np.einsum("nhwc,oc->nhwo", window, layer.signs[:, ky, kx, :].astype(np.int64))
    if pool is not None:
        s = _max_pool(s, pool)
    return (s < layer.epilogue.thresholds) ^ layer.epilogue.complement


def _max_pool(s: np.ndarray, pool: Window) -> np.ndarray:
    out = np.full((s.shape[0], pool.out_h, pool.out_w, s.shape[3]), np.iinfo(np.int64).min)
    for py in range(pool.kh):
        for px in range(pool.kw):
            for y in range(pool.out_h):
                for x in range(pool.out_w):
                    cy, cx = y * pool.sh - pool.pad_top + py, x * pool.sw - pool.pad_left + px
                    if 0 <= cy < pool.in_h and 0 <= cx < pool.in_w:
                        out[:, y, x] = np.maximum(out[:, y, x], s[:, cy, cx])
    return out


@pytest.mark.parametrize("name", list(SPECS))
def test_colour_stem_matches_lce(name: str, flatbuffers, tmp_path: Path) -> None:
    import tensorflow as tf

    from convert.converter import to_lce

    shape, forms = SPECS[name][0], SPECS[name][-1]
    flatbuffer = flatbuffers[name]
    images = inputs(shape)
    expected = lce_run(flatbuffer, images.astype(np.float32))
    classes = expected.argmax(axis=1)
    assert len(set(classes.tolist())) >= 4, f"degenerate model: LCE predicts {sorted(set(classes.tolist()))}"
    for core, form in zip(("cortex-m0", "cortex-m4"), forms, strict=True):
        stem = compile_model(flatbuffer, dsp=core == "cortex-m4").kernels[0]
        assert stem.kind == "PixelConv" and stem.context["form"] == form, (core, stem.kind, stem.notes)
        assert pixel_form(stem.layer.signs, core == "cortex-m4") == form and stem.layer.signs.shape[3] == shape[2]
        folder = tmp_path / core
        report = write_engine(flatbuffer, folder, core=core)
        assert report["signature"]["input_dtype"] == "uint8" and report["signature"]["input_shape"][-1] == shape[2]
        got = run_c(folder, report, images)
        np.testing.assert_array_equal(got.classes, classes)
        assert_logits_match(got.scores, expected, report["score_scale_log2"])
        np.testing.assert_array_equal(run_c(folder, report, images, extra=FAST).scores, got.scores)
        np.testing.assert_array_equal(run_c(folder, report, images[:100], cc="clang").scores, got.scores[:100])
        np.testing.assert_array_equal(run_c(folder, report, images[:60], sanitize=True).scores, got.scores[:60])
    # the fold itself: the layer's integer bits against the signs of LCE's floats after the stem's batch norm
    model = build(name)
    first_bn = next(layer for layer in model.layers if isinstance(layer, tf.keras.layers.BatchNormalization))
    floats = lce_run(to_lce(tf.keras.Model(model.inputs, first_bn.output)), images.astype(np.float32))
    layer = compile_model(flatbuffer).kernels[0].layer
    bits = stem_bits(layer, images)
    np.testing.assert_array_equal(bits.reshape(len(images), -1), floats.reshape(len(images), -1) < 0)


def test_pair_form_code_is_deterministic_and_has_no_float(flatbuffers) -> None:
    import re

    from firmware_gen.bnn import generate
    from firmware_gen.targets import get_core

    for core in ("cortex-m0", "cortex-m7"):
        first = generate(flatbuffers["rgb_5x5_same"], get_core(core))
        assert first.files == generate(flatbuffers["rgb_5x5_same"], get_core(core)).files
        assert first.report["score_scale_log2"] is not None  # integer scores: no float anywhere
        code = first.files["bnn_model.c"].decode()
        assert ("BNN_SMLAD" in code) == (core == "cortex-m7") and ("l0_quads" in code) == (core == "cortex-m7")
        assert not re.search(r"\b(float|double)\b", re.sub(r"//[^\n]*", "", code))
        assert "#include <arm_acle.h>" in first.files["bnn_kernels.h"].decode() or core == "cortex-m0"


def test_wider_stems_fall_back_with_their_reason() -> None:
    """Past MAX_PIXEL_TAPS taps the conv compiles op by op (float), and the report says why."""
    import larq as lq
    import tensorflow as tf

    from convert.converter import to_lce
    from firmware_gen.bnn.fused import MAX_PIXEL_TAPS

    tf.keras.utils.set_random_seed(3)
    stem = lq.layers.QuantConv2D(4, 7, kernel_quantizer=FixedPointWeights(8), use_bias=False)
    scores = lq.layers.QuantDense(10, input_quantizer="ste_sign", kernel_quantizer="ste_sign", use_bias=False)
    head = [tf.keras.layers.BatchNormalization(), tf.keras.layers.Flatten(), scores, tf.keras.layers.Activation("softmax")]
    model = tf.keras.Sequential([tf.keras.Input((9, 9, 6)), tf.keras.layers.Rescaling(1 / 127.5, -1.0), stem, *head])
    program = compile_model(to_lce(model))
    assert MAX_PIXEL_TAPS < 7 * 7 * 6 and not any(k.kind == "PixelConv" for k in program.kernels)
    assert any(f"{7 * 7 * 6} taps per output" in note and str(MAX_PIXEL_TAPS) in note for note in program.notes), program.notes


@pytest.mark.parametrize("core", ["cortex-m0", "cortex-m4"])
def test_every_optimization_level_computes_the_same_scores(core: str, flatbuffers, tmp_path: Path) -> None:
    """The pixel conv's loops (5x5 on 3 channels: 75 taps, looped sums) at -O0 to -O3 and -Os: one set of scores."""
    name = "rgb_5x5_same"
    images = inputs(SPECS[name][0])[:60]
    report = write_engine(flatbuffers[name], tmp_path, core=core)
    expected = run_c(tmp_path, report, images).scores
    for level in ("-O0", "-O1", "-O3", "-Os"):
        np.testing.assert_array_equal(run_c(tmp_path, report, images, extra=(level,)).scores, expected, err_msg=level)


@pytest.mark.toolchain
@pytest.mark.parametrize("level", ["-O0", "-O2", "-Os"])
@pytest.mark.parametrize("core", ["cortex-m0", "cortex-m3", "cortex-m4", "cortex-m7", "cortex-m33", "cortex-m55"])
def test_colour_stems_cross_compile_without_warnings(core: str, level: str, flatbuffers, tmp_path: Path) -> None:
    import shutil
    import subprocess

    from conftest import require_toolchain

    from firmware_gen.targets import get_core

    require_toolchain()
    spec = get_core(core)
    for name in ("rgb_3x3_same_pool_same", "rgb_5x5_same", "sixteen_channels_looped_gather"):
        write_engine(flatbuffers[name], tmp_path / name, core=core)
        cmd = [shutil.which("arm-none-eabi-gcc") or "arm-none-eabi-gcc", *spec.gcc_flags, "-std=c99", level]
        cmd += ["-Wall", "-Wextra", "-Werror", "-c", "bnn_model.c", "-o", "bnn_model.o"]
        result = subprocess.run(cmd, cwd=tmp_path / name, capture_output=True, text=True, check=False)
        assert result.returncode == 0 and not result.stderr.strip(), f"{name}: {result.stderr}"
        symbols = subprocess.run(["arm-none-eabi-objdump", "-d", "bnn_model.o"], cwd=tmp_path / name, capture_output=True,
                                 text=True, check=True).stdout  # fmt: skip
        assert ("smlad" in symbols) == spec.has_dsp, f"{name} on {core}: SMLAD used {('smlad' in symbols)}"


def test_pair_form_stores_the_signs_four_taps_a_word(flatbuffers) -> None:
    """The pair form's layout contract: weights ``[channel][t // 4]``, tap ``t`` in bits ``16 (t % 4)``
    as int16, zero taps and channels padding the words and the last block; thresholds moved by ``zero * sum(k)``."""
    from firmware_gen.bnn.pixel import PAIR_BLOCK
    from firmware_gen.bnn.pixel_code import pair_words

    kernel = compile_model(flatbuffers["rgba_3x3_same_pool_same"], dsp=True).kernels[0]
    layer = kernel.layer
    out_c, taps = layer.signs.shape[0], int(np.prod(layer.signs.shape[1:]))
    arrays = {array.name: array for array in kernel.arrays}
    quads = np.asarray(arrays["l0_quads"].values, dtype=np.uint64)
    quarters = ((quads[:, None] >> (np.uint64(16) * np.arange(4, dtype=np.uint64))) & np.uint64(0xFFFF)).astype(np.int64)
    weights = np.where(quarters >= 2**15, quarters - 2**16, quarters).reshape(-1, 4 * pair_words(taps))
    assert weights.shape[0] == -(-out_c // PAIR_BLOCK) * PAIR_BLOCK and arrays["l0_quads"].ctype == "uint64_t"
    np.testing.assert_array_equal(weights[:out_c, :taps], layer.signs.reshape(out_c, taps))
    assert out_c % PAIR_BLOCK and not weights[out_c:].any() and not weights[:, taps:].any()
    shifted = layer.epilogue.thresholds + layer.zero * layer.signs.reshape(out_c, -1).astype(np.int64).sum(axis=1)
    np.testing.assert_array_equal(arrays["l0_thresholds"].values[:out_c], shifted)
    assert layer.zero == 255 and layer.unit == 2  # same padding on [-1, 1] pixels: the shift is not 0
