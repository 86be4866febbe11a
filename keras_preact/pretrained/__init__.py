"""Published pre-activation ResNet checkpoints, converted exactly."""

from keras_preact.pretrained.convert import convert
from keras_preact.pretrained.loading import build
from keras_preact.pretrained.loading import converted_weights
from keras_preact.pretrained.loading import load_state_dict
from keras_preact.pretrained.loading import source_path
from keras_preact.pretrained.registry import CHECKPOINTS
from keras_preact.pretrained.registry import Checkpoint
from keras_preact.pretrained.registry import get_checkpoint
