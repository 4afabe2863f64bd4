"""``python -m emulator.frontend_cli``: check the generated audio front end against Python and measure it.

Generates the front end's C for a config (the defaults, or ``--config FILE``: a JSON object of
:class:`~pipeline.frontend.FrontendConfig` settings), streams clips through it in chunks of the
given sizes on the host (gcc) or under QEMU (``--core``), checks that the features equal
:func:`pipeline.frontend.features` byte for byte (exit 1 otherwise) and prints what it measured:
under QEMU, instructions per frame, flash and RAM (static + deepest stack path). Clips: WAV files
(mono 16-bit PCM at the config's rate, padded or cut to ``clip_samples``), else eight synthetic ones.

    python -m emulator.frontend_cli --core cortex-m0 --chunks 128 tests/fixtures/fsdd/*.wav
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from emulator.frontend import FrontendRun, run_host, run_qemu
from firmware_gen.frontend import DEFAULT_PREFIX
from pipeline.artifacts import TOOL_VERSION, write_text
from pipeline.errors import CheckError, InputError, OneLineArgumentParser, run_cli
from pipeline.frontend import FrontendConfig, features
from pipeline.json_input import parse_json
from pipeline.wav import fit_clip, read_wav_file

__all__ = ["synthetic", "measure", "build_parser", "main"]


def synthetic(config: FrontendConfig, count: int = 8, seed: int = 0) -> list[np.ndarray]:
    """``count`` clips of noise bursts at levels from -60 to 0 dB full scale (deterministic)."""
    rng = np.random.default_rng(seed)
    n = np.arange(config.clip_samples)
    clips = []
    for index in range(count):
        envelope = np.clip(np.sin(np.pi * n / config.clip_samples * (1 + index % 3)), 0, None)
        level = 32767 * 10 ** (-60 * index / max(count - 1, 1) / 20)
        clips.append(np.clip(np.round(rng.normal(0, 0.3, len(n)) * envelope * level), -32768, 32767).astype(np.int16))
    return clips


def measure(
    config: FrontendConfig, clips: list[np.ndarray], *, core: str | None, chunks: Sequence[int], prefix: str
) -> dict[str, Any]:
    """Run the C on ``clips`` (host or QEMU), compare with Python, and return a JSON-ready report.

    Raises:
        CheckError: the C's features differ from Python's (naming the first clip, frame and band).
    """
    run: FrontendRun = (
        run_qemu(config, clips, core=core, chunks=chunks, prefix=prefix)
        if core
        else run_host(config, clips, chunks=chunks, prefix=prefix)
    )
    want = features(np.stack([fit_clip(clip, config.clip_samples) for clip in clips]), config)
    if not np.array_equal(run.features, want):
        clip, frame, band = (int(v) for v in np.argwhere(run.features != want)[0])
        raise CheckError(
            f"the C front end differs from pipeline.frontend.features: clip {clip}, frame {frame}, band {band}: "
            f"{int(run.features[clip, frame, band])} against {int(want[clip, frame, band])}"
        )
    report: dict[str, Any] = {
        "version": TOOL_VERSION,
        "config": config.to_json(),
        "config_sha256": config.sha256(),
        "backend": f"qemu {core}" if core else "host gcc",
        "clips": len(clips),
        "chunks": list(chunks),
        "bit_exact": True,
    }
    if core:
        per_tick = run.calibration["instructions_per_tick"]
        report.update(
            {
                "instructions_per_frame": run.instructions_per_frame,
                "longest_call_instructions": float(run.max_ticks.max() * per_tick),
                "flash_bytes": run.footprint["flash_bytes"],
                "ram_bytes": run.footprint["ram_bytes"],
                "static_ram_bytes": run.footprint["static_ram_bytes"],
                "stack_bytes": run.footprint["stack_bytes"],
                "stack_measured_bytes": run.footprint["stack_measured_bytes"],
                "stack_path": run.footprint["stack_path"],
            }
        )
    return report


def build_parser() -> OneLineArgumentParser:
    """The command line of ``python -m emulator.frontend_cli``."""
    parser = OneLineArgumentParser(prog="python -m emulator.frontend_cli", description=__doc__.splitlines()[0])
    parser.add_argument("wav", nargs="*", type=Path, help="clips (mono 16-bit PCM WAV); default: eight synthetic clips")
    parser.add_argument("--config", type=Path, help="a JSON object of front end settings (missing keys: the defaults)")
    parser.add_argument("--core", help="run under QEMU on this core (cortex-m0, cortex-m4, ...); default: the host")
    parser.add_argument("--chunks", default="128", help="samples per push, comma-separated, cycled (default 128)")
    parser.add_argument("--prefix", default=DEFAULT_PREFIX, help=f"C prefix (default {DEFAULT_PREFIX})")
    parser.add_argument("--json", type=Path, help="also write the report here")
    return parser


def _main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    config = FrontendConfig()
    if args.config is not None:
        try:
            data = parse_json(args.config.read_text())
        except (OSError, ValueError) as err:
            raise InputError(f"{args.config}: cannot read a JSON object ({err})") from None
        config = FrontendConfig.from_json(data)
    try:
        chunks = [int(part) for part in args.chunks.split(",")]
    except ValueError:
        raise InputError(f"--chunks: expected comma-separated whole numbers, got {args.chunks!r}") from None
    clips = [read_wav_file(path, sample_rate=config.sample_rate) for path in args.wav] or synthetic(config)
    report = measure(config, clips, core=args.core, chunks=chunks, prefix=args.prefix)
    line = f"{report['backend']}: {report['clips']} clips, features equal to pipeline.frontend.features"
    if args.core:
        line += (
            f"; {report['instructions_per_frame']:,.0f} instructions per frame; flash {report['flash_bytes']:,} B; "
            f"RAM {report['ram_bytes']:,} B "
            f"({report['static_ram_bytes']} static + {report['stack_bytes']} stack)"
        )
    print(line)
    if args.json is not None:
        write_text(args.json, json.dumps(report, indent=2) + "\n")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m emulator.frontend_cli``."""
    return run_cli("python -m emulator.frontend_cli", _main, argv)


if __name__ == "__main__":
    sys.exit(main())
