"""C statements of the pixel conv: gathering the taps of one position and the sums over them.

The kernels (``templates/bnn/layer_pixel_conv*.c.j2``) visit the conv positions of an output's
pool window; at each one, ``iy``/``ix`` (``int``) is the input row and column of the window's
top-left tap, possibly outside the input when the conv is padded. Tap ``t = (ky * KW + kx) * C + c``
reads pixel ``in[((iy + ky) * W + ix + kx) * C + c]`` (NHWC, :mod:`firmware_gen.bnn.contract`).
A tap's value is ``unit * pixel - sub`` inside the input and ``pad`` in the padding (a
:class:`TapDomain`); an interior window (no tap outside) is read through ``src`` without checks,
a border window checks its rows and columns once each.

Up to :data:`MAX_UNROLL_TAPS` taps the gathers are straight-line code; beyond, loops. Sums over
up to :data:`MAX_UNROLL_SUM` taps are one expression or unrolled statements; beyond, a loop over
chunks of :data:`SUM_CHUNK` taps and an unrolled remainder.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["TapDomain", "TapGeometry", "MAX_UNROLL_TAPS", "MAX_UNROLL_SUM", "SUM_CHUNK", "gather_taps", "gather_pairs",
           "pair_words", "int8_sum", "block_sums", "position_sums"]  # fmt: skip

MAX_UNROLL_TAPS = 128
"""Most taps a position gathers in straight-line code (the gathers run once per position)."""
MAX_UNROLL_SUM = 32
"""Most taps of a channel's sum unrolled (the sums run once per channel and position)."""
SUM_CHUNK = 16
"""Taps per iteration of a looped sum."""


@dataclass(frozen=True)
class TapDomain:
    """Tap values: ``unit * pixel - sub`` inside the input, ``pad`` outside."""

    unit: int
    sub: int
    pad: int


@dataclass(frozen=True)
class TapGeometry:
    """The window of one conv position: ``kh x kw`` taps on ``channels`` of an ``in_h x in_w`` input."""

    kh: int
    kw: int
    channels: int
    in_h: int
    in_w: int
    padded: bool

    @property
    def taps(self) -> int:
        """Taps per position."""
        return self.kh * self.kw * self.channels

    def tap(self, t: int) -> tuple[int, int, int]:
        """``(ky, kx, c)`` of tap ``t``."""
        pixel, c = divmod(t, self.channels)
        ky, kx = divmod(pixel, self.kw)
        return ky, kx, c

    def offset(self, t: int) -> int:
        """Offset of tap ``t``'s pixel from the window's top-left pixel ``src``."""
        ky, kx, c = self.tap(t)
        return (ky * self.in_w + kx) * self.channels + c


def _scaled(pixel: str, unit: int) -> str:
    return pixel if unit == 1 else f"{unit} * {pixel}"


def _value(domain: TapDomain, pixel: str) -> str:
    """C ``int32_t`` expression of a tap inside the input."""
    text = _scaled(f"(int32_t){pixel}", domain.unit)
    return f"{text} - {domain.sub}" if domain.sub else text


def _pixel(geo: TapGeometry, t: int) -> str:
    ky, kx, c = geo.tap(t)
    row = f"(iy + {ky})" if ky else "iy"
    col = f"ix + {kx}" if kx else "ix"
    index = f"({row} * {geo.in_w} + {col}) * {geo.channels}" + (f" + {c}" if c else "")
    return f"in[{index}]"


def _flags(geo: TapGeometry) -> list[str]:
    """Row and column checks of a border window, once each (``oyK``, ``oxK``)."""
    rows = ", ".join(f"oy{k} = iy + {k} >= 0 && iy + {k} < {geo.in_h}" for k in range(geo.kh))
    cols = ", ".join(f"ox{k} = ix + {k} >= 0 && ix + {k} < {geo.in_w}" for k in range(geo.kw))
    return [f"const int {rows};", f"const int {cols};"]


def _interior_test(geo: TapGeometry) -> str:
    return f"if (iy >= 0 && iy <= {geo.in_h - geo.kh} && ix >= 0 && ix <= {geo.in_w - geo.kw}) {{"


def _src() -> str:
    return "const uint8_t *src = in + (iy * {w} + ix) * {c};"


def _two_ways(geo: TapGeometry, interior: list[str], border: list[str]) -> list[str]:
    """An interior block (through ``src``) and, for a padded conv, a checked border block."""
    head = _src().format(w=geo.in_w, c=geo.channels)
    if not geo.padded:
        return ["{", f"    {head}", *(f"    {line}" for line in interior), "}"]
    lines = [_interior_test(geo), f"    {head}", *(f"    {line}" for line in interior), "} else {"]
    return [*lines, *(f"    {line}" for line in _flags(geo) + border), "}"]


