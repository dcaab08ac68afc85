"""Keras's names: snake_case of a class name, and unique object names (dense, dense_1, ...)."""

import re

_name_counts = {}


def snake_case(class_name):
    """Keras's to_snake_case: BatchNormalization -> batch_normalization, ReLU -> re_lu,
    GlorotUniform -> glorot_uniform (characters other than letters, digits and _ dropped)."""
    name = re.sub(r"\W+", "", class_name)
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def unique_name(base):
    """base, base_1, base_2, ... in the order asked, as Keras names layers and models."""
    count = _name_counts.get(base, 0)
    _name_counts[base] = count + 1
    return base if count == 0 else f"{base}_{count}"


def reset_names():
    """Count every base name from zero again (keras.backend.clear_session)."""
    _name_counts.clear()
