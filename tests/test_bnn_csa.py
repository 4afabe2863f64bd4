"""Carry-save popcount trees (firmware_gen/bnn/csa.py): the emitted C, compiled with the host gcc
under every popcount flavour, counts exactly what Python's ``bin(x).count("1")`` counts."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from emulator.host import C_FLAGS, compiler
from firmware_gen.bnn.csa import popcount_tree

SIZES = (1, 2, 3, 4, 5, 7, 8, 9, 10, 15, 16, 18, 31, 32, 36, 37, 100)
FLAVOURS = ("builtin", "word", "block")
WORDS = 100
ROUNDS = 40


def _program(sizes: tuple[int, ...]) -> str:
    lines = [
        "#include <stdint.h>",
        "#include <stdio.h>",
        "static inline uint32_t bnn_popcount32(uint32_t x) { uint32_t n = 0; while (x) { x &= x - 1u; ++n; } return n; }",
    ]
    for n in sizes:
        tree = popcount_tree([f"a[{i}] ^ b[{i}]" for i in range(n)], "r", prefix="p_")
        for flavour in FLAVOURS:
            body = tree.builtin if flavour == "builtin" else tree.reduce + getattr(tree, flavour)
            lines += [f"static int32_t count_{n}_{flavour}(const uint32_t *a, const uint32_t *b) {{", "int32_t r;"]
            lines += [*body, "return r;", "}"]
    lines += [
        "int main(void) {",
        f"    static uint32_t a[{WORDS}], b[{WORDS}];",
        "    int round;",
        f"    for (round = 0; round < {ROUNDS}; ++round) {{",
        f"        if (fread(a, 4, {WORDS}, stdin) != {WORDS} || fread(b, 4, {WORDS}, stdin) != {WORDS}) return 1;",
    ]
    for n in sizes:
        calls = ", ".join(f"(int)count_{n}_{flavour}(a, b)" for flavour in FLAVOURS)
        lines.append(f'        printf("%d %d %d\\n", {calls});')
    lines += ["    }", "    return 0;", "}"]
    return "\n".join(lines) + "\n"


def _words(rng: np.random.Generator, round_index: int) -> np.ndarray:
    kind = round_index % 4
    if kind == 0:
        return np.full(WORDS, 0xFFFFFFFF, dtype=np.uint32)  # every bit set: the largest counts
    if kind == 1:
        return np.zeros(WORDS, dtype=np.uint32)
    words = rng.integers(0, 2**32, WORDS, dtype=np.uint64).astype(np.uint32)
    return words if kind == 2 else words & (words >> np.uint32(3))  # sparse bits


def test_trees_count_exactly_under_every_flavour(tmp_path: Path) -> None:
    (tmp_path / "trees.c").write_text(_program(SIZES))
    exe = tmp_path / "trees"
    build = subprocess.run([compiler(), *C_FLAGS, "trees.c", "-o", str(exe)], cwd=tmp_path, capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    rng = np.random.default_rng(11)
    stream, expected = [], []
    for round_index in range(ROUNDS):
        a, b = _words(rng, round_index), _words(rng, round_index + 2)
        stream += [a.astype("<u4").tobytes(), b.astype("<u4").tobytes()]
        for n in SIZES:
            expected.append([sum(bin(int(x) ^ int(y)).count("1") for x, y in zip(a[:n], b[:n], strict=True))] * 3)
    run = subprocess.run([str(exe)], input=b"".join(stream), capture_output=True, check=True)
    got = [[int(v) for v in line.split()] for line in run.stdout.decode().splitlines()]
    assert got == expected


@pytest.mark.parametrize("n", [1, 2, 3, 9, 18, 100])
def test_reduction_leaves_one_word_per_weight(n: int) -> None:
    tree = popcount_tree([f"x[{i}]" for i in range(n)], "r")
    assert tree.levels == n.bit_length()  # counts up to n need bit_length(n) binary digits
    adders = sum(1 for line in tree.reduce if "|" in line)  # full adders: one carry line each
    assert adders <= n  # each full adder retires one word
    assert len(tree.builtin) == n and all("__builtin_popcount" in line for line in tree.builtin)
    assert tree.word[-1].count("bnn_popcount32") == tree.levels


def test_streaming_order_defines_inputs_just_in_time() -> None:
    tree = popcount_tree([f"x[{i}]" for i in range(9)], "r")
    first_adder = next(i for i, line in enumerate(tree.reduce) if "|" in line)
    defined_before = sum(1 for line in tree.reduce[:first_adder] if "= x[" in line)
    assert defined_before == 3  # not all nine inputs up front


@pytest.mark.parametrize("n", [0, 4096])
def test_sizes_outside_the_range_are_refused(n: int) -> None:
    with pytest.raises(ValueError, match="1 to 4095 words"):
        popcount_tree([f"x[{i}]" for i in range(n)], "r")
