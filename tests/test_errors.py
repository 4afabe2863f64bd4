"""The CLI edge (pipeline.errors.run_cli): every failure is one stderr line and an exit status.

Before issue 35 a ``MemoryError`` (an ``.npz`` whose header declares 784 x 10^12 elements) or a
``RecursionError`` left ``run_cli`` as a traceback: it caught only the project's errors and
``OSError``.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from pipeline.errors import CheckError, InputError, run_cli


def _lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    captured = capsys.readouterr()
    assert captured.out == ""
    return [line for line in captured.err.splitlines() if line.strip()]


def _raises(error: BaseException):
    def main(argv: Sequence[str] | None) -> int:
        raise error

    return main


@pytest.mark.parametrize(
    ("error", "status", "words"),
    [
        (InputError("x.json: bad"), 2, "prog: error: x.json: bad"),
        (CheckError("agreement 90% < 99%"), 1, "prog: error: agreement 90% < 99%"),
        (FileNotFoundError(2, "No such file or directory", "x"), 2, "prog: error: [Errno 2] No such file or directory: 'x'"),
        (MemoryError(), 2, "prog: error: out of memory: an input declares more data than this machine can hold"),
        (MemoryError("Unable to allocate 713. TiB\nmore"), 2, "out of memory: Unable to allocate 713. TiB;"),
        (RecursionError("maximum recursion depth exceeded"), 2, "prog: error: an input is nested too deeply to follow"),
    ],
)
def test_each_failure_is_one_line_and_its_status(error: BaseException, status: int, words: str, capsys) -> None:
    assert run_cli("prog", _raises(error), []) == status
    lines = _lines(capsys)
    assert len(lines) == 1 and words in lines[0], lines


def test_an_npz_declaring_784e12_elements_is_one_line_saying_what_was_too_big(tmp_path: Path, capsys) -> None:
    """The member's header declares (10**12, 784) uint8 and holds no data: numpy asks for 713 TiB at once."""
    from pipeline.data import load_dataset

    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "|u1", "fortran_order": False, "shape": (10**12, 784)})
    labels = io.BytesIO()
    np.save(labels, np.zeros(3, np.uint8))
    path = tmp_path / "huge.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("x_test.npy", header.getvalue())
        archive.writestr("y_test.npy", labels.getvalue())

    def main(argv: Sequence[str] | None) -> int:
        load_dataset(path)
        return 0

    assert run_cli("python -m train", main, []) == 2
    lines = _lines(capsys)
    assert len(lines) == 1 and lines[0].startswith("python -m train: error: "), lines
    assert "out of memory" in lines[0] or str(path) in lines[0], lines  # the edge's line, or the loader's own refusal
    assert "784000000000000" in lines[0] or "(1000000000000, 784)" in lines[0], lines
