"""Training recipes of the pre-activation ResNet paper for Keras 3.

The public API is imported below (`WarmupCosineDecay` is not the paper's
recipe; figures live in `keras_preact.diagnostics`). Nothing here imports
TensorFlow at import time.
"""

from keras_preact.training.callbacks import AtomicModelCheckpoint
from keras_preact.training.callbacks import MetricsWriter
from keras_preact.training.callbacks import RunTimeEstimate
from keras_preact.training.callbacks import TrainingCurvesPlot
from keras_preact.training.callbacks import make_callbacks
from keras_preact.training.compile import accuracy_metrics
from keras_preact.training.compile import compile_for_paper
from keras_preact.training.distribute import DistributionSetup
from keras_preact.training.losses import CheckedSparseCategoricalCrossentropy
from keras_preact.training.distribute import setup_distribution
from keras_preact.training.optimizers import PaperSGD
from keras_preact.training.optimizers import decayed_variables
from keras_preact.training.precision import accelerator_info
from keras_preact.training.precision import resolve_precision
from keras_preact.training.precision import set_precision
from keras_preact.training.schedules import ImageNetStepSchedule
from keras_preact.training.schedules import PaperCIFARSchedule
from keras_preact.training.schedules import WarmupCosineDecay
from keras_preact.training.resume import BackupState
from keras_preact.training.resume import TrainingBackup
from keras_preact.training.resume import check_whole_executions
from keras_preact.training.resume import fit_resumable
from keras_preact.training.resume import fit_run
from keras_preact.training.resume import read_backup
from keras_preact.training.resume import restore_backup
from keras_preact.training.run import TrainingResult
from keras_preact.training.run import TrainingRun
from keras_preact.training.run import train_and_evaluate
