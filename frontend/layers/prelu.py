"""PReLU layer: a leaky ReLU whose slope is learned."""

from gpudl.frontend import constraints, initializers, regularizers
from gpudl.frontend.layers.base import Layer


class PReLU(Layer):
    """y = max(x, 0) + alpha * min(x, 0), alpha a trainable weight with one value per
    feature (shared along `shared_axes`).
        dx = dy * (1 if x > 0 else alpha);  dalpha = sum of dy * min(x, 0) over the batch
        and the shared axes.

    Args:
        alpha_initializer: initializer of alpha (Keras's default "Zeros": plain ReLU at first).
        alpha_regularizer, alpha_constraint: optional.
        shared_axes: axes (1 = the first feature axis, as Keras counts) along which alpha is shared.
    """

    def __init__(self, alpha_initializer="Zeros", alpha_regularizer=None, alpha_constraint=None, shared_axes=None,
                 **kwargs):
        super().__init__(**kwargs)
        self.alpha_initializer = initializers.get(alpha_initializer)
        self.alpha_regularizer = regularizers.get(alpha_regularizer)
        self.alpha_constraint = constraints.get(alpha_constraint)
        if shared_axes is None:
            self.shared_axes = None
        else:
            self.shared_axes = list(shared_axes) if isinstance(shared_axes, (list, tuple)) else [shared_axes]

    def build(self, input_shape):
        shape = list(input_shape)
        for axis in self.shared_axes or []:
            if not 1 <= axis <= len(shape):
                raise ValueError(f"PReLU '{self.name}': shared_axes must name feature axes 1..{len(shape)} of "
                                 f"inputs of shape (None, {', '.join(map(str, input_shape))}); received "
                                 f"shared_axes={self.shared_axes}.")
            shape[axis - 1] = 1
        self.alpha = self.add_weight("alpha", tuple(shape), self.alpha_initializer,
                                     regularizer=self.alpha_regularizer, constraint=self.alpha_constraint)

    def forward(self, x, training=False):
        self._x = x
        return self.xp.maximum(x, 0) + self.alpha.value * self.xp.minimum(x, 0)

    def backward(self, dy):
        x = self._x
        if self.alpha.grad is not None:
            shared = (0,) + tuple(self.shared_axes or ())
            self.alpha.grad[...] = (dy * self.xp.minimum(x, 0)).sum(axis=shared, keepdims=True)[0]
        return self.xp.where(x > 0, dy, dy * self.alpha.value)

    def get_config(self):
        return {**super().get_config(),
                "alpha_initializer": initializers.serialize(self.alpha_initializer),
                "alpha_regularizer": regularizers.serialize(self.alpha_regularizer),
                "alpha_constraint": constraints.serialize(self.alpha_constraint),
                "shared_axes": self.shared_axes}
