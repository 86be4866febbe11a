"""Published pre-activation ResNet checkpoints, converted exactly."""

from keras_preact.pretrained.convert import convert
from keras_preact.pretrained.registry import CHECKPOINTS
from keras_preact.pretrained.registry import Checkpoint
from keras_preact.pretrained.registry import get_checkpoint
