"""Audio datasets (``{"audio": ...}`` specs): labels, splits, clips, features, order, the cache, refusals, end to end.

Every WAV is written by the test (:mod:`audio_trees`: tones whose pitch is the class and whose
level is the speaker, an id in the first sample); the real FSDD copy is measured in the README,
never read by a test. The committed specs in ``datasets/`` are checked for their options only.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest
from audio_trees import PATTERN, RATE, fmt_body, folder_tree, ident_of, named_tree, tone, tone_wav, wav_bytes
from conftest import REPO, run_module, stderr_lines
from image_trees import one_line, write_spec, write_tar, write_tree

import pipeline.audio
from pipeline.artifacts import sha256_file
from pipeline.audio import read_clip_layout
from pipeline.audio_options import parse_options
from pipeline.data import load_dataset
from pipeline.datacache import CachedArrays, checksum, read_entry, write_entry
from pipeline.errors import InputError
from pipeline.frontend import FrontendConfig, features
from pipeline.splits import order_share, split_share
from pipeline.wav import fit_clip, label_fields, read_wav

pytestmark = pytest.mark.usefixtures("data_cache")  # a cache folder per test, never ~/.cache

NAMED = {"labels": PATTERN, "sample_rate": RATE}


def spec_for(tmp_path: Path, source: Path, *, relative: bool = False, **options: object) -> Path:
    """A spec file ``tmp_path/specs/audio.json`` naming ``source`` (absolute, or relative to the spec), with ``options``."""
    folder = tmp_path / "specs"
    folder.mkdir(exist_ok=True)
    path = Path("..") / source.relative_to(tmp_path) if relative else source
    return write_spec(folder / "audio.json", {"audio": str(path), **options})


def files_by_ident(files: dict[str, bytes]) -> dict[int, str]:
    """id -> path of every WAV of a tree."""
    return {ident_of(read_wav(data, rel, sample_rate=RATE, resample=True)): rel for rel, data in files.items()}


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Names of the WAV files read (every call of :func:`pipeline.wav.read_wav` by the audio loader)."""
    seen: list[str] = []
    original = pipeline.audio.read_wav

    def counting(data: bytes, name: str, **kwargs: object) -> np.ndarray:
        seen.append(name)
        return original(data, name, **kwargs)

    monkeypatch.setattr(pipeline.audio, "read_wav", counting)
    return seen


# --- labels, splits, clips and features --------------------------------------------------------------


@pytest.mark.parametrize("container", ["folder", "tgz"])
def test_named_files_split_by_index(tmp_path: Path, container: str) -> None:
    files = named_tree(count=4, top="fsdd/recordings/")
    source = write_tree(tmp_path / "fsdd", files) if container == "folder" else write_tar(tmp_path / "fsdd.tgz", files)
    spec = spec_for(tmp_path, source, relative=True, **NAMED, split={"test_index_below": 1}, comment="tones, CC0")
    data = load_dataset(spec)
    config = FrontendConfig()
    assert data.classes == ("1", "2", "10") and data.num_classes == 3  # integers sort as numbers
    assert data.x_train.shape == (27, 61, 20, 1) and data.x_test.shape == (9, 61, 20, 1) and data.dtype == np.uint8
    assert data.raw_train.shape == (27, 8000) and data.raw_test.shape == (9, 8000) and data.raw_test.dtype == np.int16
    assert data.frontend == config.to_json() and data.describe()["frontend"] == config.to_json()
    np.testing.assert_array_equal(data.x_train, features(data.raw_train, config)[..., None])
    np.testing.assert_array_equal(data.x_test, features(data.raw_test, config)[..., None])
    assert list(data.sha256) == ["audio.json", source.name if container == "tgz" else "fsdd/"]
    assert data.sha256["audio.json"] == sha256_file(spec)
    ident = files_by_ident(files)
    test_names = [ident[ident_of(clip)] for clip in data.raw_test]
    fields = [label_fields(PATTERN, name) for name in test_names]
    assert all(field.index == 0 for field in fields)  # the test split is index 0, and all of it
    # the test split class by class, by name within a class; every label from its file's name
    assert test_names == sorted(test_names, key=lambda name: (data.classes.index(label_fields(PATTERN, name).label), name))
    for raw, label in zip((*data.raw_train, *data.raw_test), (*data.y_train, *data.y_test), strict=True):
        name = ident[ident_of(raw)]
        assert data.classes[label] == label_fields(PATTERN, name).label
        np.testing.assert_array_equal(raw, fit_clip(read_wav(files[name], name, sample_rate=RATE), 8000))


