"""Fuzz (bounded): 2,000 mutants of real flatbuffers through the reader and every consumer, fixed seed.

Every mutant must either work or be refused with one :class:`~pipeline.errors.InputError`
line at every step: the reader, the emulator's loading (RAM, planner, layer table), both
engines' reference interpreters and generation, and ``python -m firmware_gen`` on the
mutants a reference interpreter refuses (which must write nothing). No other exception, no
hang, and no signal reaching this process. ``make fuzz`` runs the same campaign with 30,000
mutants (see tests/fuzzing.py).
"""

from __future__ import annotations

from fuzzing import run_campaign

MUTANTS = 2000
SEED = 19


def test_mutants_work_or_are_refused_in_one_line(mini_flatbuffers, tmp_path) -> None:
    seeds = {name: path.read_bytes() for name, path in mini_flatbuffers.items()}
    counts = run_campaign(seeds, MUTANTS, SEED, tmp_path)
    listing = "\n".join(f"{f['mutant']} {f['seed']} {f['mutation']}: {f['detail'][:300]} ({f['file']})" for f in counts.failures)
    assert counts.failed == 0, f"{counts.summary()}\n{listing}"
    # The campaign reached every consumer: it cannot pass by having everything refused at the door.
    assert counts.mutants == MUTANTS and counts.reader_accepted > MUTANTS // 5, counts.summary()
    assert counts.generated["tflm"] > 100 and counts.generated["bnn"] > 20, counts.summary()
    assert counts.reference_refused > 50 and counts.firmware_cli_runs == counts.reference_refused, counts.summary()
