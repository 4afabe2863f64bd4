"""The search space as data: an architecture (:class:`Arch`) and the choices it is drawn from (:class:`SearchSpace`).

An architecture is a sequential binarized CNN as the ``bnn`` engine compiles it today:

* a **stem**: a convolution with ``+-1`` weights on the rescaled pixels (inputs in [-1, 1]),
  optionally followed by a 2x2 max-pool, then batch norm;
* **blocks**: binary convolutions (``+-1`` weights on ``+-1`` inputs), each optionally followed
  by a 2x2 max-pool, then batch norm; ``same`` padding pads with +1 (LCE's one-padding);
* **dense**: hidden binary dense layers (``+-1`` weights and inputs), each followed by batch
  norm, then the dense layer that produces the class scores, batch norm and softmax.

Which layers stay in higher precision is data too. The class-score layer may be ``binary``
(``+-1`` weights: the engine's exact integer scores), ``int8`` (8-bit fixed-point weights,
:class:`train.quantizers.FixedPointWeights`, on the ``+-1`` features: still exact integer
scores, one byte a weight) or ``float`` (float32 weights on the ``+-1`` features: the engine's
float path, 4 bytes a weight and the soft-float code of a core without an FPU;
:data:`SCORES_PRECISIONS`). The stem may be ``binary`` or ``int8``
(:data:`STEM_PRECISIONS`): 8-bit fixed-point weights (:class:`train.quantizers.FixedPointWeights`),
which the engine compiles as an integer convolution on the raw pixels, one byte a weight; its
output is still binarized, so the feature maps stay bits. The blocks' ``precision`` has the one
value ``binary`` (:data:`ENGINE_PRECISIONS`). A float stem is not offered: the engine would keep
float feature maps (26x26x32 floats are 86 KB), which no board of the search fits.

A :class:`SearchSpace` holds the choices; :func:`sample_arch` draws one architecture from an
Optuna trial (categorical parameters with stable names, conditional on the number of blocks and
dense layers). Spaces round-trip through JSON (``--space FILE``).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from pipeline.errors import InputError
from pipeline.json_input import parse_json

__all__ = [
    "PADDINGS",
    "ENGINE_PRECISIONS",
    "STEM_PRECISIONS",
    "SCORES_PRECISIONS",
    "INPUT_SIZE",
    "INPUT_RANGE",
    "MAX_LAYERS",
    "MAX_WIDTH",
    "Conv",
    "Arch",
    "SearchSpace",
    "DEFAULT_SPACE",
    "feature_shapes",
    "shape_problem",
    "sample_arch",
    "load_space",
    "space_from_json",
]

INPUT_RANGE = (-1.0, 1.0)
"""Every candidate rescales raw pixels 0..255 onto this range itself."""
PADDINGS = ("valid", "same")
ENGINE_PRECISIONS = ("binary",)
STEM_PRECISIONS = ("binary", "int8")
SCORES_PRECISIONS = ("binary", "int8", "float")
INPUT_SIZE = 28
"""Default image side: MNIST's 28x28 (:attr:`Arch.input_size` carries a dataset's own height and width)."""
POOL = 2
_TAG_SUFFIX = {"binary": "", "int8": "/i8"}
"""How a layer's weight precision shows in a tag (float class scores: a bare ``f``)."""
MAX_LAYERS = 16
"""Most blocks, and most hidden dense layers, a space may list (every layer is a few sampled parameters)."""
MAX_WIDTH = 4096
"""Widest channel count or dense width a space may list (4096 x 4096 binary weights are 2 MiB)."""


@dataclass(frozen=True)
class Conv:
    """One convolution layer of an architecture.

    Attributes:
        channels: output channels.
        kernel: square kernel size.
        padding: ``valid`` or ``same`` (stride 1).
        pool: a 2x2 max-pool with stride 2 follows (the engine fuses it into the thresholds).
        precision: ``binary``; a stem may also be ``int8`` (:data:`STEM_PRECISIONS`).
    """

    channels: int
    kernel: int
    padding: str = "valid"
    pool: bool = False
    precision: str = "binary"

    def tag(self) -> str:
        """Short text: ``64k3v`` (64 channels, 3x3, valid), ``+p`` when pooled, ``/i8`` for 8-bit weights."""
        precision = _TAG_SUFFIX.get(self.precision, f"/{self.precision}")
        return f"{self.channels}k{self.kernel}{self.padding[0]}{'+p' if self.pool else ''}{precision}"


