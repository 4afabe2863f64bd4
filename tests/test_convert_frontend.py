"""The front end travels inside the flatbuffers: convert embeds it, the reader gives it back, interpreters ignore it.

* :func:`convert.metadata.embed_frontend` on float, int8 and LCE flatbuffers (a narrow kws_bnn and
  a narrow DS-CNN): the reader returns the same config, the same tensors and operators, every
  buffer's data stays 16-byte aligned, and TFLite, LCE and TFLite-Micro give bit-identical scores
  with and without the entry;
* ``python -m convert --data SPEC`` (an audio dataset of WAV files) writes the entry into every
  flatbuffer and records it in ``NAME.convert.json``; a dataset without a front end writes none;
* a corrupt or hostile entry is one :class:`InputError` line naming the file and the entry.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from audio_data import CONFIG, untrained_ds_cnn, untrained_kws_bnn
from conftest import run_module

from convert.converter import to_lce, to_tflite_float, to_tflite_int8
from convert.flatbuffer import read_model_bytes
from convert.metadata import BUFFER_ALIGNMENT, FRONTEND_METADATA, MAX_FRONTEND_BYTES, embed_frontend, embed_metadata
from pipeline.errors import InputError
from pipeline.frontend import FrontendConfig
from pipeline.interpreters import run_lce, run_tflite
from pipeline.isolation import run_isolated


@pytest.fixture(scope="module")
def flatbuffers() -> dict[str, bytes]:
    """Plain flatbuffers (no front end entry) of two small keyword models, in every format."""
    rng = np.random.default_rng(0)
    calibration = rng.integers(0, 256, (16, *CONFIG.feature_shape, 1)).astype(np.uint8)
    bnn, ds = untrained_kws_bnn(), untrained_ds_cnn()
    return {
        "kws.lce": to_lce(bnn),
        "kws.float": to_tflite_float(bnn),
        "ds.float": to_tflite_float(ds),
        "ds.int8": to_tflite_int8(ds, calibration),
        "ds.lce": to_lce(ds),
    }


def buffer_starts(data: bytes) -> list[int]:
    """Absolute offsets of every non-empty buffer's data, read with the generated schema's table API."""
    from tensorflow.lite.python import schema_py_generated as schema

    model = schema.Model.GetRootAs(data, 0)
    starts = []
    for index in range(model.BuffersLength()):
        buffer = model.Buffers(index)
        if buffer.DataLength():
            starts.append(buffer._tab.Vector(buffer._tab.Offset(4)))
    return starts


def inputs(count: int = 24) -> np.ndarray:
    return np.random.default_rng(1).integers(0, 256, (count, *CONFIG.feature_shape, 1)).astype(np.uint8)


@pytest.mark.parametrize("name", ["kws.lce", "kws.float", "ds.float", "ds.int8", "ds.lce"])
def test_the_entry_round_trips_and_the_graph_is_untouched(flatbuffers: dict[str, bytes], name: str) -> None:
    plain = flatbuffers[name]
    embedded = embed_frontend(plain, CONFIG)
    before, after = read_model_bytes(plain, name), read_model_bytes(embedded, name)
    assert before.frontend is None and after.frontend == CONFIG and after.frontend.sha256() == CONFIG.sha256()
    assert after.metadata == (*before.metadata, FRONTEND_METADATA)
    assert after.tensors == before.tensors and after.operators == before.operators
    assert (after.inputs, after.outputs, after.version) == (before.inputs, before.outputs, before.version)
    starts = buffer_starts(embedded)
    assert len(starts) >= 2 and all(start % BUFFER_ALIGNMENT == 0 for start in starts), starts
    again = embed_frontend(embedded, FrontendConfig(channels=20))  # a second embedding replaces the entry
    assert read_model_bytes(again).frontend == FrontendConfig(channels=20)
    assert read_model_bytes(again).metadata.count(FRONTEND_METADATA) == 1


@pytest.mark.parametrize("name", ["kws.lce", "kws.float", "ds.float", "ds.int8"])
def test_interpreters_run_the_files_unchanged(flatbuffers: dict[str, bytes], name: str) -> None:
    plain = flatbuffers[name]
    embedded = embed_frontend(plain, CONFIG)
    x = inputs()
    run = run_lce if name.endswith(".lce") else run_tflite
    np.testing.assert_array_equal(run(embedded, x), run(plain, x), err_msg=f"{name}: LCE/TFLite")
    if not name.endswith(".lce") and not name.startswith("kws"):  # TFLite-Micro has no LCE ops and no SIGN
        tflm_plain = run_isolated("tflm", plain, x, name)
        np.testing.assert_array_equal(run_isolated("tflm", embedded, x, name), tflm_plain, err_msg=f"{name}: TFLite-Micro")


def _hostile(flatbuffers: dict[str, bytes], value: bytes) -> bytes:
    return embed_metadata(flatbuffers["ds.int8"], FRONTEND_METADATA, value)


def _repacked(data: bytes, edit) -> bytes:
    """``data`` unpacked with the generated schema, edited by ``edit(model, schema)``, packed again."""
    import flatbuffers as fb
    from tensorflow.lite.python import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(bytearray(data), 0)
    edit(model, schema)
    builder = fb.Builder(len(data) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (b"\xff\xfe{}", "is not UTF-8 text"),
        (b'{"hop": 64', "is not JSON"),
        (b"[" * 2000 + b"]" * 2000, "is not JSON"),
        (b" " * (MAX_FRONTEND_BYTES + 1), f"more than a front end config's {MAX_FRONTEND_BYTES:,}"),
        (b"[1, 2]", "expected a JSON object of settings"),
        (b'{"hop": 64, "shell": "rm -rf /"}', "unknown key 'shell'"),
        (b'{"hop": 0}', "hop must be 1..frame_length"),
        (b'{"frame_length": 100}', "frame_length must be a power of two"),
        (b'{"upper_hz": 1e400}', "upper_hz must be a finite number"),
        (b'{"lower_hz": ' + b"9" * 400 + b"}", "lower_hz must be a finite number"),
        (b'{"channels": true}', "channels must be an integer"),
        (b'{"normalize": "loud"}', "normalize must be one of none, max"),
    ],
    ids=lambda v: v[:24] if isinstance(v, bytes) else None,
)
def test_corrupt_or_hostile_entries_are_one_line_refusals(flatbuffers: dict[str, bytes], value: bytes, message: str) -> None:
    with pytest.raises(InputError, match=message) as caught:
        read_model_bytes(_hostile(flatbuffers, value), "evil.tflite")
    text = str(caught.value)
    assert "\n" not in text and text.startswith(f"evil.tflite: metadata {FRONTEND_METADATA}")


def test_malformed_metadata_tables_are_refused(flatbuffers: dict[str, bytes]) -> None:
    embedded = embed_frontend(flatbuffers["ds.float"], CONFIG)

    def duplicate(model, schema) -> None:
        extra = schema.MetadataT()
        extra.name, extra.buffer = FRONTEND_METADATA, model.metadata[-1].buffer
        model.metadata.append(extra)

    def out_of_range(model, schema) -> None:
        model.metadata[-1].buffer = len(model.buffers) + 7

    def nameless(model, schema) -> None:
        model.metadata[-1].name = None

    for edit, message in ((duplicate, "two metadata entries"), (out_of_range, "points at buffer"), (nameless, "has no name")):
        with pytest.raises(InputError, match=message) as caught:
            read_model_bytes(_repacked(embedded, edit), "evil.tflite")
        assert "\n" not in str(caught.value)
    with pytest.raises(InputError, match="not a TFLite flatbuffer"):
        embed_frontend(b"not a model at all", CONFIG)


def test_convert_embeds_the_datasets_front_end_in_every_flatbuffer(kws_audio: dict) -> None:
    report = json.loads(kws_audio["report"].read_text())
    assert report["frontend"] == {"metadata": FRONTEND_METADATA, "config": CONFIG.to_json(), "sha256": CONFIG.sha256()}
    assert report["check"]["frontend"] == CONFIG.to_json()
    assert report["formats"]["int8"]["skipped"]  # a binary model: float and LCE only
    for fmt in ("float", "lce"):
        entry = report["formats"][fmt]
        assert entry["frontend_sha256"] == CONFIG.sha256() and entry["passed"]
        model = read_model_bytes(kws_audio[fmt].read_bytes(), fmt)
        assert model.frontend == CONFIG and model.sha256 == entry["sha256"]


def features_npz(dataset, path):
    """The dataset's features alone, as an ``.npz`` (no front end, no raw clips)."""
    arrays = {key: getattr(dataset, key) for key in ("x_train", "y_train", "x_test", "y_test")}
    np.savez(path, **arrays, num_classes=dataset.num_classes)
    return path


def test_a_dataset_without_a_front_end_embeds_nothing(kws_audio: dict, tmp_path) -> None:
    npz = features_npz(kws_audio["dataset"], tmp_path / "features.npz")
    args = ["--data", npz, "--formats", "lce", "--check", "8", "--out", tmp_path]
    result = run_module("convert", kws_audio["h5"], *args)
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "kws.convert.json").read_text())
    assert report["frontend"] is None and report["formats"]["lce"]["frontend_sha256"] is None
    model = read_model_bytes((tmp_path / "kws.lce.tflite").read_bytes())
    assert model.frontend is None and FRONTEND_METADATA not in model.metadata
    assert "embedded as metadata" not in result.stdout
