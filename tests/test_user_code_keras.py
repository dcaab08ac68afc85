"""User code that differentiates, run unchanged in gpudl and in Keras 3.15.1 (JAX, run here): a plain
loss function of ops, a Loss subclass with call, a Layer subclass (build, add_weight, call, add_loss),
a custom activation, a regularizer function, a Metric subclass and a subclassed Model. The same class
bodies are written once against a module `K` (gpudl or keras); both train from the same initial
weights with the same batches, and the weights agree to float32 rounding (rtol 1e-5)."""

import numpy as np
import pytest

import gpudl

keras = pytest.importorskip("keras")
pytest.importorskip("torch")

RTOL = 1e-5


def _data(n=48, features=6, outputs=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, features)).astype("float32")
    w = rng.normal(size=(features, outputs)).astype("float32")
    y = (np.tanh(x @ w) + 0.1 * rng.normal(size=(n, outputs))).astype("float32")
    return x, y


def _train_both(make_model, loss, x, y, epochs=3, batch_size=16, lr=0.05, optimizer="sgd", metrics=None,
                sample_weight=None, compare_history=("loss",)):
    """Build with gpudl, copy its initial weights into the Keras model, train both the same way;
    return (gpudl model, keras model, gpudl history, keras history)."""
    gpudl.utils.set_random_seed(1)
    ours = make_model(gpudl)
    theirs = make_model(keras)
    ours.build((None, x.shape[1]))
    theirs(x[:1])  # Keras builds a subclassed model by calling it
    theirs.set_weights(ours.get_weights())
    histories = []
    for K, model in ((gpudl, ours), (keras, theirs)):
        opt = K.optimizers.SGD(lr) if optimizer == "sgd" else K.optimizers.Adam(lr)
        model.compile(optimizer=opt, loss=loss(K) if callable(loss) and not isinstance(loss, str) else loss,
                      metrics=metrics(K) if metrics else None)
        histories.append(model.fit(x, y, batch_size=batch_size, epochs=epochs, shuffle=False, verbose=0,
                                   sample_weight=sample_weight).history)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, b, rtol=RTOL, atol=1e-6)
    for key in compare_history:
        np.testing.assert_allclose(histories[0][key], histories[1][key], rtol=RTOL)
    return ours, theirs, histories[0], histories[1]


def _mlp(activation="relu", **dense_kwargs):
    def make(K):
        return K.Sequential([K.Input((6,)), K.layers.Dense(8, activation=activation, **dense_kwargs),
                             K.layers.Dense(3)])
    return make


# -- losses ------------------------------------------------------------------------------------
def test_plain_function_loss_of_ops_trains_as_keras():
    def loss(K):
        def my_mse(y_true, y_pred):
            return K.ops.mean(K.ops.square(y_true - y_pred), axis=-1)
        return my_mse

    _train_both(_mlp(), loss, *_data())


@pytest.mark.parametrize("reduction", ["sum_over_batch_size", "sum", "mean_with_sample_weight"])
def test_loss_subclass_with_call_reduction_and_sample_weight_trains_as_keras(reduction):
    def loss(K):
        class HuberLike(K.losses.Loss):
            def __init__(self, delta=0.5, **kwargs):
                super().__init__(**kwargs)
                self.delta = delta

            def call(self, y_true, y_pred):
                error = K.ops.abs(y_pred - y_true)
                quadratic = K.ops.minimum(error, self.delta)
                return K.ops.mean(0.5 * K.ops.square(quadratic) + self.delta * (error - quadratic), axis=-1)
        return HuberLike(reduction=reduction)

    x, y = _data()
    weights = np.random.default_rng(3).uniform(0.2, 2.0, size=len(x)).astype("float32")
    _train_both(_mlp(), loss, x, y, sample_weight=weights)


def test_loss_subclass_called_alone_matches_keras():
    x, y = _data(n=10)
    pred = y + np.random.default_rng(4).normal(size=y.shape).astype("float32")
    w = np.linspace(0.1, 1, 10).astype("float32")
    values = []
    for K in (gpudl, keras):
        class Cubic(K.losses.Loss):
            def call(self, y_true, y_pred):
                return K.ops.mean(K.ops.abs(y_true - y_pred) ** 3, axis=-1)
        values.append(float(Cubic(reduction="mean_with_sample_weight")(y, pred, sample_weight=w)))
    assert values[0] == pytest.approx(values[1], rel=1e-6)


