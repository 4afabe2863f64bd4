"""Which file of an image tree is which class, in which split, in which order.

The layout (README, "Datasets"): a sub-folder per class, named after the class. Either

* ``train/CLASS/...`` and ``test/CLASS/...``, with the same classes in both; or
* ``CLASS/...`` only, split by the spec's rule (:func:`pipeline.splits.split_by_rule`).

Either may sit at the top of the tree or under ONE top folder (a tree whose top holds a single
folder and no image is read from inside it: ``cifar10/train/cat/0001.jpg``; the rules every
dataset tree shares are :mod:`pipeline.tree_layout`'s). Images deeper in a
class folder belong to that class. Class names are the folder names, sorted (by code point);
a label is the index of its class in that order. The training split comes in
:func:`pipeline.splits.mixed_order` (a fixed mix of every class), the test split class by
class, each class's files by name. Paths that decide the split and the order are relative to
the split's root (``cat/0001.jpg``), so renaming the top folder changes neither.

Refused, each with one line: no image at all; one of ``train/`` and ``test/`` without the other;
a split rule for a tree that has them, or none for a tree without them; an image outside the
class folders; an empty class folder; a class in one split only; fewer than two classes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pipeline.errors import InputError
from pipeline.filetree import Listing
from pipeline.splits import SplitRule, mixed_order, split_by_rule
from pipeline.tree_layout import SPLITS, inside, join, split_bases, tree_root

__all__ = ["SPLITS", "Layout", "plan_layout"]


@dataclass(frozen=True)
class Layout:
    """An image tree's classes and the files of each split, in the order they are decoded.

    Attributes:
        classes: the class names, sorted.
        train: tree paths of the training images, in training order (classes mixed).
        train_labels: their labels.
        test: tree paths of the test images, class by class, by name within a class.
        test_labels: their labels.
    """

    classes: tuple[str, ...]
    train: tuple[str, ...]
    train_labels: tuple[int, ...]
    test: tuple[str, ...]
    test_labels: tuple[int, ...]


def _classes(listing: Listing, base: str, where: str, name: Callable[[str], str]) -> dict[str, list[str]]:
    """Class folder -> its images (paths relative to ``base``, sorted), checked."""
    files = inside(listing.files, base)
    stray = [path for path in files if "/" not in path]
    if stray:
        raise InputError(
            f"{name(join(base, stray[0]))}: not inside a class folder; put every image in a folder named after its class"
        )
    classes: dict[str, list[str]] = {path: [] for path in inside(listing.folders, base) if "/" not in path}
    for path in files:
        classes.setdefault(path.split("/", 1)[0], []).append(path)
    for cls, paths in sorted(classes.items()):
        if not paths:
            raise InputError(
                f"{where}: class folder {join(base, cls)}/ holds no image (.png, .jpg or .jpeg); add images or remove it"
            )
    if len(classes) < 2:
        raise InputError(
            f"{where}: only one class folder ({join(base, next(iter(classes)))}/); a classifier needs at least two classes"
        )
    return dict(sorted(classes.items()))


def _labels(classes: dict[str, list[str]], names: tuple[str, ...]) -> tuple[list[str], list[int]]:
    paths = [path for cls in names for path in classes[cls]]
    labels = [label for label, cls in enumerate(names) for _ in classes[cls]]
    return paths, labels


def plan_layout(listing: Listing, split: SplitRule | None, where: str, name: Callable[[str], str]) -> Layout:
    """Read an image tree's layout (see the module doc).

    Args:
        listing: the tree's image files and folders.
        split: the spec's split rule, or ``None``.
        where: what messages name (the spec file or the source).
        name: how messages name one file of the tree.

    Returns:
        The :class:`Layout`.

    Raises:
        InputError: one line for each refusal of the module doc.
    """
    if not listing.files:
        raise InputError(
            f"{where}: no images (.png, .jpg or .jpeg files); an image dataset is a folder per class, "
            "with train/ and test/ folders or a split rule in a dataset spec"
        )
    root = tree_root(listing.files, listing.folders)
    bases = split_bases(listing, root, split is not None, where, name, stray_hint="move it into a class folder of one of them")
    if bases is not None:
        train = _classes(listing, bases[0], where, name)
        test = _classes(listing, bases[1], where, name)
        for cls in sorted(set(train) ^ set(test)):
            has, lacks = ("train", "test") if cls in train else ("test", "train")
            raise InputError(
                f"{where}: class {cls!r} has a folder in {has}/ but none in {lacks}/; both splits need the same classes"
            )
    else:
        if split is None:
            raise InputError(
                f"{where}: no train/ and test/ folders; split it with a dataset spec, --data SPEC.json holding "
                f'{{"images": "PATH", "split": {{"test_fraction": 0.2}}}}'
            )
        classes = _classes(listing, root, where, name)
        train, test = {}, {}
        for cls, paths in classes.items():
            train[cls], test[cls] = split_by_rule(paths, split, f"{where}: class {cls!r}")
        bases = (root, root)
    names = tuple(train)
    train_paths, train_labels = _labels(train, names)
    test_paths, test_labels = _labels(test, names)
    order = mixed_order(train_paths)
    return Layout(
        names,
        tuple(join(bases[0], train_paths[i]) for i in order),
        tuple(train_labels[i] for i in order),
        tuple(join(bases[1], path) for path in test_paths),
        tuple(test_labels),
    )
