"""Optimizers with Keras 3's names, arguments and defaults, over flat buffers.

A model's trainable parameters live in one flat arena (gpudl/arena.py), so a step of an
elementwise rule is one update per contiguous run of it (one run, hence one launch, unless
layers are frozen). Three kinds of update rule:
  fused  SGD, Momentum, RMSprop (momentum=0, centered=False), Adam and AdamW (amsgrad=False):
         one kernel per run, in gpudl.kernels.optimizer_updates (the formulas are there);
  xp     Adagrad, Adadelta, Adamax, Nadam, Lion, Ftrl, Adam(amsgrad=True), RMSprop(momentum>0
         or centered=True): written once over the backend's array namespace, on every backend;
  per variable  Lamb (per_variable = True): a rule that reduces over each variable (a norm, a
         trust ratio) runs once per variable, on views shaped like it, as Keras's
         update_step(gradient, variable, learning_rate) does; run-wide it would mix the
         variables into one global norm.
Whatever the kind, the scalars that change from step to step (learning rate, bias corrections) are
computed on the host in float64, uploaded in a step table, and read on the device through
the step counter, so a step needs no host-to-device transfer.

Around the rule, as Keras's base optimizer does (keras/src/optimizers/base_optimizer.py),
in this order:
  1. clip the gradients (in place in a model's gradient buffer; a plain array's gradient is
     copied first), at most one of:
       clipnorm         g *= clipnorm / max(||g||, clipnorm), for each variable's gradient
       global_clipnorm  the same with the norm of all the gradients together (one reduction)
       clipvalue        g = clip(g, -clipvalue, clipvalue)
  2. weight decay (decoupled): w *= 1 - lr * weight_decay
  3. the update rule, then the step counter advances.

Custom training loops (Keras 3): `optimizer.apply(grads, variables)` or
`optimizer.apply_gradients(zip(grads, variables))`, where the variables are either a model's
Parameters (model.trainable_weights: the gradients are copied into the model's arena and one
step runs over it) or plain arrays of the active backend that belong to no model (updated in
place; the optimizer keeps their slots, keyed by identity). Read the state back with
`optimizer.get_slot(variable, name)` (names in each class's docstring) and
`optimizer.variables`; `optimizer.iterations = t` sets the step counter.

The course's conventions (not Keras's) for Adam and RMSprop: epsilon added outside the square
root of the bias-corrected second moment, default 1e-8 (Kingma & Ba, PyTorch), amsgrad,
centered and momentum included. Adagrad, Adadelta, Adamax, Nadam, Lion, Ftrl and Lamb use
Keras's formulas and defaults exactly.
"""

import inspect
import math
import re
import warnings

import numpy as np

from gpudl import collectives, registry
from gpudl.backend import get_backend
from gpudl.errors import check_positive, check_rate, invalid_value, unknown_name
from gpudl.frontend import schedules
from gpudl.frontend.regularizers import add_up
from gpudl.frontend.layers.base import Parameter
from gpudl.naming import snake_case, unique_name
from gpudl.kernels.optimizer_updates import adam_step_table

UNSUPPORTED = {  # Keras arguments gpudl does not implement: only their "off" value is accepted
    "use_ema": (False, "False: gpudl keeps no moving average of the weights"),
    "ema_overwrite_frequency": (None, "None: gpudl keeps no moving average of the weights"),
    "loss_scale_factor": (None, "None: gpudl has no loss scaling (no mixed precision)"),
    "gradient_accumulation_steps": (None, "None: gpudl does not accumulate gradients over steps"),
}


def _optional_positive(argument, value, where):
    return None if value is None else check_positive(argument, value, where)


def _optional_non_negative(argument, value, where):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not (math.isfinite(value) and value >= 0):
        raise invalid_value(argument, "a non-negative float or None", value, where)
    return float(value)


def _finite_float(argument, value, expected, where, accept):
    """`value` as a float when it is a finite real number that `accept` takes; else the house
    ValueError saying `expected`."""
    numeric = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    if not (numeric and math.isfinite(value) and accept(value)):
        raise invalid_value(argument, expected, value, where)
    return float(value)


def _takes_step(function):
    """Whether a learning-rate callable takes the step (schedules, gpudl's callables) or nothing
    (Keras's plain callables)."""
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):  # no signature to read: assume the step
        return True
    return any(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL) for p in parameters)


class LearningRate(float):
    """What `optimizer.learning_rate` reads: the rate of the coming step as a float (it
    prints, compares and converts like one; a schedule is evaluated at the current step),
    with Keras's `assign(value)`, which sets the optimizer's rate, and `numpy()`."""

    def __new__(cls, value, optimizer):
        rate = super().__new__(cls, value)
        rate._optimizer = optimizer
        return rate

    def assign(self, value):
        self._optimizer.learning_rate = value

    def numpy(self):
        return np.float64(self)

    def __reduce__(self):  # pickles and copies as the plain number
        return float, (float(self),)


class Iterations(int):
    """What `optimizer.iterations` reads: the steps done as an int, with Keras's
    `assign(value)`, which sets the optimizer's step counter, and `numpy()`."""

    def __new__(cls, value, optimizer):
        steps = super().__new__(cls, value)
        steps._optimizer = optimizer
        return steps

    def assign(self, value):
        self._optimizer.iterations = value

    def numpy(self):
        return np.int64(self)

    def __reduce__(self):
        return int, (int(self),)


