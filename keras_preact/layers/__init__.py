"""Keras layers of the pre-activation residual unit."""

from keras_preact.layers.batch_normalization import BatchNormalization
from keras_preact.layers.convolution import Conv2D
from keras_preact.layers.drop_path import DropPath
from keras_preact.layers.options import SHORTCUTS
from keras_preact.layers.options import UNIT_ORDERING_TABLE
from keras_preact.layers.options import UNIT_ORDERINGS
from keras_preact.layers.padding import ConstantPadding2D
from keras_preact.layers.residual_unit import PreActBasicUnit
from keras_preact.layers.residual_unit import PreActBottleneckUnit
from keras_preact.layers.residual_unit import ResidualUnit
