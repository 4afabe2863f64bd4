"""Benchmarks: every model and engine side by side in one run (``python -m bench``, ``make bench``).

Not timed tests: the run measures and writes ``bench/results.json``, ``bench/RESULTS.md`` and
``bench/accuracy_vs_flash.png``; nothing here asserts a time.
"""

import pipeline  # noqa: F401  (pipeline.env: legacy Keras before TensorFlow loads)

__all__: list[str] = []
