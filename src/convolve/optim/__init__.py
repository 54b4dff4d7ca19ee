"""Optimizers with PyTorch's names, defaults, update formulas and state_dict layout; schedulers in `lr_scheduler`."""

from convolve.optim import lr_scheduler
from convolve.optim.adam import Adam, AdamW
from convolve.optim.optimizer import Optimizer
from convolve.optim.rmsprop import RMSprop
from convolve.optim.sgd import SGD

__all__ = ["SGD", "Adam", "AdamW", "Optimizer", "RMSprop", "lr_scheduler"]
