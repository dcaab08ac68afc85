"""Keras 3 archives both ways, checked against Keras itself (JAX backend on CPU): a gpudl
model saved as .keras is loaded, run and trained further by keras.saving.load_model; a
model Keras built, trained and saved is loaded by gpudl; the next training step taken on
each side agrees (optimizer state included); hostile archives are refused."""

import io
import json
import os
import zipfile

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "jax")  # Keras reads it once, at its first import
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import gpudl  # noqa: E402
from gpudl.saving.keras_archive import load_keras_archive, save_keras_archive  # noqa: E402

h5py = pytest.importorskip("h5py")
keras = pytest.importorskip("keras")  # in the test extra; the skip is only a safety net

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")  # Keras 3.15
L = gpudl.layers
FLOAT32 = {"rtol": 2e-5, "atol": 2e-6}  # outputs of size ~1 computed two ways in float32


def data(n=48, features=6, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, features)).astype(np.float32), rng.integers(0, classes, n)


def every_layer_gpudl(x, seed=0):
    """A gpudl model with every layer kind the archive maps, a nested Sequential and a frozen
    layer (whose weights Keras's optimizer does not track)."""
    gpudl.utils.set_random_seed(seed)
    normalization = L.Normalization()
    normalization.adapt(x)
    block = gpudl.Sequential([
        L.Dense(8, activation="relu", kernel_initializer="he_normal", kernel_regularizer=gpudl.regularizers.L2(1e-3),
                kernel_constraint=gpudl.constraints.MaxNorm(2.0)),
        L.BatchNormalization(), L.Dropout(0.2)], name="block")
    return gpudl.Sequential([
        gpudl.Input((x.shape[1],)), normalization, block, L.Activation("tanh"), L.ReLU(), L.LeakyReLU(0.1),
        L.PReLU(), L.ELU(), L.LayerNormalization(trainable=False), L.GaussianNoise(0.05), L.GaussianDropout(0.1),
        L.AlphaDropout(0.1), L.ActivityRegularization(l2=1e-4), L.Rescaling(0.5, offset=0.1), L.Reshape((2, 4)),
        L.Flatten(), L.ReLU(max_value=1.5, negative_slope=0.1, threshold=0.2),
        L.Normalization(mean=0.5, variance=4.0, invert=True), L.Dense(3), L.Softmax()], seed=seed)


def deterministic_gpudl(x, seed=0):
    """Every layer with parameters or state, none that draws random numbers in training."""
    gpudl.utils.set_random_seed(seed)
    normalization = L.Normalization()
    normalization.adapt(x)
    return gpudl.Sequential([
        gpudl.Input((x.shape[1],)), normalization,
        L.Dense(8, activation="tanh", kernel_regularizer=gpudl.regularizers.L2(1e-3)), L.BatchNormalization(),
        L.PReLU(alpha_initializer=gpudl.initializers.Constant(0.25)), L.LayerNormalization(), L.Dense(3),
        L.Softmax()], seed=seed)


def keras_model(x):
    """The Keras twin of every_layer_gpudl, built with Keras's own classes."""
    kl = keras.layers
    normalization = kl.Normalization()
    normalization.adapt(x)
    block = keras.Sequential([kl.Dense(8, activation="relu", kernel_regularizer=keras.regularizers.L2(1e-3)),
                              kl.BatchNormalization(), kl.Dropout(0.2)], name="block")
    return keras.Sequential([
        keras.Input((x.shape[1],)), normalization, block, kl.Activation("tanh"), kl.ReLU(), kl.LeakyReLU(0.1),
        kl.PReLU(), kl.ELU(),
        kl.LayerNormalization(), kl.GaussianNoise(0.05), kl.Rescaling(0.5, offset=0.1), kl.Reshape((2, 4)),
        kl.Flatten(), kl.ReLU(max_value=1.5, negative_slope=0.1, threshold=0.2),
        kl.Normalization(mean=0.5, variance=4.0, invert=True), kl.Dense(3), kl.Softmax()])