_LOOP_PIXEL = "in[(ry * {w} + rx) * {c} + c]"


def _loop_gather(geo: TapGeometry, store: list[str], ctype: str, value: str, pad: str) -> list[str]:
    """Loops over rows, columns and channels, ``t`` counting taps: ``v`` (``ctype``) is ``value`` of
    the pixel ``{pixel}`` inside the input and ``pad`` outside; ``store`` uses ``v`` and ``t``."""
    ok = f"ry >= 0 && ry < {geo.in_h} && rx >= 0 && rx < {geo.in_w}" if geo.padded else "1"
    value = value.format(pixel=_LOOP_PIXEL.format(w=geo.in_w, c=geo.channels))
    return [
        "{",
        "    int ky, kx, c, t = 0;",
        f"    for (ky = 0; ky < {geo.kh}; ++ky) {{",
        "        const int ry = iy + ky;",
        f"        for (kx = 0; kx < {geo.kw}; ++kx) {{",
        "            const int rx = ix + kx;",
        f"            const int ok = {ok};",
        f"            for (c = 0; c < {geo.channels}; ++c, ++t) {{",
        f"                const {ctype} v = ok ? {value} : {pad};",
        *(f"                {line}" for line in store),
        "            }",
        "        }",
        "    }",
        "}",
    ]


def gather_taps(geo: TapGeometry, domain: TapDomain, dest: str, ctype: str) -> list[str]:
    """Statements writing the position's taps to ``dest[t]`` (an array of ``ctype``).

    Args:
        geo: the window.
        domain: the tap values.
        dest: the C array (``q``).
        ctype: its element type (``int16_t``, ``int32_t``).

    Returns:
        C lines (no indentation of their own).
    """
    if geo.taps > MAX_UNROLL_TAPS:
        return _loop_gather(geo, [f"{dest}[t] = ({ctype})v;"], "int32_t", _value(domain, "{pixel}"), str(domain.pad))
    interior = [f"{dest}[{t}] = ({ctype})({_value(domain, f'src[{geo.offset(t)}]')});" for t in range(geo.taps)]
    border = []
    for t in range(geo.taps):
        ky, kx, _ = geo.tap(t)
        border.append(f"{dest}[{t}] = ({ctype})((oy{ky} && ox{kx}) ? {_value(domain, _pixel(geo, t))} : {domain.pad});")
    return _two_ways(geo, interior, border)


def _lane(domain: TapDomain, pixel: str) -> str:
    """``uint32_t`` expression of a tap inside the input (``unit * pixel``, no ``sub``: the pair form
    reads non-negative taps)."""
    return _scaled(f"(uint32_t){pixel}", domain.unit)


def gather_pairs(geo: TapGeometry, domain: TapDomain, dest: str) -> list[str]:
    """Statements writing the position's taps as int16 pairs, two pairs a ``uint64_t``: ``dest[i]``
    holds taps ``4 i``, ``4 i + 1``, ``4 i + 2``, ``4 i + 3`` in its 16-bit quarters, lowest first
    (0 past the last tap).

    Taps are ``unit * pixel`` inside the input and ``pad`` outside (``domain.sub`` must be 0): all
    non-negative and below 2^15, so the quarters never carry into each other.

    Raises:
        ValueError: ``domain.sub`` is not 0, or a tap value does not fit an int16 lane.
    """
    if domain.sub != 0 or not 0 <= domain.pad < 2**15 or not 0 < 255 * domain.unit < 2**15:
        raise ValueError(f"pair taps must be non-negative int16 values, got {domain}")
    words = pair_words(geo.taps)
    if geo.taps > MAX_UNROLL_TAPS:
        clear = ["{", "    int i;", f"    for (i = 0; i < {words}; ++i) {{", f"        {dest}[i] = 0u;", "    }", "}"]
        store = [f"{dest}[t >> 2] |= (uint64_t)v << ((t & 3) * 16);"]
        return [*clear, *_loop_gather(geo, store, "uint32_t", _lane(domain, "{pixel}"), f"{domain.pad}u")]

    def join(parts: list[str], shift: int, wide: bool) -> str:
        cast = "(uint64_t)" if wide else ""
        return " | ".join(f"{cast}{part}" if not i else f"{cast}{part} << {shift * i}" for i, part in enumerate(parts))

    interior, border = [], []
    for i in range(words):
        taps = [t for t in range(4 * i, 4 * i + 4) if t < geo.taps]
        pixels = [f"(uint32_t)src[{geo.offset(t)}]" for t in taps]
        halves = [join(pixels[h : h + 2], 16, False) for h in range(0, len(pixels), 2)]
        value = halves[0] if len(halves) == 1 else f"(uint64_t)({halves[0]}) | (uint64_t)({halves[1]}) << 32"
        interior.append(f"{dest}[{i}] = {value};" if domain.unit == 1 else f"{dest}[{i}] = {domain.unit}u * ({value});")
        lanes = []
        for t in taps:
            ky, kx, _ = geo.tap(t)
            lanes.append(f"((oy{ky} && ox{kx}) ? {_lane(domain, _pixel(geo, t))} : {domain.pad}u)")
        border.append(f"{dest}[{i}] = {join(lanes, 16, True)};")
    return _two_ways(geo, interior, border)


