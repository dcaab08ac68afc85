"""Sequential's Keras 3 surface: namespaces, building, fit/evaluate/predict arguments,
sample and class weights, batch sources, hook order, freezing, saving weights, and the
boundary conversions; each against Keras's documented behaviour or a float64 recomputation."""

import json

import numpy as np
import pytest

import gpudl
from gpudl.layers import BatchNormalization, Dense, Dropout, ReLU


def data(n=50, features=6, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, features)).astype(np.float32)
    return x, rng.integers(0, classes, n)


def softmax_model(dtype=None, seed=0, hidden=8):
    return gpudl.Sequential([gpudl.Input((6,)), Dense(hidden, activation="relu"), Dense(3, activation="softmax")],
                            dtype=dtype, seed=seed)


def per_sample_cross_entropy(model, x, y):
    """-log softmax(z)[y] in float64 from the model's own weights (an independent forward)."""
    kernel1, bias1, kernel2, bias2 = [w.astype(np.float64) for w in model.get_weights()]
    z = np.maximum(x.astype(np.float64) @ kernel1 + bias1, 0) @ kernel2 + bias2
    z -= z.max(axis=1, keepdims=True)
    return -(z[np.arange(len(y)), y] - np.log(np.exp(z).sum(axis=1)))


# -- namespaces -----------------------------------------------------------------------------
def test_keras_namespaces_import_as_in_keras():
    import gpudl.layers as layers
    from gpudl.models import Sequential, clone_model, load_model, model_from_json, save_model  # noqa: F401
    from gpudl.optimizers import schedules
    from gpudl.saving import (deserialize_keras_object, get_custom_objects, register_keras_serializable,  # noqa: F401
                              serialize_keras_object)

    assert Sequential is gpudl.Sequential and layers.Dense is gpudl.layers.Dense
    assert schedules is gpudl.schedules and gpudl.optimizers.schedules.ExponentialDecay is gpudl.schedules.ExponentialDecay
    gpudl.backend.clear_session()
    assert Dense(2).name == "dense"  # names count from zero again, as after keras.backend.clear_session()


def test_out_of_scope_keras_features_name_the_gpudl_way():
    with pytest.raises(NotImplementedError, match="out of scope"):  # keras.ops exists; convolutions do not
        gpudl.ops.conv
    with pytest.raises(NotImplementedError, match="Sequential"):  # a subclassed Model (the functional API exists)
        gpudl.Model()
    with pytest.raises(ValueError, match="All `inputs` values must be KerasTensors"):  # as Keras
        gpudl.Model(inputs=None, outputs=None)


# -- building -------------------------------------------------------------------------------
def test_build_takes_keras_batch_axis_and_shapes_include_it():
    model = gpudl.Sequential([Dense(4), Dense(2)])
    assert model.input_shape is None and not model.built
    model.build((None, 5))
    assert model.built and model.input_shape == (None, 5) and model.output_shape == (None, 2)
    legacy = gpudl.Sequential([Dense(4)])
    legacy.build((5,))
    assert legacy.input_shape == (None, 5)


def test_add_after_input_builds_as_layers_arrive_and_pop_removes():
    model = gpudl.Sequential()
    model.add(gpudl.Input((5,)))
    model.add(Dense(4, name="hidden"))
    assert model.built and model.output_shape == (None, 4)
    model.add(Dense(2, name="out"))
    assert model.output_shape == (None, 2)
    assert model.get_layer("hidden") is model.layers[0] and model.get_layer(index=1).name == "out"
    assert model.pop().name == "out" and model.output_shape == (None, 4)
    with pytest.raises(ValueError, match="No such layer: 'nope'"):
        model.get_layer("nope")


def test_first_layer_input_shape_argument_builds_the_model():
    model = gpudl.Sequential([Dense(4, input_shape=(5,)), Dense(2)])
    assert model.built and model.input_shape == (None, 5)
    model = gpudl.Sequential([Dense(4, input_dim=7)])
    assert model.built and model.input_shape == (None, 7)