@dataclass(frozen=True)
class Arch:
    """A candidate architecture (see the module docstring).

    Attributes:
        stem: the first convolution, on pixels.
        blocks: the binary convolutions after it.
        dense: widths of the hidden binary dense layers (may be empty).
        classes: number of class scores.
        scores: precision of the class-score layer, one of :data:`SCORES_PRECISIONS`.
        input_size: height and width of the 8-bit images it takes (the dataset's).
        input_channels: channels of those images (1: grey, 3: colour); not part of the tag, like
            the input size (one search has one dataset).
    """

    stem: Conv
    blocks: tuple[Conv, ...]
    dense: tuple[int, ...] = ()
    classes: int = 10
    scores: str = "binary"
    input_size: tuple[int, int] = (INPUT_SIZE, INPUT_SIZE)
    input_channels: int = 1

    def tag(self) -> str:
        """One line naming every layer: ``c32k3v+p b64k3v+p b64k3v d64 10`` (``10f``: float scores,
        ``10/i8``: 8-bit score weights; ``c32k3v+p/i8``: an 8-bit stem)."""
        parts = [f"c{self.stem.tag()}", *(f"b{block.tag()}" for block in self.blocks), *(f"d{w}" for w in self.dense)]
        suffix = "f" if self.scores == "float" else _TAG_SUFFIX.get(self.scores, f"/{self.scores}")
        return " ".join([*parts, f"{self.classes}{suffix}"])

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict (the inverse of :meth:`from_json`)."""
        return {
            "stem": asdict(self.stem),
            "blocks": [asdict(block) for block in self.blocks],
            "dense": list(self.dense),
            "classes": self.classes,
            "scores": self.scores,
            "input_size": list(self.input_size),
            "input_channels": self.input_channels,
        }

    @staticmethod
    def from_json(data: dict[str, Any]) -> Arch:
        """Rebuild an architecture from :meth:`to_json`'s dict.

        Raises:
            InputError: missing or malformed fields.
        """
        try:
            return Arch(
                stem=Conv(**data["stem"]),
                blocks=tuple(Conv(**block) for block in data["blocks"]),
                dense=tuple(int(w) for w in data.get("dense", ())),
                classes=int(data.get("classes", 10)),
                scores=str(data.get("scores", "binary")),
                input_size=_pair(data.get("input_size", (INPUT_SIZE, INPUT_SIZE))),
                input_channels=_count(data.get("input_channels", 1)),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise InputError(f"not an architecture description: {err}") from None


def _pair(value: Any) -> tuple[int, int]:
    """``[h, w]`` as a tuple of two ints (``ValueError`` otherwise)."""
    height, width = value
    if isinstance(height, bool) or isinstance(width, bool) or not isinstance(height, int) or not isinstance(width, int):
        raise ValueError(f"input_size must be two integers, got {value!r}")
    return height, width


def _count(value: Any) -> int:
    """A positive int (``ValueError`` otherwise)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"input_channels must be a positive integer, got {value!r}")
    return value


def _conv_size(size: int, conv: Conv) -> int:
    """One side after the convolution, before its pool."""
    return size if conv.padding == "same" else size - conv.kernel + 1


def _out_size(size: int, conv: Conv) -> int:
    conv_size = _conv_size(size, conv)
    return conv_size // POOL if conv.pool else conv_size


def feature_shapes(arch: Arch) -> list[tuple[int, int, int]]:
    """Height, width and channels after every convolution (pooling included): ``[(13, 13, 32), ...]``.

    Sizes can reach 0 or below for an impossible architecture; :func:`shape_problem` says so.
    """
    shapes = []
    height, width = arch.input_size
    for conv in (arch.stem, *arch.blocks):
        height, width = _out_size(height, conv), _out_size(width, conv)
        shapes.append((height, width, conv.channels))
    return shapes


