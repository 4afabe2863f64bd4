"""python -m emulator.frontend_cli: the generated front end checked against Python from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import require_toolchain, run_module, stderr_lines
from frontend_signals import FIXTURES

import emulator.frontend_cli as cli
from pipeline.errors import CheckError
from pipeline.frontend import FrontendConfig


def test_host_run_on_wav_files_writes_a_report(tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    wavs = sorted(FIXTURES.glob("*.wav"))[:2]
    result = run_module("emulator.frontend_cli", *wavs, "--chunks", "7,300", "--json", out)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "host gcc: 2 clips, features equal to pipeline.frontend.features"
    report = json.loads(out.read_text())
    assert report["bit_exact"] is True and report["chunks"] == [7, 300] and report["config_sha256"] == FrontendConfig().sha256()


def test_refusals_are_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "frontend.json"
    bad.write_text('{"hop": 0}')
    for args, message in (
        (("--chunks", "x"), "--chunks: expected comma-separated whole numbers, got 'x'"),
        (("--config", bad), "frontend: hop must be 1..frame_length (256), got 0"),
        (("--config", tmp_path / "missing.json"), "cannot read a JSON object"),
        ((tmp_path / "missing.wav",), "missing.wav: cannot read"),
        (("--chunks", "0"), "chunk sizes must be 1 to 64 values of 1..1024 samples"),
    ):
        result = run_module("emulator.frontend_cli", *args)
        lines = stderr_lines(result)
        assert result.returncode == 2 and len(lines) == 1 and message in lines[0], (args, result.stderr)


def test_a_difference_from_python_fails_naming_where(monkeypatch: pytest.MonkeyPatch) -> None:
    real = cli.run_host

    def off_by_one(*args, **kwargs):
        run = real(*args, **kwargs)
        run.features[1, 5, 3] ^= 1
        return run

    monkeypatch.setattr(cli, "run_host", off_by_one)
    config = FrontendConfig()
    with pytest.raises(CheckError, match="differs from pipeline.frontend.features: clip 1, frame 5, band 3"):
        cli.measure(config, cli.synthetic(config, count=2), core=None, chunks=[128], prefix="kws")


def test_synthetic_clips_are_deterministic_int16() -> None:
    config = FrontendConfig()
    first, second = cli.synthetic(config), cli.synthetic(config)
    assert len(first) == 8 and all(a.dtype == np.int16 and len(a) == 8000 for a in first)
    assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))
    assert np.abs(first[0]).max() > 30000 > 100 > np.abs(first[-1]).max()


@pytest.mark.toolchain
def test_qemu_run_reports_flash_ram_and_instructions(tmp_path: Path) -> None:
    require_toolchain()
    out = tmp_path / "m0.json"
    result = run_module("emulator.frontend_cli", "--core", "cortex-m0", "--json", out)
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert report["backend"] == "qemu cortex-m0" and report["ram_bytes"] == report["static_ram_bytes"] + report["stack_bytes"]
    assert 10_000 < report["instructions_per_frame"] < 200_000 and 0 < report["flash_bytes"] < 4096
    assert f"{report['instructions_per_frame']:,.0f} instructions per frame" in result.stdout