def test_folder_labels_with_the_trees_own_split_and_explicit_classes(tmp_path: Path) -> None:
    files = folder_tree()
    root = write_tree(tmp_path / "words", files)
    data = load_dataset(spec_for(tmp_path, root, sample_rate=RATE))
    assert data.classes == ("no", "up", "yes") and len(data.y_train) == 12 and len(data.y_test) == 6  # by code point
    ident = files_by_ident(files)
    assert [ident[ident_of(clip)] for clip in data.raw_test] == sorted(rel for rel in files if rel.startswith("test/"))
    for raw, label in zip(data.raw_train, data.y_train, strict=True):
        rel = ident[ident_of(raw)]
        assert rel.startswith("train/") and rel.split("/")[1] == data.classes[label]
    ordered = load_dataset(spec_for(tmp_path, root, sample_rate=RATE, classes=["yes", "no", "up"]))
    assert ordered.classes == ("yes", "no", "up") and ordered.y_test.tolist() == [0, 0, 1, 1, 2, 2]  # the spec's order


def test_folder_labels_split_by_test_fraction(tmp_path: Path) -> None:
    files = folder_tree(per_split=None)
    source = write_tar(tmp_path / "words.tar", files)
    data = load_dataset(spec_for(tmp_path, source, sample_rate=RATE, split={"test_fraction": 0.3}))
    ident = files_by_ident(files)
    test = {ident[ident_of(clip)] for clip in data.raw_test}
    assert test == {rel for rel in files if split_share(rel) < 0.3}  # the hash rule on the path, class by class
    assert len(test) + len(data.raw_train) == len(files) and set(data.y_test.tolist()) == {0, 1, 2}


def test_held_out_speakers_and_the_clip_layout(tmp_path: Path) -> None:
    files = named_tree(count=2)
    source = write_tree(tmp_path / "rec", files)
    spec = spec_for(tmp_path, source, **NAMED, split={"test_speakers": ["bob"]})
    data = load_dataset(spec)
    layout = read_clip_layout(spec)
    assert {clip.speaker for clip in layout.test} == {"bob"} and "bob" not in {clip.speaker for clip in layout.train}
    assert len(layout.test) == 6 == len(data.y_test) and len(layout.train) == 12 == len(data.y_train)
    # the layout is the Dataset's order: the clip, the label, the speaker and the index agree
    ident = files_by_ident(files)
    for clips, raw, labels in ((layout.train, data.raw_train, data.y_train), (layout.test, data.raw_test, data.y_test)):
        for clip, samples, label in zip(clips, raw, labels, strict=True):
            fields = label_fields(PATTERN, ident[ident_of(samples)])
            assert clip.path == ident[ident_of(samples)] and clip.label == label
            assert (clip.speaker, clip.index) == (fields.speaker, fields.index)


