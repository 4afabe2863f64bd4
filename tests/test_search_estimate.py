"""The packed size before training equals what the bnn engine reports after compiling the model."""

from __future__ import annotations

import pytest

from search.estimate import WIDE_SCORE_BYTES, packed_size
from search.measure import engine_difference
from search.space import Arch, Conv

SEED_BCNN = Arch(Conv(32, 3, "valid", True), (Conv(64, 3, "valid", True), Conv(64, 3, "valid", False)), (64,))


def test_seed_bcnn_matches_the_documented_engine_figures() -> None:
    # README, "The bnn engine": the seed BCNN becomes 12,256 bytes of model data and an 876-byte arena.
    size = packed_size(SEED_BCNN, dsp=False)
    assert (size.model_data_bytes, size.arena_bytes) == (12_256, 876)
    assert [row["output"] for row in size.layers] == ["13x13x32", "5x5x64", "3x3x64", "1x1x64", "1x1x10"]


def test_small_candidate_by_hand() -> None:
    # stem 16 ch, 3x3: 3 table offsets per channel (48 B) + 1 background word (4 B), 16 int16 thresholds;
    # block 32 ch on 16: 32 x 9 taps x 1 word (1,152 B) + background in/out words (8 B), 32 int16 limits;
    # scores: 10 x 25 words (1,000 B) + 10 int32 multipliers and offsets (80 B). Arena: 676 + 100 B.
    size = packed_size(Arch(Conv(16, 3, "valid", True), (Conv(32, 3, "valid", True),)), dsp=False)
    assert [(r["packed_weight_bytes"], r["threshold_bytes"], r["activation_bytes"]) for r in size.layers] == [
        (52, 32, 676),
        (1160, 64, 100),
        (1000, 80, 0),
    ]
    assert (size.model_data_bytes, size.arena_bytes) == (2388, 776)


def test_float_scores_by_hand() -> None:
    # The same candidate with float class scores: its 5x5x32 bits dequantized to 800 floats (3,200 B
    # of arena), 10 x 800 float weights (32,000 B) and 10 float biases (40 B), float scores (40 B),
    # then a softmax with nothing stored.
    size = packed_size(Arch(Conv(16, 3, "valid", True), (Conv(32, 3, "valid", True),), scores="float"), dsp=False)
    assert [(r["layer"], r["packed_weight_bytes"], r["threshold_bytes"], r["activation_bytes"]) for r in size.layers] == [
        ("stem", 52, 32, 676),
        ("block1", 1160, 64, 100),
        ("scores_input", 0, 0, 3200),
        ("scores", 32000, 0, 40),
        ("softmax", 0, 0, 0),
    ]
    assert size.model_data_bytes == 52 + 32 + 1160 + 64 + 32000 + 40


def test_int8_stem_by_hand() -> None:
    # The same candidate with an 8-bit stem: 16 x 9 int8_t weights (144 B) + 1 background word
    # instead of 48 B of table offsets, and int32_t thresholds (sums reach 9 x 255 x 127).
    size = packed_size(Arch(Conv(16, 3, "valid", True, "int8"), (Conv(32, 3, "valid", True),)), dsp=False)
    stem = size.layers[0]
    assert (stem["packed_weight_bytes"], stem["threshold_bytes"]) == (148, 64)
    assert size.model_data_bytes == 2388 + (148 - 52) + (64 - 32)


def test_int8_scores_by_hand() -> None:
    # The same candidate with 8-bit class scores: 10 x 800 int8_t weights (one per input, 8,000 B)
    # instead of 10 x 25 words, and the class affine in int64 (160 B), assumed wide.
    size = packed_size(Arch(Conv(16, 3, "valid", True), (Conv(32, 3, "valid", True),), scores="int8"), dsp=False)
    assert (size.layers[-1]["packed_weight_bytes"], size.layers[-1]["threshold_bytes"]) == (8000, 160)
    assert size.model_data_bytes == 2388 - 1080 + 8160 and size.arena_bytes == 776
    assert size.wide_scores and size.scores_extra(True) == 0 and size.scores_extra(False) == -80
    assert not packed_size(SEED_BCNN, dsp=False).wide_scores and packed_size(SEED_BCNN, dsp=False).scores_extra(True) == 80


def test_padding_changes_what_is_stored() -> None:
    valid = packed_size(Arch(Conv(16, 3, "valid", True), (Conv(32, 3, "valid", True),)), dsp=False)
    same = packed_size(Arch(Conv(16, 3, "same", True), (Conv(32, 3, "same", True),)), dsp=False)
    # A padded stem has no all-zero shortcut (no background word, no background memo downstream);
    # a one-padded block stores its pad pixel (one word).
    assert same.layers[0]["packed_weight_bytes"] == valid.layers[0]["packed_weight_bytes"] - 4
    assert same.layers[1]["packed_weight_bytes"] == 4 * 32 * 9 + 4


def test_refused_architectures_have_a_problem_and_no_size() -> None:
    size = packed_size(Arch(Conv(8, 7), (), input_channels=6), dsp=False)  # 7 x 7 x 6 = 294 taps
    assert size.problem is not None and "294 taps" in size.problem and "256" in size.problem and size.model_data_bytes == 0
    assert packed_size(Arch(Conv(8, 7), (), input_channels=5), dsp=False).problem is None  # 245 taps