def test_nested_sequential_is_a_layer_and_trains_like_the_flat_model():
    x, y = data()
    gpudl.utils.set_random_seed(3)
    inner = gpudl.Sequential([Dense(8, activation="relu"), BatchNormalization()], name="block")
    nested = gpudl.Sequential([gpudl.Input((6,)), inner, Dense(3, activation="softmax")], dtype="float64", seed=1)
    flat = gpudl.Sequential([gpudl.Input((6,)), Dense(8, activation="relu"), BatchNormalization(),
                             Dense(3, activation="softmax")], dtype="float64", seed=1)
    flat.set_weights(nested.get_weights())
    for model in (nested, flat):
        model.compile("adam", "sparse_categorical_crossentropy")
        model.fit(x, y, epochs=2, verbose=0)
    assert nested.get_layer("block") is inner and len(nested.layers) == 2
    for a, b in zip(nested.get_weights(), flat.get_weights()):
        np.testing.assert_array_equal(a, b)


# -- compile, fit, evaluate, predict -----------------------------------------------------------
def test_fit_batch_size_none_is_32_and_epochs_may_be_a_numpy_integer():
    x, y = data(n=70)
    model = softmax_model()
    model.compile("sgd", "sparse_categorical_crossentropy")
    history = model.fit(x, y, epochs=np.int64(2), verbose=0)
    assert history.params["steps"] == 3 and history.epoch == [0, 1] and model.history is history


def test_train_on_batch_returns_loss_and_metrics_before_the_step():
    x, y = data(n=20)
    model = softmax_model(dtype="float64")
    model.compile(gpudl.optimizers.SGD(0.1), "sparse_categorical_crossentropy", metrics=["accuracy"])
    before = model.get_weights()
    expected_loss = per_sample_cross_entropy(model, x, y).mean()
    expected_accuracy = np.mean(model.predict(x, verbose=0).argmax(1) == y)
    loss, accuracy = model.train_on_batch(x, y)
    assert loss == pytest.approx(expected_loss, rel=1e-12)
    assert accuracy == pytest.approx(expected_accuracy, abs=1e-12)
    assert not np.array_equal(before[0], model.get_weights()[0])
    assert model.metrics_names == ["loss", "accuracy"]
    assert isinstance(model.test_on_batch(x, y), list) and model.predict_on_batch(x).shape == (20, 3)
    plain = softmax_model(dtype="float64")
    plain.compile("sgd", "sparse_categorical_crossentropy")
    assert isinstance(plain.train_on_batch(x, y), float)


def test_evaluate_sample_weight_is_keras_sum_over_batch_size():
    """Keras: each batch's loss is sum(w_i l_i) / batch size; the epoch's is the batch-size-weighted mean."""
    x, y = data(n=50)
    weights = np.linspace(0.1, 2.0, 50)
    model = softmax_model(dtype="float64")
    model.compile("adam", "sparse_categorical_crossentropy")
    losses = per_sample_cross_entropy(model, x, y) * weights
    batches = [losses[i:i + 16] for i in range(0, 50, 16)]
    expected = sum(b.sum() / len(b) * len(b) for b in batches) / 50
    assert model.evaluate(x, y, sample_weight=weights, batch_size=16, verbose=0) == pytest.approx(expected, rel=1e-12)


def test_fit_with_class_weight_equals_fit_with_the_matching_sample_weight():
    x, y = data(n=40)
    class_weight = {0: 0.5, 1: 2.0, 2: 1.5}
    results = []
    for kwargs in ({"class_weight": class_weight}, {"sample_weight": np.array([class_weight[c] for c in y])}):
        model = softmax_model(dtype="float64", seed=4)
        gpudl.utils.set_random_seed(4)
        model = softmax_model(dtype="float64", seed=4)
        model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
        results.append((model.fit(x, y, batch_size=8, epochs=2, verbose=0, **kwargs).history, model.get_weights()))
    assert results[0][0] == results[1][0]
    for a, b in zip(results[0][1], results[1][1]):
        np.testing.assert_array_equal(a, b)


