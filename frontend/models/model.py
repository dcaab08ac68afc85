"""Model: a Layer that holds layers and trains (Trainer), the base of every model kind.

The weights API is Layer's (a model's weights are its layers' weights); the Trainer supplies
compile / fit / evaluate / predict; saving goes through gpudl.saving. A model kind adds its
structure: how its layers connect (`forward`, `backward`), how it builds and describes itself.
"""

from gpudl.backend import get_backend
from gpudl.frontend.layers.base import Layer
from gpudl.frontend.models.trainer import Trainer

NO_FUNCTIONAL_API = ("gpudl has no functional API or subclassed Model (no autodiff): build a gpudl.Sequential of "
                     "layers, and write a custom layer as a Layer with forward(x, training) and backward(dy).")


class Model(Trainer, Layer):
    """keras.Model. Called directly (the functional API, `keras.Model(inputs, outputs)`) or
    subclassed, it says what gpudl offers instead; `gpudl.Sequential` is a Model."""

    builds_once = False  # a model builds again as layers arrive: the arena is laid out anew
    _label = "Model"

    def __init__(self, *args, **kwargs):
        raise NotImplementedError(NO_FUNCTIONAL_API)

    # -- structure ----------------------------------------------------------
    def _sublayers(self):
        return self.layers

    def _leaves(self):
        """The layers in order, nested models expanded."""
        leaves = []
        for layer in self.layers:
            leaves.extend(layer._leaves() if isinstance(layer, Model) else [layer])
        return leaves

    def get_layer(self, name=None, index=None):
        """A layer by its name or its index in `layers`."""
        if (name is None) == (index is None):
            raise ValueError("Provide exactly one of `name` or `index` to get_layer.")
        if index is not None:
            if not -len(self.layers) <= index < len(self.layers):
                raise ValueError(f"{type(self).__name__} '{self.name}' has {len(self.layers)} layers; "
                                 f"received index={index}.")
            return self.layers[index]
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise ValueError(f"No such layer: {name!r}. Layers of '{self.name}': "
                         f"{', '.join(layer.name for layer in self.layers)}.")

    @property
    def trainable(self):
        return all(layer.trainable for layer in self.layers) if self.layers else True

    @trainable.setter
    def trainable(self, value):
        """Keras: setting it on the model sets it on every layer (nested ones included)."""
        for layer in self.layers:
            layer.trainable = bool(value)

    def _ensure_built(self, x_shape):
        if not self.built:
            self.build(self._feature_shape or tuple(x_shape[1:]))

    def __call__(self, x, training=False):
        """Forward pass; `training=True` keeps dropout on (Monte Carlo dropout) and
        uses batch statistics in batch-norm. Returns a backend array."""
        x = self._check_x(x, "x")
        self._ensure_built(x.shape)
        return self.forward(get_backend().asarray(x), training=bool(training))

    # -- files --------------------------------------------------------------
    def save(self, filepath, overwrite=True, zipped=None):
        """Save the model: a `.keras` path writes a Keras 3 archive; any other path writes
        gpudl's own `.npz` (configuration, weights and exact-resume state; see gpudl.saving)."""
        from gpudl.saving import save_model

        save_model(self, filepath, overwrite=overwrite)

    def save_weights(self, filepath, overwrite=True):
        """Write the weights alone to `filepath`, which must end in ".weights.h5" (Keras's rule);
        see gpudl.saving.save_weights for the format."""
        from gpudl.saving import save_weights

        save_weights(self, filepath, overwrite=overwrite)

    def load_weights(self, filepath, skip_mismatch=False):
        """Read weights written by save_weights; all shapes are checked before anything changes."""
        from gpudl.saving import load_weights

        load_weights(self, filepath, skip_mismatch=skip_mismatch)

    def export(self, filepath, format="onnx"):
        """Export an inference graph; format="onnx" (see gpudl.saving.onnx_export)."""
        from gpudl.saving import export

        export(self, filepath, format=format)