class Optimizer:
    """Base class: the learning rate, clipping, weight decay, the step state and the slots.

    Args (every optimizer, as in Keras):
        learning_rate: a positive float, a gpudl.schedules.LearningRateSchedule, or a callable
            `lr(step)` of the 0-based step.
        weight_decay: None, or w *= 1 - lr * weight_decay before each update (decoupled).
        clipnorm, clipvalue, global_clipnorm: None, or gradient clipping (at most one; see the
            module docstring).
        name: default the class name in snake_case, numbered ("adam", "adam_1", ...).
        use_ema, ema_momentum, ema_overwrite_frequency, loss_scale_factor,
        gradient_accumulation_steps: accepted at Keras's defaults only; other values raise.

    The step state in device memory, read by the update kernels (a captured CUDA graph can
    replay a step):
        step_counter  int64 (1,): steps done; advanced on the device after each step
        step_table    float64 (rows, columns): the host-computed scalars of the coming steps
                      (learning rate, bias corrections), step t in row t % rows, uploaded
                      once per prepare_steps (fit: once per epoch)
    `iterations` reads the counter back (a sync); the steps themselves never do. A step counts
    only its own steps against the table: code that advances the counter otherwise (a replayed
    CUDA graph) calls prepare_steps before the next step.

    A subclass is its rule, `update(param, grad, slots)`: by default once per contiguous arena
    run (1-D views: an elementwise rule is one launch per run); with `per_variable = True`
    once per variable, on views shaped like it (Keras's update_step granularity).
    """

    slot_names = ()
    per_variable = False  # True: update() once per variable, for rules that reduce over one (norms)
    steps_per_upload = 64  # how far one upload reaches when fit has not prepared an epoch

    def __init__(self, learning_rate, weight_decay=None, clipnorm=None, clipvalue=None, global_clipnorm=None,
                 use_ema=False, ema_momentum=0.99, ema_overwrite_frequency=None, loss_scale_factor=None,
                 gradient_accumulation_steps=None, name=None, **kwargs):
        where = type(self).__name__
        if kwargs.pop("decay", None) is not None:
            warnings.warn("Argument `decay` is no longer supported and will be ignored (as in Keras 3); "
                          "use a learning-rate schedule.", stacklevel=3)
        if kwargs:
            raise ValueError(f"{where}: Argument(s) not recognized: {kwargs}")
        received = {"use_ema": use_ema, "ema_overwrite_frequency": ema_overwrite_frequency,
                    "loss_scale_factor": loss_scale_factor, "gradient_accumulation_steps": gradient_accumulation_steps}
        for argument, (default, expected) in UNSUPPORTED.items():
            if received[argument] != default:
                raise invalid_value(argument, expected, received[argument], where)
        if sum(value is not None for value in (clipnorm, clipvalue, global_clipnorm)) > 1:
            raise ValueError(f"{where}: Only one of `clipnorm`, `clipvalue` and `global_clipnorm` can be set. "
                             f"Received: clipnorm={clipnorm}, clipvalue={clipvalue}, global_clipnorm={global_clipnorm}")
        if name is not None and not isinstance(name, str):
            raise invalid_value("name", "a string or None", name, where)
        self.weight_decay = _optional_non_negative("weight_decay", weight_decay, where)
        self.clipnorm = _optional_positive("clipnorm", clipnorm, where)
        self.clipvalue = _optional_positive("clipvalue", clipvalue, where)
        self.global_clipnorm = _optional_positive("global_clipnorm", global_clipnorm, where)
        self.use_ema, self.ema_momentum = use_ema, ema_momentum
        self.ema_overwrite_frequency, self.loss_scale_factor = ema_overwrite_frequency, loss_scale_factor
        self.gradient_accumulation_steps = gradient_accumulation_steps
        self.step_counter = get_backend().xp.zeros(1, dtype=np.int64)
        self.step_table = None
        self._steps_prepared = 0  # coming steps whose rows the table holds
        self.learning_rate = learning_rate
        self.name = name if name is not None else unique_name(snake_case(where))
        self.slots = {}  # slot name -> flat buffer over the arena
        self._arena = None  # the model arena the slots cover
        self._variable_slots = {}  # id(plain array) -> (array, {slot name: flat buffer})
        self._trainable_variables = None  # what apply(grads) without variables updates
        self._decay_excluded_ids, self._decay_excluded_names = set(), None  # exclude_from_weight_decay

    # -- learning rate and step counter ---------------------------------------------
    @property
    def learning_rate(self):
        """The rate of the coming step, a float-like LearningRate (settable; `.assign(v)`)."""
        return LearningRate(self.current_learning_rate(), self)

    @learning_rate.setter
    def learning_rate(self, value):
        if not callable(value):
            value = check_positive("learning_rate", value, type(self).__name__)
        self._learning_rate = value
        self._steps_prepared = 0  # the table holds the old rate

    @property
    def iterations(self):
        """Steps done, read back from the device counter (a sync on a GPU), an int-like
        Iterations; settable (`optimizer.iterations = t` or `.assign(t)`)."""
        return Iterations(get_backend().to_numpy(self.step_counter)[0], self)

    @iterations.setter
    def iterations(self, value):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise invalid_value("iterations", "a non-negative integer", value, type(self).__name__)
        self.step_counter[...] = int(value)
        self._steps_prepared = 0  # the table's rows belong to other steps

    def learning_rate_at(self, step):
        """The rate of the 0-based step `step` (a schedule is evaluated there and checked; a
        callable without arguments, Keras's kind, is called as it is, when the step's table row
        is prepared: in fit, at the start of each epoch)."""
        if not callable(self._learning_rate):
            return self._learning_rate
        lr = float(self._learning_rate(step) if _takes_step(self._learning_rate) else self._learning_rate())
        if not lr >= 0:  # 0 is allowed: where CosineDecay(alpha=0) ends
            raise ValueError(f"The learning-rate schedule {self._learning_rate!r} gave {lr} at step "
                             f"{step}; expected a non-negative number.")
        return lr

    def current_learning_rate(self):
        """The rate of the next step, a Python float."""
        return self.learning_rate_at(self.iterations) if callable(self._learning_rate) else self._learning_rate

    # -- slots and the step table -----------------------------------------------------
    def slot_initial_value(self, name):
        """The value a fresh slot holds (Adagrad's accumulator starts above 0)."""
        return 0.0

    def _new_slots(self, like):
        slots = {}
        for name in self.slot_names:
            slot = get_backend().xp.zeros_like(like)
            if self.slot_initial_value(name):
                slot.fill(self.slot_initial_value(name))
            slots[name] = slot
        return slots

    def build(self, arena):
        """Create the slots over a model's ParameterArena (what compile and fit call). A list of
        variables (Keras's optimizer.build(model.trainable_weights)) is accepted too."""
        if not hasattr(arena, "new_twin"):
            variables = list(arena)
            model_arena, _ = self._resolve(variables, [None] * len(variables))
            self._trainable_variables = variables
            if model_arena is not None and model_arena is not self._arena:
                self.build(model_arena)
            return
        self._arena = arena
        self.slots = self._new_slots(arena.params)

    def prepare_steps(self, count):
        """Compute the step-table rows of the next `count` steps on the host (float64, as each
        step always computed its scalars) and upload them in one copy. A schedule rate that is
        negative or NaN ends the table early, and its step raises when it comes; at once if it
        is the next step's. The table is reallocated only to grow, so its address stays put.
        Returns the number of steps covered."""
        first = self.iterations
        rates = [self.learning_rate_at(first)]
        for step in range(first + 1, first + count):
            try:
                rates.append(self.learning_rate_at(step))
            except ValueError:
                break
        rows = self.step_table_rows(first, rates)
        size = max(count, 0 if self.step_table is None else len(self.step_table))
        table = np.full((size, rows.shape[1]), np.nan)  # rows no coming step reads stay NaN
        table[np.arange(first, first + len(rows)) % size] = rows
        if self.step_table is None or self.step_table.shape != table.shape:
            self.step_table = get_backend().asarray(table)
        else:
            self.step_table[...] = get_backend().asarray(table)
        self._steps_prepared = len(rows)
        return len(rows)

    def step_table_rows(self, first_step, rates):
        """Step-table rows of steps first_step, first_step + 1, ...: the learning rate."""
        return np.array(rates, dtype=np.float64).reshape(-1, 1)

    def step_row(self, dtype):
        """This step's row of the step table, read on the device (no sync) and rounded once to
        `dtype`, as the fused kernels round it."""
        table = self.step_table
        return get_backend().xp.take(table, self.step_counter % len(table), axis=0)[0].astype(dtype)

    # -- one step ---------------------------------------------------------------------
    def update(self, param, grad, slots):
        """The rule, in place on `param` from `grad` and the slots ({name: buffer}, the same
        elements), its scalars read with step_row: Keras's update_step(gradient, variable,
        learning_rate), called per arena run or, with per_variable, per variable."""
        raise NotImplementedError(f"{type(self).__name__} defines no update rule (update).")

    def apply_to_arena(self, arena, runs):
        """One step over `runs` (contiguous [start, stop) ranges) of a model's arena, whose
        gradient buffer holds the gradients (clipping scales it in place)."""
        def views(start, stop, shape=None):  # (param, grad, slots) over [start, stop), reshaped
            piece = (arena.params[start:stop], arena.grads[start:stop],
                     {name: buffer[start:stop] for name, buffer in self.slots.items()})
            return piece if shape is None else (piece[0].reshape(shape), piece[1].reshape(shape),
                                                {name: slot.reshape(shape) for name, slot in piece[2].items()})
        pieces = [views(start, stop) for start, stop in runs]
        variable_grads = decayed = variable_pieces = None
        if self.clipnorm or self.per_variable or self._excludes_some_from_decay():  # parameter by parameter
            inside = [(p, a, b) for p, a, b in zip(arena.parameters, arena.offsets[:-1], arena.offsets[1:])
                      if any(s <= a and b <= e for s, e in runs)]
            variable_grads = [arena.grads[a:b] for _, a, b in inside]
            decayed = [arena.params[a:b] for p, a, b in inside if self._decays(p)]
            variable_pieces = [views(a, b, p.shape) for p, a, b in inside]
        self._step(pieces, variable_grads, decayed, variable_pieces)

    def _step(self, pieces, variable_grads=None, decayed=None, variable_pieces=None):
        """Clip, decay, update the (param, grad, slots) pieces of flat buffers; advance the
        counter. `decayed`: the parameter buffers weight decay applies to (default all).
        `variable_pieces`: the same state one variable at a time, shaped like it, which a
        per_variable rule updates instead of `pieces`."""
        if self._steps_prepared == 0:
            self.prepare_steps(self.steps_per_upload)
        self.clip_gradients([grad for _, grad, _ in pieces], variable_grads)
        for param in [param for param, _, _ in pieces] if decayed is None else decayed:
            self.decay_weights(param)
        for param, grad, slots in variable_pieces if self.per_variable else pieces:
            self.update(param, grad, slots)
        self.step_counter += 1
        self._steps_prepared -= 1

    def clip_gradients(self, grads, variable_grads=None):
        """Keras's clipping, in place on the flat gradient buffers `grads`; clipnorm works on
        `variable_grads` (one buffer per variable; default `grads`)."""
        xp = get_backend().xp
        if self.clipnorm:
            for grad in grads if variable_grads is None else variable_grads:
                norm = xp.sqrt(xp.vdot(grad, grad))
                grad *= (self.clipnorm / xp.maximum(norm, self.clipnorm)).astype(grad.dtype)
        elif self.global_clipnorm:
            norm = xp.sqrt(add_up([xp.vdot(grad, grad) for grad in grads]))  # no launch adding 0 first
            # a non-finite norm makes the scale NaN, as in Keras's clip_by_global_norm
            scale = self.global_clipnorm / xp.maximum(norm, self.global_clipnorm) + (norm - norm)
            for grad in grads:
                grad *= scale.astype(grad.dtype)
        elif self.clipvalue:
            for grad in grads:
                xp.clip(grad, -self.clipvalue, self.clipvalue, out=grad)

    def decay_weights(self, param):
        """Decoupled weight decay before the update: w *= 1 - lr * weight_decay (Keras:
        w -= w * weight_decay * lr), the factor computed in float64 on the device."""
        if self.weight_decay:
            lr = self.step_row(np.float64)[0]
            param *= (1.0 - lr * self.weight_decay).astype(param.dtype)

    def exclude_from_weight_decay(self, var_list=None, var_names=None):
        """Keras's: no weight decay for the variables in `var_list` (Parameters or arrays) nor for
        those whose name contains one of the strings (regular expressions) in `var_names`, e.g.
        var_names=["bias"]. Replaces an earlier exclusion."""
        names = list(var_names or [])
        if not all(isinstance(name, str) for name in names):
            raise invalid_value("var_names", "a list of strings", var_names,
                                f"{type(self).__name__}.exclude_from_weight_decay")
        self._decay_excluded_ids = {id(variable) for variable in var_list or []}
        self._decay_excluded_names = re.compile("|".join(names)) if names else None

    def _excludes_some_from_decay(self):
        return bool(self.weight_decay and (self._decay_excluded_ids or self._decay_excluded_names))

    def _decays(self, variable):
        """Whether weight decay applies to `variable` (see exclude_from_weight_decay)."""
        name = getattr(variable, "name", None)
        excluded_by_name = self._decay_excluded_names is not None and isinstance(name, str) \
            and self._decay_excluded_names.search(name) is not None
        return id(variable) not in self._decay_excluded_ids and not excluded_by_name

    # -- custom training loops (Keras 3) -------------------------------------------------
    def apply_gradients(self, grads_and_vars):
        """Keras's apply_gradients(zip(grads, variables)): one step; returns the step counter."""
        pairs = list(grads_and_vars)
        if pairs:
            grads, variables = zip(*pairs)
            self.apply(list(grads), list(variables))
        return self.step_counter

    def apply(self, grads, trainable_variables=None):
        """One step: `grads[i]` is the gradient of `trainable_variables[i]`, a model's Parameter
        or a plain backend array (updated in place). Without variables, those of the first
        call (or of build) are updated. A None gradient skips its variable, with a warning."""
        where = f"{type(self).__name__} '{self.name}'"
        grads = list(grads)
        if not grads:
            return
        if trainable_variables is None:
            if self._trainable_variables is None and self._arena is None:
                raise ValueError(f"{where}: when passing `grads` without `variables`, the optimizer must already "
                                 f"be built on a list of variables: call optimizer.apply(grads, variables) once, "
                                 f"or optimizer.build(variables).")
            variables = self._trainable_variables or [p for p in self._arena.parameters if p.trainable]
        else:
            variables = list(trainable_variables)
        if len(grads) != len(variables):
            raise ValueError(f"{where}: received {len(grads)} gradients for {len(variables)} variables; "
                             f"expected one gradient per variable.")
        missing = [i for i, grad in enumerate(grads) if grad is None]
        if len(missing) == len(grads):
            raise ValueError(f"{where}: No gradients provided for any variable.")
        if missing:
            warnings.warn(f"Gradients do not exist for variables {missing} (by position); they are not updated.",
                          stacklevel=2)
        kept = [i for i, grad in enumerate(grads) if grad is not None]
        grads, variables = [grads[i] for i in kept], [variables[i] for i in kept]
        arena, pieces = self._resolve(variables, grads)
        if self._trainable_variables is None and self._arena is None and trainable_variables is not None:
            self._trainable_variables = variables
        if arena is not None:
            if self._arena is not arena:
                self.build(arena)
            for parameter, grad in zip(variables, pieces):
                parameter.grad[...] = grad
            collectives.average(arena.grads)  # data parallel: each process's gradients of its own batch
            ids = {id(p) for p in variables}
            self.apply_to_arena(arena, arena.runs(lambda p: id(p) in ids))
            for parameter in variables:  # Keras: constraints after the update
                if getattr(parameter, "constraint", None) is not None:
                    parameter.value[...] = parameter.constraint(parameter.value)
            return
        for _, grad, _ in pieces:
            collectives.average(grad)
        decayed = [flat for variable, (flat, _, _) in zip(variables, pieces) if self._decays(variable)]
        shaped = [(flat.reshape(v.shape), grad.reshape(v.shape), {name: slot.reshape(v.shape)
                                                                   for name, slot in slots.items()})
                  for v, (flat, grad, slots) in zip(variables, pieces)] if self.per_variable else None
        self._step(pieces, decayed=decayed, variable_pieces=shaped)
        for variable, (flat, _, _) in zip(variables, pieces):
            if not variable.flags.c_contiguous:  # the update ran on a flat copy
                variable[...] = flat.reshape(variable.shape)

    def _resolve(self, variables, grads):
        """Check `variables` and their gradients (None: no gradient, for build) before any state
        changes. Returns (arena, gradients as backend arrays) for a model's Parameters, or
        (None, [(flat variable, flat gradient copy, slots), ...]) for plain arrays, creating the
        slots of arrays seen for the first time."""
        where = f"{type(self).__name__} '{self.name}'"
        backend = get_backend()
        is_parameter = [isinstance(v, Parameter) for v in variables]
        if any(is_parameter) and not all(is_parameter):
            raise TypeError(f"{where}: the variables mix a model's Parameters and plain arrays; update them in "
                            f"separate calls.")
        converted = []
        for index, (variable, grad) in enumerate(zip(variables, grads)):
            if not is_parameter[index] and (not isinstance(variable, backend.xp.ndarray)
                                            or variable.dtype.kind != "f"):
                raise TypeError(f"{where}: variable {index} must be a floating-point {backend.xp.__name__}.ndarray "
                                f"(the active backend's arrays) or a model's Parameter; received "
                                f"{type(variable).__name__} of dtype {getattr(variable, 'dtype', None)}.")
            if grad is not None:
                grad = backend.asarray(grad)
                if tuple(grad.shape) != tuple(variable.shape):
                    raise ValueError(f"{where}: gradient {index} has shape {tuple(grad.shape)}; its variable has "
                                     f"shape {tuple(variable.shape)}.")
            converted.append(grad)
        if all(is_parameter):
            return self._arena_of(variables, where), converted
        pieces = []
        for variable, grad in zip(variables, converted):
            if id(variable) not in self._variable_slots:
                self._variable_slots[id(variable)] = (variable, self._new_slots(backend.xp.zeros(
                    variable.size, variable.dtype)))
            grad_copy = None if grad is None else backend.xp.array(grad, dtype=variable.dtype).reshape(-1)
            pieces.append((variable.reshape(-1), grad_copy, self._variable_slots[id(variable)][1]))
        return None, pieces

    def _arena_of(self, parameters, where):
        """The one model arena that holds every Parameter in `parameters`."""
        arenas = {id(getattr(p, "arena", None)): getattr(p, "arena", None) for p in parameters}
        if len(arenas) != 1 or None in arenas.values():
            raise ValueError(f"{where}: the Parameters must all be trainable weights of one built model; received "
                             f"{[getattr(p, 'path', p.name) for p in parameters]}.")
        (arena,) = arenas.values()
        if self._arena is not None and self._arena is not arena:
            raise ValueError(f"{where}: this optimizer was built for the weights of another model; use one "
                             f"optimizer per model.")
        return arena

    def get_slot(self, variable, name):
        """The optimizer's slot `name` (see the class docstring) of `variable`, a model's Parameter
        or a plain array it has updated, shaped like the variable: a view of the live state."""
        where = f"{type(self).__name__} '{self.name}'"
        if name not in self.slot_names:
            raise invalid_value("name", f"one of the slots of {type(self).__name__}: {list(self.slot_names)}", name,
                                f"{where}.get_slot")
        if isinstance(variable, Parameter):
            arena = getattr(variable, "arena", None)
            if arena is None or arena is not self._arena or not self.slots:
                raise ValueError(f"{where}: no slots for {variable!r}: the optimizer has not stepped on its model.")
            index = next(i for i, p in enumerate(arena.parameters) if p is variable)
            start, stop = arena.offsets[index], arena.offsets[index + 1]
            return self.slots[name][start:stop].reshape(variable.shape)
        if id(variable) not in self._variable_slots:
            raise ValueError(f"{where}: no slots for this array: pass it to optimizer.apply first.")
        return self._variable_slots[id(variable)][1][name].reshape(variable.shape)

    @property
    def variables(self):
        """The optimizer's state in Keras's order: the step counter (int64, shape () as Keras's
        `iterations`: a view of the device counter), then for
        each variable, its slots in slot_names order, shaped like it: the model's parameters
        first (arena order), then the plain arrays in the order they were first seen. Views of
        the live state. (Keras also lists a constant learning rate; read optimizer.learning_rate.)"""
        state = [self.step_counter.reshape(())]
        if self.slots:
            state += [self.get_slot(p, name) for p in self._arena.parameters for name in self.slot_names]
        for variable, slots in self._variable_slots.values():
            state += [slots[name].reshape(variable.shape) for name in self.slot_names]
        return state

    # -- configuration ------------------------------------------------------------------
    def get_config(self):
        """Keras's config: name, learning_rate (a schedule as schedules.serialize gives it; a plain
        callable as itself), weight decay and clipping, the EMA arguments, then the rule's."""
        learning_rate = self._learning_rate
        if isinstance(learning_rate, schedules.LearningRateSchedule):
            learning_rate = schedules.serialize(learning_rate)
        return {"name": self.name, "learning_rate": learning_rate, "weight_decay": self.weight_decay,
                "clipnorm": self.clipnorm, "global_clipnorm": self.global_clipnorm, "clipvalue": self.clipvalue,
                "use_ema": self.use_ema, "ema_momentum": self.ema_momentum,
                "ema_overwrite_frequency": self.ema_overwrite_frequency, "loss_scale_factor": self.loss_scale_factor,
                "gradient_accumulation_steps": self.gradient_accumulation_steps}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        if isinstance(config.get("learning_rate"), dict):
            config["learning_rate"] = schedules.deserialize(config["learning_rate"], custom_objects)
        return cls(**config)

    @property
    def ops(self):
        return get_backend().ops

    @property
    def xp(self):
        return get_backend().xp


