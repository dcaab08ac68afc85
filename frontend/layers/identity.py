"""Identity layer."""

from gpudl.frontend.layers.base import Layer


class Identity(Layer):
    """Returns its input unchanged (a placeholder where no operation is wanted):
    y = x;  dx = dy."""

    def output_feature_shape(self, feature_shape):
        return tuple(feature_shape)

    def forward(self, x, training=False):
        return x

    def backward(self, dy):
        return dy
