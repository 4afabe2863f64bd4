"""Stable train/test split rules and the training order, both decided by hashes of file paths.

A dataset read from files (image trees, audio clips) without its own ``train/`` and ``test/``
folders is split by a rule stated in its spec file (``"split": {"test_fraction": 0.2}``): a
file goes to the test split when the hash of its path, :func:`split_share`, falls under the
fraction. The decision depends on the file's path alone, so adding or removing files never
moves another file from one split to the other, and every machine splits alike.

The trainer holds out the *last* part of ``x_train`` as its validation split, so training
examples must not come grouped by class: :func:`mixed_order` orders them by another hash of
their paths, a fixed mix of every class that does not depend on which other files exist.

Both hashes are the first 8 bytes of ``sha256(TAG + "\\0" + path)`` (UTF-8, ``/``-separated
path relative to the split's root, e.g. ``cat/0001.png``) read as a big-endian integer and
divided by 2**64, with TAG ``split`` for the split and ``order`` for the order.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pipeline.dataspec import check_keys
from pipeline.errors import InputError

__all__ = ["SPLIT_KEYS", "SplitRule", "parse_split", "split_share", "order_share", "mixed_order", "split_by_rule"]

# The keys a "split" object of a dataset spec takes.
SPLIT_KEYS = ("test_fraction",)


@dataclass(frozen=True)
class SplitRule:
    """How a tree without ``train/`` and ``test/`` folders is split.

    Attributes:
        test_fraction: the share of each class's files that go to the test split, in (0, 1).
    """

    test_fraction: float

    def describe(self) -> dict[str, Any]:
        """JSON-ready form (the spec's ``split`` object), for cache keys and reports."""
        return {"test_fraction": self.test_fraction}


def parse_split(value: Any, where: str) -> SplitRule:
    """Read a spec's ``split`` object, strictly.

    Args:
        value: the parsed JSON value of the ``split`` key.
        where: what messages name (``SPEC.json: split``).

    Returns:
        The :class:`SplitRule`.

    Raises:
        InputError: not an object, an unknown or missing key, or a fraction outside (0, 1).
    """
    if not isinstance(value, Mapping):
        raise InputError(f'{where}: must be an object such as {{"test_fraction": 0.2}}, got {type(value).__name__}')
    check_keys(value, where, required=SPLIT_KEYS)
    fraction = value["test_fraction"]
    number = isinstance(fraction, (int, float)) and not isinstance(fraction, bool)
    if not number or not 0 < fraction < 1:  # NaN fails the comparison too
        raise InputError(f"{where}: test_fraction must be a number between 0 and 1 (exclusive), got {fraction!r}")
    return SplitRule(float(fraction))


def _share(tag: bytes, path: str) -> float:
    digest = hashlib.sha256(tag + b"\0" + path.encode("utf-8", "surrogateescape")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def split_share(path: str) -> float:
    """Where ``path`` falls in [0, 1) for the split: below the test fraction -> test."""
    return _share(b"split", path)


def order_share(path: str) -> float:
    """Where ``path`` falls in [0, 1) in the training order (a hash independent of the split's)."""
    return _share(b"order", path)


def mixed_order(paths: Sequence[str]) -> list[int]:
    """Indices of ``paths`` in training order: by :func:`order_share`, ties by path."""
    return sorted(range(len(paths)), key=lambda i: (order_share(paths[i]), paths[i]))


def split_by_rule(paths: Sequence[str], rule: SplitRule, where: str) -> tuple[list[str], list[str]]:
    """Split one class's files by ``rule``: ``(train, test)``, each in the order given.

    Args:
        paths: the class's files, paths relative to the split's root.
        rule: the split rule.
        where: what messages name (``SOURCE: class 'cat'``).

    Returns:
        The training and the test paths.

    Raises:
        InputError: either side would be empty (every class needs at least one of each).
    """
    test = [path for path in paths if split_share(path) < rule.test_fraction]
    train = [path for path in paths if split_share(path) >= rule.test_fraction]
    if not test or not train:
        side = "test" if not test else "training"
        raise InputError(
            f"{where}: none of its {len(paths)} files falls in the {side} split at test_fraction {rule.test_fraction:g}; "
            "add files to the class or change test_fraction (every class needs one test and one training file)"
        )
    return train, test