def test_training_order_mixes_classes_and_speakers_and_ignores_other_files(tmp_path: Path) -> None:
    files = named_tree(count=10)  # 3 classes x 3 speakers x 10 recordings; 72 training clips
    source = write_tree(tmp_path / "rec", files)
    spec = spec_for(tmp_path, source, **NAMED, split={"test_index_below": 2})
    layout = read_clip_layout(spec)
    held = layout.train[-len(layout.train) // 10 :]  # what the trainer validates on
    assert len({clip.label for clip in held}) >= 2 and len({clip.speaker for clip in held}) >= 2
    paths = [clip.path for clip in layout.train]
    assert paths == sorted(paths, key=order_share)  # the hash of the path in the tree (its only folder holds clips: not a root)
    (source / "rec" / "2_cy_7.wav").unlink()
    fewer = [clip.path for clip in read_clip_layout(spec).train]
    assert fewer == [path for path in paths if path != "rec/2_cy_7.wav"]


def test_clip_length_pads_and_cuts_and_sets_the_front_end(tmp_path: Path) -> None:
    files = named_tree(count=2)
    source = write_tree(tmp_path / "rec", files)
    data = load_dataset(spec_for(tmp_path, source, **NAMED, split={"test_index_below": 1}, clip_seconds=0.5))
    assert data.raw_train.shape[1] == 4000 and data.x_train.shape[1:] == (30, 20, 1)
    assert data.frontend["clip_samples"] == 4000 and data.frontend["sample_rate"] == RATE
    ident = files_by_ident(files)
    lengths = []
    for raw in (*data.raw_train, *data.raw_test):
        samples = read_wav(files[ident[ident_of(raw)]], "x", sample_rate=RATE)
        lengths.append(len(samples))
        kept = min(len(samples), 4000)
        np.testing.assert_array_equal(raw[:kept], samples[:kept])
        assert not raw[kept:].any()  # zeros at the end
    assert min(lengths) < 4000 < max(lengths)  # some clips padded, some cut
    custom = {"channels": 16, "normalize": "none", "sample_rate": RATE, "clip_samples": 8000}
    other = load_dataset(spec_for(tmp_path, source, **NAMED, split={"test_index_below": 1}, frontend=custom))
    assert other.x_test.shape[1:] == (61, 16, 1) and other.frontend == FrontendConfig(channels=16, normalize="none").to_json()


def test_resampling_on_request(tmp_path: Path) -> None:
    files = named_tree(count=2, rate=16000)
    source = write_tree(tmp_path / "rec", files)
    with pytest.raises(InputError, match=r"sample rate 16000 Hz, expected 8000 Hz") as err:
        load_dataset(spec_for(tmp_path, source, **NAMED, split={"test_index_below": 1}))
    assert str(source) in one_line(err)
    data = load_dataset(spec_for(tmp_path, source, **NAMED, split={"test_index_below": 1}, resample=True))
    for raw in data.raw_test:
        name = files_by_ident(files)[ident_of(raw)]
        np.testing.assert_array_equal(raw, fit_clip(read_wav(files[name], name, sample_rate=RATE, resample=True), 8000))


# --- the cache ------------------------------------------------------------------------------------


def test_second_load_reads_the_cache_and_no_wav(tmp_path: Path, data_cache: Path, reads: list[str]) -> None:
    source = write_tar(tmp_path / "rec.tgz", named_tree(count=2))
    spec = spec_for(tmp_path, source, **NAMED, split={"test_index_below": 1})
    first = load_dataset(spec)
    assert len(reads) == 18
    (entry,) = data_cache.iterdir()
    assert entry.name.startswith("audio-") and entry.suffix == ".npz"
    cached = read_entry(entry)
    assert cached is not None and cached.raw_train is not None and np.array_equal(cached.raw_test, first.raw_test)
    second = load_dataset(spec)
    assert len(reads) == 18  # nothing read again
    for key in ("x_train", "y_train", "x_test", "y_test", "raw_train", "raw_test"):
        np.testing.assert_array_equal(getattr(second, key), getattr(first, key))
    assert second.frontend == first.frontend and second.classes == first.classes
    # another front end, split or clip length is another entry; the first stays valid
    load_dataset(spec_for(tmp_path, source, **NAMED, split={"test_index_below": 1}, frontend={"channels": 12}))
    load_dataset(spec_for(tmp_path, source, **NAMED, split={"test_speakers": ["ann"]}))
    assert len(reads) == 54 and len(list(data_cache.iterdir())) == 3
    load_dataset(spec)
    assert len(reads) == 54


def test_a_damaged_audio_entry_is_rebuilt_and_image_entries_still_check(
    tmp_path: Path, data_cache: Path, reads: list[str]
) -> None:
    source = write_tree(tmp_path / "rec", named_tree(count=2))
    spec = spec_for(tmp_path, source, **NAMED, split={"test_index_below": 1})
    first = load_dataset(spec)
    (entry,) = data_cache.iterdir()
    with np.load(entry) as npz:
        arrays = {key: npz[key] for key in npz.files}
    arrays["raw_test"] = arrays["raw_test"].astype(np.int32)  # the checksum alone would not catch a rewritten entry
    arrays["checksum"] = np.array(checksum(arrays))
    with open(entry, "wb") as handle:
        np.savez(handle, **arrays)
    assert read_entry(entry) is None
    np.testing.assert_array_equal(load_dataset(spec).raw_test, first.raw_test)
    assert len(reads) == 36  # read twice
    # an entry without raw clips (images) keeps the checksum it had before raw clips existed
    x, y = np.zeros((2, 3, 3, 1), np.uint8), np.array([0, 1], np.uint8)
    image = CachedArrays(x, y, x, y, ("a", "b"))
    legacy = hashlib.sha256()
    for key, value in image.arrays().items():
        legacy.update(f"{key}\0{value.dtype.str}\0{value.shape}\0".encode())
        legacy.update(np.ascontiguousarray(value).tobytes())
    assert checksum(image.arrays()) == legacy.hexdigest()
    write_entry(tmp_path / "images-x.npz", image)
    again = read_entry(tmp_path / "images-x.npz")
    assert again is not None and again.raw_train is None and again.raw_test is None and again.classes == ("a", "b")


# --- refusals -------------------------------------------------------------------------------------

WAV_REFUSALS = {
    "stereo": (wav_bytes(np.zeros(400, np.int16), fmt=fmt_body(channels=2)), r"stereo; only mono"),
    "8-bit": (wav_bytes(np.zeros(400, np.int16), fmt=fmt_body(bits=8)), r"8-bit samples; only 16-bit PCM"),
    "24-bit": (wav_bytes(np.zeros(400, np.int16), fmt=fmt_body(bits=24)), r"24-bit samples; only 16-bit PCM"),
    "32-bit": (wav_bytes(np.zeros(400, np.int16), fmt=fmt_body(bits=32)), r"32-bit samples; only 16-bit PCM"),
    "float": (wav_bytes(np.zeros(400, np.int16), fmt=fmt_body(tag=3, bits=32)), r"32-bit float samples"),
    "another rate": (tone_wav(0, "ann", 99, rate=11025), r"sample rate 11025 Hz, expected 8000 Hz"),
    "truncated": (tone_wav(0, "ann", 99)[:-100], r"truncated data chunk"),
    "empty clip": (wav_bytes(b""), r"empty clip \(no samples\)"),
    "not a wav": (b"ID3\x03 an mp3 named .wav", r"not a RIFF/WAVE file"),
}


@pytest.mark.parametrize("case", sorted(WAV_REFUSALS))
@pytest.mark.parametrize("container", ["folder", "tgz"])
def test_wav_refusals_name_the_file(tmp_path: Path, case: str, container: str) -> None:
    data, message = WAV_REFUSALS[case]
    files = {**named_tree(count=2), "rec/2_bob_1.wav": data}
    source = write_tree(tmp_path / "rec", files) if container == "folder" else write_tar(tmp_path / "rec.tgz", files)
    with pytest.raises(InputError, match=message) as err:
        load_dataset(spec_for(tmp_path, source, **NAMED, split={"test_index_below": 1}))
    name = f"{source}/rec/2_bob_1.wav" if container == "folder" else f"{source} member rec/2_bob_1.wav"
    assert one_line(err).startswith(f"{name}: ")


def _with(**extra: bytes) -> dict[str, bytes]:
    return {**named_tree(count=2), **{f"rec/{name}": data for name, data in extra.items()}}


# case -> (files, spec options over NAMED and test_index_below 1 (None removes one), message, whether it names a file)
TREE_REFUSALS = {
    "name off the pattern": (
        _with(**{"2-bob-4.wav": tone_wav(1, "bob", 99)}),
        {},
        r"rec/2-bob-4.wav: file name does not match",
        True,
    ),
    "unknown label": (
        _with(**{"7_bob_0.wav": tone_wav(1, "bob", 99)}),
        {"classes": ["1", "2", "10"]},
        r"rec/7_bob_0.wav: unknown label '7'; the spec's classes are 1, 2, 10",
        True,
    ),
    "class missing from the test split": (
        _with(**{"7_bob_1.wav": tone_wav(1, "bob", 98), "7_ann_3.wav": tone_wav(1, "ann", 99)}),
        {},
        r"class '7' has 2 clips in the train split but none in the test split by the spec's split rule",
        False,
    ),
    "class of the spec without clips": (
        _with(),
        {"classes": ["1", "2", "10", "11"]},
        r"class '11' of the spec's classes has no clip",
        False,
    ),
    "unknown speaker": (
        _with(),
        {"split": {"test_speakers": ["zed", "bob"]}},
        r"test_speakers names 'zed', who has no clip; the speakers are ann, bob, cy",
        False,
    ),
    "every speaker held out": (
        _with(),
        {"split": {"test_speakers": ["ann", "bob", "cy"]}},
        r"class '1' has 6 clips in the test split but none in the train split",
        False,
    ),
    "no split rule": (_with(), {"split": None}, r"no train/ and test/ folders and no split rule; add one", False),
    "a rule for a split tree": (
        {f"data/{split}/{rel}": data for split in ("train", "test") for rel, data in named_tree(count=1).items()},
        {},
        r"the tree has train/ and test/ folders, so a split rule does not apply",
        False,
    ),
    "one class": (
        named_tree(classes=("5",), count=4),
        {"split": {"test_fraction": 0.5}},
        r"only one class \('5'\); a classifier needs at least two classes",
        False,
    ),
}


@pytest.mark.parametrize("case", sorted(TREE_REFUSALS))
def test_layout_refusals_are_one_line(tmp_path: Path, case: str) -> None:
    files, changes, message, names_file = TREE_REFUSALS[case]
    source = write_tree(tmp_path / "src", files)
    options = {key: value for key, value in {**NAMED, "split": {"test_index_below": 1}, **changes}.items() if value is not None}
    spec = spec_for(tmp_path, source, **options)
    with pytest.raises(InputError, match=message) as err:
        load_dataset(spec)
    assert one_line(err).startswith(f"{source}/" if names_file else f"{spec}: ")


FOLDER_REFUSALS = {
    "a clip outside the class folders": (
        {"train/loose.wav": tone_wav(0, "bob", 99)},
        r"train/loose.wav: not inside a class folder",
    ),
    "a clip outside train and test": ({"extra/yes/0.wav": tone_wav(0, "bob", 99)}, r"extra/yes/0.wav: outside train/ and test/"),
    "a class in one split": (
        {"train/down/0.wav": tone_wav(0, "bob", 99)},
        r"class 'down' has 1 clips in the train split but none in test/",
    ),
    "no wav": ({"notes/readme.txt": b"hello"}, None),
}


@pytest.mark.parametrize("case", sorted(FOLDER_REFUSALS))
@pytest.mark.parametrize("container", ["folder", "tgz"])
def test_folder_label_refusals_are_one_line(tmp_path: Path, case: str, container: str) -> None:
    extra, message = FOLDER_REFUSALS[case]
    files = {**folder_tree(), **extra} if message else extra
    message = message or r"no WAV files \(.wav\); an audio dataset is a folder or tar of them"
    source = write_tree(tmp_path / "w", files) if container == "folder" else write_tar(tmp_path / "w.tgz", files)
    with pytest.raises(InputError, match=message) as err:
        load_dataset(spec_for(tmp_path, source, sample_rate=RATE))
    assert str(source) in one_line(err) or str(tmp_path / "specs" / "audio.json") in one_line(err)


def test_an_empty_class_folder_is_refused(tmp_path: Path) -> None:
    for source in (
        write_tree(tmp_path / "w", folder_tree(), folders=("test/down", "train/down")),
        write_tar(tmp_path / "w.tar", folder_tree(), folders=("train/down", "test/down")),
    ):
        with pytest.raises(InputError, match=r"class folder (train|test)/down/ holds no WAV file") as err:
            load_dataset(spec_for(tmp_path, source, sample_rate=RATE))
        one_line(err)


OPTION_REFUSALS = {
    "unknown key": ({"sample_rte": 8000}, "unknown key 'sample_rte'; valid keys: 'audio', 'sample_rate', 'labels'"),
    "no sample rate": ({"sample_rate": None}, "missing key 'sample_rate'; required: 'audio', 'sample_rate'"),
    "sample rate not an integer": ({"sample_rate": 8000.5}, "sample_rate must be an integer number of Hz"),
    "resample not a boolean": ({"resample": "yes"}, "resample must be true or false"),
    "labels neither": (
        {"labels": "{label}_{speaker}"},
        'labels: must be "folders" (a sub-folder per class) or a file-name pattern',
    ),
    "labels with a folder": ({"labels": "rec/{label}.wav"}, "labels: must be"),
    "labels without a label": (
        {"labels": "{speaker}_{index}.wav"},
        "labels: label pattern '{speaker}_{index}.wav': needs a {label}",
    ),
    "index split without index": (
        {"labels": "{label}_{speaker}_x.wav"},
        "split: test_index_below needs {index} in the labels pattern, and labels is '{label}_{speaker}_x.wav'",
    ),
    "index split with folders": ({"labels": "folders"}, "split: test_index_below needs {index} in the labels pattern"),
    "speaker split without speaker": (
        {"labels": "{label}_{index}.wav", "split": {"test_speakers": ["bob"]}},
        "split: test_speakers needs {speaker} in the labels pattern",
    ),
    "two rules": ({"split": {"test_index_below": 1, "test_fraction": 0.2}}, "split: give exactly one rule"),
    "unknown rule": ({"split": {"test_seed": 1}}, "split: unknown key 'test_seed'; valid keys: 'test_fraction'"),
    "bad index bound": ({"split": {"test_index_below": 0}}, "test_index_below must be an integer >= 1"),
    "bad fraction": ({"split": {"test_fraction": 1.0}}, "test_fraction must be a number between 0 and 1"),
    "speakers not a list": ({"split": {"test_speakers": "bob"}}, "test_speakers: must be a list of speakers"),
    "classes repeated": ({"classes": ["1", "2", "1"]}, "classes: '1' appears twice"),
    "one class given": ({"classes": ["1"]}, "classes: needs at least 2 class names"),
    "clip not whole samples": ({"clip_seconds": 0.00001}, "clip_seconds: 1e-05 s at 8000 Hz is 0.08 samples"),
    "clip shorter than a frame": ({"clip_seconds": 0.01}, "clip_seconds gives 80 samples per clip, fewer than the front end's"),
    "clip not a number": ({"clip_seconds": "1"}, "clip_seconds: must be a positive number of seconds"),
    "front end rate differs": (
        {"frontend": {"sample_rate": 16000}},
        "frontend: sample_rate 16000 differs from the spec's sample_rate",
    ),
    "front end clip differs": (
        {"frontend": {"clip_samples": 4000}},
        "frontend: clip_samples 4000 differs from the spec's clip_seconds",
    ),
    "front end unknown key": ({"frontend": {"bands": 20}}, "frontend: unknown key 'bands'"),
    "front end bad value": ({"frontend": {"upper_hz": 5000}}, "frontend: upper_hz must be at most sample_rate / 2"),
    "front end not an object": ({"frontend": [20]}, "frontend: expected a JSON object of settings"),
    "comment not text": ({"comment": {"licence": "CC0"}}, "comment must be a string (free text)"),
}


@pytest.mark.parametrize("case", sorted(OPTION_REFUSALS))
def test_option_refusals_name_the_spec(tmp_path: Path, case: str, reads: list[str]) -> None:
    changes, message = OPTION_REFUSALS[case]
    source = write_tree(tmp_path / "rec", named_tree(count=2))
    options = {key: value for key, value in {**NAMED, "split": {"test_index_below": 1}, **changes}.items() if value is not None}
    spec = spec_for(tmp_path, source, **options)
    with pytest.raises(InputError, match=re.escape(message)) as err:
        load_dataset(spec)
    assert one_line(err).startswith(str(spec)) and not reads  # refused before any file is read


@pytest.mark.parametrize("container", ["class folders", "flat folder", "tgz"])
def test_a_bare_tree_of_wavs_points_to_a_spec(tmp_path: Path, container: str) -> None:
    if container == "class folders":
        source = write_tree(tmp_path / "words", folder_tree())
    elif container == "flat folder":
        source = write_tree(tmp_path / "words", named_tree(count=1, top=""))
    else:
        source = write_tar(tmp_path / "words.tgz", folder_tree())
    with pytest.raises(InputError, match=r"of WAV files needs a dataset spec file with 'sample_rate': --data FILE.json") as err:
        load_dataset(source)
    text = one_line(err)
    assert text.startswith(f"{source}: ") and ("18 .wav files and no image" in text) == (container != "flat folder")
    minimal = json.loads(re.search(r"holding (\{.*?\}) \(", text).group(1))
    assert minimal == {"audio": source.name, "labels": "folders", "sample_rate": 16000}


# --- the committed specs --------------------------------------------------------------------------


def test_the_committed_fsdd_specs() -> None:
    fsdd = json.loads((REPO / "datasets" / "fsdd.json").read_text())
    theo = json.loads((REPO / "datasets" / "fsdd-theo.json").read_text())
    for spec in (fsdd, theo):
        assert spec["audio"] == "../../shared/data/fsdd/fsdd-recordings.tar.gz"  # the repository's sibling shared/
        assert "Zohar Jackson and contributors" in spec["comment"] and "CC BY-SA 4.0" in spec["comment"]
    options = parse_options({key: value for key, value in fsdd.items() if key not in ("audio", "comment")}, "fsdd.json")
    assert options.labels == PATTERN and options.classes == tuple(str(digit) for digit in range(10))
    assert options.split.describe() == {"test_index_below": 5} and options.frontend == FrontendConfig()
    held_out = parse_options({key: value for key, value in theo.items() if key not in ("audio", "comment")}, "fsdd-theo.json")
    assert held_out.split.describe() == {"test_speakers": ["theo"]} and held_out.frontend == FrontendConfig()


# --- end to end -----------------------------------------------------------------------------------


@pytest.fixture
def tone_spec(tmp_path: Path) -> Path:
    """Three tone classes by four speakers, five recordings each (45 training clips, 15 test clips)."""
    source = write_tar(
        tmp_path / "tones.tgz", named_tree(classes=("low", "mid", "high"), speakers=("ann", "bob", "cy", "dee"), count=5)
    )
    return spec_for(tmp_path, source, **NAMED, split={"test_speakers": ["dee"]})


def test_emulator_runs_a_keras_model_on_an_audio_spec(tmp_path: Path, tone_spec: Path) -> None:
    import tensorflow as tf  # legacy Keras: importing pipeline (above) set it up

    model = tf.keras.Sequential(
        [tf.keras.Input((61, 20, 1)), tf.keras.layers.Flatten(), tf.keras.layers.Dense(3, activation="softmax")]
    )
    h5 = tmp_path / "tones.h5"
    model.save(h5, save_format="h5")
    result = run_module("emulator", h5, "--data", tone_spec, "--backend", "keras")
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "tones.keras.emulate.json").read_text())
    assert report["images"] == 15 and report["data"]["classes"] == ["high", "low", "mid"]
    assert report["data"]["frontend"] == FrontendConfig().to_json() and report["input_shape"] == [61, 20, 1]
    assert list(report["data"]["sha256"]) == ["audio.json", "tones.tgz"]
    wrong = tf.keras.Sequential([tf.keras.Input((61, 20, 1)), tf.keras.layers.Flatten(), tf.keras.layers.Dense(4)])
    wrong.save(tmp_path / "wrong.h5", save_format="h5")
    result = run_module("emulator", tmp_path / "wrong.h5", "--data", tone_spec, "--backend", "keras")
    assert result.returncode == 2 and len(stderr_lines(result)) == 1


def test_kws_bnn_trains_one_epoch_on_an_audio_spec(tmp_path: Path, tone_spec: Path) -> None:
    out = tmp_path / "out"
    result = run_module(
        "train", "--model", "kws_bnn", "--data", tone_spec, "--epochs", "1", "--recipe", "fast", "--out", out, "--quiet"
    )
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "kws_bnn.train.json").read_text())
    assert report["data"]["sha256"]["tones.tgz"] == sha256_file(tone_spec.parent.parent / "tones.tgz")
    assert 0.0 <= report["test_accuracy"] <= 1.0 and (out / "kws_bnn.h5").is_file()


def test_clips_are_tones_a_model_can_tell_apart() -> None:
    """The end-to-end data is learnable: each class's tone puts its energy in its own band."""
    config = FrontendConfig()
    clips = np.stack([fit_clip(tone(400.0 * (c + 1), 9000, 1, 8000), 8000) for c in range(3)])
    peaks = features(clips, config).mean(axis=1).argmax(axis=1)
    assert len(set(peaks.tolist())) == 3
