"""A subclassed model: `class MyModel(keras.Model)` whose `__init__` creates layers and whose
`call(inputs, training=None)` composes them and keras.ops.

The model is a layer written with call() (gpudl.frontend.layers.base): in training its call runs
under PyTorch's autograd, the layers it holds run inside it (a built-in layer as one autograd node
with its fused forward and backward, a layer written with call() as more of the user's code), and
backward hands autograd's gradients to the arena. The Trainer trains it as any model, with the
output activation never fused into the loss (the call may transform the last layer's output).
"""

import numpy as np

from gpudl import random as gpudl_random
from gpudl.backend import floatx, get_backend
from gpudl.errors import invalid_value
from gpudl.frontend import autodiff
from gpudl.naming import snake_case, unique_name


NO_SAVE = ("Model '{name}' is a subclassed model: saving its whole configuration (save, .npz, .keras) is not "
           "in gpudl; save its weights with model.save_weights('....weights.h5') and rebuild it from its class.")
CUSTOM_LOOPS = ("train_step", "test_step", "predict_step", "compute_loss", "stateless_call")


def initialize(model, name=None, dtype=None, trainable=True, seed=None, **kwargs):
    """The state every model has, before the subclass's __init__ adds its layers (Keras's
    keras.Model(name=..., trainable=..., dtype=...)). A subclass that overrides Keras's training
    loop (train_step with tf.GradientTape or jax.grad, stateless_call...) is refused: gpudl's one
    Trainer runs the step, and would silently ignore it."""
    overridden = [method for method in CUSTOM_LOOPS if method in vars(type(model))]
    if overridden:
        raise NotImplementedError(f"{type(model).__name__} overrides {overridden[0]}: custom training steps (with "
                                  f"tf.GradientTape, jax.grad or stateless_call) are not part of gpudl. Write the "
                                  f"model's call() and a loss, and use fit; or loop with "
                                  f"model.compute_gradients(x, y) and optimizer.apply_gradients.")
    if "inputs" in kwargs or "outputs" in kwargs:
        raise NotImplementedError(f"{type(model).__name__}: a subclass of keras.Model that passes inputs and "
                                  f"outputs to super().__init__ is not in gpudl; build keras.Model(inputs, "
                                  f"outputs) directly, or write call().")
    if kwargs:
        raise TypeError(f"Unrecognized keyword arguments passed to {type(model).__name__}: {kwargs}")
    model.name = name or unique_name(snake_case(type(model).__name__))
    model.dtype = np.dtype(dtype or floatx()).name
    if model.dtype not in ("float32", "float64"):
        raise invalid_value("dtype", "'float32' or 'float64'", dtype, f"Model '{model.name}'")
    model.seed = gpudl_random.new_seed() if seed is None else int(seed)
    model._weights, model._activity_loss = [], 0.0
    model._feature_shape = None
    model.built = False
    model.input_gradient_needed = True
    model._trainable_flag = bool(trainable)


def build(model, input_shape):
    """Keras builds a subclassed model by calling it: run call once on a zero batch (inference,
    on the arrays), which builds every layer it uses; then lay out the arena."""
    shape = tuple(input_shape)
    if shape and shape[0] is None:
        shape = shape[1:]
    probe = get_backend().xp.zeros((1, *shape), dtype=model.dtype)
    with autodiff.Tape(training=False, differentiates=False):  # a throwaway run: its add_loss values too
        output = model._run_call(probe, False, {})
    model._feature_shape = shape
    model._output_feature_shape = tuple(output.shape[1:])
    if not model._trainable_flag:
        model.trainable = False
    model._lay_out()


def leaves(layer):
    """Every layer of the tree under `layer`, depth first: a layer written with call() comes before
    the layers it holds (it may own weights too)."""
    found = []
    for sub in layer._sublayers():
        found.append(sub)
        if sub._sublayers():
            found.extend(leaves(sub))
    return found


def summary_rows(model):
    """(layer (type), output shape, parameters) of each layer the model holds; Keras prints "?" for
    shapes it has not traced, as here."""
    return [(f"{layer.name} ({type(layer).__name__})", "?", f"{layer.count_params():,}")
            for layer in model._sublayers()]