def test_bad_sample_and_class_weights_are_refused_before_training():
    x, y = data(n=20)
    model = softmax_model()
    model.compile("adam", "sparse_categorical_crossentropy")
    before = model.get_weights()
    for weights, match in ((np.ones(19), r"shape \(20,\)"), (-np.ones(20), "non-negative"),
                           (np.full(20, np.nan), "NaN")):
        with pytest.raises(ValueError, match=match):
            model.fit(x, y, sample_weight=weights, verbose=0)
    with pytest.raises(ValueError, match="no weight for class 2"):
        model.fit(x, y, class_weight={0: 1.0, 1: 1.0}, verbose=0)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_validation_freq_validates_only_on_the_chosen_epochs():
    x, y = data()
    model = softmax_model()
    model.compile("adam", "sparse_categorical_crossentropy")
    seen = []
    record = gpudl.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: seen.append("val_loss" in logs))
    model.fit(x, y, epochs=4, validation_split=0.2, validation_freq=2, verbose=0, callbacks=[record])
    assert seen == [False, True, False, True]


class Batches(gpudl.utils.PyDataset):
    def __init__(self, x, y, batch_size):
        super().__init__()
        self.x, self.y, self.batch_size, self.epochs_ended = x, y, batch_size, 0

    def __len__(self):
        return -(-len(self.x) // self.batch_size)

    def __getitem__(self, index):
        part = slice(index * self.batch_size, (index + 1) * self.batch_size)
        return self.x[part], self.y[part]

    def on_epoch_end(self):
        self.epochs_ended += 1


def test_fit_on_a_pydataset_and_on_a_generator_equals_fit_on_arrays_in_order():
    x, y = data(n=48)
    histories = []

    def generator():
        while True:
            for i in range(0, 48, 16):
                yield x[i:i + 16], y[i:i + 16]
    dataset = Batches(x, y, 16)
    for fit_args in ((x, y), (dataset,), (generator(),)):
        model = softmax_model(dtype="float64", seed=2)
        gpudl.utils.set_random_seed(2)
        model = softmax_model(dtype="float64", seed=2)
        model.compile("adam", "sparse_categorical_crossentropy")
        extra = {"steps_per_epoch": 3} if not isinstance(fit_args[0], np.ndarray) and fit_args[0] is not dataset else {}
        histories.append(model.fit(*fit_args, batch_size=None if len(fit_args) == 1 else 16, epochs=2,
                                   shuffle=False, verbose=0, **extra).history["loss"])
    assert histories[1] == pytest.approx(histories[0], rel=1e-12)
    assert histories[2] == pytest.approx(histories[0], rel=1e-12)
    assert dataset.epochs_ended == 2


# -- callbacks: Keras's order of hooks ----------------------------------------------------------
class Recorder(gpudl.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.calls = []

    def __getattribute__(self, name):
        if name.startswith("on_") and not name.startswith("on_batch"):
            calls = object.__getattribute__(self, "calls")
            return lambda *args, **kwargs: calls.append((name, args[0]) if args and isinstance(args[0], int) else name)
        return object.__getattribute__(self, name)


def test_hook_order_of_fit_with_validation_is_keras_order():
    """keras/src/trainers/*_trainer.py fit: train_begin; per epoch: epoch_begin, train batches, then
    evaluate (test_begin, test batches, test_end), epoch_end; train_end."""
    x, y = data(n=12)
    model = softmax_model()
    model.compile("sgd", "sparse_categorical_crossentropy")
    recorder = Recorder()
    model.fit(x[:8], y[:8], batch_size=4, epochs=1, validation_data=(x[8:], y[8:]), verbose=0,
              callbacks=[recorder])
    assert recorder.calls == [
        "on_train_begin", ("on_epoch_begin", 0),
        ("on_train_batch_begin", 0), ("on_train_batch_end", 0), ("on_train_batch_begin", 1), ("on_train_batch_end", 1),
        "on_test_begin", ("on_test_batch_begin", 0), ("on_test_batch_end", 0), "on_test_end",
        ("on_epoch_end", 0), "on_train_end"]
    recorder.calls.clear()
    model.evaluate(x, y, batch_size=12, callbacks=[recorder], verbose=0)
    model.predict(x, batch_size=12, callbacks=[recorder], verbose=0)
    assert recorder.calls == ["on_test_begin", ("on_test_batch_begin", 0), ("on_test_batch_end", 0), "on_test_end",
                              "on_predict_begin", ("on_predict_batch_begin", 0), ("on_predict_batch_end", 0),
                              "on_predict_end"]


def test_on_batch_aliases_fire_and_train_end_gets_the_last_epoch_logs():
    x, y = data(n=16)
    model = softmax_model()
    model.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"])
    events = {}

    class Aliases(gpudl.callbacks.Callback):
        def on_batch_begin(self, batch, logs=None):
            events.setdefault("begin", []).append(batch)

        def on_batch_end(self, batch, logs=None):
            events.setdefault("end", []).append(float(logs["loss"]))

        def on_train_end(self, logs=None):
            events["train_end"] = dict(logs)
    history = model.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[Aliases()])
    assert events["begin"] == [0, 1, 0, 1] and len(events["end"]) == 4
    assert events["train_end"] == {key: values[-1] for key, values in history.history.items()}


def test_fit_reads_the_device_a_bounded_number_of_times_per_epoch(monkeypatch):
    """No per-step host read: with no callback looking at batch logs, the loss and metrics
    stay on the device until the epoch ends (the backend's to_numpy is the only way back)."""
    x, y = data(n=256)
    model = softmax_model()
    model.compile("adam", "sparse_categorical_crossentropy")
    backend = gpudl.get_backend()
    reads = []
    original = type(backend).to_numpy
    monkeypatch.setattr(type(backend), "to_numpy", lambda self, array: reads.append(1) or original(self, array))
    for batch_size in (128, 8):  # 2 steps, then 32 steps per epoch
        reads.clear()
        model.fit(x, y, batch_size=batch_size, epochs=2, verbose=0)
        assert len(reads) <= 2 * 2, f"{len(reads)} device reads for 2 epochs of {256 // batch_size} steps"
    loss = model._train_step(*(backend.asarray(a) for a in (x[:8], y[:8])))
    assert type(loss) is not float  # a device scalar (np.float64 on the numpy backend), read only when asked
    penalized = gpudl.Sequential([gpudl.Input((6,)), Dense(3, kernel_regularizer="l1l2")], seed=0)
    assert type(penalized.regularization_loss()) is not float  # a weight penalty stays on the device too


# -- freezing ---------------------------------------------------------------------------------
def test_model_trainable_false_freezes_every_layer_and_true_restores_training():
    x, y = data()
    model = softmax_model()
    model.compile("adam", "sparse_categorical_crossentropy")
    model.trainable = False
    assert not any(layer.trainable for layer in model.layers) and model.trainable_weights == []
    before = model.get_weights()
    model.fit(x, y, epochs=1, verbose=0)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    model.trainable = True
    model.fit(x, y, epochs=1, verbose=0)
    assert not np.array_equal(before[0], model.get_weights()[0])


# -- describing and saving --------------------------------------------------------------------
def test_to_json_and_model_from_json_rebuild_the_architecture():
    model = softmax_model()
    twin = gpudl.models.model_from_json(model.to_json())
    assert json.loads(twin.to_json())["config"]["layers"] == json.loads(model.to_json())["config"]["layers"]
    assert twin.input_shape == (None, 6) and twin.count_params() == model.count_params()


def test_save_weights_follows_keras_suffix_rule_and_round_trips(tmp_path):
    model = softmax_model(seed=1)
    path = tmp_path / "model.weights.h5"
    model.save_weights(path)
    other = softmax_model(seed=2)
    other.load_weights(path)
    for a, b in zip(model.get_weights(), other.get_weights()):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match=r"must end in `\.weights\.h5`"):
        model.save_weights(tmp_path / "model.h5")