# -- layers, activations, regularizers ----------------------------------------------------------
def _simple_dense(K):
    class SimpleDense(K.layers.Layer):
        """keras-io's subclassing guide: build, add_weight, call(training), add_loss."""

        def __init__(self, units=4, **kwargs):
            super().__init__(**kwargs)
            self.units = units

        def build(self, input_shape):
            self.w = self.add_weight(shape=(input_shape[-1], self.units), initializer="random_normal",
                                     trainable=True, name="w")
            self.b = self.add_weight(shape=(self.units,), initializer="zeros", trainable=True, name="b")

        def call(self, inputs, training=None):
            self.add_loss(1e-2 * K.ops.sum(K.ops.square(self.w)))
            z = K.ops.matmul(inputs, self.w) + self.b
            return K.ops.where(z > 0, z, 0.1 * z) if training else K.ops.relu(z)
    return SimpleDense


def test_layer_subclass_with_build_add_weight_call_and_add_loss_trains_as_keras():
    def make(K):
        return K.Sequential([K.Input((6,)), _simple_dense(K)(8), K.layers.Dense(3)])

    ours, theirs, history, keras_history = _train_both(make, "mse", *_data())
    x, _ = _data(n=8, seed=5)
    np.testing.assert_allclose(ours.predict(x, verbose=0), theirs.predict(x, verbose=0), rtol=RTOL, atol=1e-6)
    assert [p.path for p in ours.layers[0].weights] == [f"{ours.layers[0].name}/w", f"{ours.layers[0].name}/b"]


def test_layer_subclass_weights_live_in_the_arena():
    model = gpudl.Sequential([gpudl.Input((6,)), _simple_dense(gpudl)(5), gpudl.layers.Dense(2)])
    w = model.layers[0].w
    assert np.shares_memory(gpudl.get_backend().to_numpy(w.value), model.arena.params)


def test_custom_activation_function_trains_as_keras():
    def activation(K):
        def scaled_softsign(x):
            return 1.5 * x / (1.0 + K.ops.abs(x)) + 0.1 * K.ops.sin(x)
        return scaled_softsign

    def make(K):
        return _mlp(activation=activation(K))(K)

    _train_both(make, "mse", *_data())


def test_regularizer_given_as_a_function_trains_as_keras():
    def make(K):
        def l1_and_fourth(w):
            return 1e-3 * K.ops.sum(K.ops.abs(w)) + 1e-2 * K.ops.sum(w ** 4)
        return _mlp(kernel_regularizer=l1_and_fourth)(K)

    _train_both(make, "mse", *_data())


# -- metrics ------------------------------------------------------------------------------------
def _sign_agreement(K):
    class SignAgreement(K.metrics.Metric):
        def __init__(self, name="sign_agreement", **kwargs):
            super().__init__(name=name, **kwargs)
            self.agree = self.add_variable(shape=(), initializer="zeros", name="agree")
            self.count = self.add_variable(shape=(), initializer="zeros", name="count")

        def update_state(self, y_true, y_pred, sample_weight=None):
            same = K.ops.cast(K.ops.equal(K.ops.sign(y_true), K.ops.sign(y_pred)), "float32")
            self.agree.assign_add(K.ops.sum(same))
            self.count.assign_add(K.ops.cast(K.ops.size(same), "float32"))

        def result(self):
            return self.agree / K.ops.maximum(self.count, 1.0)

        def reset_state(self):
            self.agree.assign(0.0)
            self.count.assign(0.0)
    return SignAgreement()


def test_metric_subclass_with_add_variable_update_state_result_reset_state_matches_keras():
    x, y = _data()
    _, _, history, keras_history = _train_both(_mlp(), "mse", x, y, metrics=lambda K: [_sign_agreement(K)],
                                               compare_history=("loss", "sign_agreement"))
    metric = _sign_agreement(gpudl)
    metric.update_state(y, -y)
    assert float(metric.result()) == 0.0
    metric.reset_state()
    metric.update_state(y, y)
    assert float(metric.result()) == 1.0


# -- subclassed models --------------------------------------------------------------------------
def _residual_model(K):
    class Residual(K.Model):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.hidden = K.layers.Dense(8, activation="tanh")
            self.custom = _simple_dense(K)(8)
            self.head = K.layers.Dense(3)

        def call(self, inputs, training=None):
            h = self.hidden(inputs)
            h = h + 0.5 * self.custom(h, training=training)
            return self.head(K.ops.concatenate([h, K.ops.square(h)], axis=-1)[:, :8])
    return Residual()