def shape_problem(arch: Arch) -> str | None:
    """Why ``arch`` cannot be built on its ``input_size`` images, or ``None`` when it can."""
    height, width = arch.input_size
    if min(height, width) < 1:
        return f"input size {height}x{width}: both sides must be >= 1"
    if arch.input_channels < 1:
        return f"input channels {arch.input_channels}: must be >= 1"
    for index, conv in enumerate((arch.stem, *arch.blocks)):
        if conv.padding not in PADDINGS:
            return f"layer {index}: padding {conv.padding!r} is not one of {', '.join(PADDINGS)}"
        allowed = STEM_PRECISIONS if index == 0 else ENGINE_PRECISIONS
        if conv.precision not in allowed:
            return f"layer {index}: precision {conv.precision!r} is not compiled by the bnn engine ({', '.join(allowed)})"
        if conv.channels < 1 or conv.kernel < 1:
            return f"layer {index}: channels and kernel must be >= 1"
        conv_h, conv_w = _conv_size(height, conv), _conv_size(width, conv)
        if min(conv_h, conv_w) < 1:
            return f"layer {index}: a {conv.kernel}x{conv.kernel} kernel does not fit a {height}x{width} input"
        if conv.pool and min(conv_h, conv_w) < POOL:
            return f"layer {index}: nothing left to pool ({conv_h}x{conv_w})"
        height, width = _out_size(height, conv), _out_size(width, conv)
    if any(width < 1 for width in arch.dense) or arch.classes < 2:
        return "dense widths must be >= 1 and classes >= 2"
    if arch.scores not in SCORES_PRECISIONS:
        return f"class scores: precision {arch.scores!r} is not one of {', '.join(SCORES_PRECISIONS)}"
    return None


@dataclass(frozen=True)
class SearchSpace:
    """The choices an architecture is drawn from (every field a tuple of allowed values).

    The defaults are sized for boards from 16 KiB of flash upward: the seed BCNN (stem 32 3x3,
    blocks 64 3x3 and 64 3x3, dense 64) is one point of it. Both score precisions are listed: float
    scores won the 64 KiB search (``docs/search/stm32f103c8``), and on a smaller board the
    candidates they push over budget are pruned before training.
    """

    stem_channels: tuple[int, ...] = (16, 24, 32, 48, 64)
    stem_kernels: tuple[int, ...] = (3, 5)
    stem_paddings: tuple[str, ...] = ("valid", "same")
    stem_pools: tuple[bool, ...] = (True, False)
    blocks: tuple[int, ...] = (1, 2, 3)
    block_channels: tuple[int, ...] = (32, 48, 64, 96, 128)
    block_kernels: tuple[int, ...] = (3,)
    block_paddings: tuple[str, ...] = ("valid", "same")
    block_pools: tuple[bool, ...] = (True, False)
    dense_layers: tuple[int, ...] = (0, 1, 2)
    dense_widths: tuple[int, ...] = (32, 64, 128)
    precisions: tuple[str, ...] = field(default=ENGINE_PRECISIONS)
    stem_precisions: tuple[str, ...] = STEM_PRECISIONS
    scores_precisions: tuple[str, ...] = SCORES_PRECISIONS

    def __post_init__(self) -> None:
        for item in fields(self):
            values = getattr(self, item.name)
            if not isinstance(values, tuple) or not values:
                raise InputError(f"search space: {item.name} must be a non-empty list")
            odd = [v for v in values if not isinstance(v, (bool, int, float, str))]
            if odd:  # a nested list or object (unhashable), or null
                raise InputError(f"search space: {item.name} must list numbers, strings or true/false, got {odd[0]!r:.60}")
            if len(set(values)) != len(values):
                raise InputError(f"search space: {item.name} lists a value twice: {list(values)}")
        for name in ("stem_channels", "stem_kernels", "block_channels", "block_kernels", "dense_widths"):
            values = getattr(self, name)
            if any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in values):
                raise InputError(f"search space: {name} must be positive integers, got {list(values)}")
            if max(values) > MAX_WIDTH:
                raise InputError(f"search space: {name} must be at most {MAX_WIDTH}, got {max(values)}")
        for name in ("blocks", "dense_layers"):
            values = getattr(self, name)
            if any(isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in values):
                raise InputError(f"search space: {name} must be integers >= 0, got {list(values)}")
            if max(values) > MAX_LAYERS:
                raise InputError(f"search space: {name} must be at most {MAX_LAYERS}, got {max(values)}")
        for name in ("stem_paddings", "block_paddings"):
            if any(v not in PADDINGS for v in getattr(self, name)):
                raise InputError(f"search space: {name} must be among {list(PADDINGS)}, got {list(getattr(self, name))}")
        for name in ("stem_pools", "block_pools"):
            if any(not isinstance(v, bool) for v in getattr(self, name)):
                raise InputError(f"search space: {name} must be true/false, got {list(getattr(self, name))}")
        unknown = [p for p in self.precisions if p not in ENGINE_PRECISIONS]
        if unknown:
            raise InputError(f"search space: precisions {unknown} are not compiled by the bnn engine ({list(ENGINE_PRECISIONS)})")
        unknown = [p for p in self.stem_precisions if p not in STEM_PRECISIONS]
        if unknown:
            raise InputError(f"search space: stem_precisions {unknown} must be among {list(STEM_PRECISIONS)}")
        unknown = [p for p in self.scores_precisions if p not in SCORES_PRECISIONS]
        if unknown:
            raise InputError(f"search space: scores_precisions {unknown} must be among {list(SCORES_PRECISIONS)}")

    def to_json(self) -> dict[str, list[Any]]:
        """JSON-ready dict of lists (the format of ``--space FILE``)."""
        return {item.name: list(getattr(self, item.name)) for item in fields(self)}