def saved(model, path):
    save_keras_archive(model, path)
    return path


def weight_updates(before, after):
    return [a.astype(np.float64) - b for b, a in zip(before, after)]


# -- gpudl -> Keras ----------------------------------------------------------------------------
def test_gpudl_model_of_every_layer_kind_predicts_the_same_in_keras_and_trains_on(tmp_path):
    x, y = data()
    model = every_layer_gpudl(x)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, batch_size=16, epochs=2, verbose=0)
    model.save(tmp_path / "m.keras")  # routed to save_keras_archive by the extension
    twin = keras.saving.load_model(tmp_path / "m.keras")

    assert [type(layer).__name__ for layer in twin.layers] == [type(layer).__name__ for layer in model.layers]
    np.testing.assert_allclose(twin.predict(x, verbose=0), model.predict(x, verbose=0), **FLOAT32)
    assert int(twin.optimizer.iterations.numpy()) == model.optimizer.iterations == 6
    assert twin.evaluate(x, y, verbose=0)[0] == pytest.approx(model.evaluate(x, y, verbose=0)[0], rel=1e-5)
    again = gpudl.models.load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(again.predict(x, verbose=0), model.predict(x, verbose=0))
    for a, b in zip(again.optimizer.variables[1:], model.optimizer.variables[1:]):
        np.testing.assert_array_equal(a, b)

    kernel = twin.layers[-2].kernel.numpy().copy()
    history = twin.fit(x, y, batch_size=16, epochs=2, verbose=0).history
    assert int(twin.optimizer.iterations.numpy()) == 6 + 6 and np.all(np.isfinite(history["loss"]))
    assert np.abs(twin.layers[-2].kernel.numpy() - kernel).max() > 1e-4


def softmax_regression_gradient(x, y, kernel, bias):
    """d(mean cross-entropy of softmax(x W + b))/d(W, b) in float64: dZ = (softmax - one-hot) / m."""
    z = x.astype(np.float64) @ kernel + bias
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    p[np.arange(len(y)), y] -= 1
    dz = p / len(y)
    return [x.T.astype(np.float64) @ dz, dz.sum(axis=0)]


def keras_step(model, x, y):
    """One step of the Keras model's own optimizer on the hand-computed gradient (eager: no compile)."""
    kernel, bias = [v.numpy() for v in model.trainable_variables]
    grads = [g.astype(np.float32) for g in softmax_regression_gradient(x, y, kernel, bias)]
    model.optimizer.apply(grads, model.trainable_variables)


def assert_same_next_step(gpudl_model, keras_twin, x, y):
    """gpudl's train_on_batch and Keras's optimizer, each from the state in the archive, move
    the weights by the same amount (to float32 rounding of the update)."""
    before = gpudl_model.get_weights()
    np.testing.assert_array_equal(keras_twin.get_weights()[0], before[0])
    gpudl_model.train_on_batch(x, y)
    keras_step(keras_twin, x, y)
    ours = weight_updates(before, gpudl_model.get_weights())
    theirs = weight_updates(before, keras_twin.get_weights())
    assert min(np.abs(u).max() for u in ours) > 1e-4  # the step moved kernel and bias
    for name, a, b in zip(("kernel", "bias"), ours, theirs):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-7, err_msg=name)