def test_load_weights_with_wrong_shapes_names_the_weight_and_changes_nothing(tmp_path):
    path = tmp_path / "wide.weights.h5"
    softmax_model(hidden=9).save_weights(path)
    model = softmax_model(hidden=8)
    before = model.get_weights()
    with pytest.raises(ValueError, match=r"kernel.*\(6, 8\).*\(6, 9\)"):
        model.load_weights(path)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_summary_prints_parameter_sizes_in_keras_units():
    lines = []
    model = gpudl.Sequential([gpudl.Input((784,)), Dense(512), Dense(10)])
    model.summary(print_fn=lines.append)
    params = 784 * 512 + 512 + 512 * 10 + 10
    assert f" Total params: {params:,} ({params * 4 / 1024 ** 2:.2f} MB)" in lines
    assert " Non-trainable params: 0 (0.00 B)" in lines


# -- the model boundary ------------------------------------------------------------------------
@pytest.mark.parametrize("backend_name", ["numpy", "triton"])
def test_transposed_lists_and_torch_tensors_are_accepted_at_the_boundary(backend_name):
    """The course keeps examples in columns: model(X.T) must work when batch-norm or dropout
    follows the input, on every backend (the kernels keep their contiguity checks)."""
    if backend_name == "triton":
        pytest.importorskip("triton")
    torch = pytest.importorskip("torch")
    columns = np.asfortranarray(np.random.default_rng(0).normal(size=(5, 12)))  # (features, examples)
    y = np.arange(12) % 3
    gpudl.set_backend(backend_name)
    try:
        model = gpudl.Sequential([gpudl.Input((5,)), BatchNormalization(), Dropout(0.2), Dense(3, activation="softmax")],
                                 seed=0)
        model.compile("adam", "sparse_categorical_crossentropy")
        expected = np.asarray(gpudl.get_backend().to_numpy(model(np.ascontiguousarray(columns.T), training=False)))
        for x in (columns.T, columns.T.tolist(), torch.from_numpy(columns.T.copy())):
            np.testing.assert_allclose(gpudl.get_backend().to_numpy(model(x)), expected, rtol=1e-6)
        model(columns.T, training=True)
        assert np.isfinite(model.train_on_batch(columns.T, y))
    finally:
        gpudl.set_backend("numpy")


