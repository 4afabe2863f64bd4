"""Carry-save popcount trees: C statements that count the 1 bits of many words at once.

A full adder on three words (``s = a ^ b ^ c``, ``carry = maj(a, b, c)``) turns three bits of
weight ``2^j`` into one of weight ``2^j`` and one of ``2^(j+1)`` in 5 bitwise operations, for
32 bit positions at a time. Reducing ``n`` words this way leaves one word per weight
(``log2(n) + 1`` words), so only those few need a popcount: the sum of ``popcount(v_j) << j``
equals the popcount of all ``n`` inputs. On Thumb-2 the final counts are one SWAR pass: nibble
counts of two weights are merged (``nib(v_2i) + 2 * nib(v_2i+1)`` fits a nibble), then bytes
of all weights are merged, then the bytes (or 16-bit halves) are summed.

Measured on the seed BCNN under QEMU (cortex-m4, -Os): a 9-word window costs about 95
instructions this way against about 120 with a byte-count SWAR per word.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["PopcountTree", "popcount_tree"]

_M1, _M2, _M4 = "0x55555555u", "0x33333333u", "0x0f0f0f0fu"


@dataclass(frozen=True)
class PopcountTree:
    """C statements (no indentation) for one popcount tree.

    Attributes:
        reduce: the input words and the carry-save adders (before ``word`` or ``block``).
        builtin: the whole count with one ``__builtin_popcount`` per input word, no tree (hosts
            with a popcount instruction).
        word: final count after ``reduce`` with ``bnn_popcount32`` (the per-core variant, Armv6-M).
        block: final count after ``reduce`` in one SWAR pass (Thumb-2 cores).
        levels: how many weighted words the reduction leaves.
    """

    reduce: list[str]
    builtin: list[str]
    word: list[str]
    block: list[str]
    levels: int


def _reduce(terms: Sequence[str], prefix: str) -> tuple[list[str], list[str]]:
    """Carry-save reduction of ``terms`` to one word per weight; returns (lines, word names).

    Streaming order (Harley-Seal): each input is defined just before it is added, and a weight
    is reduced as soon as it holds three words, so at most two words per weight are alive and
    a compiler that keeps the statement order (gcc -Os on Arm) needs few registers.
    """
    lines: list[str] = []
    levels: list[list[str]] = [[]]
    count = 0

    def fresh() -> str:
        nonlocal count
        count += 1
        return f"{prefix}t{count}"

    def full_adder(j: int) -> None:
        a, b, c = levels[j]
        u, s, k = fresh(), fresh(), fresh()
        lines.extend(
            [
                f"const uint32_t {u} = {a} ^ {b};",
                f"const uint32_t {s} = {u} ^ {c};",
                f"const uint32_t {k} = ({a} & {b}) | ({u} & {c});",
            ]
        )
        levels[j] = []
        push(j, s)
        push(j + 1, k)

    def push(j: int, word: str) -> None:
        if j == len(levels):
            levels.append([])
        levels[j].append(word)
        if len(levels[j]) == 3:
            full_adder(j)

    for i, term in enumerate(terms):
        lines.append(f"const uint32_t {prefix}x{i} = {term};")
        push(0, f"{prefix}x{i}")
    j = 0
    while j < len(levels):
        if len(levels[j]) == 2:  # half adder
            a, b = levels[j]
            s, k = fresh(), fresh()
            lines.extend([f"const uint32_t {s} = {a} ^ {b};", f"const uint32_t {k} = {a} & {b};"])
            levels[j] = [s]
            push(j + 1, k)
        j += 1
    return lines, [level[0] for level in levels]


def _block(words: list[str], n: int, result: str, prefix: str) -> list[str]:
    """One SWAR pass over weighted words ``words[j]`` (weight ``2^j``) of ``n`` inputs."""
    lines: list[str] = []
    nibbles = []
    for j, v in enumerate(words):
        p = f"{prefix}n{j}"
        lines += [f"uint32_t {p} = {v} - (({v} >> 1) & {_M1});", f"{p} = ({p} & {_M2}) + (({p} >> 2) & {_M2});"]
        nibbles.append(p)
    # Nibble counts are <= 4: weights 2^(2i) and 2^(2i+1) merge into one nibble <= 12, then a byte <= 24.
    bytes_ = []
    for i in range(0, len(nibbles), 2):
        b = f"{prefix}b{i // 2}"
        merged = nibbles[i] if i + 1 == len(nibbles) else f"{nibbles[i]} + ({nibbles[i + 1]} << 1)"
        lines.append(f"uint32_t {b} = {merged};")
        lines.append(f"{b} = ({b} & {_M4}) + (({b} >> 4) & {_M4});")
        bytes_.append(b)
    # A byte word sums to <= 4 * 24 = 96: one multiply per byte word adds its four bytes.
    if 32 * n > 255 and len(bytes_) <= 2:
        sums = [
            f"((({b} * 0x01010101u) >> 24) << {2 * i})" if i else f"(({b} * 0x01010101u) >> 24)" for i, b in enumerate(bytes_)
        ]
        lines.append(f"{result} = (int32_t)({' + '.join(sums)});")
        return lines
    # Every byte (16-bit half) of the weighted sum counts 8 (16) input bit positions: <= 8 n (16 n).
    if 8 * n > 255:
        halves = []
        for i, b in enumerate(bytes_):
            lines.append(f"{b} = ({b} & 0x00ff00ffu) + (({b} >> 8) & 0x00ff00ffu);")
            halves.append(b if i == 0 else f"({b} << {2 * i})")
        if len(halves) > 1:  # (one byte word is already in b0; `b0 = b0` would trip clang's -Wself-assign)
            lines.append(f"{prefix}b0 = {' + '.join(halves)};")
        lines.append(f"{result} = (int32_t)(({prefix}b0 + ({prefix}b0 >> 16)) & 0xffffu);")
    else:
        terms = [b if i == 0 else f"({b} << {2 * i})" for i, b in enumerate(bytes_)]
        if len(terms) > 1:
            lines.append(f"{prefix}b0 = {' + '.join(terms)};")
        if 32 * n <= 255:
            lines.append(f"{result} = (int32_t)(({prefix}b0 * 0x01010101u) >> 24);")
        else:
            lines.append(f"{prefix}b0 = ({prefix}b0 & 0x00ff00ffu) + (({prefix}b0 >> 8) & 0x00ff00ffu);")
            lines.append(f"{result} = (int32_t)(({prefix}b0 + ({prefix}b0 >> 16)) & 0xffffu);")
    return lines


def popcount_tree(terms: Sequence[str], result: str, prefix: str = "") -> PopcountTree:
    """C statements that set ``result`` (an ``int32_t`` lvalue) to the total popcount of ``terms``.

    Args:
        terms: C expressions of ``uint32_t`` words (each evaluated once), at least one and at
            most 4095 (the 16-bit halves of the SWAR pass must not overflow).
        result: the ``int32_t`` lvalue to assign.
        prefix: prefix of the temporaries (so two trees can share a scope).

    Returns:
        The :class:`PopcountTree`.

    Raises:
        ValueError: no terms, or more than 4095.
    """
    n = len(terms)
    if not 1 <= n <= 4095:
        raise ValueError(f"a popcount tree takes 1 to 4095 words, got {n}")
    reduce, words = _reduce(terms, prefix)
    builtin = [f"{result} = (int32_t)__builtin_popcount({terms[0]});"]
    builtin += [f"{result} += (int32_t)__builtin_popcount({term});" for term in terms[1:]]
    counts = [f"(int32_t)bnn_popcount32({v})" for v in words]
    word = " + ".join(count if j == 0 else f"({count} << {j})" for j, count in enumerate(counts))
    return PopcountTree(
        reduce=reduce,
        builtin=builtin,
        word=[f"{result} = {word};"],
        block=_block(words, n, result, prefix),
        levels=len(words),
    )
