"""The model report: one self-contained HTML page per model, from the JSON the stages wrote.

``python -m emulator.model_report ARTIFACTS_DIR`` reads ``NAME.train.json``,
``NAME.convert.json``, every ``firmware.json`` and every ``*.emulate.json`` under the folder
(:mod:`.sources`), builds what the page shows (:mod:`.view`, :mod:`.ladder`, :mod:`.budgets`,
figures in :mod:`.svg`) and renders it with Jinja (:mod:`.render`) into
``NAME.report.html``. Nothing is measured again: every figure carries the file and key it was
read from (``data-src``/``data-key`` attributes).
"""

from emulator.model_report.cli import main, report_path, write_reports

__all__ = ["main", "report_path", "write_reports"]