def test_subclassed_model_fit_evaluate_predict_match_keras(tmp_path):
    x, y = _data()
    ours, theirs, _, _ = _train_both(_residual_model, "mse", x, y)
    np.testing.assert_allclose(ours.evaluate(x, y, verbose=0), theirs.evaluate(x, y, verbose=0), rtol=RTOL)
    np.testing.assert_allclose(ours.predict(x, verbose=0), theirs.predict(x, verbose=0), rtol=RTOL, atol=1e-6)
    lines = []
    ours.summary(print_fn=lines.append)
    assert any("Total params: " in line for line in lines)
    assert ours.count_params() == theirs.count_params()
    path = str(tmp_path / "residual.weights.h5")
    ours.save_weights(path)
    again = _residual_model(gpudl)
    again.build((None, 6))
    again.load_weights(path)
    for a, b in zip(again.get_weights(), ours.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_keras_model_without_inputs_or_call_says_what_to_do():
    with pytest.raises(NotImplementedError, match="call"):
        gpudl.Model()


# -- gradient checking user code ----------------------------------------------------------------
def _float64_data():
    rng = np.random.default_rng(9)
    return rng.normal(size=(6, 6)), rng.normal(size=(6, 3))


def test_gradient_check_passes_on_each_kind_of_user_code():
    x, y = _float64_data()

    def my_loss(y_true, y_pred):
        return gpudl.ops.mean(gpudl.ops.abs(y_true - y_pred) ** 3, axis=-1)

    def softsign_ish(v):
        return v / (1.0 + gpudl.ops.abs(v)) + 0.1 * gpudl.ops.sin(v)

    models = {
        "layer": gpudl.Sequential([gpudl.Input((6,)), _simple_dense(gpudl)(5), gpudl.layers.Dense(3)], dtype="float64"),
        "activation and regularizer": gpudl.Sequential([
            gpudl.Input((6,)), gpudl.layers.Dense(5, activation=softsign_ish,
                                                  kernel_regularizer=lambda w: 1e-2 * gpudl.ops.sum(w ** 4)),
            gpudl.layers.Dense(3)], dtype="float64"),
        "subclassed": _residual_model(gpudl),
    }
    models["subclassed"] = type(models["subclassed"])(dtype="float64")
    for kind, model in models.items():
        model.build((None, 6))
        model.compile("sgd", my_loss)
        result = gpudl.gradient_check(model, x, y)
        assert result.verdict == "fine", (kind, str(result))


def test_gradient_check_catches_a_planted_bug_in_a_custom_call():
    """The derivative of a stop_gradient'ed factor is lost: d/dz (z * stop(z)) = z, not 2z."""
    x, y = _float64_data()

    class PlantedSquare(gpudl.layers.Layer):
        def call(self, inputs):
            return inputs * gpudl.ops.stop_gradient(inputs)  # bug: should be ops.square(inputs)

    model = gpudl.Sequential([gpudl.Input((6,)), gpudl.layers.Dense(4), PlantedSquare(), gpudl.layers.Dense(3)],
                             dtype="float64")
    model.compile("sgd", "mse")
    result = gpudl.gradient_check(model, x, y)
    assert result.verdict == "bug", str(result)
    rows = dict((name, diff) for name, diff, _ in result.parameters)
    assert rows["dense/kernel".replace("dense", model.layers[0].name)] > 1e-3  # below the bug: wrong
    assert rows[f"{model.layers[2].name}/kernel"] < 1e-6  # above it: right


def test_without_torch_user_code_names_the_extra(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "torch", None)
    from gpudl.frontend import autodiff

    with pytest.raises(ImportError, match=r'pip install "gpudl\[autodiff\]"'):
        autodiff.torch_module()
    model = gpudl.Sequential([gpudl.Input((6,)), _simple_dense(gpudl)(3)])
    model.compile("sgd", "mse")
    x, y = _data(outputs=3)
    model.predict(x, verbose=0)  # inference runs call on the arrays: no engine needed
    with pytest.raises(ImportError, match=r"gpudl\[autodiff\]"):
        model.fit(x, y, verbose=0)


def test_ops_on_symbolic_tensors_become_nodes_of_a_functional_model_and_train_as_keras():
    def make(K):
        inputs = K.Input((6,))
        h = K.layers.Dense(8)(inputs)
        gate = K.ops.sigmoid(K.layers.Dense(8)(inputs))
        mixed = K.ops.tanh(h) * gate + 0.1 * K.ops.square(h) - h / 4.0
        joined = K.ops.concatenate([mixed, h[:, :2], _simple_dense(K)(2)(-h)], axis=-1)
        return K.Model(inputs, K.layers.Dense(3)(joined))

    ours, theirs, _, _ = _train_both(make, "mse", *_data())
    x, _ = _data(n=8, seed=6)
    np.testing.assert_allclose(ours.predict(x, verbose=0), theirs.predict(x, verbose=0), rtol=RTOL, atol=1e-6)


def test_fit_with_user_code_reads_the_device_a_bounded_number_of_times(monkeypatch):
    """As for built-in fits: no per-step host read. The backend's to_numpy is counted, and torch's ways
    of reading a value back (item, float, bool, tolist) fail: the user's loss and layer stay on the device."""
    import torch

    def my_loss(y_true, y_pred):
        return gpudl.ops.mean(gpudl.ops.square(y_true - y_pred), axis=-1)

    x, y = _data(n=64)
    model = gpudl.Sequential([gpudl.Input((6,)), _simple_dense(gpudl)(8), gpudl.layers.Dense(3)])
    model.compile("adam", my_loss)
    model.fit(x[:16], y[:16], batch_size=8, verbose=0)  # build and warm up, uncounted
    backend = gpudl.get_backend()
    reads = []
    original = type(backend).to_numpy
    monkeypatch.setattr(type(backend), "to_numpy", lambda self, array: reads.append(1) or original(self, array))

    def refuse(*args, **kwargs):
        raise AssertionError("user code read a torch value back to the host")

    for name in ("item", "__float__", "__bool__", "tolist"):
        monkeypatch.setattr(torch.Tensor, name, refuse)
    model.fit(x, y, batch_size=8, epochs=2, verbose=0)  # 8 steps per epoch
    assert len(reads) <= 2 * 2, f"{len(reads)} device reads for 2 epochs of 8 steps"


def test_subclassed_model_refuses_whole_model_saving_and_custom_training_steps(tmp_path):
    model = _residual_model(gpudl)
    model.build((None, 6))
    with pytest.raises(NotImplementedError, match="save_weights"):
        model.save(str(tmp_path / "residual.keras"))
    assert not (tmp_path / "residual.keras").exists()

    class WithTape(gpudl.Model):
        def call(self, inputs):
            return inputs

        def train_step(self, data):
            raise AssertionError("never reached")

    with pytest.raises(NotImplementedError, match="overrides train_step.*GradientTape"):
        WithTape()


def test_gradient_check_of_a_float32_subclassed_model_asks_for_float64():
    model = _residual_model(gpudl)
    model.build((None, 6))
    model.compile("sgd", "mse")
    x, y = _data(n=4)
    with pytest.raises(ValueError, match="dtype='float64'"):
        gpudl.gradient_check(model, x, y)


def test_subclassed_model_of_built_in_layers_trains_as_the_same_sequential():
    """Dense, BatchNormalization, ReLU and Dropout called in a call() run their own fused forward and
    backward as autograd nodes: the same weights as the Sequential of those layers, same seed."""
    def stack():
        return [gpudl.layers.Dense(8), gpudl.layers.BatchNormalization(), gpudl.layers.ReLU(),
                gpudl.layers.Dropout(0.3), gpudl.layers.Dense(3)]

    class Stacked(gpudl.Model):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.dense, self.norm, self.relu, self.drop, self.head = stack()

        def call(self, inputs, training=None):
            x = self.relu(self.norm(self.dense(inputs), training=training))
            return self.head(self.drop(x, training=training))

    x, y = _data()
    sequential = gpudl.Sequential([gpudl.Input((6,)), *stack()], seed=5)
    subclassed = Stacked(seed=5)
    subclassed.build((None, 6))
    subclassed.set_weights(sequential.get_weights())
    for model in (sequential, subclassed):
        model.compile(gpudl.optimizers.Adam(0.01), "mse")
        model.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
    for a, b in zip(sequential.get_weights(), subclassed.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
