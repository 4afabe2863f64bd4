"""Audio datasets: a folder or tar of WAV files, turned into the audio front end's features.

A dataset spec (:mod:`pipeline.dataspec`) names the source and its options, for example FSDD::

    {"audio": "fsdd-recordings.tar.gz", "labels": "{label}_{speaker}_{index}.wav",
     "split": {"test_index_below": 5}, "sample_rate": 8000}

The options and their rules are :mod:`pipeline.audio_options`'s; which file is which class,
split and position, :mod:`pipeline.audio_layout`'s; the tree (a folder, or a ``.tar``,
``.tar.gz`` or ``.tgz`` read member by member, never unpacked, with its safety checks and
digest) :mod:`pipeline.filetree`'s. A bare folder or tar of WAV files has no sample rate, so
``--data`` without a spec is refused with one line showing the minimal spec.

Every file is read by :func:`pipeline.wav.read_wav` (mono 16-bit PCM at ``sample_rate``, or
resampled when the spec asks), padded with zeros at the end or cut to the front end's
``clip_samples`` (:func:`pipeline.wav.fit_clip`), and the clips go through
:func:`pipeline.frontend.features`. The :class:`~pipeline.dataset.Dataset` holds the features as
uint8 ``(frames, channels, 1)`` examples (what the zoo's ``kws_bnn`` and ``ds_cnn`` take), the
int16 clips in ``raw_train`` and ``raw_test`` (in the examples' order: what firmware with the
front end on the chip is fed), the front end's config in ``frontend`` and the class names.
Per-clip speakers and recording numbers are not Dataset fields: :func:`read_clip_layout` gives
them, in the same order.

Clips and features are cached (:mod:`pipeline.datacache`) under a key made of the source's
digest, the options that shape the arrays (labels, classes, split, resampling, the front end's
sha256, which covers the sample rate and clip length), the code that computes them
(:func:`code_digest`) and :data:`FORMAT_VERSION`: the next run with the same source and options
reads the cache and reads no WAV file.
"""

from __future__ import annotations

import hashlib
import importlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from pipeline.audio_layout import AudioLayout, Clip, plan_audio_layout
from pipeline.audio_options import OPTIONAL, REQUIRED, AudioOptions, parse_options
from pipeline.datacache import CachedArrays, cache_key, load_or_build
from pipeline.dataset import Dataset
from pipeline.dataspec import DataSpec, Kind, read_spec
from pipeline.errors import InputError
from pipeline.filetree import FileTree, open_tree
from pipeline.frontend import features
from pipeline.wav import fit_clip, read_wav

__all__ = ["EXTENSIONS", "FORMAT_VERSION", "KIND", "code_digest", "decode_clips", "load_audio", "read_clip_layout"]

# Raise when the arrays written for the same source, options and code change (layout, order).
FORMAT_VERSION = 1
EXTENSIONS = (".wav",)
# The modules whose code decides the clips and features (their source is part of the cache key).
_CODE = ("pipeline.wav", "pipeline.frontend.compute", "pipeline.frontend.tables", "pipeline.frontend.config")


def code_digest() -> str:
    """Hex sha256 of the WAV reader's and the front end's source: a change to either makes new cache entries.

    Resampling uses SciPy, whose version is part of the key when the spec resamples.
    """
    digest = hashlib.sha256()
    for module in _CODE:
        digest.update(module.encode() + b"\0" + Path(importlib.import_module(module).__file__).read_bytes())
    return digest.hexdigest()


def decode_clips(
    clips: Sequence[Clip], read: Callable[[str], bytes], name: Callable[[str], str], options: AudioOptions
) -> np.ndarray:
    """Read ``clips`` in order into one int16 ``(N, clip_samples)`` array.

    Args:
        clips: the files (at least one), as ``read`` and ``name`` take their paths.
        read: a file's bytes.
        name: how messages name a file.
        options: the sample rate, resampling and clip length.

    Returns:
        The clips, padded with zeros at the end or cut.

    Raises:
        InputError: a file :func:`pipeline.wav.read_wav` refuses (one line naming it).
    """
    out = np.empty((len(clips), options.clip_samples), dtype=np.int16)
    for row, clip in enumerate(clips):
        samples = read_wav(read(clip.path), name(clip.path), sample_rate=options.sample_rate, resample=options.resample)
        out[row] = fit_clip(samples, options.clip_samples)
    return out


