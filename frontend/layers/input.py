"""Input: declares the shape of the model's inputs (batch axis excluded)."""

from gpudl.errors import invalid_value


class Input:
    """`Input(shape=(784,))` as the first element of a Sequential builds it at once."""

    def __init__(self, shape, name=None):
        shape = (shape,) if isinstance(shape, int) else tuple(shape)
        if not shape or not all(isinstance(d, int) and d > 0 for d in shape):
            raise invalid_value("shape", "a tuple of positive ints (batch axis excluded)", shape, "Input")
        self.shape = shape
        self.name = name

    def __repr__(self):
        return f"<Input shape=(None, {', '.join(map(str, self.shape))})>"
