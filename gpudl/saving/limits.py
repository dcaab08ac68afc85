"""What gpudl's own files may declare, checked before anything is inflated, allocated or built.

A hostile or corrupted file must be refused from what it declares (the zip's central directory,
each .npy header, the JSON configuration), never found out by reading or allocating it.
"""

import json
import math
import numbers

MAX_MEMBERS = 10_000  # a model file holds a few members per layer (thousands of layers)
MAX_EXPANSION = 100  # np.savez stores members uncompressed; inflating more than this is a bomb
EXPANSION_FLOOR_BYTES = 1 << 20  # below this, any ratio is harmless
MAX_JSON_BYTES = 64 << 20  # far above any configuration of a model gpudl can hold
MAX_JSON_DEPTH = 64  # a Sequential config nests about 6 levels per nested model
MAX_LAYERS = 10_000  # layers of one model, nested models' included
MAX_COUNTER = 2 ** 62  # epochs, optimizer steps, random layers' calls: far above any run
MAX_SAMPLE_ELEMENTS = 1 << 28  # the features of one sample at any layer
MAX_NPY_HEADER_BYTES = 10_000  # numpy's own default for a safe header


def too_expanded(declared, stored):
    """Whether a zip member declaring `declared` bytes over `stored` compressed ones is a bomb."""
    return declared > EXPANSION_FLOOR_BYTES and declared > MAX_EXPANSION * max(stored, 1)


def parse_json(data, what):
    """The JSON value in the bytes `data`, refusing (ValueError naming `what`) non-UTF-8 text,
    Infinity/NaN (and numbers that overflow to them), nesting deeper than MAX_JSON_DEPTH."""
    if len(data) > MAX_JSON_BYTES:
        raise ValueError(f"{what} is {len(data)} bytes; at most {MAX_JSON_BYTES} are accepted")

    def refuse_constant(name):
        raise ValueError(f"{what} holds {name}; only finite numbers are accepted")

    def finite_float(text):
        value = float(text)
        if not math.isfinite(value):
            raise ValueError(f"{what} holds the number {text[:40]}, which is not a finite float")
        return value

    try:
        value = json.loads(data.decode("utf-8"), parse_constant=refuse_constant, parse_float=finite_float)
    except UnicodeDecodeError:
        raise ValueError(f"{what} is not UTF-8 text") from None
    except RecursionError:
        raise ValueError(f"{what} nests deeper than {MAX_JSON_DEPTH} levels") from None
    except ValueError as error:  # includes json.JSONDecodeError and integers of too many digits
        raise ValueError(f"{what} is not valid JSON: {error}") from None
    pending = [(value, 1)]
    while pending:
        node, depth = pending.pop()
        if depth > MAX_JSON_DEPTH:
            raise ValueError(f"{what} nests deeper than {MAX_JSON_DEPTH} levels")
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        pending.extend((child, depth + 1) for child in children)
    return value


def counter(value, what):
    """`value` as a counter: an int (not a bool) in [0, MAX_COUNTER), else ValueError naming `what`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not 0 <= value < MAX_COUNTER:
        raise ValueError(f"{what} is {value!r}; expected an integer in [0, 2**62)")
    return int(value)
