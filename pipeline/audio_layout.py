"""Which WAV file of a tree is which class, in which split, in which order.

The tree's root and its own ``train/`` and ``test/`` folders follow :mod:`pipeline.tree_layout`
(FSDD's tar, ``fsdd/recordings/*.wav``, is read from inside its one top folder). A clip's label
comes from

* its class folder (``labels: "folders"``): ``[train/|test/]CLASS/.../NAME.wav``, as for images;
  a file outside a class folder, or an empty class folder, is refused;
* or its file name (a pattern such as ``{label}_{speaker}_{index}.wav``,
  :func:`pipeline.wav.label_fields`): files may sit in any folder; a name that does not match is
  refused, naming the file.

Classes are the spec's ``classes`` (a label outside them is refused, naming the file; a class
without any clip is refused) or the distinct labels sorted, numerically when all are decimal
integers (FSDD's ``"0"`` .. ``"9"``), else by code point. Splits: the tree's own folders, or the
spec's rule (:class:`pipeline.audio_options.AudioSplit`); every class needs clips in both, and a
held-out speaker must have clips. Paths that decide the split and the order are relative to the
split's root (``recordings/0_george_5.wav``). The training split comes in
:func:`pipeline.splits.mixed_order` (the trainer validates on its last 10 %: a fixed mix of
classes and speakers, not one of either), the test split class by class, by path within a class.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from pipeline.audio_options import LABEL_FOLDERS, AudioOptions, AudioSplit
from pipeline.errors import InputError
from pipeline.filetree import Listing
from pipeline.splits import SplitRule, mixed_order, split_by_rule
from pipeline.tree_layout import inside, join, split_bases, tree_root
from pipeline.wav import label_fields

__all__ = ["Clip", "AudioLayout", "sort_labels", "plan_audio_layout"]


@dataclass(frozen=True)
class Clip:
    """One WAV file of the dataset.

    Attributes:
        path: its path in the tree (what :attr:`pipeline.filetree.Listing.read` takes).
        label: its class's index.
        speaker: the ``{speaker}`` of its name, or ``None``.
        index: the ``{index}`` of its name, or ``None``.
    """

    path: str
    label: int
    speaker: str | None = None
    index: int | None = None


@dataclass(frozen=True)
class AudioLayout:
    """The classes and each split's clips, in the dataset's order (``x_train[i]`` is ``train[i]``).

    Attributes:
        classes: the class names, label ``i`` named ``classes[i]``.
        train: the training clips, in training order (classes and speakers mixed).
        test: the test clips, class by class, by path within a class.
    """

    classes: tuple[str, ...]
    train: tuple[Clip, ...]
    test: tuple[Clip, ...]


@dataclass(frozen=True)
class _Found:
    """A file before labels are numbered: its tree path, path within its split's root, split, fields."""

    path: str
    rel: str
    side: str | None
    name: str
    speaker: str | None
    index: int | None


def sort_labels(labels: Sequence[str]) -> tuple[str, ...]:
    """Distinct ``labels`` sorted: numerically when every one is a decimal integer, else by code point."""
    distinct = set(labels)
    if all(label.isascii() and label.isdecimal() for label in distinct):
        return tuple(sorted(distinct, key=lambda label: (int(label), label)))
    return tuple(sorted(distinct))


def _find(
    listing: Listing, base: str, side: str | None, options: AudioOptions, where: str, name: Callable[[str], str]
) -> list[_Found]:
    """Every WAV file under ``base`` with its label name (and speaker, index)."""
    found = []
    files = inside(listing.files, base)
    if options.labels == LABEL_FOLDERS:
        holding = {rel.split("/", 1)[0] for rel in files if "/" in rel}
        for folder in sorted(path for path in inside(listing.folders, base) if "/" not in path and path not in holding):
            raise InputError(f"{where}: class folder {join(base, folder)}/ holds no WAV file (.wav); add clips or remove it")
    for rel in files:
        path = join(base, rel)
        if options.labels == LABEL_FOLDERS:
            if "/" not in rel:
                raise InputError(f"{name(path)}: not inside a class folder; put every clip in a folder named after its class")
            found.append(_Found(path, rel, side, rel.split("/", 1)[0], None, None))
        else:
            fields = label_fields(options.labels, name(path))
            found.append(_Found(path, rel, side, fields.label, fields.speaker, fields.index))
    return found


