"""The model kinds and the Trainer they share: Model (a Layer that trains), Sequential, Functional."""

from gpudl.frontend.models.data_adapter import PyDataset
from gpudl.frontend.models.functional import Functional
from gpudl.frontend.models.model import Model
from gpudl.frontend.models.sequential import Sequential
from gpudl.frontend.models.trainer import Trainer

__all__ = ["Functional", "Model", "PyDataset", "Sequential", "Trainer"]
