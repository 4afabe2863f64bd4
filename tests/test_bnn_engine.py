"""The bnn engine end to end: tiny Larq models -> LCE flatbuffer -> C -> host gcc, against LCE.

The truth is the LCE interpreter. Every model takes 28x28x1 raw pixels and has random binary
weights (8-bit ones in the int8 stems and dense layers) and batch norms set from the statistics of real MNIST
activations (so signs vary), with about 40% negative scales. Each spec also asserts that the lowering took the path it is
meant to cover (bitpacked output, one-/zero-padding, LceBMaxPool2d, min-pool, ...), so a
converter change cannot silently turn a test into a duplicate.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from conftest import list_firmware_files, require_toolchain

import pipeline  # noqa: F401  (pipeline.env: legacy Keras before TensorFlow loads)
from convert.flatbuffer import read_model_bytes
from emulator.host import run_host
from firmware_gen.bnn import compile_model, generate
from firmware_gen.bnn.binary import MAX_INPUT_OUTER
from firmware_gen.bnn.ir import BinaryConv, BinaryDense, BitMaxPool, PixelConv
from firmware_gen.targets import get_core
from train.quantizers import FixedPointWeights

M4 = get_core("cortex-m4")
M0 = get_core("cortex-m0")
N_IMAGES = 200


def _layers(kind: str, *args, **kwargs):
    import larq as lq
    import tensorflow as tf

    binary = {"input_quantizer": "ste_sign", "kernel_quantizer": "ste_sign", "use_bias": False}
    factories = {
        "rescale": lambda: tf.keras.layers.Rescaling(2 / 255.0, -1.0),
        "pixconv": lambda c, **kw: lq.layers.QuantConv2D(c, 3, kernel_quantizer="ste_sign", use_bias=False, **kw),
        "int8conv": lambda c, **kw: lq.layers.QuantConv2D(c, 3, kernel_quantizer=FixedPointWeights(8), use_bias=False, **kw),
        "bconv": lambda c, **kw: lq.layers.QuantConv2D(c, 3, **binary, **kw),
        "bdense": lambda n: lq.layers.QuantDense(n, **binary),
        "int8dense": lambda n: lq.layers.QuantDense(n, **{**binary, "kernel_quantizer": FixedPointWeights(8)}),
        "ternconv": lambda c: lq.layers.QuantConv2D(c, 3, kernel_quantizer="ste_tern", use_bias=False),
        "terndense": lambda n: lq.layers.QuantDense(n, **{**binary, "kernel_quantizer": "ste_tern"}),
        "bn": lambda: tf.keras.layers.BatchNormalization(),
        "pool": lambda k=2, **kw: tf.keras.layers.MaxPooling2D(k, **kw),
        "flatten": lambda: tf.keras.layers.Flatten(),
        "softmax": lambda: tf.keras.layers.Activation("softmax"),
    }
    return factories[kind](*args, **kwargs)


def lay(kind: str, *args, **kwargs) -> tuple:
    """One layer of a spec: factory name, positional and keyword arguments."""
    return kind, args, kwargs


def head(*hidden: int) -> list[tuple]:
    out = [lay("flatten")]
    for n in hidden:
        out += [lay("bdense", n), lay("bn")]
    return [*out, lay("bdense", 10), lay("bn"), lay("softmax")]


SAME1 = {"padding": "same", "pad_values": 1.0}
SAME0 = {"padding": "same", "pad_values": 0.0}


def integer_layers(flatbuffer: bytes) -> list:
    """The integer layers (:mod:`firmware_gen.bnn.ir`) the compiler made of a model, in order;
    fails if any kernel is not one (these models must compile entirely on the integer path)."""
    kernels = compile_model(flatbuffer).kernels
    assert all(k.layer is not None for k in kernels), [k.kind for k in kernels]
    return [k.layer for k in kernels]


def _kinds(layers) -> list[str]:
    return [type(layer).__name__ for layer in layers]


def expect_seedlike(layers) -> None:
    assert _kinds(layers) == ["PixelConv", "BinaryConv", "BinaryConv", "BinaryDense", "BinaryDense"]
    assert layers[0].epilogue.pool is not None and layers[1].epilogue.pool is not None
    assert layers[1].out.c == 33 and layers[2].inp.words == 2  # 33 channels: two words per pixel


def expect_same_strided(layers) -> None:
    pixel, one, zero = layers[0], layers[1], layers[2]
    assert isinstance(pixel, PixelConv) and pixel.unit == 2 and pixel.zero == 255  # SAME on [-1, 1] pixels
    assert isinstance(one, BinaryConv) and one.pad_mode == "one" and one.conv.sh == 2
    assert one.ops == ["LceBconv2d"]  # bitpacked output with LCE's own thresholds
    assert isinstance(zero, BinaryConv) and zero.pad_mode == "zero" and zero.epilogue.pool is not None
    final = layers[-1]  # 7 * 7 * 33 = 1,617 inputs: int32 lacks the resolution, scores go int64
    assert final.signs.shape[1] == 1617 and final.epilogue.wide


def expect_bit_pool(layers) -> None:
    pools = [layer for layer in layers if isinstance(layer, BitMaxPool)]
    assert pools and any(p.or_mask.any() for p in pools)  # OR on complemented channels
    min_pooled = [x for x in layers if isinstance(x, BinaryConv) and x.epilogue.pool is not None and x.epilogue.negate.any()]
    assert min_pooled, "no max-pool after a negative scale (min-pool path) was exercised"


def expect_odd_channels(layers) -> None:
    assert isinstance(layers[0], PixelConv) and layers[0].unit == 1 and layers[0].zero == 0
    assert layers[0].conv.sh == 2 and layers[0].out.c == 3
    pool = layers[1].epilogue.pool  # 7x7 -> SAME max-pool 2x2 -> 4x4: the last row and column are padding
    assert pool.padded and (pool.in_h, pool.out_h) == (7, 4)
    dense = [x for x in layers if isinstance(x, BinaryDense)]
    assert dense[0].out.c == 33 and dense[0].out.words == 2


def expect_long_windows(layers) -> None:
    wide = [x for x in layers if isinstance(x, BinaryConv) and x.inp.c == 130]
    assert wide and wide[0].pad_mode == "zero" and 9 * wide[0].inp.words > 36  # the looped XOR-popcount


def expect_fused_relu(layers) -> None:
    assert layers[0].ops == ["CONV_2D", "MUL", "ADD", "LceQuantize"]  # RELU keeps the batch norm out of the conv
    assert layers[3].ops == ["LceBconv2d", "RESHAPE", "LceQuantize"]  # RELU clamp + batch norm in LCE's transform


def expect_int8_stem(layers) -> None:
    stem = layers[0]
    assert isinstance(stem, PixelConv) and np.abs(stem.signs).max() > 1  # integer weights, not +-1
    assert stem.epilogue.pool is not None and stem.unit == 1 and stem.zero == 0


def expect_int8_same_stem(layers) -> None:
    stem = layers[0]
    assert isinstance(stem, PixelConv) and np.abs(stem.signs).max() > 1
    assert stem.unit == 2 and stem.zero == 255  # SAME on [-1, 1] pixels: q = 2 * pixel - 255


def expect_int8_dense(layers) -> None:
    assert _kinds(layers) == ["PixelConv", "BinaryConv", "BinaryDense", "BinaryDense"]
    hidden, scores = layers[2], layers[3]
    assert np.abs(hidden.signs).max() > 1 and np.abs(scores.signs).max() > 1  # 8-bit weights, not +-1
    assert hidden.out.c == 80 and hidden.epilogue.s_max > hidden.signs.shape[1]  # sums beyond +-N
    # 80 outputs: one at a time (past MAX_INPUT_OUTER stack accumulators); the 10 scores: input-outer
    assert hidden.signs.shape[0] > MAX_INPUT_OUTER >= scores.signs.shape[0]
    assert scores.epilogue.wide  # thousands of reachable sums per class: the order needs int64


def expect_ternary(layers) -> None:
    # weights of -1, 0 and +1 (Larq's ste_tern): the 0s rule out the +-1 table and XNOR forms
    assert _kinds(layers) == ["PixelConv", "BinaryConv", "BinaryDense", "BinaryDense"]
    for layer in (layers[0], layers[2], layers[3]):
        assert np.abs(layer.signs).max() == 1 and (layer.signs == 0).any()


SPECS: dict[str, tuple[list[tuple], Callable]] = {
    "ternary": (
        [
            *[lay("rescale"), lay("ternconv", 8), lay("pool"), lay("bn"), lay("bconv", 16), lay("pool"), lay("bn")],
            *[lay("flatten"), lay("terndense", 20), lay("bn"), lay("terndense", 10), lay("bn"), lay("softmax")],
        ],
        expect_ternary,
    ),
    "int8_dense": (
        [
            *[lay("rescale"), lay("pixconv", 8), lay("pool"), lay("bn"), lay("bconv", 16), lay("pool"), lay("bn")],
            *[lay("flatten"), lay("int8dense", 80), lay("bn"), lay("int8dense", 10), lay("bn"), lay("softmax")],
        ],
        expect_int8_dense,
    ),
    "int8_stem": (
        [lay("rescale"), lay("int8conv", 8), lay("pool"), lay("bn"), lay("bconv", 16), lay("pool"), lay("bn"), *head(20)],
        expect_int8_stem,
    ),
    "int8_same_stem": (
        [lay("rescale"), lay("int8conv", 12, padding="same"), lay("pool"), lay("bn"), lay("bconv", 16), lay("bn"), *head()],
        expect_int8_same_stem,
    ),
    "seedlike": (
        [
            lay("rescale"),
            lay("pixconv", 8),
            lay("pool"),
            lay("bn"),
            lay("bconv", 33),
            lay("pool"),
            lay("bn"),
            lay("bconv", 40),
            lay("bn"),
            *head(20),
        ],
        expect_seedlike,
    ),
    "same_strided": (
        [
            lay("rescale"),
            lay("pixconv", 8, padding="same"),
            lay("bn"),
            lay("bconv", 40, strides=2, **SAME1),
            lay("bn"),
            lay("bconv", 33, **SAME0),
            lay("pool"),
            lay("bn"),
            *head(),
        ],
        expect_same_strided,
    ),
    "bit_pool": (
        [
            *[lay("rescale"), lay("pixconv", 6), lay("bn"), lay("pool")],  # -> LceBMaxPool2d
            *[lay("bconv", 40, **SAME1), lay("bn"), lay("pool"), lay("bn")],  # negative fused scale, then MAX_POOL_2D
            *[lay("bconv", 16, **SAME0), lay("bn"), lay("pool")],  # float bconv -> sign -> LceBMaxPool2d
            *[lay("bconv", 20), lay("bn"), *head(16)],
        ],
        expect_bit_pool,
    ),
    "odd_channels": (
        [
            *[lay("pixconv", 3, strides=2, padding="same"), lay("bn"), lay("bconv", 3, strides=2, **SAME1), lay("bn")],
            *[lay("pool", 2, padding="same"), lay("bn"), *head(33)],
        ],
        expect_odd_channels,
    ),
    "long_windows": (
        [
            *[lay("rescale"), lay("pixconv", 8, strides=2), lay("bn"), lay("bconv", 130), lay("bn")],
            *[lay("bconv", 8, **SAME0), lay("pool"), lay("bn"), *head()],
        ],
        expect_long_windows,
    ),
    "fused_relu": (
        [
            *[lay("rescale"), lay("pixconv", 8, activation="relu"), lay("bn"), lay("bconv", 16, activation="relu")],
            *[lay("bn"), lay("pool"), lay("bconv", 16, activation="relu"), lay("bn"), *head(20)],
        ],
        expect_fused_relu,
    ),
}


def build_model(spec: list[tuple], seed: int, calibration: np.ndarray):
    """A Sequential model from ``spec`` with random binary weights and data-driven batch norms."""
    import larq as lq
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    layers = [_layers(kind, *args, **kwargs) for kind, args, kwargs in spec]
    model = tf.keras.Sequential([tf.keras.Input((28, 28, 1)), *layers])
    x = tf.constant(calibration.astype(np.float32)[..., None])
    for layer in layers:
        if isinstance(layer, lq.layers.QuantConv2D | lq.layers.QuantDense):
            kernel = layer.get_weights()[0]
            layer.set_weights([rng.normal(size=kernel.shape).astype(np.float32)])
        if isinstance(layer, tf.keras.layers.BatchNormalization):
            acts = x.numpy()
            axes = tuple(range(acts.ndim - 1))
            mean, var = acts.mean(axis=axes), acts.var(axis=axes) + 1e-3
            n = mean.shape[0]
            gamma = rng.uniform(0.5, 1.5, n) * np.where(rng.random(n) < 0.4, -1.0, 1.0)
            beta = rng.normal(size=n) * 0.2
            mean = mean + rng.normal(size=n) * np.sqrt(var) * 0.3
            layer.set_weights([a.astype(np.float32) for a in (gamma, beta, mean, var)])
        x = layer(x, training=False)
    return model


def lce_outputs(flatbuffer: bytes, images: np.ndarray) -> np.ndarray:
    from larq_compute_engine.tflite.python.interpreter import Interpreter

    return Interpreter(flatbuffer, num_threads=1).predict(images.astype(np.float32)[..., None])


def write_firmware(flatbuffer: bytes, folder: Path, core=M4, optimize: str = "speed") -> dict:
    out = generate(flatbuffer, core, optimize=optimize)
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in out.files.items():
        (folder / name).write_bytes(data)
    list_firmware_files(folder)
    return out.report


def assert_scores_match(scores: np.ndarray, probabilities: np.ndarray, scale_log2: int) -> None:
    """C scores / 2^scale equal LCE's logits up to a per-image constant (log-softmax differences)."""
    top = probabilities.argmax(axis=1)
    rows = np.arange(len(top))
    logits = np.log(np.maximum(probabilities, 1e-30)) - np.log(probabilities[rows, top])[:, None]
    ours = (scores.astype(np.float64) - scores[rows, top][:, None].astype(np.float64)) / 2.0**scale_log2
    usable = probabilities > 1e-20
    np.testing.assert_allclose(ours[usable], logits[usable], atol=2e-3)