# -- a training loop from scratch ----------------------------------------------------------------
def test_training_loop_from_scratch_reaches_the_weights_of_fit_on_the_same_batches():
    """compute_gradients + optimizer.apply_gradients, batch by batch in order, equals
    fit(shuffle=False): the same kernels, the same arena launch, the same constraint step."""
    x, y = data(n=48)
    models = []
    for _ in range(2):
        model = gpudl.Sequential([gpudl.Input((6,)), Dense(8, activation="relu", kernel_regularizer="l2",
                                                          kernel_constraint=gpudl.constraints.MaxNorm(1.0)),
                                  BatchNormalization(), Dense(3, activation="softmax")], dtype="float64", seed=3)
        model.compile(gpudl.optimizers.Adam(0.01), "sparse_categorical_crossentropy")
        models.append(model)
    models[1].set_weights(models[0].get_weights())
    models[0].fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
    loop, losses = models[1], []
    for epoch in range(2):
        for start in range(0, 48, 16):
            loss, grads = loop.compute_gradients(x[start:start + 16], y[start:start + 16])
            loop.optimizer.apply_gradients(zip(grads, loop.trainable_weights))
            losses.append(loss)
    assert len(grads) == len(loop.trainable_weights) and all(g.shape == w.shape for g, w in
                                                             zip(grads, loop.trainable_weights))
    assert int(loop.optimizer.iterations) == 6 and all(np.isfinite(losses))
    for a, b in zip(models[0].get_weights(), loop.get_weights()):
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-15)


def test_compute_gradients_match_central_differences_of_the_loss_with_penalty():
    x, y = data(n=10)
    model = gpudl.Sequential([gpudl.Input((6,)), Dense(4, activation="tanh", kernel_regularizer=gpudl.regularizers.L2(0.1)),
                              Dense(3, activation="softmax")], dtype="float64", seed=0)
    model.compile("sgd", "sparse_categorical_crossentropy")
    loss, grads = model.compute_gradients(x, y)
    kernel = model.trainable_weights[0]
    eps, (i, j) = 1e-6, (2, 1)
    value = kernel.numpy()
    shifted = []
    for sign in (1, -1):
        moved = value.copy()
        moved[i, j] += sign * eps
        kernel.assign(moved)
        shifted.append(model.compute_gradients(x, y)[0])
    kernel.assign(value)
    assert grads[0][i, j] == pytest.approx((shifted[0] - shifted[1]) / (2 * eps), rel=1e-6)
    assert loss == pytest.approx(model.evaluate(x, y, verbose=0), rel=1e-12)