def pair_words(taps: int) -> int:
    """``uint64_t`` words (two int16 pairs each) of ``taps`` taps."""
    return -(-taps // 4)


def _chunks(count: int, unrolled: int = MAX_UNROLL_SUM, chunk: int = SUM_CHUNK) -> tuple[int, int]:
    """``(full, chunk)``: a looped sum covers ``[0, full)`` of ``count`` terms in chunks, then an
    unrolled remainder (``full`` is 0 up to ``unrolled`` terms)."""
    if count <= unrolled:
        return 0, count
    return count // chunk * chunk, chunk


def int8_sum(taps: int) -> list[str]:
    """Statements setting ``int32_t s`` to ``sum(k[t] * q[t])`` over ``taps`` taps (``k``: ``int8_t``, ``q``: ``int16_t``)."""
    full, chunk = _chunks(taps)

    def terms(base: str, count: int, start: int = 0) -> str:
        return " + ".join(f"k[{base}{start + i}] * q[{base}{start + i}]" for i in range(count))

    if full == 0:
        return [f"const int32_t s = (int32_t){terms('', taps)};"]
    lines = ["int32_t s = 0;", "int t;", f"for (t = 0; t < {full}; t += {chunk}) {{", f"    s += {terms('t + ', chunk)};", "}"]
    if taps > full:
        lines.append(f"s += {' + '.join(f'k[{t}] * q[{t}]' for t in range(full, taps))};")
    return lines


def _smlads(weight: str, taps: str, acc: str) -> list[str]:
    """Two SMLADs of one ``uint64_t`` of weights with one of taps (their low, then high, pairs)."""
    return [
        f"{acc} = BNN_SMLAD((uint32_t){weight}, (uint32_t){taps}, {acc});",
        f"{acc} = BNN_SMLAD((uint32_t)({weight} >> 32), (uint32_t)({taps} >> 32), {acc});",
    ]


def _word_loop(words: int, body) -> list[str]:
    """``body(i, weights, taps)`` (lines) for every word ``i`` of weights ``k`` and taps ``qx``:
    unrolled, or a loop (``j``) over chunks (pointers ``kj``/``qj``) and an unrolled remainder."""
    full, chunk = _chunks(words, MAX_UNROLL_SUM // 4, SUM_CHUNK // 4)  # four taps a word
    lines = []
    if full:
        lines += ["int j;", f"for (j = 0; j < {full}; j += {chunk}) {{", "    const uint64_t *kj = k + j, *qj = qx + j;"]
        for i in range(chunk):
            lines += [f"    {line}" for line in body(i, "kj", "qj")]
        lines.append("}")
    for i in range(full, words):
        lines += body(i, "k", "qx")
    return lines


def block_sums(words: int, channels: int) -> list[str]:
    """Statements setting ``int32_t s0 .. s{channels-1}``: the sums of ``channels`` consecutive
    channels (weights ``k[g * words + i]``) with the taps ``qx[i]`` of one position.

    Args:
        words: ``uint64_t`` words per channel and per position (:func:`pair_words`).
        channels: channels summed together.
    """

    def body(i: int, k: str, x: str) -> list[str]:
        lines = ["{", f"    const uint64_t v = {x}[{i}];"]
        for g in range(channels):
            lines += [f"    {line}" for line in _smlads(f"{k}[{g * words + i}]", "v", f"s{g}")]
        return [*lines, "}"]

    return [f"int32_t {', '.join(f's{g} = 0' for g in range(channels))};", *_word_loop(words, body)]


def position_sums(words: int, positions: int) -> list[str]:
    """Statements setting ``int32_t a0 .. a{positions-1}``: one channel's sums (weights ``k[i]``) with
    the taps of ``positions`` consecutive positions (``qx[p * words + i]``)."""

    def body(i: int, k: str, x: str) -> list[str]:
        lines = ["{", f"    const uint64_t w = {k}[{i}];"]
        for p in range(positions):
            lines += [f"    {line}" for line in _smlads("w", f"{x}[{p * words + i}]", f"a{p}")]
        return [*lines, "}"]

    return [f"int32_t {', '.join(f'a{p} = 0' for p in range(positions))};", *_word_loop(words, body)]
