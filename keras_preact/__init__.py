"""Pre-activation ResNets (He et al., "Identity Mappings in Deep Residual
Networks", ECCV 2016) for Keras 3 on TensorFlow, JAX and PyTorch."""

from keras_preact import layers
from keras_preact import normalization
from keras_preact import training
from keras_preact.models import PreActResNet
from keras_preact.models import PreActResNet18
from keras_preact.models import PreActResNet20
from keras_preact.models import PreActResNet32
from keras_preact.models import PreActResNet34
from keras_preact.models import PreActResNet44
from keras_preact.models import PreActResNet50
from keras_preact.models import PreActResNet56
from keras_preact.models import PreActResNet101
from keras_preact.models import PreActResNet110
from keras_preact.models import PreActResNet152
from keras_preact.models import PreActResNet164
from keras_preact.models import PreActResNet200
from keras_preact.models import PreActResNet1001
from keras_preact.models import batch_norm_layers
from keras_preact.models import feature_extractor
from keras_preact.models import residual_units

__version__ = "0.1.0"
