"""SavedModel export for TensorFlow Serving (`python -m keras_preact.export`).

TensorFlow is imported only when an export is written, so importing this
package works on every backend.
"""

from keras_preact.export.saved_model import SIGNATURE_BYTES
from keras_preact.export.saved_model import SIGNATURE_FLOAT
from keras_preact.export.saved_model import SIGNATURE_UINT8
from keras_preact.export.saved_model import SUPPORTED_BACKENDS
from keras_preact.export.saved_model import UnsupportedBackendError
from keras_preact.export.saved_model import existing_versions
from keras_preact.export.saved_model import export_saved_model
from keras_preact.export.saved_model import next_version
from keras_preact.export.saved_model import with_dtype_policy

__all__ = [
    "SIGNATURE_BYTES",
    "SIGNATURE_FLOAT",
    "SIGNATURE_UINT8",
    "SUPPORTED_BACKENDS",
    "UnsupportedBackendError",
    "existing_versions",
    "export_saved_model",
    "next_version",
    "with_dtype_policy",
]