class SGD(Optimizer):
    """Gradient descent: w -= lr * g; with momentum mu (PyTorch's form, equal to Keras's at a
    constant rate): v = mu*v + g, w -= lr*v; nesterov: w -= lr*(g + mu*v). Fused. Slot: "velocity"
    (with momentum).

    Args: learning_rate=0.01, momentum=0.0 in [0, 1), nesterov=False, and the base arguments.
    """

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, **kwargs):
        self.momentum = check_rate("momentum", momentum, "SGD")
        self.nesterov = bool(nesterov)
        self.slot_names = ("velocity",) if self.momentum else ()
        super().__init__(learning_rate, **kwargs)

    def update(self, param, grad, slots):
        if self.momentum:
            self.ops.sgd_momentum(param, grad, slots["velocity"], self.step_table, self.step_counter,
                                  self.momentum, self.nesterov)
        else:
            self.ops.sgd(param, grad, self.step_table, self.step_counter)

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}


class Momentum(Optimizer):
    """The course's gradient descent with momentum: v = beta*v + (1-beta)*g; w -= lr*v. Fused.
    Slot: "velocity". (gpudl's own; Keras's SGD(momentum=) is the other form.)

    Args: learning_rate=0.01, beta=0.9 in [0, 1), and the base arguments.
    """

    slot_names = ("velocity",)

    def __init__(self, learning_rate=0.01, beta=0.9, **kwargs):
        self.beta = check_rate("beta", beta, "Momentum")
        super().__init__(learning_rate, **kwargs)

    def update(self, param, grad, slots):
        self.ops.ema_momentum(param, grad, slots["velocity"], self.step_table, self.step_counter, self.beta)

    def get_config(self):
        return {**super().get_config(), "beta": self.beta}


