"""Every command's ``--help`` renders: argparse expands ``%`` in help strings only when asked to."""

from __future__ import annotations

import importlib

import pytest

CLI_MODULES = (
    "train.cli",
    "convert.cli",
    "firmware_gen.cli",
    "firmware_gen.tflm_build.cli",
    "emulator.cli",
    "emulator.frontend_cli",
    "search.cli",
    "study.cli",
    "bench.run",
    "bench.training",
    "bench.side_by_side.cli",
)


@pytest.mark.parametrize("module", CLI_MODULES)
def test_help_renders(module):
    parser = importlib.import_module(module).build_parser()
    text = parser.format_help()
    assert text.startswith("usage: ")
    for action in parser._actions:
        assert action.help is None or "%" not in action.help.replace("%%", "").replace("%(default)s", "").replace(
            "%(prog)s", ""
        ), f"{module}: unescaped % in the help of {action.option_strings}"
