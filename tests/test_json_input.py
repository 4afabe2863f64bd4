"""JSON nested too deep: one reader (pipeline.json_input), used by every reader of a JSON a user hands in.

Before issue 35 text nested 100,000 deep was a ``RecursionError`` traceback in every reader (a
search space, an ``.h5``'s model config, a ``train.json``, a ``firmware.json``, ...). Now each
refuses it in one line naming the file. No TensorFlow: every refusal comes before it loads.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pipeline.errors import InputError
from pipeline.json_input import MAX_JSON_DEPTH, JSONDepthError, json_depth_exceeds, parse_json

DEEP = "[" * 100_000 + "]" * 100_000  # the parser itself runs out of recursion
JUST_TOO_DEEP = "[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1)  # parses, then the depth bound refuses it
TOO_DEEP = f"nested deeper than {MAX_JSON_DEPTH} levels"


def _nest(levels: int) -> str:
    return '{"a": ' * levels + "1" + "}" * levels


def test_parse_json_bounds_the_depth_and_is_json_loads_below_it() -> None:
    assert parse_json("[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH) is not None
    assert parse_json(_nest(MAX_JSON_DEPTH)) == json.loads(_nest(MAX_JSON_DEPTH))
    assert parse_json(b'{"x": [1, 2.5, "s", null, true]}') == {"x": [1, 2.5, "s", None, True]}
    assert parse_json("3") == 3
    for text in (DEEP, JUST_TOO_DEEP, _nest(MAX_JSON_DEPTH + 1), '{"history": {"loss": ' + JUST_TOO_DEEP + "}}"):
        with pytest.raises(JSONDepthError, match=TOO_DEEP):
            parse_json(text)
    assert issubclass(JSONDepthError, ValueError)  # a reader's `except ValueError` names its file
    with pytest.raises(json.JSONDecodeError):
        parse_json("{not json")


def test_depth_is_counted_in_levels_of_lists_and_objects() -> None:
    assert not json_depth_exceeds(1, 0) and not json_depth_exceeds("[[[", 0)
    assert json_depth_exceeds([], 0) and not json_depth_exceeds([], 1)
    assert not json_depth_exceeds({"a": [1, {"b": []}], "c": 2}, 4) and json_depth_exceeds({"a": [1, {"b": []}], "c": 2}, 3)
    assert not json_depth_exceeds([0.5] * 100_000, 1)


# --- every reader of a user's JSON ------------------------------------------------------------


def _h5_with_config(path: Path, text: str) -> Path:
    import h5py

    with h5py.File(path, "w", libver="latest") as handle:  # dense attributes: a config over 64 KiB
        handle.attrs["model_config"] = text
    return path


def _firmware_folder(tmp_path: Path, text: str) -> Path:
    folder = tmp_path / "fw"
    folder.mkdir()
    (folder / "firmware.json").write_text(text)
    return folder


def _model_config(tmp_path: Path, text: str) -> Path:
    from pipeline.keras_files import read_model_config

    return read_model_config(_h5_with_config(tmp_path / "deep.h5", text))


def _trusted_model(tmp_path: Path, text: str) -> Any:
    from pipeline.keras_files import load_keras_model

    return load_keras_model(_h5_with_config(tmp_path / "deep.h5", text), trust_model=True)


def _search_space(tmp_path: Path, text: str) -> Any:
    from search.space import load_space

    (tmp_path / "space.json").write_text(text)
    return load_space(tmp_path / "space.json")


def _dataset_spec(tmp_path: Path, text: str) -> Any:
    from pipeline.dataspec import read_spec

    (tmp_path / "spec.json").write_text(text)
    return read_spec(tmp_path / "spec.json")


def _emulated_firmware(tmp_path: Path, text: str) -> Any:
    from emulator.backends import load_artifact

    return load_artifact(_firmware_folder(tmp_path, text))


def _firmware_signature(tmp_path: Path, text: str) -> Any:
    from emulator.signature import read_signature

    return read_signature(_firmware_folder(tmp_path, text))


def _tflm_ops(tmp_path: Path, text: str) -> Any:
    from emulator.qemu_tflm import firmware_kernel_ops

    return firmware_kernel_ops(_firmware_folder(tmp_path, text))


def _convert_report(tmp_path: Path, text: str) -> Any:
    from emulator.backends import input_range_for

    (tmp_path / "m.convert.json").write_text(text)
    return input_range_for(tmp_path / "m.h5")


def _emulator_reports(tmp_path: Path, text: str) -> Any:
    from emulator.summary import load_reports

    (tmp_path / "m.emulate.json").write_text(text)
    return load_reports(tmp_path)


def _tf_config(tmp_path: Path, text: str) -> Any:
    from train.distribute import read_tf_config

    return read_tf_config({"TF_CONFIG": text})


def _flatbuffer_frontend(tmp_path: Path, text: str) -> Any:
    from convert.metadata import FRONTEND_METADATA, frontend_from_metadata

    return frontend_from_metadata([(FRONTEND_METADATA, text.encode())], "m.tflite")


READERS: dict[str, tuple[Callable[[Path, str], Any], str]] = {
    # reader -> (call, what its line names)
    "search space": (_search_space, "space.json"),
    ".h5 model config": (_model_config, "deep.h5"),
    ".h5 loaded with --trust-model": (_trusted_model, "deep.h5"),
    "dataset spec": (_dataset_spec, "spec.json"),
    "firmware.json (emulator)": (_emulated_firmware, "firmware.json"),
    "firmware.json (signature)": (_firmware_signature, "firmware.json"),
    "firmware.json (tflm ops)": (_tflm_ops, "firmware.json"),
    "NAME.convert.json": (_convert_report, "m.convert.json"),
    "NAME.emulate.json": (_emulator_reports, "m.emulate.json"),
    "TF_CONFIG": (_tf_config, "TF_CONFIG"),
}


@pytest.mark.parametrize("text", [DEEP, JUST_TOO_DEEP], ids=["100000 deep", "101 deep"])
@pytest.mark.parametrize("reader", list(READERS))
def test_every_reader_refuses_deep_json_in_one_line_naming_it(reader: str, text: str, tmp_path: Path) -> None:
    call, names = READERS[reader]
    with pytest.raises(InputError) as refused:
        call(tmp_path, text)
    message = str(refused.value)
    assert names in message and TOO_DEEP in message, message
    assert "\n" not in message


def test_flatbuffer_frontend_metadata_refuses_deep_json() -> None:
    # The entry is at most 4,096 bytes: only the depth bound (not the recursion) is reachable.
    with pytest.raises(InputError, match=f"m.tflite: metadata bnn_mcu.frontend is not JSON .JSONDepthError: JSON {TOO_DEEP}"):
        _flatbuffer_frontend(Path(), JUST_TOO_DEEP)


def test_train_json_nested_too_deep_is_one_line_from_the_model_report(tmp_path: Path, capsys) -> None:
    from emulator.model_report.cli import main

    folder = tmp_path / "art"
    folder.mkdir()
    (folder / "bcnn.train.json").write_text('{"history": ' + DEEP + "}")
    assert main([str(folder)]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and "bcnn.train.json: not valid JSON" in lines[0] and TOO_DEEP in lines[0], lines
    assert not list(tmp_path.rglob("*.html"))


def test_bench_reuse_reads_a_deep_train_json_as_unreadable(tmp_path: Path) -> None:
    from bench.prepare import read_json

    (tmp_path / "bcnn.train.json").write_text(DEEP)
    assert read_json(tmp_path / "bcnn.train.json") is None  # "no readable train report": it trains again


def test_frontend_config_nested_too_deep_is_one_line(tmp_path: Path, capsys) -> None:
    from emulator.frontend_cli import main

    (tmp_path / "config.json").write_text(DEEP)
    assert main(["--config", str(tmp_path / "config.json")]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and "config.json: cannot read a JSON object" in lines[0] and TOO_DEEP in lines[0], lines
