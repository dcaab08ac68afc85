"""InputLayer: Keras's layer form of Input."""

from gpudl.naming import snake_case, unique_name
from gpudl.frontend.layers.input import Input


class InputLayer(Input):
    """`InputLayer(shape=(784,))` (or `batch_shape=(None, 784)`) as the first element of
    a Sequential declares its input shape, exactly like Input; it has a name and a
    Keras config (batch_shape, dtype, name).
    """

    def __init__(self, shape=None, batch_size=None, dtype=None, sparse=None, batch_shape=None, name=None, **kwargs):
        if "input_shape" in kwargs:
            shape = kwargs.pop("input_shape")
        if "batch_input_shape" in kwargs:
            batch_shape = kwargs.pop("batch_input_shape")
        super().__init__(shape=shape, batch_size=batch_size, dtype=dtype, sparse=sparse, batch_shape=batch_shape,
                         name=name or unique_name(snake_case(type(self).__name__)), **kwargs)

    def get_config(self):
        return {"batch_shape": list(self.batch_shape), "dtype": self.dtype, "sparse": False, "ragged": False,
                "name": self.name, "optional": False}

    @classmethod
    def from_config(cls, config):
        return cls(**config)