def edge_images() -> np.ndarray:
    """Blank, one lit pixel, all 255, random noise: the zero-window and background shortcuts at
    their extremes (every window skipped, one window not skipped, none skipped)."""
    blank = np.zeros((28, 28), np.uint8)
    dot = blank.copy()
    dot[13, 14] = 200
    full = np.full((28, 28), 255, np.uint8)
    noise = np.random.default_rng(5).integers(0, 256, (28, 28)).astype(np.uint8)
    return np.stack([blank, dot, full, noise])


@pytest.fixture(scope="module")
def images(mnist) -> np.ndarray:
    return np.concatenate([mnist.x_test[:N_IMAGES], edge_images()])


@pytest.fixture(scope="module")
def calibration(mnist) -> np.ndarray:
    return mnist.x_train[:200]


@pytest.mark.parametrize("name", list(SPECS))
def test_tiny_random_model_matches_lce(name: str, images, calibration, tmp_path: Path) -> None:
    from convert.converter import to_lce

    spec, expect = SPECS[name]
    flatbuffer = to_lce(build_model(spec, seed=len(name), calibration=calibration))
    expect(integer_layers(flatbuffer))
    report = write_firmware(flatbuffer, tmp_path)
    run = run_host(tmp_path, images)
    reference = lce_outputs(flatbuffer, images)
    assert len(set(reference.argmax(axis=1).tolist())) >= 4, "degenerate model: too few classes predicted"
    mismatches = np.flatnonzero(run.predictions != reference.argmax(axis=1))
    assert mismatches.size == 0, f"{mismatches.size} of {len(images)} predictions differ from LCE: {mismatches[:10]}"
    assert_scores_match(run.extra["scores"], reference, report["score_scale_log2"])
    assert "-DBNN_CHANNEL_INNER" in run.extra["c_flags"]  # the fast host build: channel-inner kernels
    target = run_host(tmp_path, images, builtin_popcount=False)  # the C the Cortex-M4 runs
    assert "BNN_CHANNEL_INNER" not in target.extra["c_flags"]
    np.testing.assert_array_equal(target.extra["scores"], run.extra["scores"])
    # --optimize size: the shared word loops instead of the trees, the same integers.
    write_firmware(flatbuffer, tmp_path / "size", optimize="size")
    code = (tmp_path / "size" / "bnn_model.c").read_text()
    assert "carry-save" not in code and "bnn_xor_popcount_loop(a, b," in code
    assert ("bnn_xor_popcount_masked_loop(a, b, m," in code) == any(kw.get("pad_values") == 0.0 for _, _, kw in spec)
    small = run_host(tmp_path / "size", images, builtin_popcount=False)
    np.testing.assert_array_equal(small.extra["scores"], run.extra["scores"])


