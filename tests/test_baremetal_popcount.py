"""Popcount variants measured in QEMU: every variant is exact, and the per-core choice is the fastest.

One firmware per core runs ``acc += popcount(a[i] ^ w[i])`` over 256 random words (16 passes)
for every variant of ``bnn_popcount.h``, once as one 256-word loop and once as 8-word calls.
The sums are checked against Python's ``bin().count("1")``; the instruction counts (loop
overhead subtracted) must show that :data:`POPCOUNT_CHOICE` is the fastest single-word
variant on that core (ties within 0.05 instructions per word allowed).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import list_firmware_files, require_toolchain

from emulator.qemu import run_harness
from firmware_gen.baremetal import generate
from firmware_gen.baremetal.popcount import HEADER_NAME, POPCOUNT_CHOICE, VARIANTS, popcount_header
from firmware_gen.engines import EngineOutput
from firmware_gen.targets import CORES, get_core

pytestmark = pytest.mark.toolchain

WORDS = 256
PASSES = 16
CHUNKS = (256, 8)
KINDS = ("none", *VARIANTS, "block")
TIE = 0.05


class FakeModel:
    """What the banner reads of a parsed flatbuffer."""

    path = "fake.lce.tflite"
    size = 1234
    sha256 = "1" * 64


@pytest.fixture(scope="module", autouse=True)
def toolchain() -> None:
    require_toolchain()


def words() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    return tuple(rng.integers(0, 2**32, WORDS, dtype=np.uint64).astype(np.uint32) for _ in range(2))


def bench_source(a: np.ndarray, w: np.ndarray) -> str:
    def array(name: str, values: np.ndarray) -> str:
        return f"static const uint32_t {name}[{WORDS}] = {{{', '.join(f'0x{int(v):08X}u' for v in values)}}};\n"

    loops = "".join(
        f"""
__attribute__((noinline)) static uint32_t run_{kind}(const uint32_t *a, const uint32_t *w, uint32_t n) {{
    uint32_t s = 0u;
    for (uint32_t i = 0u; i < n; i++) {{
        s += bnn_popcount_{kind}(a[i] ^ w[i]);
    }}
    return s;
}}
"""
        for kind in KINDS
        if kind != "block"
    )
    return f"""#include "bnn_model.h"
#include "{HEADER_NAME}"
{array("A", a)}{array("W", w)}
static inline uint32_t bnn_popcount_none(uint32_t x) {{ return x; }}
{loops}
__attribute__((noinline)) static uint32_t run_block(const uint32_t *a, const uint32_t *w, uint32_t n) {{
    return bnn_xor_popcount_words(a, w, n);
}}

typedef uint32_t (*kernel)(const uint32_t *, const uint32_t *, uint32_t);
static const kernel kernels[] = {{{", ".join("run_" + kind for kind in KINDS)}}};

int bnn_predict(const uint8_t pixels[28 * 28], int32_t scores[10]) {{
    uint32_t chunk = pixels[1] != 0u ? pixels[1] : {WORDS}u;
    uint32_t total = 0u;
    for (uint32_t pass = 0u; pass < {PASSES}u; pass++) {{
        for (uint32_t start = 0u; start + chunk <= {WORDS}u; start += chunk) {{
            total += kernels[pixels[0]](A + start, W + start, chunk);
        }}
    }}
    scores[0] = (int32_t)total;
    return (int)(pixels[0] % 10u);
}}
"""


def test_popcount_header_is_deterministic_and_validates() -> None:
    core = get_core("cortex-m0")
    assert popcount_header(FakeModel(), core) == popcount_header(FakeModel(), core)
    assert b"bnn_popcount_lut8(x); }" in popcount_header(FakeModel(), core)
    with pytest.raises(ValueError, match="unknown popcount variant"):
        popcount_header(FakeModel(), core, choice="magic")


@pytest.mark.parametrize("core", sorted(CORES))
def test_variants_are_exact_and_the_choice_is_fastest(tmp_path: Path, core: str) -> None:
    a, w = words()
    header = (
        "#include <stdint.h>\n#define BNN_INPUT_SIZE 784\n#define BNN_INPUT_TYPE uint8_t\n#define BNN_NUM_CLASSES 10\n"
        "#define BNN_SCORE_TYPE int32_t\n#define BNN_SCORE_IS_FLOAT 0\n"
        "int bnn_predict(const uint8_t pixels[28 * 28], int32_t scores[10]);\n"
    )
    files = {
        "bnn_model.h": header.encode(),
        "bnn_model.c": bench_source(a, w).encode(),
        HEADER_NAME: popcount_header(FakeModel(), get_core(core)),
    }
    out = generate(FakeModel(), get_core(core), None, EngineOutput(files=files))
    for name, data in {**files, **out.files}.items():
        (tmp_path / name).write_bytes(data)
    list_firmware_files(tmp_path)
    cases = [(chunk, index) for chunk in CHUNKS for index in range(len(KINDS))]
    images = np.zeros((len(cases), 28, 28), dtype=np.uint8)
    for row, (chunk, index) in enumerate(cases):
        images[row, 0, :2] = (index, chunk % 256)
    run = run_harness(tmp_path, images, core=core)

    expected = PASSES * sum(bin(int(x) ^ int(y)).count("1") for x, y in zip(a, w, strict=True))
    sums = run.results.scores[:, 0].reshape(len(CHUNKS), len(KINDS))
    assert (sums[:, 1:] == expected).all(), f"a popcount variant is wrong on {core}: {sums} vs {expected}"
    counts = run.instructions.reshape(len(CHUNKS), len(KINDS))
    per_word = (counts[:, 1:] - counts[:, :1]) / (WORDS * PASSES)
    table = {kind: per_word[:, i].round(2).tolist() for i, kind in enumerate(KINDS[1:])}
    print(f"{core}: instructions per word (256-word loop, 8-word calls) {table}")
    choice = KINDS.index(POPCOUNT_CHOICE[core]) - 1
    single = [KINDS.index(kind) - 1 for kind in VARIANTS]
    for row in range(len(CHUNKS)):
        best = min(per_word[row, i] for i in single)
        assert per_word[row, choice] <= best + TIE, f"{core}: {POPCOUNT_CHOICE[core]} is not the fastest: {table}"
