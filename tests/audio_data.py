"""A small synthetic keyword task for the audio firmware tests: tones and chirps, a quick front end, tiny models.

Four classes of one-quarter-second clips at 8 kHz (:data:`CONFIG`: 128-sample frames every 64
samples, 16 mel bands, so 31 x 16 features): a low tone, a high tone, a rising chirp and a falling
chirp, each at a random level, onset, length and pitch, over noise. :func:`write_audio_source`
writes them as WAV files (``train/CLASS/NNNN.wav``, ``test/CLASS/NNNN.wav``) with a dataset spec,
the ``--data`` every stage takes (the ``audio`` dataset kind, :mod:`pipeline.audio`), and
:func:`write_spec` another spec for the same files (another front end). :func:`train_kws_bnn` trains a
narrow ``kws_bnn`` for two epochs (half a minute on two shared cores) and :func:`train_ds_cnn` a
narrow DS-CNN.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from pipeline.dataset import Dataset
from pipeline.frontend import FrontendConfig

__all__ = [
    "CONFIG",
    "CLASSES",
    "synthetic_clip",
    "synthetic_clips",
    "train_kws_bnn",
    "untrained_kws_bnn",
    "untrained_ds_cnn",
    "train_ds_cnn",
    "write_audio_source",
    "write_spec",
]

CONFIG = FrontendConfig(clip_samples=2048, frame_length=128, hop=64, channels=16, lower_hz=100, upper_hz=3800)
CLASSES = ("low", "high", "up", "down")


def synthetic_clip(label: int, rng: np.random.Generator, config: FrontendConfig = CONFIG) -> np.ndarray:
    """One int16 clip of class ``label`` (see the module docstring), ``config.clip_samples`` long."""
    rate, length = config.sample_rate, config.clip_samples
    n = np.arange(length) / rate
    if label == 0:
        hz = np.full(length, rng.uniform(250, 500))
    elif label == 1:
        hz = np.full(length, rng.uniform(1500, 2500))
    else:
        low, high = rng.uniform(250, 450), rng.uniform(2000, 3000)
        start, end = (low, high) if label == 2 else (high, low)
        hz = start + (end - start) * n / n[-1]
    phase = 2 * np.pi * np.cumsum(hz) / rate + rng.uniform(0, 2 * np.pi)
    level = 10 ** rng.uniform(-2.5, -0.2) * 32767
    onset = int(rng.integers(0, length // 8))
    span = int(rng.integers(length // 2, length - onset))
    envelope = np.zeros(length)
    envelope[onset : onset + span] = np.hanning(span) ** 0.3
    noise = rng.normal(0, level * rng.uniform(0.01, 0.2), length)
    return np.clip(np.round(level * envelope * np.sin(phase) + noise), -32768, 32767).astype(np.int16)


def synthetic_clips(count: int, seed: int, config: FrontendConfig = CONFIG) -> tuple[np.ndarray, np.ndarray]:
    """``count`` clips ``(count, clip_samples)`` int16 and their labels, classes in turn."""
    rng = np.random.default_rng(seed)
    labels = np.arange(count) % len(CLASSES)
    return np.stack([synthetic_clip(int(label), rng, config) for label in labels]), labels.astype(np.int64)


def untrained_kws_bnn(config: FrontendConfig = CONFIG, classes: int = len(CLASSES), *, seed: int = 0):
    """A narrow ``kws_bnn`` (stem 8, blocks 16 and 16) for ``config``'s features, not trained."""
    import tensorflow as tf

    from train.audio_models import build_kws_bnn

    tf.keras.utils.set_random_seed(seed)
    return build_kws_bnn((*config.feature_shape, 1), classes, stem=8, blocks=(16, 16))


def train_kws_bnn(dataset: Dataset, epochs: int = 2, seed: int = 1):
    """:func:`untrained_kws_bnn` trained on ``dataset`` for ``epochs`` (Adam, batch 32, batch-norm momentum 0.8)."""
    import tensorflow as tf

    model = untrained_kws_bnn(FrontendConfig.from_json(dataset.frontend), dataset.num_classes, seed=seed)
    for layer in model.layers:  # a few dozen steps: let the moving statistics follow the batches
        if isinstance(layer, tf.keras.layers.BatchNormalization):
            layer.momentum = 0.8
    model.compile(optimizer=tf.keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(dataset.x_train.astype(np.float32), dataset.y_train, epochs=epochs, batch_size=32, verbose=0)
    return model


def train_ds_cnn(dataset: Dataset, epochs: int = 3, seed: int = 3, filters: int = 16):
    """:func:`untrained_ds_cnn` with ``filters`` channels trained on ``dataset`` (Adam 0.003, batch 16, batch-norm
    momentum 0.8): about 75 % on the test clips after three epochs."""
    import tensorflow as tf

    model = untrained_ds_cnn(FrontendConfig.from_json(dataset.frontend), dataset.num_classes, filters=filters, seed=seed)
    for layer in model.layers:
        if isinstance(layer, tf.keras.layers.BatchNormalization):
            layer.momentum = 0.8
    model.compile(optimizer=tf.keras.optimizers.Adam(0.003), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(dataset.x_train.astype(np.float32), dataset.y_train, epochs=epochs, batch_size=16, verbose=0)
    return model


def untrained_ds_cnn(config: FrontendConfig = CONFIG, classes: int = len(CLASSES), *, filters: int = 8, seed: int = 0):
    """A narrow DS-CNN (``filters`` channels) for ``config``'s features, not trained."""
    import tensorflow as tf

    from train.audio_models import build_ds_cnn

    tf.keras.utils.set_random_seed(seed)
    return build_ds_cnn((*config.feature_shape, 1), classes, filters=filters)


def write_spec(path: Path, config: FrontendConfig = CONFIG, clips: str = "clips") -> Path:
    """A dataset spec at ``path`` for the WAV tree ``clips`` (beside it) through front end ``config``."""
    settings = {key: value for key, value in config.to_json().items() if key not in ("sample_rate", "clip_samples")}
    spec = {
        "audio": clips,
        "classes": list(CLASSES),
        "sample_rate": config.sample_rate,
        "clip_seconds": config.clip_samples / config.sample_rate,
        "frontend": settings,
    }
    path.write_text(json.dumps(spec, indent=2) + "\n")
    return path


def write_audio_source(root: Path, train: int = 480, test: int = 48, config: FrontendConfig = CONFIG) -> Path:
    """The task as WAV files under ``root/clips`` and its spec ``root/kws.json`` (returned)."""
    from audio_trees import fmt_body, wav_bytes

    for split, (count, seed) in (("train", (train, 1)), ("test", (test, 2))):
        clips, labels = synthetic_clips(count, seed, config)
        for index, (clip, label) in enumerate(zip(clips, labels, strict=True)):
            path = root / "clips" / split / CLASSES[label] / f"{index:04d}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(wav_bytes(clip, fmt=fmt_body(rate=config.sample_rate)))
    return write_spec(root / "kws.json", config)