GPUDL_OPTIMIZERS = {
    "sgd_nesterov": lambda: gpudl.optimizers.SGD(0.5, momentum=0.9, nesterov=True),
    "course_momentum": lambda: gpudl.optimizers.Momentum(0.5, beta=0.8),
    "rmsprop": lambda: gpudl.optimizers.RMSprop(0.05),
    "adam_amsgrad": lambda: gpudl.optimizers.Adam(0.05, amsgrad=True),
    "nadam": lambda: gpudl.optimizers.Nadam(0.05),
    "ftrl": lambda: gpudl.optimizers.Ftrl(0.5, l1_regularization_strength=0.01, l2_regularization_strength=0.1,
                                          l2_shrinkage_regularization_strength=0.05, beta=0.5),
}
KERAS_OPTIMIZERS = {
    "sgd_momentum": lambda: keras.optimizers.SGD(0.5, momentum=0.9),
    "rmsprop_centered_momentum": lambda: keras.optimizers.RMSprop(0.05, momentum=0.5, centered=True),
    "adamw": lambda: keras.optimizers.AdamW(0.05, weight_decay=0.1),
    "adagrad": lambda: keras.optimizers.Adagrad(0.5),
    "adadelta": lambda: keras.optimizers.Adadelta(1.0),
    "adamax": lambda: keras.optimizers.Adamax(0.05),
    "lion": lambda: keras.optimizers.Lion(0.01),
    "ftrl": lambda: keras.optimizers.Ftrl(0.5, learning_rate_power=-0.3, l1_regularization_strength=0.01,
                                          l2_shrinkage_regularization_strength=0.05, beta=0.5),
}


@pytest.mark.parametrize("name", GPUDL_OPTIMIZERS)
def test_keras_takes_the_next_step_gpudl_would_take_from_the_saved_optimizer_state(tmp_path, name):
    """Slots in Keras's order and form (SGD's m = -lr v), iterations and the rate: Keras's
    optimizer, loaded from gpudl's archive, continues exactly where gpudl stands."""
    x, y = data(seed=1)
    model = gpudl.Sequential([gpudl.Input((6,)), L.Dense(3, activation="softmax")], seed=1)
    model.compile(optimizer=GPUDL_OPTIMIZERS[name](), loss="sparse_categorical_crossentropy")
    model.fit(x, y, batch_size=16, epochs=2, verbose=0)
    twin = keras.saving.load_model(saved(model, tmp_path / "m.keras"))
    assert int(twin.optimizer.iterations.numpy()) == 6
    assert_same_next_step(model, twin, x[:16], y[:16])


@pytest.mark.parametrize("name", KERAS_OPTIMIZERS)
def test_gpudl_takes_the_next_step_keras_would_take_from_a_keras_archive(tmp_path, name):
    x, y = data(seed=3)
    keras.utils.set_random_seed(3)
    trained = keras.Sequential([keras.Input((6,)), keras.layers.Dense(3, activation="softmax")])
    trained.compile(optimizer=KERAS_OPTIMIZERS[name](), loss="sparse_categorical_crossentropy")
    for start in (0, 16, 32):
        keras_step(trained, x[start:start + 16], y[start:start + 16])
    trained.save(tmp_path / "k.keras")
    model = load_keras_archive(tmp_path / "k.keras")
    assert model.optimizer.iterations == 3
    assert_same_next_step(model, trained, x[:16], y[:16])


# -- Keras -> gpudl ----------------------------------------------------------------------------
def test_keras_trained_sequential_loads_into_gpudl_predicts_the_same_and_gradient_checks(tmp_path):
    x, y = data(seed=2)
    keras.utils.set_random_seed(2)
    trained = keras_model(x)
    trained.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    trained.fit(x, y, batch_size=16, epochs=2, verbose=0)
    trained.save(tmp_path / "k.keras")

    model = gpudl.models.load_model(tmp_path / "k.keras")  # routed to load_keras_archive
    assert [layer.name for layer in model.layers] == [layer.name for layer in trained.layers]
    np.testing.assert_allclose(model.predict(x, verbose=0), trained.predict(x, verbose=0), **FLOAT32)
    assert type(model.optimizer).__name__ == "Adam" and model.optimizer.iterations == 6
    assert model.evaluate(x, y, verbose=0)[0] == pytest.approx(trained.evaluate(x, y, verbose=0)[0], rel=1e-5)
    check = gpudl.gradient_check(model, x[:8], y[:8])
    assert check.difference < 1e-6, str(check)


