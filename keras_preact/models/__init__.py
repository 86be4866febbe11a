"""Pre-activation ResNet model builders."""

from keras_preact.models.features import feature_extractor
from keras_preact.models.features import residual_units
from keras_preact.models.preact_resnet import PreActResNet
from keras_preact.models.variants import PreActResNet18
from keras_preact.models.variants import PreActResNet20
from keras_preact.models.variants import PreActResNet32
from keras_preact.models.variants import PreActResNet34
from keras_preact.models.variants import PreActResNet44
from keras_preact.models.variants import PreActResNet50
from keras_preact.models.variants import PreActResNet56
from keras_preact.models.variants import PreActResNet101
from keras_preact.models.variants import PreActResNet110
from keras_preact.models.variants import PreActResNet152
from keras_preact.models.variants import PreActResNet164
from keras_preact.models.variants import PreActResNet200
from keras_preact.models.variants import PreActResNet1001
