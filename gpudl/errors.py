"""Error messages of one shape: what was wrong, what was expected, what was received."""

import numpy as np


def invalid_value(argument, expected, received, where=None):
    """ValueError: Invalid value received for argument `rate`. Expected ... Received: rate=1.5"""
    prefix = f"{where}: " if where else ""
    return ValueError(
        f"{prefix}Invalid value received for argument `{argument}`. "
        f"Expected {expected}. Received: {argument}={received!r}"
    )


def unknown_name(kind, name, known):
    """ValueError for an unknown activation/loss/initializer name, listing the known ones."""
    plural = kind + ("es" if kind.endswith("s") else "s")
    return ValueError(f"Unknown {kind}: {name!r}. Known {plural}: {', '.join(sorted(known))}")


def check_rate(argument, value, where=None):
    """A rate in [0, 1), as a float."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise invalid_value(argument, "a float in [0, 1)", value, where)
    if not 0.0 <= float(value) < 1.0:
        raise invalid_value(argument, "a float in [0, 1)", value, where)
    return float(value)


def check_positive(argument, value, where=None):
    """A finite number > 0, as a float."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise invalid_value(argument, "a positive number", value, where)
    if not (np.isfinite(value) and value > 0):
        raise invalid_value(argument, "a positive number", value, where)
    return float(value)


def check_count(argument, value, where=None, minimum=0):
    """A whole number >= `minimum` (epochs, patience, steps_per_epoch...), as an int: Python and
    NumPy integers, and integral floats as Keras takes them (epochs=10.0); never a bool."""
    expected = "a non-negative integer" if minimum == 0 else f"an integer >= {minimum}"
    if minimum == 1:
        expected = "a positive integer"
    if isinstance(value, bool) or not isinstance(value, (int, np.integer, float, np.floating)) \
            or not np.isfinite(value) or value != int(value) or value < minimum:
        raise invalid_value(argument, expected, value, where)
    return int(value)


def check_finite_array(name, array):
    """Raise if `array` holds NaN or inf, saying where the first one is."""
    if array.dtype.kind in "fc" and not np.isfinite(array).all():
        bad = np.argwhere(~np.isfinite(array))[0]
        raise ValueError(
            f"`{name}` contains NaN or inf (first at index {tuple(int(i) for i in bad)}); "
            f"expected finite values."
        )


class NotInGpudl(AttributeError, NotImplementedError):
    """A Keras name gpudl does not have on purpose (convolutions, keras.ops, ...); its message
    names the gpudl way. An AttributeError too, so hasattr() answers False."""
