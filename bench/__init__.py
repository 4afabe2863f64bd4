"""Benchmarks: every model and engine side by side in one run (``python -m bench``, ``make bench``).

Not timed tests: the run measures and writes ``bench/results.json``, ``bench/RESULTS.md`` and
``bench/accuracy_vs_flash.png``; nothing here asserts a time.
"""

import os

os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

__all__: list[str] = []