def test_colour_stems_by_hand() -> None:
    # 32x32x3 images, stem 64 3x3 same (27 taps), pooled: no all-zero-window bits (padded).
    arch = Arch(Conv(64, 3, "same", True, "int8"), (Conv(32, 3, "valid", True),), input_size=(32, 32), input_channels=3)
    plain, dsp = packed_size(arch, dsp=False).layers[0], packed_size(arch, dsp=True).layers[0]
    assert (plain["packed_weight_bytes"], plain["threshold_bytes"]) == (64 * 27, 4 * 64)  # int8_t [channel][tap]
    assert (dsp["packed_weight_bytes"], dsp["threshold_bytes"]) == (64 * 7 * 8, 4 * 64)  # 7 words of 4 int16 taps
    # 30 channels (not whole blocks of 4) valid, binary 3x3 on 3 channels: the table (27 taps, 9 groups);
    # binary 5x5 on 3 channels (75 taps): int8_t weights and int16_t thresholds (75 x 255 < 32767), or
    # 32 padded channels of 19 words and int32_t thresholds.
    table = Arch(Conv(30, 3, "valid", True), (), input_size=(20, 20), input_channels=3)
    assert packed_size(table, dsp=True).layers[0]["packed_weight_bytes"] == 30 * 9 + 4
    wide = Arch(Conv(30, 5, "valid", True), (), input_size=(20, 20), input_channels=3)
    assert packed_size(wide, dsp=False).layers[0]["packed_weight_bytes"] == 30 * 75 + 4
    assert packed_size(wide, dsp=False).layers[0]["threshold_bytes"] == 2 * 30
    assert packed_size(wide, dsp=True).layers[0]["packed_weight_bytes"] == 32 * 19 * 8 + 4
    assert packed_size(wide, dsp=True).layers[0]["threshold_bytes"] == 4 * 32
    # rows wider than 64 pixels have no all-zero-window shortcut
    assert (
        packed_size(Arch(Conv(30, 5, "valid", True), (), input_size=(8, 70)), dsp=False).layers[0]["packed_weight_bytes"]
        == 30 * 9
    )


def test_engine_difference_accounts_for_int64_scores() -> None:
    size = packed_size(SEED_BCNN, dsp=False)
    rows = [dict(row) for row in size.layers]
    report = {"model_data_bytes": 12_256, "activation_ram_bytes": 876, "layers": rows}
    assert engine_difference(size, report) == []
    extra = 10 * WIDE_SCORE_BYTES
    wide = {**report, "model_data_bytes": 12_256 + extra, "score_int64": True}
    wide["layers"] = [*rows[:-1], {**rows[-1], "threshold_bytes": rows[-1]["threshold_bytes"] + extra}]
    assert engine_difference(size, wide) == []
    off = engine_difference(size, {**report, "activation_ram_bytes": 880})
    assert off == ["arena: estimate 876, engine 880"]


@pytest.mark.slow
@pytest.mark.parametrize(
    "arch",
    [
        # same-padded 5x5 stem (pixel 127.5 is the rescaled 0), one-padded block of 48 channels
        # (two words per pixel), a bit-packed bconv output, no hidden dense layer
        Arch(Conv(24, 5, "same", True), (Conv(48, 3, "same", False), Conv(96, 3, "valid", True))),
        # no pooling in the stem, three blocks, two hidden dense layers
        Arch(
            Conv(16, 3, "valid", False), (Conv(32, 3, "same", True), Conv(64, 3, "valid", True), Conv(32, 3, "same")), (32, 128)
        ),
        # float class scores on a hidden dense layer, and straight on a two-word-per-pixel conv output
        Arch(Conv(32, 3, "valid", True), (Conv(64, 3, "valid", True), Conv(64, 3, "valid", False)), (64,), scores="float"),
        Arch(Conv(16, 3, "valid", False), (Conv(32, 3, "same", True), Conv(48, 3, "valid", True)), scores="float"),
        # 8-bit stems, same-padded (q = 2 * pixel - 255) and valid (all-zero windows skipped)
        Arch(Conv(32, 3, "same", True, "int8"), (Conv(64, 3, "valid", True), Conv(96, 3, "valid", True)), (64,)),
        Arch(Conv(24, 5, "valid", True, "int8"), (Conv(48, 3, "same", True),)),
        # 8-bit class scores, after a hidden dense layer and straight on a conv output
        Arch(Conv(32, 3, "same", True, "int8"), (Conv(64, 3, "valid", True), Conv(64, 3, "valid", True)), (64,), scores="int8"),
        Arch(Conv(16, 3, "valid", True), (Conv(32, 3, "same", True), Conv(48, 3, "valid", True)), scores="int8"),
        # colour: 8-bit stems on 3 channels (int16 pairs on DSP cores; 30 channels: a partial block), a
        # +-1 stem past the table's 30 taps, a wide grey row without the all-zero-window shortcut
        Arch(Conv(64, 3, "same", True, "int8"), (Conv(64, 3, "same", True),), (64,), input_size=(32, 32), input_channels=3),
        Arch(Conv(30, 5, "valid", True, "int8"), (Conv(32, 3, "valid", True),), input_size=(17, 13), input_channels=3),
        Arch(Conv(16, 5, "same", True), (Conv(32, 3, "valid", True),), input_size=(17, 13), input_channels=3),
        Arch(Conv(16, 3, "valid", True, "int8"), (Conv(32, 3, "valid", True),), input_size=(12, 70)),
    ],
    ids=lambda arch: f"{arch.tag().replace(' ', '_')}_x{arch.input_channels}",
)
@pytest.mark.parametrize("core", ["cortex-m0", "cortex-m4"])
def test_estimate_equals_the_engine_on_untrained_models(arch: Arch, core: str) -> None:
    from convert.converter import to_lce
    from convert.flatbuffer import read_model_bytes
    from firmware_gen import bnn
    from firmware_gen.targets import get_core
    from search.builder import build_model

    spec = get_core(core)
    output = bnn.generate(read_model_bytes(to_lce(build_model(arch))), spec)
    assert output.report["layers"][0]["kind"] == "PixelConv"
    assert engine_difference(packed_size(arch, dsp=spec.has_dsp), output.report) == []