def test_sample_weight_reaches_weighted_metrics_only_as_in_keras():
    """keras/src/trainers/compile_utils.py: `metrics` are updated without sample_weight,
    `weighted_metrics` with it."""
    x, y = data(n=40)
    weights = np.linspace(0.0, 3.0, 40)
    model = softmax_model(dtype="float64")
    model.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"],
                  weighted_metrics=[gpudl.metrics.SparseCategoricalAccuracy(name="weighted_accuracy")])
    hits = (model.predict(x, verbose=0).argmax(1) == y).astype(float)
    loss, accuracy, weighted = model.evaluate(x, y, sample_weight=weights, verbose=0)
    assert accuracy == pytest.approx(hits.mean(), abs=1e-12)
    assert weighted == pytest.approx(np.average(hits, weights=weights), abs=1e-12)
    assert model.metrics_names == ["loss", "accuracy", "weighted_accuracy"]


def test_resume_from_a_checkpoint_replays_noise_layers_exactly(tmp_path):
    """The training-call counters of every random layer (dropout and the noise layers) are saved."""
    x, y = data(n=32)

    def build():
        gpudl.utils.set_random_seed(0)  # the same initial weights
        model = gpudl.Sequential([gpudl.Input((6,)), gpudl.layers.GaussianNoise(0.3, seed=1), Dense(8, activation="relu"),
                                  gpudl.layers.GaussianDropout(0.2, seed=2), Dense(3, activation="softmax")],
                                 dtype="float64", seed=5)
        model.compile("adam", "sparse_categorical_crossentropy")
        return model
    straight = build()
    straight.fit(x, y, batch_size=8, epochs=3, verbose=0)
    first = build()
    first.fit(x, y, batch_size=8, epochs=1, verbose=0)
    first.save(tmp_path / "one.npz")
    resumed = gpudl.load_model(tmp_path / "one.npz")
    resumed.fit(x, y, batch_size=8, epochs=3, initial_epoch=resumed.epochs_done, verbose=0)
    for a, b in zip(straight.get_weights(), resumed.get_weights()):
        np.testing.assert_array_equal(a, b)


class Doubler(gpudl.layers.Layer):
    """A custom layer: y = 2x."""

    def forward(self, x, training=False):
        return 2 * x

    def backward(self, dy):
        return 2 * dy


def test_custom_classes_load_through_custom_object_scope_or_registration(tmp_path):
    model = gpudl.Sequential([gpudl.Input((6,)), Doubler(), Dense(3, activation="softmax")], seed=0)
    model.compile("sgd", "sparse_categorical_crossentropy")
    model.save(tmp_path / "custom.npz")
    with pytest.raises(ValueError, match="Unknown layer class 'Doubler'"):
        gpudl.models.load_model(tmp_path / "custom.npz")
    with gpudl.utils.custom_object_scope({"Doubler": Doubler}):
        loaded = gpudl.models.load_model(tmp_path / "custom.npz")
    assert "Doubler" not in gpudl.saving.get_custom_objects()  # the scope ends with the block
    x = data(n=4)[0]
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    registered = gpudl.saving.register_keras_serializable(package="tests")(type("Tripler", (Doubler,), {}))
    assert gpudl.saving.get_custom_objects()["tests>Tripler"] is registered
    config = gpudl.saving.serialize_keras_object(registered(name="t"))
    assert config["registered_name"] == "tests>Tripler" and config["class_name"] == "Tripler"
    assert type(gpudl.saving.deserialize_keras_object(config)) is registered


def test_keras_config_shape_with_input_layer_first_and_build_input_shape():
    model = gpudl.Sequential([gpudl.Input((6,)), Dense(3)], name="m")
    config = model.get_config()
    assert set(config) == {"name", "trainable", "dtype", "layers", "build_input_shape"}
    assert [e["class_name"] for e in config["layers"]] == ["InputLayer", "Dense"]
    assert config["layers"][0]["config"]["batch_shape"] == [None, 6] and config["build_input_shape"] == [None, 6]
    spec = json.loads(model.to_json())
    assert set(spec) == {"module", "class_name", "config", "registered_name", "build_config", "compile_config"}
    rebuilt = gpudl.Sequential.from_config(config)
    assert rebuilt.input_shape == (None, 6) and [type(l).__name__ for l in rebuilt.layers] == ["Dense"]


