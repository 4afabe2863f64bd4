"""``python -m bench.side_by_side``: flatbuffers side by side on emulated Cortex-M cores, on the same test examples.

Each row is a flatbuffer deployed by an engine (the bnn engine, or real TFLite-Micro with a
kernel set) under a label: MLPerf Tiny's reference models under TFLite-Micro + CMSIS-NN beside
the project's binarized models under the bnn engine, on the task's test set. Every figure comes
from the project's own stages, run as commands: ``python -m firmware_gen`` generates each
firmware, ``python -m emulator --backend qemu`` runs it and writes its report. Modules:

* :mod:`bench.side_by_side.spec`: rows, references, boards, and their checks;
* :mod:`bench.side_by_side.runs`: the stages' commands and what their reports say;
* :mod:`bench.side_by_side.summary`: board verdicts and ratios against the baseline row;
* :mod:`bench.side_by_side.tables` and :mod:`bench.side_by_side.plot`: ``SIDE_BY_SIDE.md`` and
  ``side_by_side.png`` from the results dict alone;
* :mod:`bench.side_by_side.cli`: the command.
"""

import pipeline  # noqa: F401  (pipeline.env: legacy Keras before TensorFlow loads)

__all__: list[str] = []