def _classes(found: list[_Found], options: AudioOptions, where: str, name: Callable[[str], str]) -> tuple[str, ...]:
    """The class names: the spec's (every label among them) or the sorted labels."""
    if options.classes is None:
        classes = sort_labels([item.name for item in found])
        if len(classes) < 2:
            raise InputError(f"{where}: only one class ({classes[0]!r}); a classifier needs at least two classes")
        return classes
    known = set(options.classes)
    for item in found:
        if item.name not in known:
            raise InputError(
                f"{name(item.path)}: unknown label {item.name!r}; the spec's classes are {', '.join(options.classes)} "
                "(add it to classes or remove the file)"
            )
    return options.classes


def _sides(found: list[_Found], classes: tuple[str, ...], split: AudioSplit, where: str) -> list[_Found]:
    """``found`` with every file's split decided by the spec's rule (the tree has no own split)."""
    if split.rule == "test_speakers":
        speakers = {item.speaker for item in found}
        for speaker in split.value:
            if speaker not in speakers:
                raise InputError(
                    f"{where}: split: test_speakers names {speaker!r}, who has no clip; the speakers are "
                    f"{', '.join(sorted(str(s) for s in speakers))}"
                )
        return [replace(item, side="test" if item.speaker in split.value else "train") for item in found]
    if split.rule == "test_index_below":
        return [replace(item, side="test" if item.index < split.value else "train") for item in found]
    rule = SplitRule(float(split.value))
    sides: dict[str, str] = {}
    for cls in classes:
        paths = [item.rel for item in found if item.name == cls]
        if paths:
            train, test = split_by_rule(paths, rule, f"{where}: class {cls!r}")
            sides.update({path: "train" for path in train} | {path: "test" for path in test})
    return [replace(item, side=sides[item.rel]) for item in found]


def _check_both_sides(found: list[_Found], classes: tuple[str, ...], where: str, own: bool) -> None:
    """Every class has clips in both splits."""
    tally = Counter((item.name, item.side) for item in found)
    for cls in classes:
        counts = {side: tally[cls, side] for side in ("train", "test")}
        if not counts["train"] and not counts["test"]:
            raise InputError(f"{where}: class {cls!r} of the spec's classes has no clip; remove it from classes or add clips")
        for side, other in (("train", "test"), ("test", "train")):
            if not counts[side]:
                rule = f"none in {side}/" if own else f"none in the {side} split by the spec's split rule"
                raise InputError(
                    f"{where}: class {cls!r} has {counts[other]} clips in the {other} split but {rule}; "
                    "every class needs clips in both (add clips or change the split)"
                )


def plan_audio_layout(listing: Listing, options: AudioOptions, where: str, name: Callable[[str], str]) -> AudioLayout:
    """Read an audio tree's layout (see the module doc).

    Args:
        listing: the tree's ``.wav`` files and folders.
        options: the spec's options (labels, classes, split).
        where: what messages name (the spec file or the source).
        name: how messages name one file of the tree.

    Returns:
        The :class:`AudioLayout`.

    Raises:
        InputError: no WAV file; a file outside a class folder or outside ``train/`` and
            ``test/``; a name that does not match the pattern; an unknown label; an empty class
            folder; fewer than two classes; a class without clips in a split; a held-out speaker
            without clips; a tree without its own split and no rule, or a rule for one with it.
    """
    if not listing.files:
        raise InputError(
            f"{where}: no WAV files (.wav); an audio dataset is a folder or tar of them, a sub-folder per class "
            "or labels in the file names"
        )
    root = tree_root(listing.files, listing.folders)
    bases = split_bases(listing, root, options.split is not None, where, name, stray_hint="move it into one of them")
    if bases is not None:
        found = _find(listing, bases[0], "train", options, where, name) + _find(listing, bases[1], "test", options, where, name)
        classes = _classes(found, options, where, name)
    elif options.split is None:
        raise InputError(
            f"{where}: no train/ and test/ folders and no split rule; add one to the spec, such as "
            '"split": {"test_fraction": 0.1}'
        )
    else:
        found = _find(listing, root, None, options, where, name)
        classes = _classes(found, options, where, name)
        found = _sides(found, classes, options.split, where)
    _check_both_sides(found, classes, where, bases is not None)
    number = {cls: label for label, cls in enumerate(classes)}
    train = [item for item in found if item.side == "train"]
    test = sorted((item for item in found if item.side == "test"), key=lambda item: (number[item.name], item.rel))
    order = mixed_order([item.rel for item in train])

    def clip(item: _Found) -> Clip:
        return Clip(item.path, number[item.name], item.speaker, item.index)

    return AudioLayout(classes, tuple(clip(train[i]) for i in order), tuple(clip(item) for item in test))
