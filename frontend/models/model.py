"""Model: a Layer that holds layers and trains (Trainer), the base of every model kind.

The weights API is Layer's (a model's weights are its layers' weights); the Trainer supplies
compile / fit / evaluate / predict; saving goes through gpudl.saving. A model kind adds its
structure: how its layers connect (`forward`, `backward`), how it builds and describes itself.
"""

import numpy as np

from gpudl import registry
from gpudl.backend import get_backend
from gpudl.arena import ParameterArena
from gpudl.frontend.layers.base import Layer
from gpudl.frontend.layers import fusion
from gpudl.frontend.layers.dropout import Dropout
from gpudl.frontend.layers.node import is_symbolic
from gpudl.frontend.models import subclassed
from gpudl.frontend.models.trainer import Trainer

NO_CALL = ("keras.Model() needs `inputs` and `outputs` (a functional model), or subclass it and write "
           "call(inputs, training=None); for a stack of layers, use gpudl.Sequential.")


class Model(Trainer, Layer):
    """keras.Model: `keras.Model(inputs, outputs)` builds a functional model (Functional);
    `gpudl.Sequential` is a Model too; a subclass whose __init__ creates layers and whose
    call(inputs, training=None) composes them is a subclassed model (gpudl.frontend.models.subclassed)."""

    builds_once = False  # a model builds again as layers arrive: the arena is laid out anew
    _label = "Model"

    def __new__(cls, *args, **kwargs):
        """keras.Model(inputs, outputs) is a functional model, as in Keras."""
        if cls is Model and (args or "inputs" in kwargs or "outputs" in kwargs):
            return object.__new__(registry.find("Functional", ("model",)))
        return object.__new__(cls)

    def __init__(self, *args, **kwargs):
        if not self.uses_call():
            raise NotImplementedError(NO_CALL)
        subclassed.initialize(self, *args, **kwargs)

    @classmethod
    def from_config(cls, config, custom_objects=None):
        """keras.Model.from_config of a functional model's config rebuilds that model, as in Keras."""
        if isinstance(config, dict) and "input_layers" in config and "output_layers" in config:
            return registry.find("Functional", ("model",)).from_config(config, custom_objects)
        return super().from_config(config)

    # -- structure ----------------------------------------------------------
    @property
    def layers(self):
        """The model's layers (a subclassed model's: those in its attributes, in order)."""
        listed = self.__dict__.get("_layer_list")
        return listed if listed is not None else super()._sublayers()

    @layers.setter
    def layers(self, layers):
        self.__dict__["_layer_list"] = layers

    def _sublayers(self):
        return self.layers

    def build(self, input_shape=None):
        """A subclassed model builds by running call once on a zero batch of `input_shape`."""
        subclassed.build(self, input_shape)

    def backward(self, dy):
        """A subclassed model: autograd's backward through call, then the penalties' gradients."""
        dx = super().backward(dy)
        self.add_regularization_gradients()
        return dx

    def _summary_rows(self):
        return subclassed.summary_rows(self)

    def _leaves(self):
        """The layers in order, nested models expanded (a subclassed model: every layer it holds)."""
        if self.uses_call():
            return subclassed.leaves(self)
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
        return all(layer.trainable for layer in self._sublayers()) if self._sublayers() else True

    @trainable.setter
    def trainable(self, value):
        """Keras: setting it on the model sets it on every layer (nested ones included)."""
        for layer in self._sublayers():
            layer.trainable = bool(value)

    def _lay_out(self):
        """Once every layer is built: seed each Dropout from the model (its seed and its index among
        the layers), lay out the trainable parameters in one arena, move the other weights (moving
        statistics) to the device, and build the optimizer's slots over the arena."""
        leaves = self._leaves()
        for index, layer in enumerate(leaves):
            if isinstance(layer, Dropout):
                layer.base_seed = layer.seed if layer.seed is not None else self.seed
                layer.index = index
        # BN -> ReLU [-> Dropout] runs as one pass on the GPU backends; only in a chain of layers
        chained = all(getattr(model, "_nodes", None) is None for model in [self, *self.layers])
        self.fused_blocks = fusion.plan(leaves, chained, getattr(self, "fused_blocks", ()))
        trainable = {id(p): p for layer in leaves for p in layer.weights if p.trainable}  # a layer's sublayers are leaves too
        self.arena = ParameterArena(list(trainable.values()), self.dtype)
        for layer in leaves:
            for p in layer.weights:
                if not p.trainable:
                    p.value = get_backend().asarray(p.value)
        self.built = True
        if self.compiled:
            self.optimizer.build(self.arena)

    def _ensure_built(self, x_shape):
        if not self.built:
            self.build(self._feature_shape or tuple(x_shape[1:]))

    def __call__(self, x, training=False):
        """Forward pass; `training=True` keeps dropout on (Monte Carlo dropout) and
        uses batch statistics in batch-norm. Returns a backend array."""
        if is_symbolic(x):  # a model used as a layer of a functional graph
            return self._call_symbolic(x)
        x = self._check_x(x, "x")
        self._ensure_built(x.shape)
        return self.forward(get_backend().asarray(x), training=bool(training))

    # -- description ----------------------------------------------------------
    def summary(self, line_length=None, positions=None, print_fn=None, expand_nested=False, show_trainable=False,
                layer_range=None):
        """Print a table of layers, output shapes and parameter counts, then the totals with
        their sizes in bytes, as Keras (`Total params: 18,122 (70.79 KB)`)."""
        print_fn = print_fn or print
        if not self.built:
            print_fn(f'Model: "{self.name}" (not built yet: call build, fit or predict)')
            return
        rows = self._summary_rows()
        header = ("Layer (type)", "Output Shape", "Param #", "Connected to")[:len(rows[0])]  # a graph has 4
        widths = [max(len(r[i]) for r in rows + [header]) + 2 for i in range(len(header))]
        line = "─" * sum(widths)
        print_fn(f'Model: "{self.name}"')
        print_fn(line)
        print_fn("".join(h.ljust(w) for h, w in zip(header, widths)))
        print_fn(line)
        for row in rows:
            print_fn("".join(c.ljust(w) for c, w in zip(row, widths)))
        print_fn(line)
        itemsize = np.dtype(self.dtype).itemsize
        trainable = sum(int(np.prod(p.shape)) for p in self.trainable_weights)
        weights = self.count_params()
        optimizer = self._optimizer_param_count()  # Keras counts them in the total once built
        print_fn(f" Total params: {weights + optimizer:,} ({readable_memory_size((weights + optimizer) * itemsize)})")
        print_fn(f" Trainable params: {trainable:,} ({readable_memory_size(trainable * itemsize)})")
        print_fn(f" Non-trainable params: {weights - trainable:,} ({readable_memory_size((weights - trainable) * itemsize)})")
        if optimizer:
            print_fn(f" Optimizer params: {optimizer:,} ({readable_memory_size(optimizer * itemsize)})")

    def _optimizer_param_count(self):
        """Keras's optimizer variables once built: the step counter, the learning rate (unless a
        schedule drives it) and the slots; 0 before the first step (Keras builds it then)."""
        if not (self.compiled and self.built and self.optimizer.slots and int(self.optimizer.iterations) > 0):
            return 0
        counter_and_slots = sum(int(np.prod(v.shape)) for v in self.optimizer.variables)
        return counter_and_slots + (0 if callable(self.optimizer._learning_rate) else 1)

    # -- files --------------------------------------------------------------
    def save(self, filepath, overwrite=True, zipped=None):
        """Save the model: a `.keras` path writes a Keras 3 archive; any other path writes
        gpudl's own `.npz` (configuration, weights and exact-resume state; see gpudl.saving)."""
        from gpudl.saving import save_model

        if self.uses_call():
            raise NotImplementedError(subclassed.NO_SAVE.format(name=self.name))
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


def readable_memory_size(size):
    """Bytes in Keras's summary units: 70.79 KB (powers of 1024, two decimals)."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size / 1024 < 1:
            return f"{size:.2f} {unit}"
        size /= 1024
    return f"{size:.2f} PB"
