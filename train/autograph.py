"""Keep AutoGraph away from tf-keras' own code, as TensorFlow already does for ``keras``.

TensorFlow 2.16 exempts the ``keras`` package from AutoGraph conversion but not ``tf_keras``,
the legacy Keras that Larq needs. So the first ``fit``, ``evaluate`` or ``predict`` of every
model converted some 1,700 library functions of tf-keras: 12 to 28 s of Python before the
first step on 2 cores, for every model of a run. tf-keras is the Keras 2.15 code base, written
to run in graph mode unconverted (as ``keras`` always did); user code (layers' ``call``,
``train_step``) is still converted. Importing :mod:`train.models` applies the rule.
"""

from __future__ import annotations

__all__ = ["leave_tf_keras_unconverted"]


def leave_tf_keras_unconverted() -> bool:
    """Add AutoGraph's do-not-convert rule for ``tf_keras`` (once).

    Returns:
        True if the rule was added by this call, False if it was already there.
    """
    from tensorflow.python.autograph.core import config as autograph_config

    if any(rule.matches("tf_keras") for rule in autograph_config.CONVERSION_RULES):
        return False
    autograph_config.CONVERSION_RULES = (autograph_config.DoNotConvert("tf_keras"), *autograph_config.CONVERSION_RULES)
    return True
