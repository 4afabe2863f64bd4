"""Messages (issue 35): a refusal is its one line, a success prints no library warning, a name is text.

* float64 examples near 1e300 were refused after numpy's two-line ``RuntimeWarning: overflow
  encountered in cast``: now they are refused before the cast, in one line, with no warning;
* every successful ``python -m train`` printed Keras's two-line ``UserWarning`` calling ``.h5``
  legacy: that warning (only it) is silenced where the project saves a model;
* a model named ``<img src=x onerror=alert(1)>`` reached the tflm project's ``README.md`` as HTML
  (in its heading, and ``-->`` in a name closed the banner's comment): now it is escaped text.
"""

from __future__ import annotations

import re
import shutil
import types
import warnings
from pathlib import Path

import numpy as np
import pytest

import pipeline  # noqa: F401  (pipeline.env: legacy Keras before TensorFlow loads)
from pipeline.errors import InputError


@pytest.mark.parametrize("value", [1e300, -3.5e38])
def test_float64_beyond_float32_is_refused_without_a_numpy_warning(tmp_path: Path, value: float) -> None:
    from pipeline.data import load_dataset

    x = np.zeros((4, 5, 5), np.float64)
    x[2, 1, 1] = value
    path = tmp_path / "big.npz"
    np.savez(path, x_test=x, y_test=np.arange(4), x_train=np.zeros((4, 5, 5)), y_train=np.arange(4))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(InputError) as refused:
            load_dataset(path)
    assert [str(w.message) for w in caught] == []
    message = str(refused.value)
    assert message.startswith(f"{path}: x_test holds values beyond float32's range") and "\n" not in message
    # Within float32's range, float64 still converts (and quietly).
    x[2, 1, 1] = 3.0e38
    np.savez(path, x_test=x, y_test=np.arange(4), x_train=np.zeros((4, 5, 5)), y_train=np.arange(4))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = load_dataset(path)
    assert [str(w.message) for w in caught] == [] and data.x_test.dtype == np.float32 and np.isfinite(data.x_test).all()


def test_saving_the_trained_model_prints_no_keras_hdf5_warning(tmp_path: Path) -> None:
    import tensorflow as tf

    from train.outputs import write_training_outputs
    from train.recipes import get_recipe
    from train.trainer import TrainResult

    model = tf.keras.Sequential([tf.keras.layers.Dense(10, input_shape=(4,))])
    result = TrainResult(model, {"accuracy": [0.5], "loss": [1.0]}, 0.5, np.array([0, 1]), 1.0, 1.0, 2, 0)
    data = types.SimpleNamespace(y_test=np.array([0, 1]), source="x", sha256="ab", describe=lambda: {})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        write_training_outputs(tmp_path, "m", result, get_recipe("seed"), data, seed=1, limit=None)
        warnings.warn("You are saving your model as an HDF5 file via a test", UserWarning, stacklevel=1)
    assert (tmp_path / "m.h5").is_file()
    hdf5 = [str(w.message) for w in caught if "HDF5" in str(w.message)]
    assert hdf5 == ["You are saving your model as an HDF5 file via a test"], hdf5  # silenced in the save only


NAME = "<img src=x onerror=alert(1)>--><b>x|`y`.int8.tflite"


def test_a_hostile_model_name_is_text_in_the_tflm_readme(tmp_path: Path, mini_flatbuffers) -> None:
    from firmware_gen.cli import main as firmware_gen

    model = tmp_path / NAME
    shutil.copy(mini_flatbuffers["cnn.int8"], model)
    out = tmp_path / "fw"
    assert firmware_gen(["--engine", "tflm", "--target", "cortex-m4", "--model", str(model), "--out", str(out)]) == 0
    readme = (out / "README.md").read_text()
    assert "<img" not in readme and "<b>" not in readme and "onerror=alert(1)&gt;" in readme
    assert readme.startswith("<!--\n") and readme.count("<!--") == 1
    closing = readme.index("-->")
    assert readme[closing - 1 : closing + 4] == "\n-->\n", readme[: closing + 4]  # the banner's own end, nothing earlier
    assert "--" not in readme[4:closing]
    heading = next(line for line in readme.splitlines() if line.startswith("# "))
    expected = r"# &lt;img src=x onerror=alert\(1\)&gt;--&gt;&lt;b&gt;x\\\|'y'\.int8\.tflite on cortex-m4 with TFLite-Micro"
    assert re.fullmatch(expected, heading), heading
    row = next(line for line in readme.splitlines() if line.startswith("| model |"))
    assert len(re.findall(r"(?<!\\)\|", row)) == 3, row  # two cells: the name's | is escaped