class RMSprop(Optimizer):
    """RMSprop, epsilon outside the square root (the course's and PyTorch's; Keras adds it inside):
        s = rho*s + (1-rho)*g^2
        centered: a = rho*a + (1-rho)*g;  denominator = sqrt(s - a^2) + eps;  else sqrt(s) + eps
        increment = lr * g / denominator
        momentum mu > 0 (Keras's form): b = mu*b + increment; w -= b;  else w -= increment
    Fused when momentum=0 and centered=False. Slots: "mean_square", "momentum" (momentum > 0),
    "average_gradient" (centered).

    Args: learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-8, centered=False, and the
    base arguments.
    """

    def __init__(self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-8, centered=False, **kwargs):
        self.rho = check_rate("rho", rho, "RMSprop")
        self.momentum = check_rate("momentum", momentum, "RMSprop")
        self.epsilon = check_positive("epsilon", epsilon, "RMSprop")
        self.centered = bool(centered)
        self.slot_names = ("mean_square",) + ("momentum",) * bool(self.momentum) + ("average_gradient",) * self.centered
        super().__init__(learning_rate, **kwargs)

    def update(self, param, grad, slots):
        if not (self.momentum or self.centered):
            self.ops.rmsprop(param, grad, slots["mean_square"], self.step_table, self.step_counter, self.rho,
                             self.epsilon)
            return
        xp = self.xp
        (lr,) = self.step_row(param.dtype)
        mean_square = slots["mean_square"]
        mean_square *= self.rho
        mean_square += (1.0 - self.rho) * (grad * grad)
        if self.centered:
            average = slots["average_gradient"]
            average *= self.rho
            average += (1.0 - self.rho) * grad
            variance = xp.maximum(mean_square - average * average, 0.0)  # never below 0 by rounding
            denominator = xp.sqrt(variance) + self.epsilon
        else:
            denominator = xp.sqrt(mean_square) + self.epsilon
        increment = lr * grad / denominator
        if self.momentum:
            buffer = slots["momentum"]
            buffer *= self.momentum
            buffer += increment
            increment = buffer
        param -= increment

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "momentum": self.momentum, "epsilon": self.epsilon,
                "centered": self.centered}


