"""The search space as data: architectures, spaces, sampling from an Optuna trial (no TensorFlow)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from pipeline.errors import InputError
from search.space import (
    DEFAULT_SPACE,
    Arch,
    Conv,
    SearchSpace,
    feature_shapes,
    load_space,
    sample_arch,
    shape_problem,
    space_from_json,
)

SEED_BCNN = Arch(Conv(32, 3, "valid", True), (Conv(64, 3, "valid", True), Conv(64, 3, "valid", False)), (64,))


def test_seed_bcnn_shapes_and_tag() -> None:
    # 28 -> conv 26 -> pool 13 -> conv 11 -> pool 5 -> conv 3: the seed BCNN's feature maps.
    assert feature_shapes(SEED_BCNN) == [(13, 13, 32), (5, 5, 64), (3, 3, 64)]
    assert shape_problem(SEED_BCNN) is None
    assert SEED_BCNN.tag() == "c32k3v+p b64k3v+p b64k3v d64 10"


def test_arch_json_round_trip() -> None:
    arch = Arch(Conv(24, 5, "same", False), (Conv(48, 3, "same", True),), ())
    assert Arch.from_json(json.loads(json.dumps(arch.to_json()))) == arch
    scores = Arch(Conv(32, 3, "same", True, "int8"), (Conv(64, 3, "valid", True),), (64,), scores="int8")
    assert Arch.from_json(json.loads(json.dumps(scores.to_json()))) == scores
    assert scores.tag() == "c32k3s+p/i8 b64k3v+p d64 10/i8" and shape_problem(scores) is None
    floating = Arch(Conv(24, 5, "same", False), (Conv(48, 3, "same", True),), (64,), scores="float")
    assert floating.tag() == "c24k5s b48k3s+p d64 10f"
    assert Arch.from_json(json.loads(json.dumps(floating.to_json()))) == floating
    # records written before the scores field existed read as binary scores
    legacy = {key: value for key, value in arch.to_json().items() if key != "scores"}
    assert Arch.from_json(legacy).scores == "binary"
    with pytest.raises(InputError, match="not an architecture"):
        Arch.from_json({"stem": {"channels": 8}})
    wide = Arch(Conv(8, 3), (Conv(16, 3, "same", True),), classes=3, input_size=(20, 24))
    assert Arch.from_json(json.loads(json.dumps(wide.to_json()))) == wide
    assert feature_shapes(wide) == [(18, 22, 8), (9, 11, 16)]
    for bad in ([20], [20, "24"], [True, 24], 28):
        with pytest.raises(InputError, match="not an architecture"):
            Arch.from_json({**wide.to_json(), "input_size": bad})
    # colour images: the channel count round-trips, records without it read as grey, the tag is the same
    colour = Arch(Conv(64, 3, "same", True, "int8"), (Conv(64, 3, "same", True),), input_size=(32, 32), input_channels=3)
    assert Arch.from_json(json.loads(json.dumps(colour.to_json()))) == colour
    assert colour.tag() == Arch(colour.stem, colour.blocks, input_size=(32, 32)).tag() == "c64k3s+p/i8 b64k3s+p 10"
    grey = {key: value for key, value in colour.to_json().items() if key != "input_channels"}
    assert Arch.from_json(grey).input_channels == 1 and wide.to_json()["input_channels"] == 1
    for bad in (0, "3", True, 2.0):
        with pytest.raises(InputError, match="not an architecture"):
            Arch.from_json({**colour.to_json(), "input_channels": bad})


@pytest.mark.parametrize(
    ("arch", "expect"),
    [
        (Arch(Conv(8, 5, "valid", True), (Conv(32, 3, "valid", True), Conv(32, 5, "valid", True))), "nothing left to pool"),
        (Arch(Conv(8, 3, "valid", True), (Conv(32, 3, "valid", True),) * 3), "does not fit"),
        (Arch(Conv(8, 3, "diagonal"), ()), "padding"),
        (Arch(Conv(8, 3, precision="float"), ()), "not compiled by the bnn engine (binary, int8)"),
        (
            Arch(Conv(8, 3), (Conv(16, 3, precision="int8"),)),
            "layer 1: precision 'int8' is not compiled by the bnn engine (binary)",
        ),
        (Arch(Conv(8, 3), (), (0,)), "dense widths"),
        (Arch(Conv(8, 3), (), scores="int4"), "class scores: precision 'int4'"),
        (Arch(Conv(8, 5), (), input_size=(4, 40)), "a 5x5 kernel does not fit a 4x40 input"),
        (Arch(Conv(8, 3, "same", True), (Conv(16, 3, "valid", True),), input_size=(6, 40)), "nothing left to pool (1x18)"),
        (Arch(Conv(8, 3), (), input_size=(0, 28)), "input size 0x28"),
    ],
)
def test_impossible_architectures_are_named(arch: Arch, expect: str) -> None:
    problem = shape_problem(arch)
    assert problem is not None and expect in problem


def test_sample_arch_follows_the_trial() -> None:
    from optuna.trial import FixedTrial

    params = {
        "precision": "binary",
        "stem_channels": 32,
        "stem_kernel": 3,
        "stem_padding": "valid",
        "stem_pool": True,
        "stem_precision": "binary",
        "blocks": 2,
        "block1_channels": 64,
        "block1_kernel": 3,
        "block1_padding": "valid",
        "block1_pool": True,
        "block2_channels": 64,
        "block2_kernel": 3,
        "block2_padding": "valid",
        "block2_pool": False,
        "dense_layers": 1,
        "dense1_width": 64,
        "scores_precision": "binary",
    }
    assert sample_arch(FixedTrial(params), DEFAULT_SPACE) == SEED_BCNN
    floating = SearchSpace(scores_precisions=("binary", "float"))
    assert sample_arch(FixedTrial({**params, "scores_precision": "float"}), floating).scores == "float"
    eight_bit = sample_arch(FixedTrial({**params, "stem_precision": "int8"}), DEFAULT_SPACE)
    assert eight_bit.stem.precision == "int8" and all(block.precision == "binary" for block in eight_bit.blocks)
    assert eight_bit.tag() == "c32k3v+p/i8 b64k3v+p b64k3v d64 10" and shape_problem(eight_bit) is None
    assert Arch.from_json(eight_bit.to_json()) == eight_bit


def test_sample_arch_draws_only_listed_values() -> None:
    import optuna

    space = SearchSpace(stem_channels=(8,), blocks=(1, 2), block_channels=(32, 96), dense_layers=(0,))
    study = optuna.create_study(directions=["maximize"], sampler=optuna.samplers.RandomSampler(seed=3))
    seen = set()
    for _ in range(20):
        trial = study.ask()
        arch = sample_arch(trial, space)
        study.tell(trial, 0.0)
        assert arch.stem.channels == 8 and arch.dense == ()
        assert len(arch.blocks) in (1, 2) and all(block.channels in (32, 96) for block in arch.blocks)
        seen.add(len(arch.blocks))
    assert seen == {1, 2}


def test_space_json_round_trip_and_file(tmp_path: Path) -> None:
    text = json.dumps(DEFAULT_SPACE.to_json())
    assert space_from_json(json.loads(text)) == DEFAULT_SPACE
    path = tmp_path / "space.json"
    path.write_text(json.dumps({"stem_channels": [16], "blocks": [1]}))
    space = load_space(path)
    assert space.stem_channels == (16,) and space.blocks == (1,) and space.block_channels == DEFAULT_SPACE.block_channels
    assert load_space(None) == DEFAULT_SPACE


@pytest.mark.parametrize(
    ("content", "expect"),
    [
        ("[1, 2]", "expected a JSON object"),
        ('{"stem_width": [8]}', "unknown keys"),
        ('{"stem_channels": 8}', "must be a list"),
        ('{"stem_channels": []}', "non-empty"),
        ('{"stem_channels": [8, 8]}', "twice"),
        ('{"block_channels": [0]}', "positive integers"),
        ('{"blocks": [2, 1000]}', "blocks must be at most 16, got 1000"),  # 1000 layers to sample per trial
        ('{"dense_layers": [17]}', "dense_layers must be at most 16"),
        ('{"block_channels": [64, 100000000]}', "block_channels must be at most 4096"),
        ('{"stem_paddings": ["full"]}', "must be among"),
        ('{"block_pools": ["yes"]}', "true/false"),
        ('{"precisions": ["float"]}', "not compiled by the bnn engine"),
        ('{"scores_precisions": ["int4"]}', "scores_precisions"),
        ('{"stem_precisions": ["float"]}', "stem_precisions"),
        ("{not json", "not valid JSON"),
        # Tracebacks before issue 35: TypeError (unhashable type), RecursionError.
        ('{"blocks": [1, [2]]}', re.escape("blocks must list numbers, strings or true/false, got [2]")),
        ('{"stem_paddings": ["same", {"a": 1}]}', "stem_paddings must list numbers, strings or true/false"),
        ('{"blocks": [null]}', "blocks must list numbers, strings or true/false, got None"),
        ('{"blocks": NEST100000}', "not valid JSON .JSON nested deeper than 100 levels"),
        ('{"blocks": NEST100}', "not valid JSON .JSON nested deeper than 100 levels"),  # 101 levels with the object
    ],
)
def test_bad_space_files(tmp_path: Path, content: str, expect: str) -> None:
    path = tmp_path / "space.json"
    path.write_text(re.sub(r"NEST(\d+)", lambda m: "[" * int(m[1]) + "]" * int(m[1]), content))
    with pytest.raises(InputError, match=f"^--space {re.escape(str(path))}: .*{expect}"):
        load_space(path)


@pytest.mark.parametrize(
    "path", sorted((Path(__file__).resolve().parents[1] / "search" / "spaces").glob("*.json")), ids=lambda p: p.name
)
def test_shipped_space_files_load(path: Path) -> None:
    space = load_space(path)
    assert space.to_json() == {**DEFAULT_SPACE.to_json(), **json.loads(path.read_text())}


def test_missing_space_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="--space"):
        load_space(tmp_path / "missing.json")