class GpudlScale(L.Layer):
    """y = x * w * factor, w one weight per feature: the gpudl twin of the Keras layer below."""

    def __init__(self, factor=2.0, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor

    def build(self, input_shape):
        self.w = self.add_weight("w", (input_shape[-1],), gpudl.initializers.Ones())

    def forward(self, x, training=False):
        self._x = x
        return x * self.w.value * self.factor

    def backward(self, dy):
        self.w.grad[...] = (dy * self._x).sum(axis=0) * self.factor
        return dy * self.w.value * self.factor

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


def test_custom_keras_layer_loads_as_the_gpudl_layer_named_in_custom_objects(tmp_path):
    @keras.saving.register_keras_serializable(package="gpudl_test")
    class Scale(keras.layers.Layer):
        def __init__(self, factor=2.0, **kwargs):
            super().__init__(**kwargs)
            self.factor = factor

        def build(self, input_shape):
            self.w = self.add_weight(shape=(input_shape[-1],), initializer="ones")

        def call(self, x):
            return x * self.w * self.factor

        def get_config(self):
            return {**super().get_config(), "factor": self.factor}

    x, _ = data(seed=7)
    trained = keras.Sequential([keras.Input((6,)), keras.layers.Dense(4), Scale(factor=0.5)])
    trained.layers[1].set_weights([np.linspace(0.5, 2.0, 4).astype(np.float32)])
    trained.save(tmp_path / "k.keras")
    with pytest.raises(ValueError, match=r"layer 1 \('scale', Scale\): layer .*Scale \(registered_name="
                                         r"'gpudl_test>Scale'\) is not supported"):
        load_keras_archive(tmp_path / "k.keras")
    model = load_keras_archive(tmp_path / "k.keras", custom_objects={"gpudl_test>Scale": GpudlScale})
    assert model.layers[1].factor == 0.5
    np.testing.assert_allclose(model.predict(x, verbose=0), np.asarray(trained(x)), **FLOAT32)


KERAS_ARGUMENTS = {  # required constructor arguments of the Keras classes in the table
    "Dense": (3,), "Dot": (1,), "Activation": ("relu",), "Rescaling": (0.5,), "Reshape": ((2,),), "Dropout": (0.1,),
    "GaussianNoise": (0.1,), "GaussianDropout": (0.1,), "AlphaDropout": (0.1,),
    "ExponentialDecay": (0.1, 10, 0.9), "InverseTimeDecay": (0.1, 10, 0.5), "PolynomialDecay": (0.1, 10),
    "PiecewiseConstantDecay": ([10], [0.1, 0.01]), "CosineDecay": (0.1, 10), "CosineDecayRestarts": (0.1, 10),
    "PrecisionAtRecall": (0.5,), "RecallAtPrecision": (0.5,), "SensitivityAtSpecificity": (0.5,),
    "SpecificityAtSensitivity": (0.5,),
}
KERAS_NAMESPACES = {"layer": "layers", "initializer": "initializers", "regularizer": "regularizers",
                    "constraint": "constraints", "loss": "losses", "metric": "metrics", "optimizer": "optimizers",
                    "schedule": "optimizers.schedules"}


@pytest.mark.parametrize("kind", sorted(KERAS_NAMESPACES))
def test_every_class_in_the_table_loads_from_its_keras_default_config(kind):
    """Each Keras class of KERAS_CLASSES, as Keras itself configures it by default, passes the
    option check and builds its gpudl class; and every gpudl class named like a Keras class is
    in the table (InputLayer is the model's input): the table, gpudl and Keras agree."""
    from gpudl import registry
    from gpudl.saving import keras_archive

    namespace = keras
    for part in KERAS_NAMESPACES[kind].split("."):
        namespace = getattr(namespace, part)
    for name in keras_archive.KERAS_CLASSES[kind]:
        cls = keras_archive._gpudl_class(kind, name)
        assert cls is not None, f"gpudl has no {kind} {name}"
        config = getattr(namespace, name)(*KERAS_ARGUMENTS.get(name, ())).get_config()
        config.pop("dtype") if kind == "layer" else None
        problems = []
        options = keras_archive._options(kind, name, config, cls, name, problems)
        assert problems == [], problems
        cls.from_config(options) if kind == "layer" else cls(**options)
    namesakes = {name for name in registry.classes(kind) if hasattr(namespace, name)} - {"InputLayer"}
    assert namesakes <= set(keras_archive.KERAS_CLASSES[kind]), "add them to KERAS_CLASSES"


# -- gpudl -> gpudl ----------------------------------------------------------------------------
def test_round_trip_keeps_config_weights_schedule_and_optimizer_state(tmp_path):
    x, y = data(seed=4)
    model = deterministic_gpudl(x)
    schedule = gpudl.schedules.ExponentialDecay(0.01, decay_steps=5, decay_rate=0.5)
    model.compile(optimizer=gpudl.optimizers.Adam(schedule, amsgrad=True), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy", gpudl.metrics.SparseTopKCategoricalAccuracy(k=2, name="top2")],
                  weighted_metrics=["accuracy"])
    model.fit(x, y, batch_size=16, epochs=2, verbose=0)
    twin = load_keras_archive(saved(model, tmp_path / "m.keras"))
    for a, b in zip(twin.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert twin.optimizer.get_config()["learning_rate"] == model.optimizer.get_config()["learning_rate"]
    assert twin.optimizer.iterations == model.optimizer.iterations
    for name in ("m", "v", "v_max"):
        np.testing.assert_array_equal(twin.optimizer.slots[name], model.optimizer.slots[name])
    np.testing.assert_array_equal(twin.predict(x, verbose=0), model.predict(x, verbose=0))
    assert twin.evaluate(x, y, verbose=0, return_dict=True) == model.evaluate(x, y, verbose=0, return_dict=True)
    assert not load_keras_archive(tmp_path / "m.keras", compile=False).compiled


def test_course_momentum_reloads_as_the_sgd_that_takes_the_same_steps(tmp_path):
    """Momentum(lr, beta): v = beta v + (1 - beta) g, w -= lr v is written as Keras
    SGD(lr (1 - beta), momentum=beta) with m = -lr v; gpudl reads that back as SGD. Float64,
    so the two step rules must agree to the last bits, not just to float32 rounding."""
    x, y = data(seed=5)
    model = deterministic_gpudl(x)
    model = model.clone("float64")
    model.compile(optimizer=gpudl.optimizers.Momentum(0.1, beta=0.75), loss="sparse_categorical_crossentropy")
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    twin = load_keras_archive(saved(model, tmp_path / "m.keras"))
    assert type(twin.optimizer).__name__ == "SGD" and twin.optimizer.momentum == 0.75
    for _ in range(3):
        model.train_on_batch(x[:16], y[:16])
        twin.train_on_batch(x[:16], y[:16])
    for a, b in zip(twin.get_weights(), model.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


def test_saving_refuses_what_keras_cannot_hold_naming_it(tmp_path):
    class Cube(L.Layer):
        def forward(self, x, training=False):
            return x ** 3

    model = gpudl.Sequential([gpudl.Input((3,)), L.Dense(2), Cube(name="cube")])
    with pytest.raises(ValueError, match=r"layer 'cube' is a Cube, which has no Keras equivalent"):
        save_keras_archive(model, tmp_path / "m.keras")
    assert not (tmp_path / "m.keras").exists()


def test_without_h5py_the_error_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "h5py", None)
    model = gpudl.Sequential([gpudl.Input((3,)), L.Dense(2)])
    with pytest.raises(ImportError, match=r'pip install "gpudl\[keras\]"'):
        save_keras_archive(model, tmp_path / "m.keras")


# -- hostile and broken archives -------------------------------------------------------------
@pytest.fixture
def genuine(tmp_path):
    """The members of a small genuine archive: {name: bytes}."""
    x, y = data(seed=6)
    model = gpudl.Sequential([gpudl.Input((6,)), L.Dense(4, activation="relu"), L.Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=1, verbose=0)
    with zipfile.ZipFile(saved(model, tmp_path / "genuine.keras")) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def archive_with(tmp_path, members, compression=zipfile.ZIP_STORED):
    path = tmp_path / "hostile.keras"
    with zipfile.ZipFile(path, "w", compression=compression) as archive:
        for name, data_ in members.items():
            archive.writestr(name, data_)
    return path


def with_layer(members, index, entry):
    config = json.loads(members["config.json"])
    config["config"]["layers"][index] = entry
    return {**members, "config.json": json.dumps(config)}


LAMBDA = {"module": "keras.layers", "class_name": "Lambda", "registered_name": None, "config": {
    "name": "lambda", "function": {"class_name": "__lambda__", "config": {
        "code": "4wEAAAAAAAAAAAAAAAEAAAACAAAAQwAAAHMIAAAAdAB8AIMBUwApAU4pAdoEZXhlYykB2gF4qQByAwAAAPoBPA==",
        "defaults": None, "closure": None}}}}


@pytest.mark.parametrize("entry, message", [
    ({"module": "os", "class_name": "system", "config": {"command": "touch pwned"}, "registered_name": None},
     r"layer os\.system .* is not supported"),
    (LAMBDA, r"lambda \(Lambda\) holds Python bytecode"),
    ({"module": "keras.layers", "class_name": "Dense", "registered_name": None, "config": {
        "name": "dense", "units": 3, "activation": {"module": "builtins", "class_name": "function",
                                                    "config": "exec", "registered_name": "function"}}},
     r"activation .*exec.* is not supported"),
    ({"module": "keras.layers", "class_name": "Dense", "registered_name": None, "config": {
        "name": "dense", "units": 3, "kernel_initializer": {"module": "subprocess", "class_name": "Popen",
                                                            "config": {"args": "touch pwned"}}}},
     r"initializer subprocess\.Popen .* is not supported"),
    ({"module": "keras.layers", "class_name": "Conv2D", "registered_name": None, "config": {"filters": 2}},
     r"layer keras\.layers\.Conv2D .* is not supported; supported: keras\.layers\.\{.*Dense"),
    ({"module": "keras.layers", "class_name": "BatchNormalization", "registered_name": None,
      "config": {"name": "bn", "renorm": True, "synchronized": True}},
     r"option renorm=True .*; layer 0 \('bn', BatchNormalization\): option synchronized=True"),
], ids=["os_system", "lambda_layer", "builtin_function_activation", "popen_initializer", "unsupported_layer",
        "unsupported_options"])
def test_hostile_or_unsupported_configs_are_refused_by_name(tmp_path, genuine, entry, message):
    path = archive_with(tmp_path, with_layer(genuine, 1, entry))
    with pytest.raises(ValueError, match=message):
        load_keras_archive(path)
    assert not (tmp_path / "pwned").exists() and not os.path.exists("pwned")


def test_a_functional_model_without_its_graph_is_refused_by_name(tmp_path, genuine):
    """A Sequential's config relabelled Functional: no input_layers / output_layers, unnamed layers."""
    config = json.loads(genuine["config.json"])
    config.update(module="keras", class_name="Functional")
    path = archive_with(tmp_path, {**genuine, "config.json": json.dumps(config)})
    with pytest.raises(ValueError, match="the model: a functional model needs input_layers .*; found None"):
        load_keras_archive(path)


def test_truncated_archive_is_refused(tmp_path, genuine):
    whole = archive_with(tmp_path, genuine).read_bytes()
    path = tmp_path / "truncated.keras"
    path.write_bytes(whole[:len(whole) // 2])
    with pytest.raises(ValueError, match="truncated or corrupted"):
        load_keras_archive(path)


def with_weights(tmp_path, members, edit):
    """An archive whose model.weights.h5 is the genuine one after edit(h5 file)."""
    replaced = io.BytesIO()
    with h5py.File(io.BytesIO(members["model.weights.h5"]), "r") as source, h5py.File(replaced, "w") as target:
        for name in source:
            source.copy(name, target)
        edit(target)
    return archive_with(tmp_path, {**members, "model.weights.h5": replaced.getvalue()})


def transposed_kernel(h5):
    del h5["layers/dense/vars/0"]
    h5["layers/dense/vars/0"] = np.zeros((4, 6), np.float32)


def soft_link(h5):
    del h5["layers/dense_1"]
    h5["layers/dense_1"] = h5py.SoftLink("/layers/dense")


def external_file(h5):
    """A dataset whose bytes HDF5 would read from another file on the loading machine."""
    del h5["layers/dense/vars/0"]
    h5.create_dataset("layers/dense/vars/0", (6, 4), np.float32, external=[("/etc/hostname", 0, 96)])


def extra_variable(h5):
    h5["layers/dense/vars/2"] = np.zeros(3, np.float32)


@pytest.mark.parametrize("edit, message", [
    (transposed_kernel, r"layers/dense/vars/0 has shape \(4, 6\).*needs shape \(6, 4\)"),
    (soft_link, r"links layers/dense_1/vars elsewhere \(SoftLink\); links are refused"),
    (external_file, r"layers/dense/vars/0 is not a plain dataset"),
    (extra_variable, r"layers/dense/vars holds variables \['0', '1', '2'\]; the model needs 2"),
], ids=["wrong_shape", "soft_link", "external_file", "extra_variable"])
def test_weights_that_do_not_fit_the_model_are_refused_before_anything_is_read(tmp_path, genuine, edit, message):
    with pytest.raises(ValueError, match=message):
        load_keras_archive(with_weights(tmp_path, genuine, edit))


def test_weights_that_are_not_hdf5_are_refused(tmp_path, genuine):
    path = archive_with(tmp_path, {**genuine, "model.weights.h5": b"not an HDF5 file" * 64})
    with pytest.raises(ValueError, match="model.weights.h5 is not a readable HDF5 file"):
        load_keras_archive(path)


def declaring(data, member, size):
    """A zip whose headers declare `size` bytes for `member` (what a bomb's headers say)."""
    name = member.encode()
    central = data.index(b"PK\x01\x02")  # the central directory's first header
    while data[central + 46:central + 46 + len(name)] != name:
        central = data.index(b"PK\x01\x02", central + 4)
    local = int.from_bytes(data[central + 42:central + 46], "little")
    patched = bytearray(data)
    patched[central + 24:central + 28] = size.to_bytes(4, "little")
    patched[local + 22:local + 26] = size.to_bytes(4, "little")
    return bytes(patched)


def test_zip_bomb_of_huge_declared_size_is_refused(tmp_path, genuine):
    bomb = {**genuine, "model.weights.h5": bytes(64 << 20)}  # 64 MiB of zeros deflate to ~64 KiB
    path = archive_with(tmp_path, bomb, compression=zipfile.ZIP_DEFLATED)
    assert path.stat().st_size < 1 << 20
    with pytest.raises(ValueError, match="zip bomb"):
        load_keras_archive(path)
    path.write_bytes(declaring(archive_with(tmp_path, genuine).read_bytes(), "model.weights.h5", (1 << 32) - 2))
    with pytest.raises(ValueError, match=r"model.weights.h5 declares 4294967294 bytes but stores only \d+: "
                                         r"refusing a possible zip bomb"):
        load_keras_archive(path)