def _build(tree: FileTree, options: AudioOptions, where: str) -> CachedArrays:
    """Read the tree, lay it out, read every clip and compute its features (what the cache spares later runs)."""
    listing = tree.listing()
    layout = plan_audio_layout(listing, options, where, tree.name)
    clips = decode_clips((*layout.train, *layout.test), listing.read, tree.name, options)
    examples = features(clips, options.frontend)[..., None]
    label_dtype = np.min_scalar_type(len(layout.classes) - 1)
    count = len(layout.train)
    return CachedArrays(
        examples[:count],
        np.asarray([clip.label for clip in layout.train], dtype=label_dtype),
        examples[count:],
        np.asarray([clip.label for clip in layout.test], dtype=label_dtype),
        layout.classes,
        clips[:count],
        clips[count:],
    )


def _key(tree: FileTree, options: AudioOptions) -> str:
    described = {**options.describe(), "code": code_digest()}
    if options.resample:
        import scipy

        described["resampler"] = f"scipy {scipy.__version__}"
    return cache_key(KIND.key, FORMAT_VERSION, tree.digest(), described)


def load_audio(spec: DataSpec) -> Dataset:
    """Load an audio dataset, from the cache when it holds it (see the module doc).

    Args:
        spec: kind ``audio``; its source a folder or a tar archive of WAV files; its options
            those of :mod:`pipeline.audio_options`.

    Returns:
        The :class:`~pipeline.dataset.Dataset`: uint8 ``(frames, channels, 1)`` features, the
        int16 clips in ``raw_train``/``raw_test``, the front end's JSON in ``frontend``, the class
        names, ``sha256`` naming the spec file and the source (the archive's sha256, or
        ``FOLDER/`` -> its tree digest).

    Raises:
        InputError: a bad option, a bad layout, a WAV file that is refused, a corrupt or unsafe
            archive (one line each).
    """
    options = parse_options(spec.options, spec.where)
    tree = open_tree(spec.source, EXTENSIONS)
    cached = load_or_build(KIND.key, _key(tree, options), lambda: _build(tree, options, spec.where))
    return cached.to_dataset(spec.where, spec.sha256(tree.sha256_entry()), options.frontend.to_json())


def read_clip_layout(path: str | os.PathLike[str]) -> AudioLayout:
    """The clips of an audio spec's dataset, in the Dataset's order, with their speakers and numbers.

    Reads the tree's listing again (no WAV is decoded): ``layout.test[i]`` is the file of
    ``x_test[i]``, with its ``speaker`` and ``index`` (per-speaker figures, a held-out speaker).

    Args:
        path: the spec file.

    Returns:
        The :class:`~pipeline.audio_layout.AudioLayout`.

    Raises:
        InputError: the spec is not of kind ``audio``, or what :func:`load_audio` refuses about the layout.
    """
    spec = read_spec(path)
    if spec.kind != KIND.key:
        raise InputError(f"{spec.where}: a spec of kind {spec.kind!r}; clip layouts are for {KIND.key!r} specs")
    options = parse_options(spec.options, spec.where)
    tree = open_tree(spec.source, EXTENSIONS)
    return plan_audio_layout(tree.listing(), options, spec.where, tree.name)


KIND = Kind(
    key="audio",
    what="a folder (or .tar, .tar.gz, .tgz) of WAV files",
    load=load_audio,
    required=REQUIRED,
    optional=OPTIONAL,
    example={"labels": "folders", "sample_rate": 16000},
    hint=(
        'sample_rate is your files\' rate in Hz; labels "folders" reads a sub-folder per class, or give a file-name '
        'pattern such as "{label}_{speaker}_{index}.wav"; a tree without train/ and test/ folders also needs "split", '
        'such as {"test_fraction": 0.1}'
    ),
)