def test_model_loss_is_what_compile_received_and_fit_before_compile_is_keras_valueerror():
    model = softmax_model()
    with pytest.raises(ValueError, match=r"You must call `compile\(\)` before using the model"):
        model.fit(*data(), verbose=0)
    model.compile("adam", "sparse_categorical_crossentropy")
    assert model.loss == "sparse_categorical_crossentropy"
    assert type(model.compiled_loss).__name__ == "SparseCategoricalCrossentropy"


def test_rank_one_inputs_are_expanded_for_a_one_feature_model():
    x = np.linspace(-1, 1, 20)
    model = gpudl.Sequential([gpudl.Input((1,)), Dense(1)], dtype="float64", seed=0)
    model.compile("sgd", "mse")
    model.fit(x, 3 * x, epochs=1, verbose=0)
    np.testing.assert_allclose(model.predict(x, verbose=0), model.predict(x[:, None], verbose=0))


def test_model_losses_list_each_penalty_and_sum_to_the_regularization_loss():
    model = gpudl.Sequential([gpudl.Input((6,)), Dense(4, kernel_regularizer=gpudl.regularizers.L2(0.1),
                                                       bias_regularizer=gpudl.regularizers.L1(0.2)),
                              Dense(3, kernel_regularizer=gpudl.regularizers.L2(0.3))], dtype="float64", seed=0)
    kernel1, bias1, kernel2, _ = model.get_weights()
    expected = [0.1 * (kernel1 ** 2).sum(), 0.2 * np.abs(bias1).sum(), 0.3 * (kernel2 ** 2).sum()]
    np.testing.assert_allclose([float(v) for v in model.losses], expected, rtol=1e-12)
    assert float(model.regularization_loss()) == pytest.approx(sum(expected), rel=1e-12)


def test_activity_penalties_count_in_model_losses_only_after_an_eager_call():
    """Keras keeps a layer's activity losses from eager calls, not from fit/evaluate/predict."""
    x, y = data(n=8)
    model = gpudl.Sequential([gpudl.Input((6,)), Dense(4, activity_regularizer=gpudl.regularizers.L2(0.5),
                                                       kernel_regularizer=gpudl.regularizers.L2(0.1)),
                              Dense(3, activation="softmax")], dtype="float64", seed=0)
    model.compile("sgd", "sparse_categorical_crossentropy")
    model.evaluate(x, y, verbose=0)
    assert len(model.losses) == 1
    hidden = model.layers[0](x)
    model(x)
    assert len(model.losses) == 2
    assert float(model.losses[0]) == pytest.approx(0.5 * (hidden ** 2).sum() / len(x), rel=1e-12)


def test_convolution_and_recurrent_layers_name_the_gpudl_way_and_hasattr_stays_false():
    with pytest.raises(NotImplementedError, match="convolution layers are not part of gpudl.*forward"):
        gpudl.layers.Conv2D(8, 3)
    with pytest.raises(NotImplementedError, match="recurrent"):
        gpudl.layers.LSTM(4)
    assert not hasattr(gpudl.layers, "Conv2D") and not hasattr(gpudl.ops, "conv")


def test_saving_keeps_metric_objects_with_their_settings(tmp_path):
    x, y = data(n=30, classes=2)
    model = gpudl.Sequential([gpudl.Input((6,)), Dense(1, activation="sigmoid")], dtype="float64", seed=0)
    model.compile("adam", "binary_crossentropy", metrics=["accuracy", gpudl.metrics.AUC(curve="PR", name="pr_auc")],
                  weighted_metrics=[gpudl.metrics.Precision(thresholds=0.3, name="p30")])
    model.fit(x, y, epochs=1, verbose=0)
    model.save(tmp_path / "metrics.npz")
    loaded = gpudl.models.load_model(tmp_path / "metrics.npz")
    assert loaded.evaluate(x, y, verbose=0, return_dict=True) == model.evaluate(x, y, verbose=0, return_dict=True)
    assert loaded.metrics[1].curve == "PR" and loaded.metrics_names == ["loss", "accuracy", "pr_auc", "p30"]