class Adam(Optimizer):
    """Adam with bias correction, epsilon outside the square root of the bias-corrected second
    moment (Kingma & Ba, PyTorch; Keras adds it before the correction):
        m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g^2
        w -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
    amsgrad: v_max = max(v_max, v) replaces v in the update. The decoupled weight decay factor
    1 - lr * weight_decay is the first column of the step table. Fused (the decay included)
    unless amsgrad or some variables are excluded from the decay. Slots: "m", "v", "v_max"
    (amsgrad).

    Args: learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-8, amsgrad=False, and the
    base arguments.
    """

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-8, amsgrad=False, **kwargs):
        where = type(self).__name__
        self.beta_1 = check_rate("beta_1", beta_1, where)
        self.beta_2 = check_rate("beta_2", beta_2, where)
        self.epsilon = check_positive("epsilon", epsilon, where)
        self.amsgrad = bool(amsgrad)
        self.slot_names = ("m", "v", "v_max") if self.amsgrad else ("m", "v")
        super().__init__(learning_rate, **kwargs)

    def step_table_rows(self, first_step, rates):
        """Rows (decay, step_size, sqrt_bias_correction2): see adam_step_table."""
        return adam_step_table(rates, first_step, self.beta_1, self.beta_2, self.weight_decay or 0.0)

    def _fused(self):
        return not (self.amsgrad or self._excludes_some_from_decay())

    def decay_weights(self, param):
        """w *= the table's decay factor (the fused kernel does it itself)."""
        if self.weight_decay and not self._fused():
            param *= self.step_row(param.dtype)[0]

    def update(self, param, grad, slots):
        if self._fused():
            self.ops.adam(param, grad, slots["m"], slots["v"], self.step_table, self.step_counter, self.beta_1,
                          self.beta_2, self.epsilon)
            return
        _, step_size, sqrt_bias_correction2 = self.step_row(param.dtype)
        m, v = slots["m"], slots["v"]
        m *= self.beta_1
        m += (1.0 - self.beta_1) * grad
        v *= self.beta_2
        v += (1.0 - self.beta_2) * (grad * grad)
        if self.amsgrad:
            v = self.xp.maximum(slots["v_max"], v, out=slots["v_max"])
        param -= step_size * (m / (self.xp.sqrt(v) / sqrt_bias_correction2 + self.epsilon))

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon,
                "amsgrad": self.amsgrad}


