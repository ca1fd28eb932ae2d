"""ember.optim: optimizers with PyTorch's update rules, and learning-rate schedulers.

Optimizers update parameters in place under no_grad with whole-tensor ember ops, so they
run on every device and under the compiler. `lr_scheduler` holds the schedules.
"""

from . import lr_scheduler
from .adagrad import Adagrad
from .adam import Adam, AdamW
from .lamb import LAMB
from .lars import LARS
from .optimizer import Optimizer
from .rmsprop import RMSprop
from .sgd import SGD

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "LARS", "LAMB", "lr_scheduler"]
