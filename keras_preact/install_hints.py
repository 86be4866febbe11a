"""Install lines for the optional TensorFlow, in the errors that need it.

No keras_preact extra installs TensorFlow (a machine with a GPU or Colab has
its own build, and a second distribution would overwrite it), so code that
needs it (the tf.data pipelines, SavedModel export) checks for it first and
says how to install the build that fits the machine.
"""

import importlib

TENSORFLOW_INSTALL = (
    "Install the TensorFlow build for this machine: `pip install tensorflow-cpu` "
    "on a CPU-only machine (or keras_preact's extra: `pip install -e "
    "\".[tensorflow-cpu]\"`), `pip install \"tensorflow[and-cuda]\"` with an "
    "NVIDIA GPU; Colab has one already. No other keras_preact extra installs "
    "TensorFlow (README.md, \"Set-up on a fresh machine\")."
)


def missing_tensorflow_message(purpose):
    """The message of the error raised when `purpose` finds no TensorFlow.

    Args:
        purpose: what needs TensorFlow, e.g. `"SavedModel export"`.

    Returns:
        `str`: what is missing and the install lines.
    """
    return f"{purpose} needs TensorFlow, which is not installed. {TENSORFLOW_INSTALL}"


def import_tensorflow(purpose):
    """`import tensorflow`, or an error that gives the install line.

    Args:
        purpose: what needs TensorFlow, named in the error.

    Returns:
        The `tensorflow` module.

    Raises:
        ModuleNotFoundError: TensorFlow is not installed (`name="tensorflow"`);
            the message says how to install it. An error raised while
            importing an installed TensorFlow propagates unchanged.

    Example:

    ```python
    tf = import_tensorflow("The tf.data pipelines")
    ```
    """
    try:
        return importlib.import_module("tensorflow")
    except ModuleNotFoundError as e:
        if e.name != "tensorflow":
            raise
        raise ModuleNotFoundError(
            missing_tensorflow_message(purpose), name="tensorflow"
        ) from None