DEFAULT_SPACE = SearchSpace()


def space_from_json(data: Any) -> SearchSpace:
    """A :class:`SearchSpace` from a dict of lists; missing keys keep the defaults.

    Raises:
        InputError: not a dict, an unknown key, or invalid values.
    """
    if not isinstance(data, dict):
        raise InputError(f"search space: expected a JSON object of lists, got {type(data).__name__}")
    known = {item.name for item in fields(SearchSpace)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise InputError(f"search space: unknown keys {unknown} (known: {', '.join(sorted(known))})")
    values = {}
    for key, value in data.items():
        if not isinstance(value, list):
            raise InputError(f"search space: {key} must be a list, got {value!r}")
        values[key] = tuple(value)
    return SearchSpace(**values)


def load_space(path: str | os.PathLike[str] | None) -> SearchSpace:
    """The space in a JSON file, or :data:`DEFAULT_SPACE` for ``None``.

    Raises:
        InputError: unreadable file, invalid JSON or an invalid space.
    """
    if path is None:
        return DEFAULT_SPACE
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise InputError(f"--space {path}: {err.strerror or err}") from None
    try:
        data = parse_json(text)
    except ValueError as err:  # not JSON, or nested too deep
        raise InputError(f"--space {path}: not valid JSON ({err})") from None
    try:
        return space_from_json(data)
    except InputError as err:
        raise InputError(f"--space {path}: {err}") from None


def _pick(trial: Any, name: str, choices: tuple[Any, ...]) -> Any:
    """One categorical draw (a single choice is still recorded, so every trial names its layers)."""
    return trial.suggest_categorical(name, list(choices))


def sample_arch(
    trial: Any,
    space: SearchSpace,
    *,
    classes: int = 10,
    input_size: tuple[int, int] = (INPUT_SIZE, INPUT_SIZE),
    input_channels: int = 1,
) -> Arch:
    """Draw an architecture from an Optuna trial.

    Parameter names are stable (``stem_channels``, ``block1_channels``, ``dense2_width``, ...),
    so trials of one study share them and the sampler can learn across trials.

    Args:
        trial: an ``optuna.Trial`` (anything with ``suggest_categorical``).
        space: the choices.
        classes: the dataset's class count.
        input_size: the dataset's image height and width.
        input_channels: the dataset's channel count (1 grey, 3 colour).

    Returns:
        The architecture (possibly impossible: check :func:`shape_problem`).
    """
    precision = _pick(trial, "precision", space.precisions)
    stem = Conv(
        channels=_pick(trial, "stem_channels", space.stem_channels),
        kernel=_pick(trial, "stem_kernel", space.stem_kernels),
        padding=_pick(trial, "stem_padding", space.stem_paddings),
        pool=_pick(trial, "stem_pool", space.stem_pools),
        precision=_pick(trial, "stem_precision", space.stem_precisions),
    )
    blocks = []
    for index in range(1, _pick(trial, "blocks", space.blocks) + 1):
        blocks.append(
            Conv(
                channels=_pick(trial, f"block{index}_channels", space.block_channels),
                kernel=_pick(trial, f"block{index}_kernel", space.block_kernels),
                padding=_pick(trial, f"block{index}_padding", space.block_paddings),
                pool=_pick(trial, f"block{index}_pool", space.block_pools),
                precision=precision,
            )
        )
    dense = tuple(
        _pick(trial, f"dense{index}_width", space.dense_widths)
        for index in range(1, _pick(trial, "dense_layers", space.dense_layers) + 1)
    )
    scores = _pick(trial, "scores_precision", space.scores_precisions)
    return Arch(
        stem=stem,
        blocks=tuple(blocks),
        dense=dense,
        classes=classes,
        scores=scores,
        input_size=input_size,
        input_channels=input_channels,
    )