@pytest.fixture(scope="module")
def trained_bcnn(tiny_models) -> bytes:
    from convert.converter import to_lce
    from convert.keras_io import load_keras_model

    return to_lce(load_keras_model(tiny_models["bcnn"]))


def test_trained_bcnn_matches_lce(trained_bcnn: bytes, mnist, tmp_path: Path) -> None:
    test_images = np.concatenate([mnist.x_test[:2000], edge_images()])
    report = write_firmware(trained_bcnn, tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    run = run_host(tmp_path, test_images)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before, "the host build wrote into the firmware folder"
    reference = lce_outputs(trained_bcnn, test_images)
    np.testing.assert_array_equal(run.predictions, reference.argmax(axis=1))
    assert_scores_match(run.extra["scores"], reference, report["score_scale_log2"])
    assert (run.predictions[:2000] == mnist.y_test[:2000]).mean() > 0.25  # one epoch on 2,000 images: far above chance
    assert run.flash_bytes > report["model_data_bytes"] and run.ram_bytes >= report["activation_ram_bytes"]
    assert run.ram_source == "elf" and run.extra["latency_us_median"] > 0
    kinds = [row["kind"] for row in report["layers"]]
    assert kinds == ["PixelConv", "BinaryConv", "BinaryConv", "BinaryDense", "BinaryDense"]
    assert report["model_data_bytes"] == sum(r["packed_weight_bytes"] + r["threshold_bytes"] for r in report["layers"])
    assert report["model_data_bytes"] <= 12_300 and report["activation_ram_bytes"] <= 2048


@pytest.mark.parametrize("builtin", [True, False], ids=["channel-inner", "target"])
def test_sanitizer_build_is_clean(trained_bcnn: bytes, mnist, tmp_path: Path, builtin: bool) -> None:
    write_firmware(trained_bcnn, tmp_path)
    images = np.concatenate([mnist.x_test[:300], edge_images()])
    plain = run_host(tmp_path, images, builtin_popcount=builtin)
    checked = run_host(tmp_path, images, sanitize=True, builtin_popcount=builtin)  # any ASan/UBSan report aborts
    np.testing.assert_array_equal(checked.predictions, plain.predictions)
    np.testing.assert_array_equal(checked.extra["scores"], plain.extra["scores"])


@pytest.mark.parametrize("core", ["cortex-m0", "cortex-m4"])
def test_target_popcount_variants_agree(trained_bcnn: bytes, mnist, tmp_path: Path, core: str) -> None:
    """The C the target runs (trees + one SWAR pass), the same loops with the builtin popcount and
    with bnn_popcount32 per weighted word, and the channel-inner host build agree on every score."""
    write_firmware(trained_bcnn, tmp_path, get_core(core))
    images = np.concatenate([mnist.x_test[:200], edge_images()])
    fast = run_host(tmp_path, images)
    portable = run_host(tmp_path, images, fast=False)
    target = run_host(tmp_path, images, builtin_popcount=False)
    assert "BNN_POPCOUNT_BUILTIN" not in target.extra["c_flags"]
    assert "BNN_CHANNEL_INNER" not in portable.extra["c_flags"] and "BNN_POPCOUNT_BUILTIN" in portable.extra["c_flags"]
    np.testing.assert_array_equal(target.extra["scores"], fast.extra["scores"])
    np.testing.assert_array_equal(portable.extra["scores"], fast.extra["scores"])
    kernels = tmp_path / "bnn_kernels.h"
    kernels.write_text(kernels.read_text().replace("#define BNN_BLOCK_POPCOUNT", "#define BNN_WORD_POPCOUNT"))
    word = run_host(tmp_path, images, builtin_popcount=False, allow_modified=True)  # bnn_kernels.h edited
    np.testing.assert_array_equal(word.extra["scores"], fast.extra["scores"])


def test_generation_is_deterministic(trained_bcnn: bytes) -> None:
    first, second = generate(trained_bcnn, M4), generate(trained_bcnn, M4)
    assert first.files == second.files and first.report == second.report
    assert generate(trained_bcnn, M0, optimize="size").files == generate(trained_bcnn, M0, optimize="size").files
    assert sorted(first.files) == ["bnn_kernels.h", "bnn_model.c", "bnn_model.h", "bnn_popcount.h"]
    m0 = generate(trained_bcnn, M0)
    assert m0.files["bnn_model.c"].split(b"\n", 1)[1] == first.files["bnn_model.c"].split(b"\n", 1)[1]
    assert b"lut8" in m0.files["bnn_popcount.h"] and b"define BNN_BLOCK_POPCOUNT" in m0.files["bnn_kernels.h"]
    code = first.files["bnn_model.c"].decode()
    assert "l0_zero_bits" in code and "l1_bg_open" in code  # zero windows and background windows are skipped
    for name, data in first.files.items():
        text = data.decode()
        assert read_model_bytes(trained_bcnn).sha256 in "\n".join(text.splitlines()[:3]), f"{name} banner lacks the sha256"
        code = re.sub(r"//[^\n]*", "", text)
        assert not re.search(r"\b(float|double|malloc|free)\b", code), f"{name} uses float or the heap"


def test_header_documents_generated_sizes(trained_bcnn: bytes) -> None:
    out = generate(trained_bcnn, M4)
    header = out.files["bnn_model.h"].decode()
    assert f"#define BNN_MODEL_DATA_BYTES {out.report['model_data_bytes']}" in header
    assert f"#define BNN_ACTIVATION_BYTES {out.report['activation_ram_bytes']}" in header
    assert "int bnn_predict(const BNN_INPUT_TYPE input[BNN_INPUT_SIZE], BNN_SCORE_TYPE scores[BNN_NUM_CLASSES]);" in header
    for macro in ("INPUT_HEIGHT 28", "INPUT_WIDTH 28", "INPUT_CHANNELS 1", "INPUT_TYPE uint8_t", "NUM_CLASSES 10"):
        assert f"#define BNN_{macro}\n" in header
    assert "#define BNN_SCORE_TYPE int32_t\n#define BNN_SCORE_IS_FLOAT 0\n" in header
    includes = {line.split()[1] for f in out.files.values() for line in f.decode().splitlines() if line.startswith("#include")}
    assert includes <= {"<stdint.h>", "<string.h>", '"bnn_kernels.h"', '"bnn_model.h"', '"bnn_popcount.h"'}


@pytest.mark.toolchain
@pytest.mark.parametrize("optimize", ["speed", "size"])
@pytest.mark.parametrize("core", ["cortex-m0", "cortex-m3", "cortex-m4", "cortex-m7", "cortex-m33", "cortex-m55"])
def test_cross_compiles_without_warnings(trained_bcnn: bytes, tmp_path: Path, core: str, optimize: str) -> None:
    import shutil
    import subprocess

    require_toolchain()
    gcc = shutil.which("arm-none-eabi-gcc")
    spec = get_core(core)
    write_firmware(trained_bcnn, tmp_path, spec, optimize=optimize)
    cmd = [gcc, *spec.gcc_flags, "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-c", "bnn_model.c", "-o", "bnn_model.o"]
    result = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, check=False)
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr


def test_first_layer_bits_match_lce(tiny_models, mnist) -> None:
    """Every bit of the folded first layer (conv + max-pool + batch norm + sign) equals the sign of
    LCE's float output of the same layers, on 2,000 images (numpy integer conv, no C)."""
    import tensorflow as tf

    from convert.converter import to_lce
    from convert.keras_io import load_keras_model

    model = load_keras_model(tiny_models["bcnn"])
    first_bn = next(layer for layer in model.layers if isinstance(layer, tf.keras.layers.BatchNormalization))
    head_only = to_lce(tf.keras.Model(model.inputs, first_bn.output))
    images = mnist.x_test[:2000]
    floats = lce_outputs(head_only, images).reshape(len(images), 13, 13, -1)
    layer = integer_layers(to_lce(model))[0]
    assert isinstance(layer, PixelConv) and layer.signs.shape[1:] == (3, 3, 1)
    q = images.astype(np.int64) * layer.unit - layer.zero
    s = np.zeros((len(images), 26, 26, layer.signs.shape[0]), dtype=np.int64)
    for ky in range(3):
        for kx in range(3):
            s += q[:, ky : ky + 26, kx : kx + 26, None] * layer.signs[None, None, None, :, ky, kx, 0]
    pooled = s.reshape(len(images), 13, 2, 13, 2, -1).max(axis=(2, 4))
    bits = (pooled < layer.epilogue.thresholds) ^ layer.epilogue.complement
    np.testing.assert_array_equal(bits, floats < 0)
