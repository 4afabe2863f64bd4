"""``python -m emulator.summary``: one table from the emulator's JSON reports."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import run_module, stderr_lines

from emulator.summary import format_summary, load_reports


def write_report(folder: Path, name: str, backend: str, **fields: object) -> None:
    report = {"name": name, "model": f"artifacts/{name}.x", "backend": backend, "images": 100, "accuracy": 0.97}
    report.update(fields)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.{backend}.emulate.json").write_text(json.dumps(report))


def test_ladder_order_and_figures(tmp_path: Path) -> None:
    write_report(
        tmp_path / "firmware", "bcnn", "qemu",
        agreement=0.9999, reference={"backend": "keras"}, instructions_per_inference=812345.0, budget={"ok": True},
    )  # fmt: skip
    write_report(tmp_path, "bcnn", "lce", agreement=1.0, flash_bytes=165916, ram_bytes=1024, ram_source="planner")
    write_report(tmp_path, "bcnn", "keras")
    table = format_summary(load_reports(tmp_path)).splitlines()
    assert [line.split()[1] for line in table[2:]] == ["keras", "lce", "qemu"]
    assert "165,916 B" in table[3] and "1,024 B (planner)" in table[3] and "100.00%" in table[3]
    assert "812,345" in table[4] and "99.99% (keras)" in table[4] and table[4].rstrip().endswith("fits")


def test_bad_inputs_exit_2(tmp_path: Path) -> None:
    empty = run_module("emulator.summary", tmp_path)
    assert empty.returncode == 2 and len(stderr_lines(empty)) == 1 and "no *.emulate.json" in empty.stderr
    (tmp_path / "x.lce.emulate.json").write_text("{not json")
    broken = run_module("emulator.summary", tmp_path)
    assert broken.returncode == 2 and len(stderr_lines(broken)) == 1 and "not a valid emulator report" in broken.stderr
