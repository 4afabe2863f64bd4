"""The folder conventions every dataset tree follows (images, audio): its root and its own split.

A tree of data files may sit at the top of a folder or tar, or under ONE top folder (a tree whose
top holds a single folder and no data file is read from inside it: ``cifar10/train/cat/0001.jpg``,
``fsdd/recordings/0_george_0.wav``). Under that root, ``train/`` and ``test/`` folders are the
dataset's own split; a tree without them needs a split rule from its spec file.

Paths here are the ``/``-separated relative paths of :class:`pipeline.filetree.Listing`; a
*base* is a folder path inside the tree (``""`` for the top).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from pipeline.errors import InputError
from pipeline.filetree import Listing

__all__ = ["SPLITS", "join", "inside", "tree_root", "split_bases"]

SPLITS = ("train", "test")


def join(base: str, name: str) -> str:
    """``base/name``, or ``name`` at the top (``base == ""``)."""
    return f"{base}/{name}" if base else name


def inside(paths: Sequence[str], base: str) -> list[str]:
    """``paths`` under folder ``base``, relative to it (all of them for the top, ``""``)."""
    if not base:
        return list(paths)
    prefix = base + "/"
    return [path[len(prefix) :] for path in paths if path.startswith(prefix)]


def tree_root(files: Sequence[str], folders: Sequence[str]) -> str:
    """The top folder when it is the tree's only entry and holds no data file directly, else ``""``.

    A top folder named ``train`` or ``test`` is a split, never a root.
    """
    tops = {path.split("/", 1)[0] for path in (*files, *folders)}
    if len(tops) != 1:
        return ""
    (top,) = tops
    return "" if top in SPLITS or any(path.count("/") < 2 for path in files) else top


def split_bases(
    listing: Listing, root: str, has_rule: bool, where: str, name: Callable[[str], str], *, stray_hint: str
) -> tuple[str, str] | None:
    """The tree's own ``train/`` and ``test/`` folders, checked, or ``None`` when it has neither.

    Args:
        listing: the tree's data files and folders.
        root: from :func:`tree_root`.
        has_rule: whether the spec gives a split rule (refused when the tree has its own split).
        where: what messages name (the spec file or the source).
        name: how messages name one file of the tree.
        stray_hint: what to do with a file outside both (``"move it into a class folder of one of them"``).

    Returns:
        ``(train base, test base)``, or ``None`` for a tree without either folder.

    Raises:
        InputError: one of the two folders without the other; a split rule for a tree that has
            both; a data file outside both.
    """
    top_folders = {path for path in inside(listing.folders, root) if "/" not in path}
    present = [split for split in SPLITS if split in top_folders]
    if not present:
        return None
    if len(present) == 1:
        missing = next(split for split in SPLITS if split not in present)
        raise InputError(
            f"{where}: has {join(root, present[0])}/ but no {join(root, missing)}/ folder; give both, or neither and a split rule"
        )
    if has_rule:
        raise InputError(
            f'{where}: the tree has train/ and test/ folders, so a split rule does not apply; remove "split" from the spec'
        )
    stray = [path for path in inside(listing.files, root) if path.split("/", 1)[0] not in SPLITS]
    if stray:
        raise InputError(f"{name(join(root, stray[0]))}: outside train/ and test/; {stray_hint}")
    return join(root, "train"), join(root, "test")