class AdamW(Adam):
    """Adam with decoupled weight decay: w *= 1 - lr * weight_decay before each step (Keras's
    AdamW is Adam with weight_decay=0.004).

    Args: learning_rate=0.001, weight_decay=0.004, beta_1=0.9, beta_2=0.999, epsilon=1e-8,
    amsgrad=False, and the base arguments.
    """

    def __init__(self, learning_rate=0.001, weight_decay=0.004, beta_1=0.9, beta_2=0.999, epsilon=1e-8,
                 amsgrad=False, **kwargs):
        if weight_decay is None:
            raise invalid_value("weight_decay", "a non-negative float", weight_decay, "AdamW")
        super().__init__(learning_rate, beta_1, beta_2, epsilon, amsgrad, weight_decay=weight_decay, **kwargs)


class Adagrad(Optimizer):
    """Adagrad (Duchi et al.; Keras's form, epsilon inside the square root):
        acc += g^2;  w -= lr * g / sqrt(acc + eps)
    Slot: "accumulator" (starts at initial_accumulator_value).

    Args: learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7, and the base arguments.
    """

    slot_names = ("accumulator",)

    def __init__(self, learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7, **kwargs):
        self.initial_accumulator_value = _optional_non_negative(
            "initial_accumulator_value", initial_accumulator_value, "Adagrad")
        if self.initial_accumulator_value is None:
            raise invalid_value("initial_accumulator_value", "a non-negative float", None, "Adagrad")
        self.epsilon = check_positive("epsilon", epsilon, "Adagrad")
        super().__init__(learning_rate, **kwargs)

    def slot_initial_value(self, name):
        return self.initial_accumulator_value

    def update(self, param, grad, slots):
        (lr,) = self.step_row(param.dtype)
        accumulator = slots["accumulator"]
        accumulator += grad * grad
        param -= lr * grad / self.xp.sqrt(accumulator + self.epsilon)

    def get_config(self):
        return {**super().get_config(), "initial_accumulator_value": self.initial_accumulator_value,
                "epsilon": self.epsilon}


class Adadelta(Optimizer):
    """Adadelta (Zeiler; Keras's form):
        Eg = rho*Eg + (1-rho)*g^2
        delta = sqrt(Edx + eps) / sqrt(Eg + eps) * g
        Edx = rho*Edx + (1-rho)*delta^2;  w -= lr * delta
    Slots: "accumulated_grad" (Eg), "accumulated_delta_var" (Edx).

    Args: learning_rate=0.001, rho=0.95, epsilon=1e-7, and the base arguments.
    """

    slot_names = ("accumulated_grad", "accumulated_delta_var")

    def __init__(self, learning_rate=0.001, rho=0.95, epsilon=1e-7, **kwargs):
        self.rho = check_rate("rho", rho, "Adadelta")
        self.epsilon = check_positive("epsilon", epsilon, "Adadelta")
        super().__init__(learning_rate, **kwargs)

    def update(self, param, grad, slots):
        xp = self.xp
        (lr,) = self.step_row(param.dtype)
        accumulated_grad, accumulated_delta = slots["accumulated_grad"], slots["accumulated_delta_var"]
        accumulated_grad *= self.rho
        accumulated_grad += (1.0 - self.rho) * (grad * grad)
        delta = xp.sqrt(accumulated_delta + self.epsilon) * grad / xp.sqrt(accumulated_grad + self.epsilon)
        accumulated_delta *= self.rho
        accumulated_delta += (1.0 - self.rho) * (delta * delta)
        param -= lr * delta

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "epsilon": self.epsilon}


