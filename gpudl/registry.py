"""Classes by name: the one place that says which class a saved name stands for.

Each frontend module registers its classes under a kind ("layer", "loss", "optimizer", ...);
deserialization, the `.npz` and `.keras` loaders and `Sequential.from_config` look names up here
and nowhere else. User classes join through `custom_objects`, `register_keras_serializable` or a
`custom_object_scope`; a class is only ever looked up by name, never imported from a file.
"""

from gpudl.naming import snake_case

_tables = {}  # kind -> {name or alias: class}
_custom_objects = {}  # registered and scoped user classes: name -> class


def register(kind, classes, aliases=None, snake_case_names=False):
    """Add `classes` of `kind` under their class names (and their snake_case names when asked),
    plus `aliases` {name: class}; returns the kind's table (the module's `get` reads it)."""
    table = _tables.setdefault(kind, {})
    table.update({cls.__name__: cls for cls in classes})
    if snake_case_names:
        table.update({snake_case(cls.__name__): cls for cls in classes})
    table.update(aliases or {})
    return table


def classes(kind):
    """gpudl's classes of `kind` by class name (aliases left out)."""
    return {cls.__name__: cls for cls in _tables.get(kind, {}).values()}


def find(name, kinds, custom_objects=None):
    """The class `name` stands for: `custom_objects` first, then registered and scoped user
    classes, then gpudl's classes of `kinds` (earlier kinds win); None when nothing matches."""
    for table in (custom_objects or {}, _custom_objects):
        if name in table:
            return table[name]
    for kind in kinds:
        found = classes(kind).get(name)
        if found is not None:
            return found
    return None


def register_keras_serializable(package="Custom", name=None):
    """Decorator: register a user class (layer, loss, metric...) so that saved models naming
    it load without `custom_objects`, under "package>name" and its plain name."""
    def register_class(cls):
        registered = f"{package}>{name or cls.__name__}"
        if registered in _custom_objects:
            raise ValueError(f"{registered} has already been registered to {_custom_objects[registered]}")
        _custom_objects[registered] = cls
        _custom_objects[name or cls.__name__] = cls
        cls._registered_name = registered
        return cls
    return register_class


class custom_object_scope:
    """`with custom_object_scope({"MyLayer": MyLayer}):` makes those names known to loading
    for the duration of the block, as Keras's CustomObjectScope."""

    def __init__(self, custom_objects=None):
        self.custom_objects = dict(custom_objects or {})

    def __enter__(self):
        self.saved = dict(_custom_objects)
        _custom_objects.update(self.custom_objects)
        return self

    def __exit__(self, *exc_info):
        _custom_objects.clear()
        _custom_objects.update(self.saved)


CustomObjectScope = custom_object_scope


def get_custom_objects():
    """The global dict of registered classes (name -> class); you may also add to it."""
    return _custom_objects
