"""``python -m emulator.model_report ARTIFACTS_DIR``: one HTML report per model.

Reads the JSON every stage wrote under ARTIFACTS_DIR (see :mod:`.sources`), never measures
anything again, and writes ``NAME.report.html`` per model (into ARTIFACTS_DIR, or ``--out``).
Exit status: 0 written, 2 bad usage or input (one line on stderr).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pipeline.errors import InputError, OneLineArgumentParser, run_cli

__all__ = ["PROG", "main", "report_path", "write_reports"]

PROG = "python -m emulator.model_report"


def report_path(out: Path, name: str) -> Path:
    """Where a model's report goes: ``OUT/NAME.report.html``."""
    return out / f"{name}.report.html"


def write_reports(folder: str, out: Path | None = None, models: Sequence[str] = ()) -> list[Path]:
    """Write the report of every model (or of ``models``) found under ``folder``.

    Args:
        folder: the artifacts folder, as given on the command line (the commands shown for rungs
            not run name it the same way).
        out: output folder (default: ``folder``).
        models: model names to report on (default: all).

    Returns:
        The paths written.

    Raises:
        InputError: no such folder, no reports, a malformed report, or an unknown model name.
    """
    from emulator.model_report.render import write_html
    from emulator.model_report.sources import collect
    from emulator.model_report.view import build_view

    found = collect(Path(folder))
    unknown = [name for name in models if name not in found]
    if unknown:
        raise InputError(f"no reports for model(s) {', '.join(unknown)} under {folder}; found: {', '.join(found)}")
    out = Path(out) if out is not None else Path(folder)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out}: exists and is not a folder")
    written = []
    for name, sources in found.items():
        if models and name not in models:
            continue
        try:
            view = build_view(sources, folder.rstrip("/") or "/")
        except (TypeError, KeyError, ValueError, AttributeError, IndexError) as err:
            files = ", ".join(doc.rel for doc in sources.docs)
            raise InputError(f"{name}: a report has an unexpected layout ({type(err).__name__}: {err}); files: {files}") from None
        written.append(write_html(report_path(out, name), view))
    return written


def _main(argv: Sequence[str] | None) -> int:
    parser = OneLineArgumentParser(
        prog=PROG,
        description="Write one self-contained HTML report per model from the JSON reports under ARTIFACTS_DIR.",
        epilog="exit status: 0 written, 2 bad usage or input",
    )
    parser.add_argument("folder", metavar="ARTIFACTS_DIR", help="the folder the pipeline wrote (e.g. artifacts)")
    parser.add_argument("--out", help="where NAME.report.html goes (default: ARTIFACTS_DIR)")
    parser.add_argument("--model", action="append", default=[], help="only this model (repeatable; default: every model)")
    args = parser.parse_args(argv)
    for path in write_reports(args.folder, Path(args.out) if args.out else None, args.model):
        print(f"wrote {path}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m emulator.model_report``; returns the exit status."""
    return run_cli(PROG, _main, argv)