class Adamax(Optimizer):
    """Adamax, Adam with the infinity norm (Kingma & Ba section 7; Keras's form):
        m = b1*m + (1-b1)*g;  u = max(b2*u, |g|);  w -= lr / (1 - b1^t) * m / (u + eps)
    Slots: "m", "u".

    Args: learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, and the base arguments.
    """

    slot_names = ("m", "u")

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, **kwargs):
        self.beta_1 = check_rate("beta_1", beta_1, "Adamax")
        self.beta_2 = check_rate("beta_2", beta_2, "Adamax")
        self.epsilon = check_positive("epsilon", epsilon, "Adamax")
        super().__init__(learning_rate, **kwargs)

    def step_table_rows(self, first_step, rates):
        """Rows (lr, step_size = lr / (1 - b1^t)), t = step + 1."""
        return np.array([(lr, lr / (1.0 - self.beta_1**t)) for t, lr in enumerate(rates, start=first_step + 1)],
                        dtype=np.float64).reshape(-1, 2)

    def update(self, param, grad, slots):
        _, step_size = self.step_row(param.dtype)
        m, u = slots["m"], slots["u"]
        m *= self.beta_1
        m += (1.0 - self.beta_1) * grad
        self.xp.maximum(self.beta_2 * u, self.xp.abs(grad), out=u)
        param -= step_size * m / (u + self.epsilon)

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon}


class Nadam(Optimizer):
    """Nadam, Adam with Nesterov momentum (Dozat; Keras's form, not PyTorch's NAdam):
        mu_t = b1 * (1 - 0.5 * 0.96^t),  P_t = mu_1 * ... * mu_t
        m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g^2
        m_hat = mu_{t+1} * m / (1 - P_{t+1}) + (1 - mu_t) * g / (1 - P_t)
        w -= lr * m_hat / (sqrt(v / (1 - b2^t)) + eps)
    P_t is computed from t (Keras keeps it as a running product; they agree unless
    `iterations` is set by hand). Slots: "m", "v".

    Args: learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, and the base arguments.
    """

    slot_names = ("m", "v")

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, **kwargs):
        self.beta_1 = check_rate("beta_1", beta_1, "Nadam")
        self.beta_2 = check_rate("beta_2", beta_2, "Nadam")
        self.epsilon = check_positive("epsilon", epsilon, "Nadam")
        super().__init__(learning_rate, **kwargs)

    def momentum_schedule(self, t):
        """mu_t = b1 * (1 - 0.5 * 0.96^t)."""
        return self.beta_1 * (1.0 - 0.5 * 0.96**t)

    def step_table_rows(self, first_step, rates):
        """Rows (lr, mu_{t+1} / (1 - P_{t+1}), (1 - mu_t) / (1 - P_t), 1 - b2^t), t = step + 1."""
        product = 1.0  # P_{first_step}
        for t in range(1, first_step + 1):
            product *= self.momentum_schedule(t)
            if product == 0.0:  # underflowed (b1^t): it stays 0
                break
        rows = []
        for t, lr in enumerate(rates, start=first_step + 1):
            mu, mu_next = self.momentum_schedule(t), self.momentum_schedule(t + 1)
            product *= mu
            rows.append((lr, mu_next / (1.0 - product * mu_next), (1.0 - mu) / (1.0 - product),
                         1.0 - self.beta_2**t))
        return np.array(rows, dtype=np.float64).reshape(-1, 4)

    def update(self, param, grad, slots):
        lr, momentum_coefficient, gradient_coefficient, bias_correction2 = self.step_row(param.dtype)
        m, v = slots["m"], slots["v"]
        m *= self.beta_1
        m += (1.0 - self.beta_1) * grad
        v *= self.beta_2
        v += (1.0 - self.beta_2) * (grad * grad)
        m_hat = momentum_coefficient * m + gradient_coefficient * grad
        param -= lr * m_hat / (self.xp.sqrt(v / bias_correction2) + self.epsilon)

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon}


class Lion(Optimizer):
    """Lion, evolved sign momentum (Chen et al. 2023; Keras's form):
        w -= lr * sign(b1*m + (1-b1)*g);  m = b2*m + (1-b2)*g
    Slot: "m".

    Args: learning_rate=0.001, beta_1=0.9 in (0, 1], beta_2=0.99 in [0, 1), and the base arguments.
    """

    slot_names = ("m",)

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.99, **kwargs):
        numeric = isinstance(beta_1, (int, float, np.integer, np.floating)) and not isinstance(beta_1, bool)
        if not (numeric and 0.0 < beta_1 <= 1.0):  # Keras: at 0 Lion degenerates to SignSGD
            raise invalid_value("beta_1", "a float in (0, 1]", beta_1, "Lion")
        self.beta_1 = float(beta_1)
        self.beta_2 = check_rate("beta_2", beta_2, "Lion")
        super().__init__(learning_rate, **kwargs)

    def update(self, param, grad, slots):
        (lr,) = self.step_row(param.dtype)
        m = slots["m"]
        param -= lr * self.xp.sign(self.beta_1 * m + (1.0 - self.beta_1) * grad)
        m *= self.beta_2
        m += (1.0 - self.beta_2) * grad

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2}


