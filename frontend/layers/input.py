"""Input: the symbolic tensor a model's inputs start from (keras.Input)."""

import numpy as np

from gpudl.backend import floatx
from gpudl.errors import invalid_value
from gpudl.naming import unique_name
from gpudl.frontend.layers.node import KerasTensor


class Input(KerasTensor):
    """`Input(shape=(784,))`: a symbolic tensor of Keras shape (None, 784). As the first element of
    a Sequential it builds the model at once; called through layers, it starts a functional
    graph (`keras.Model(inputs, outputs)`).

    Args (Keras's): shape (batch axis excluded) or batch_shape (batch axis first);
    batch_size (recorded); dtype (default: gpudl.floatx(), "float32"); name. sparse, ragged, tensor and optional are
    refused: gpudl's models take dense arrays.
    """

    def __init__(self, shape=None, batch_size=None, dtype=None, sparse=None, batch_shape=None, name=None,
                 tensor=None, optional=False, ragged=None):
        where = type(self).__name__
        for argument, value in (("sparse", sparse), ("ragged", ragged), ("tensor", tensor), ("optional", optional)):
            if value:
                raise invalid_value(argument, "None or False (gpudl's models take dense arrays)", value, where)
        if shape is not None and batch_shape is not None:
            raise ValueError("You cannot pass both `shape` and `batch_shape` at the same time.")
        if batch_size is not None and batch_shape is not None:
            raise ValueError("You cannot pass both `batch_size` and `batch_shape` at the same time.")
        if shape is None and batch_shape is None:
            raise ValueError("You must pass a `shape` argument.")
        if batch_shape is not None:
            batch_shape = tuple(batch_shape)
            batch_size, shape = (batch_shape[0], batch_shape[1:]) if batch_shape else (None, ())
        shape = (shape,) if isinstance(shape, int) else tuple(shape)
        if not shape or not all(isinstance(d, int) and d > 0 for d in shape):
            raise invalid_value("shape", "a tuple of positive ints (batch axis excluded)", shape, where)
        super().__init__((None, *shape), name=name or unique_name("input_layer"))
        self.feature_shape = shape  # the shape of one sample
        self.batch_size = batch_size
        self.dtype = np.dtype(dtype or floatx()).name  # Keras: the float type of the moment

    @property
    def batch_shape(self):
        return (self.batch_size,) + self.feature_shape

    def __repr__(self):
        return f"<{type(self).__name__} shape=(None, {', '.join(map(str, self.feature_shape))})>"
