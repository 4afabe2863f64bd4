"""Instructions per step of the generated audio front end under QEMU, counted by construction.

Manual measurement (not part of ``make test``). Generates the front end for ``--config`` (the
defaults otherwise), builds its QEMU harness for ``--core`` (``--opt``, plus ``-g``, which does not
change the code), streams the clips (WAV files; default: the six recordings of
``tests/fixtures/fsdd``) 128 samples per push, and runs QEMU with ``-icount shift=0 -d
in_asm,exec,nochain``: every translated block's instructions are in the log, and so is every
block executed. From each call of ``PREFIX_frontend_push``/``finish`` to its return, every executed
instruction is charged to the function that holds it (``arm-none-eabi-nm``); the C keeps each step
in a function of its own, so that is the count per step. Code outside the front end's file (a
library helper the compiler called) is listed under its own name, marked ``(outside)``. The
total must equal the harness's SysTick measurement of the same run to within a tick per call.

``--source FILE`` profiles another ``PREFIX_frontend.c`` generated for the same config (an older
revision's, say); ``--lines`` adds the count per source line (addr2line; an inlined helper's
instructions count for the line that calls it).

    PYTHONPATH=. .venv/bin/python tools/frontend_profile/run.py --core cortex-m0 [--config F] [--source C] [--lines] [WAV...]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from emulator.frontend import encode_clips, parse_output, write_sources  # noqa: E402
from firmware_gen.baremetal.protocol import instructions_per_tick, qemu_flags  # noqa: E402
from firmware_gen.frontend import DEFAULT_PREFIX, INPUT_NAME, OUTPUT_NAME  # noqa: E402
from firmware_gen.targets import get_core  # noqa: E402
from pipeline.frontend import FrontendConfig  # noqa: E402
from pipeline.wav import read_wav_file  # noqa: E402

_INSN = re.compile(r"^0x([0-9a-f]+):\s+((?:[0-9a-f]{4} ?)+)\s+(\S+)")


def _symbols(elf: Path) -> list[tuple[int, int, str]]:
    out = subprocess.run(["arm-none-eabi-nm", "-S", str(elf)], capture_output=True, text=True, check=True).stdout
    symbols = []
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[2] in "tT":
            symbols.append((int(parts[0], 16) & ~1, int(parts[1], 16), parts[3]))
    return sorted(symbols)


def _count(log, entries: set[int]) -> collections.Counter:
    """Executed instructions per address, from a call of an entry point to its return."""
    blocks: dict[str, list[tuple[int, int, str]]] = {}  # host code address -> (pc, size, mnemonic) per instruction
    pending: list[tuple[int, int, str]] | None = None
    current: list[tuple[int, int, str]] | None = None
    previous: list[tuple[int, int, str]] | None = None
    counts: collections.Counter = collections.Counter()
    return_to = None
    for line in log:
        if line.startswith("IN:"):
            current = []
            continue
        match = _INSN.match(line)
        if match and current is not None:
            current.append((int(match.group(1), 16), len(match.group(2).replace(" ", "")) // 2, match.group(3)))
            continue
        if current:
            pending = current
        current = None
        if not line.startswith("Trace "):
            continue
        host = line.split()[2]
        if pending is not None:  # a block runs right after QEMU translates it
            blocks[host] = pending
            pending = None
        block = blocks[host]
        start = block[0][0]
        if return_to is None and start in entries and previous and previous[-1][2] in ("bl", "blx"):
            last_pc, last_size, _ = previous[-1]
            return_to = last_pc + last_size
        elif return_to is not None and start == return_to:
            return_to = None
        if return_to is not None:
            for pc, _, _ in block:
                counts[pc] += 1
        previous = block
    return counts


def _lines(elf: Path, addresses: list[int], source: str, helpers: set[str]) -> dict[int, int]:
    """For each address, its line in ``source`` (0 when none): the innermost one outside a helper
    (so that the instructions of an inlined helper count for the line that uses it)."""
    out = subprocess.run(
        ["arm-none-eabi-addr2line", "-e", str(elf), "-a", "-f", "-i", *[hex(a) for a in addresses]],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    chains: dict[int, list[tuple[str, str]]] = {}
    address = None
    index = 0
    while index < len(out):
        if out[index].startswith("0x"):
            address = int(out[index], 16)
            chains[address] = []
            index += 1
        else:
            chains[address].append((out[index], out[index + 1]))  # innermost first
            index += 2
    result: dict[int, int] = {}
    for address, chain in chains.items():
        ours = [(function, where) for function, where in chain if source in where]
        function, where = next(((f, w) for f, w in ours if f not in helpers), ours[-1] if ours else ("", ":0"))
        token = where.rsplit(":", 1)[1].split()[0]
        result[address] = int(token) if token.isdigit() else 0
    return result


def profile(args: argparse.Namespace) -> dict:
    config = FrontendConfig.from_json(json.loads(args.config.read_text())) if args.config else FrontendConfig()
    core = get_core(args.core)
    wavs = args.wav or sorted((REPO / "tests" / "fixtures" / "fsdd").glob("*.wav"))
    clips = [read_wav_file(path, sample_rate=config.sample_rate) for path in wavs]
    source_name = f"{args.prefix}_frontend.c"
    with tempfile.TemporaryDirectory(prefix="frontend-profile-") as tmp:
        folder = Path(tmp)
        write_sources(folder, config, args.prefix, core.name, args.opt)
        if args.source:
            shutil.copy(args.source, folder / source_name)
        subprocess.run(["make", "-s", f"OPT={args.opt} -g", "firmware.elf"], cwd=folder, check=True)
        (folder / INPUT_NAME).write_bytes(encode_clips(clips, [128]))
        fifo = folder / "exec.log"
        os.mkfifo(fifo)
        elf = folder / "firmware.elf"
        symbols = _symbols(elf)
        entries = {
            addr for addr, _, name in symbols if name in (f"{args.prefix}_frontend_push", f"{args.prefix}_frontend_finish")
        }
        command = [
            "qemu-system-arm",
            *qemu_flags(core.qemu_machine, "firmware.elf", INPUT_NAME, OUTPUT_NAME),
            "-kernel",
            "firmware.elf",
            "-d",
            "in_asm,exec,nochain",
            "-D",
            str(fifo),
        ]
        result: dict = {}

        def read() -> None:
            with open(fifo, errors="replace") as log:
                result["counts"] = _count(log, entries)

        reader = threading.Thread(target=read)
        reader.start()
        qemu = subprocess.run(command, cwd=folder, capture_output=True, text=True, check=False)
        reader.join()
        if qemu.returncode != 0:
            raise SystemExit(f"QEMU failed ({qemu.returncode}): {qemu.stdout.strip()[:300]}")
        run = parse_output((folder / OUTPUT_NAME).read_bytes(), len(clips), config)
        counts = result["counts"]
        own = set(re.findall(r"^\S[^\n(]*?\b(\w+)\(", (folder / source_name).read_text(), re.M))
        per_function: collections.Counter = collections.Counter()
        for address, count in counts.items():
            name = next((n for lo, size, n in symbols if lo <= address < lo + max(size, 1)), hex(address))
            base = name.split(".")[0]
            per_function[base if base in own else f"{base} (outside)"] += count
        text = (folder / source_name).read_text()
        helpers = set(args.helpers.split(",")) | set(re.findall(r"^(?:FE_INLINE|static inline)[^(]*?\b(\w+)\(", text, re.M))
        lines = _lines(elf, sorted(counts), source_name, helpers) if args.lines else {}
        per_line: collections.Counter = collections.Counter()
        for address, line in lines.items():
            per_line[line] += counts[address]
        source_lines = (folder / source_name).read_text().splitlines()
    frames = len(clips) * config.frames
    per_tick = instructions_per_tick(core.qemu_machine)
    systick = float(((run.ticks - run.calibration["overhead_ticks"] * run.calls) * per_tick).sum()) / frames
    return {
        "core": core.name,
        "opt": args.opt,
        "clips": len(clips),
        "frames": frames,
        "per_frame": {name: count / frames for name, count in per_function.most_common()},
        "total": sum(per_function.values()) / frames,
        "systick_total": systick,
        "per_line": {
            line: (count / frames, source_lines[line - 1].strip() if 0 < line <= len(source_lines) else "")
            for line, count in sorted(per_line.items())
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("wav", nargs="*", type=Path, help="clips (default: tests/fixtures/fsdd/*.wav)")
    parser.add_argument("--core", default="cortex-m0")
    parser.add_argument("--opt", default="-Os")
    parser.add_argument("--config", type=Path, help="a JSON object of front end settings")
    parser.add_argument("--prefix", default=DEFAULT_PREFIX)
    parser.add_argument("--source", type=Path, help="profile this PREFIX_frontend.c instead of the generated one")
    parser.add_argument("--lines", action="store_true", help="also count per source line")
    parser.add_argument(
        "--helpers",
        default="fe_asr,fe_cos,fe_sin,fe_clz",
        help="functions whose lines count for their callers' (inline functions always do)",
    )
    parser.add_argument("--json", type=Path, help="also write the report here")
    args = parser.parse_args()
    report = profile(args)
    print(f"{report['core']} {report['opt']}: {report['clips']} clips, {report['frames']} frames; instructions per frame")
    for name, value in report["per_frame"].items():
        print(f"  {name:32s} {value:9,.0f}")
    print(f"  {'total':32s} {report['total']:9,.0f}   (SysTick: {report['systick_total']:,.0f})")
    for line, (value, text) in report["per_line"].items():
        if value >= 1:
            print(f"{line:5d} {value:9,.0f}  {text[:100]}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