class Ftrl(Optimizer):
    """FTRL-Proximal, follow the regularized leader (McMahan et al. 2013; Keras's form), with
    p = learning_rate_power, l1, l2 and shrinkage the regularization strengths:
        g' = g + 2*shrinkage*w;  n_new = n + g^2
        z += g' - (n_new^(-p) - n^(-p)) / lr * w
        w = (clip(z, -l1, l1) - z) / (n_new^(-p) / lr + 2*l2 + beta/lr);  n = n_new
    (w = 0 where |z| <= l1: the L1 strength makes weights exactly sparse.) Slots: "accumulator"
    (n, starts at initial_accumulator_value), "linear" (z).

    Args: learning_rate=0.001, learning_rate_power=-0.5 (<= 0; 0: a fixed rate),
    initial_accumulator_value=0.1, l1_regularization_strength=0.0, l2_regularization_strength=0.0,
    l2_shrinkage_regularization_strength=0.0, beta=0.0 (all >= 0), and the base arguments.
    """

    slot_names = ("accumulator", "linear")

    def __init__(self, learning_rate=0.001, learning_rate_power=-0.5, initial_accumulator_value=0.1,
                 l1_regularization_strength=0.0, l2_regularization_strength=0.0,
                 l2_shrinkage_regularization_strength=0.0, beta=0.0, **kwargs):
        self.learning_rate_power = _finite_float("learning_rate_power", learning_rate_power, "a float <= 0",
                                                 "Ftrl", lambda value: value <= 0)
        non_negative = {"initial_accumulator_value": initial_accumulator_value,
                        "l1_regularization_strength": l1_regularization_strength,
                        "l2_regularization_strength": l2_regularization_strength,
                        "l2_shrinkage_regularization_strength": l2_shrinkage_regularization_strength, "beta": beta}
        for argument, value in non_negative.items():
            setattr(self, argument, _finite_float(argument, value, "a non-negative float", "Ftrl",
                                                  lambda value: value >= 0))
        super().__init__(learning_rate, **kwargs)

    def slot_initial_value(self, name):
        return self.initial_accumulator_value if name == "accumulator" else 0.0

    def step_table_rows(self, first_step, rates):
        """Rows (lr, 2*l2 + beta/lr)."""
        rates = np.array(rates, dtype=np.float64)
        with np.errstate(divide="ignore"):  # a schedule's rate 0 gives inf, as in Keras
            return np.stack([rates, 2.0 * self.l2_regularization_strength + self.beta / rates], axis=1)

    def update(self, param, grad, slots):
        lr, quadratic_offset = self.step_row(param.dtype)
        accumulator, linear = slots["accumulator"], slots["linear"]
        power = -self.learning_rate_power
        shrunk_grad = grad + (2.0 * self.l2_shrinkage_regularization_strength) * param
        new_accumulator_power = (accumulator + grad * grad) ** power
        linear += shrunk_grad - (new_accumulator_power - accumulator**power) / lr * param
        accumulator += grad * grad
        l1 = self.l1_regularization_strength
        param[...] = (self.xp.clip(linear, -l1, l1) - linear) / (new_accumulator_power / lr + quadratic_offset)

    def get_config(self):
        return {**super().get_config(), "learning_rate_power": self.learning_rate_power,
                "initial_accumulator_value": self.initial_accumulator_value,
                "l1_regularization_strength": self.l1_regularization_strength,
                "l2_regularization_strength": self.l2_regularization_strength,
                "l2_shrinkage_regularization_strength": self.l2_shrinkage_regularization_strength,
                "beta": self.beta}


class Lamb(Optimizer):
    """LAMB, layer-wise adaptive moments (You et al. 2019; Keras's form, epsilon outside the
    square root of the bias-corrected second moment), each variable w on its own:
        m = m + (g - m)*(1-b1);  v = v + (g^2 - v)*(1-b2)
        r = (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
        ratio = ||w|| / ||r|| (1 unless both norms are > 0);  w -= ratio * lr * r
    The norms are the variable's alone (per_variable): each kernel and bias gets its own trust
    ratio; ||w|| is taken after the weight decay. The norms stay on the device (no sync).
    Slots: "m", "v".

    Args: learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, and the base arguments.
    """

    slot_names = ("m", "v")
    per_variable = True

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, **kwargs):
        self.beta_1 = check_rate("beta_1", beta_1, "Lamb")
        self.beta_2 = check_rate("beta_2", beta_2, "Lamb")
        self.epsilon = check_positive("epsilon", epsilon, "Lamb")
        super().__init__(learning_rate, **kwargs)

    def step_table_rows(self, first_step, rates):
        """Rows (lr, bias_correction1 = 1 - b1^t, bias_correction2 = 1 - b2^t), t = step + 1."""
        return np.array([(lr, 1.0 - self.beta_1**t, 1.0 - self.beta_2**t)
                         for t, lr in enumerate(rates, start=first_step + 1)], dtype=np.float64).reshape(-1, 3)

    def update(self, param, grad, slots):
        xp = self.xp
        lr, bias_correction1, bias_correction2 = self.step_row(param.dtype)
        m, v = slots["m"], slots["v"]
        m += (grad - m) * (1.0 - self.beta_1)
        v += (grad * grad - v) * (1.0 - self.beta_2)
        step = (m / bias_correction1) / (xp.sqrt(v / bias_correction2) + self.epsilon)
        weight_norm, step_norm = xp.sqrt(xp.vdot(param, param)), xp.sqrt(xp.vdot(step, step))
        trusted = (weight_norm > 0) & (step_norm > 0)
        trust_ratio = xp.where(trusted, weight_norm / xp.where(trusted, step_norm, 1), 1).astype(param.dtype)
        param -= trust_ratio * lr * step

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon}


OPTIMIZERS = {cls.__name__.lower(): cls
              for cls in (SGD, Momentum, RMSprop, Adam, AdamW, Adagrad, Adadelta, Adamax, Nadam, Lion, Ftrl, Lamb)}
registry.register("optimizer", OPTIMIZERS.values())


def serialize(optimizer):
    """Keras's dict: {"module", "class_name", "config", "registered_name"}."""
    return {"module": "keras.optimizers", "class_name": type(optimizer).__name__, "config": optimizer.get_config(),
            "registered_name": None}


def deserialize(config, custom_objects=None):
    """The optimizer that `serialize` (or Keras's) described."""
    classes = {**registry.classes("optimizer"), **(custom_objects or {})}
    name = config.get("class_name") if isinstance(config, dict) else None
    if name not in classes:
        raise unknown_name("optimizer", name, classes)
    return classes[name].from_config(config.get("config", {}), custom_objects)


def get(identifier):
    """An optimizer from an instance, a name ("adam"; case-insensitive) or a serialized dict."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, str) and identifier.lower() in OPTIMIZERS:
        return OPTIMIZERS[identifier.lower()]()
    raise unknown_name("optimizer", identifier, OPTIMIZERS)
