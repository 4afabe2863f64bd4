"""Code every stage of the pipeline shares (train, convert, firmware_gen, emulator, bench).

* :mod:`pipeline.env`: the environment TensorFlow needs (legacy Keras), set on import;
* :mod:`pipeline.errors`: the error classes, exit codes and the CLI edge (one line on stderr);
* :mod:`pipeline.json_input`: the one reader of a user's JSON (nesting bounded);
* :mod:`pipeline.artifacts`: atomic writes, sha256, the tool version;
* :mod:`pipeline.data`: dataset loading, one entry for every ``--data`` source (IDX folders,
  ``.npz``, image folders and tars, spec files: images, audio); :mod:`pipeline.dataset` the ``Dataset`` type;
  :mod:`pipeline.dataspec` dataset spec files and their kinds; :mod:`pipeline.filetree`,
  :mod:`pipeline.tree_layout` and :mod:`pipeline.splits` trees of data files; :mod:`pipeline.images`
  and :mod:`pipeline.image_layout` image trees; :mod:`pipeline.audio`, :mod:`pipeline.audio_options`
  and :mod:`pipeline.audio_layout` WAV trees through the audio front end; :mod:`pipeline.datacache`
  the decoded-dataset cache;
* :mod:`pipeline.interpreters`: the TFLite, LCE, TFLite-Micro and Keras runners, timed or not;
* :mod:`pipeline.planner`: the greedy memory planner over buffer lifetimes;
* :mod:`pipeline.frontend`: the audio front end (int16 PCM to uint8 log-mel features, twin of the generated C);
* :mod:`pipeline.wav`: mono 16-bit PCM WAV files, labels from file names, clips of one length.

Nothing here imports a stage: stages import this package, never the reverse.
"""

from pipeline.env import configure_environment

configure_environment()

__all__: list[str] = []
