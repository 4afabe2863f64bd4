"""Budget-driven architecture search: the most accurate binarized model that fits a board, measured as firmware.

``python -m search --board BOARD`` runs an Optuna multi-objective study over a space of
binarized CNNs written as data (:mod:`search.space`). Each trial sizes its candidate before
training (:mod:`search.estimate`, then the untrained model's firmware), trains it with a short
recipe through the project's trainer (:mod:`search.training`), compiles it with the bnn engine
for the board's core and measures it as firmware (:mod:`search.measure`): accuracy on the
validation split, flash and RAM of the deployable ELF, instructions per inference under QEMU
(:mod:`search.trial`). The study lives in an Optuna storage (:mod:`search.study`); the front
goes to ``search.json``/``.md``/``.png`` (:mod:`search.report`) and the best model that fits is
retrained with the full recipe as a normal ``NAME.h5`` (:mod:`search.final`).
"""

__all__: list[str] = []
