"""Functional models with several inputs and outputs, end to end, against Keras 3.15.1 run in the same
test from the same initial weights: history and evaluate keys and values, predict's structure, sample
weights per output, validation data, and the errors for data or compile arguments that do not fit."""

import numpy as np
import pytest

import gpudl
from gpudl import layers

keras = pytest.importorskip("keras")

RNG = np.random.default_rng(11)
N = 40
XA = RNG.normal(size=(N, 3)).astype(np.float32)
XB = RNG.normal(size=(N, 2)).astype(np.float32)
Y_REG = RNG.normal(size=(N, 1)).astype(np.float32)
Y_CLS = RNG.integers(0, 3, size=N)
W_REG = RNG.uniform(0.5, 2.0, size=N).astype(np.float32)
W_CLS = RNG.uniform(0.5, 2.0, size=N).astype(np.float32)


def two_in_two_out(api, outputs_as="list", inputs_as="list"):
    """a, b -> Dense each -> concatenate -> Dense relu -> (reg: Dense 1, cls: Dense 3 softmax)."""
    a, b = api.Input((3,), name="a"), api.Input((2,), name="b")
    h = api.layers.concatenate([api.layers.Dense(4, name="da")(a), api.layers.Dense(4, name="db")(b)], name="cat")
    h = api.layers.Dense(5, activation="relu", name="hidden")(h)
    reg = api.layers.Dense(1, name="reg")(h)
    cls = api.layers.Dense(3, activation="softmax", name="cls")(h)
    inputs = {"a": a, "b": b} if inputs_as == "dict" else [a, b]
    outputs = {"reg": reg, "cls": cls} if outputs_as == "dict" else [reg, cls]
    return api.Model(inputs, outputs)


def twin_models(outputs_as="list", inputs_as="list"):
    theirs = two_in_two_out(keras, outputs_as, inputs_as)
    ours = two_in_two_out(gpudl, outputs_as, inputs_as)
    for layer in theirs.layers:
        if layer.weights:
            ours.get_layer(layer.name).set_weights([np.asarray(w) for w in layer.get_weights()])
    return theirs, ours


def assert_same_logs(ours, theirs, rtol=2e-5):
    assert list(ours) == list(theirs)
    for key in theirs:
        np.testing.assert_allclose(ours[key], theirs[key], rtol=rtol, atol=1e-6, err_msg=key)


COMPILES = {
    "lists": dict(loss=["mse", "sparse_categorical_crossentropy"], metrics=[["mae"], ["accuracy"]]),
    "dicts and loss weights": dict(loss={"reg": "mse", "cls": "sparse_categorical_crossentropy"},
                                   loss_weights={"reg": 0.5, "cls": 2.0},
                                   metrics={"reg": ["mae", "mse"], "cls": ["accuracy"]}),
    "list weights and weighted metrics": dict(loss=["mse", "sparse_categorical_crossentropy"], loss_weights=[2.0, 0.3],
                                              metrics=[["mae"], []], weighted_metrics=[["mae"], ["accuracy"]]),
}


@pytest.mark.parametrize("outputs_as", ["list", "dict"])
@pytest.mark.parametrize("style", sorted(COMPILES))
def test_two_inputs_two_outputs_fit_evaluate_predict_as_keras(style, outputs_as):
    theirs, ours = twin_models(outputs_as)
    y = [Y_REG, Y_CLS] if outputs_as == "list" else {"reg": Y_REG, "cls": Y_CLS}
    x = [XA, XB]
    compiled = COMPILES[style]
    if outputs_as == "dict":  # a dict of outputs flattens by sorted key: cls, then reg
        compiled = {k: v[::-1] if isinstance(v, list) else v for k, v in compiled.items()}
    for model in (theirs, ours):
        model.compile(optimizer="sgd", **compiled)
    kwargs = dict(batch_size=8, epochs=2, shuffle=False, verbose=0, validation_split=0.25)
    ours_history = ours.fit(x, y, **kwargs).history
    theirs_history = theirs.fit(x, y, **kwargs).history
    assert_same_logs(ours_history, theirs_history)
    np.testing.assert_allclose(ours.evaluate({"a": XA, "b": XB}, y, verbose=0), theirs.evaluate(x, y, verbose=0),
                               rtol=2e-5)
    assert_same_logs(ours.evaluate(x, y, verbose=0, return_dict=True),
                     theirs.evaluate(x, y, verbose=0, return_dict=True))
    ours_pred, theirs_pred = ours.predict(x, verbose=0), theirs.predict(x, verbose=0)
    assert type(ours_pred) is type(theirs_pred)
    if outputs_as == "dict":
        assert list(ours_pred) == list(theirs_pred)
        ours_pred, theirs_pred = list(ours_pred.values()), list(theirs_pred.values())
    for a, b in zip(ours_pred, theirs_pred):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ours.train_on_batch(x, y), theirs.train_on_batch(x, y), rtol=2e-5)
    assert_same_logs(ours.test_on_batch(x, y, return_dict=True), theirs.test_on_batch(x, y, return_dict=True))


@pytest.mark.parametrize("weights_as", ["one array", "list", "dict"])
def test_sample_weights_per_output_as_keras(weights_as):
    theirs, ours = twin_models()
    weights = {"one array": W_REG, "list": [W_REG, W_CLS], "dict": {"reg": W_REG, "cls": W_CLS}}[weights_as]
    for model in (theirs, ours):
        model.compile(optimizer="sgd", loss=["mse", "sparse_categorical_crossentropy"],
                      weighted_metrics=[["mae"], ["accuracy"]])
    x, y = [XA, XB], [Y_REG, Y_CLS]
    if weights_as != "dict":  # Keras 3.15.1 refuses a dict of sample weights for a list of outputs
        kwargs = dict(batch_size=16, epochs=2, shuffle=False, verbose=0, sample_weight=weights)
        assert_same_logs(ours.fit(x, y, **kwargs).history, theirs.fit(x, y, **kwargs).history)
        assert_same_logs(ours.evaluate(x, y, sample_weight=weights, verbose=0, return_dict=True),
                         theirs.evaluate(x, y, sample_weight=weights, verbose=0, return_dict=True))
    else:
        logs = ours.evaluate(x, y, sample_weight=weights, verbose=0, return_dict=True)
        expected = ours.evaluate(x, y, sample_weight=[W_REG, W_CLS], verbose=0, return_dict=True)
        assert logs == expected


def test_validation_data_as_lists_and_dicts_matches_keras():
    theirs, ours = twin_models(outputs_as="dict", inputs_as="dict")
    for model in (theirs, ours):
        model.compile(optimizer="adam", loss={"reg": "mse", "cls": "sparse_categorical_crossentropy"},
                      metrics={"cls": ["accuracy"]})
    x, y = {"a": XA[:30], "b": XB[:30]}, {"reg": Y_REG[:30], "cls": Y_CLS[:30]}
    validation = ({"a": XA[30:], "b": XB[30:]}, {"reg": Y_REG[30:], "cls": Y_CLS[30:]})
    kwargs = dict(batch_size=10, epochs=2, shuffle=False, verbose=0, validation_data=validation)
    assert_same_logs(ours.fit(x, y, **kwargs).history, theirs.fit(x, y, **kwargs).history, rtol=1e-4)


def test_one_loss_for_every_output_as_keras():
    def build(api):
        a = api.Input((3,), name="a")
        h = api.layers.Dense(4, activation="tanh", name="h")(a)
        return api.Model(a, [api.layers.Dense(2, name="left")(h), api.layers.Dense(2, name="right")(h)])

    theirs, ours = build(keras), build(gpudl)
    ours.set_weights([np.asarray(w) for w in theirs.get_weights()])
    y = [RNG.normal(size=(N, 2)).astype(np.float32) for _ in range(2)]
    for model in (theirs, ours):
        model.compile(optimizer="sgd", loss="mse", metrics=[["mae"], ["mse"]])
    kwargs = dict(batch_size=8, epochs=2, shuffle=False, verbose=0)
    assert_same_logs(ours.fit(XA, y, **kwargs).history, theirs.fit(XA, y, **kwargs).history)


def test_one_output_given_as_a_list_or_dict_logs_as_keras():
    def build(api):
        a = api.Input((3,), name="a")
        return api.Model([a], [api.layers.Dense(3, activation="softmax", name="probs")(a)])

    theirs, ours = build(keras), build(gpudl)
    ours.set_weights([np.asarray(w) for w in theirs.get_weights()])
    for model in (theirs, ours):
        model.compile(optimizer="sgd", loss={"probs": "sparse_categorical_crossentropy"},
                      metrics={"probs": ["accuracy"]})
    kwargs = dict(batch_size=8, epochs=1, shuffle=False, verbose=0)
    assert_same_logs(ours.fit([XA], [Y_CLS], **kwargs).history, theirs.fit([XA], [Y_CLS], **kwargs).history)
    np.testing.assert_allclose(ours.predict([XA], verbose=0), theirs.predict([XA], verbose=0), rtol=1e-5)


def test_multi_output_fusing_matches_the_unfused_float64_gradient():
    """A softmax output fused into its cross-entropy and an output that also feeds another layer
    (not fused: its activations are read) give the gradients of central differences."""
    gpudl.utils.set_random_seed(3)
    a, b = gpudl.Input((3,), dtype="float64"), gpudl.Input((2,), dtype="float64")
    h = layers.Dense(4, activation="tanh")(layers.concatenate([a, b]))
    first = layers.Dense(3, activation="softmax")(h)
    second = layers.Dense(2)(layers.concatenate([first, h]))
    model = gpudl.Model([a, b], [first, second])
    model.compile("sgd", loss=["categorical_crossentropy", "mse"], loss_weights=[0.7, 1.3])
    y = [np.eye(3)[Y_CLS[:8]], RNG.normal(size=(8, 2))]
    loss, grads = model.compute_gradients([XA[:8].astype(np.float64), XB[:8].astype(np.float64)], y)
    for p, grad in zip(model.trainable_weights, grads):
        flat = p.value.reshape(-1)
        for index in (0, flat.size - 1):
            saved = flat[index]
            values = []
            for step in (1e-6, -1e-6):
                flat[index] = saved + step
                values.append(model.evaluate([XA[:8], XB[:8]], y, verbose=0, batch_size=8)[0])
            flat[index] = saved
            numeric = (values[0] - values[1]) / 2e-6
            assert abs(numeric - grad.reshape(-1)[index]) < 1e-6 * max(1.0, abs(numeric)), p.path


def test_class_weight_is_refused_for_several_outputs_as_in_keras():
    _, ours = twin_models()
    ours.compile("sgd", loss=["mse", "sparse_categorical_crossentropy"])
    with pytest.raises(ValueError, match="class_weight.*single output"):
        ours.fit([XA, XB], [Y_REG, Y_CLS], class_weight={0: 1.0, 1: 2.0, 2: 1.0}, verbose=0)


def test_data_and_compile_arguments_that_do_not_fit_get_clear_errors():
    _, ours = twin_models()
    with pytest.raises(ValueError, match=r"`loss` has the key 'nope', which names no output.*\['reg', 'cls'\]"):
        ours.compile("sgd", loss={"reg": "mse", "nope": "mse"})
    with pytest.raises(ValueError, match="`loss` is a list of 3, but the model has 2 outputs"):
        ours.compile("sgd", loss=["mse"] * 3)
    with pytest.raises(ValueError, match="`metrics` is a list of 1, but the model has 2 outputs"):
        ours.compile("sgd", loss="mse", metrics=["mae"])
    with pytest.raises(ValueError, match="`loss_weights` is a list of 1"):
        ours.compile("sgd", loss="mse", loss_weights=[1.0])
    assert not ours.compiled  # nothing changed
    ours.compile("sgd", loss=["mse", "sparse_categorical_crossentropy"])
    y = [Y_REG, Y_CLS]
    with pytest.raises(ValueError, match=r"`x` has the key 'c', which names no input.*\['a', 'b'\]"):
        ours.fit({"a": XA, "c": XB}, y, verbose=0)
    with pytest.raises(ValueError, match="`x` has no array for the input 'b'"):
        ours.predict({"a": XA}, verbose=0)
    with pytest.raises(ValueError, match=r"has 2 inputs \['a', 'b'\]; `x` is a list of 3 arrays"):
        ours.fit([XA, XB, XB], y, verbose=0)
    with pytest.raises(ValueError, match="pass `x` as a list of 2 arrays or a dict"):
        ours.predict(XA, verbose=0)
    with pytest.raises(ValueError, match=r"Data cardinality is ambiguous.*x\['a'\]: 40, x\['b'\]: 39"):
        ours.fit([XA, XB[:39]], y, verbose=0)
    with pytest.raises(ValueError, match=r"`x` and `y\['cls'\]` must have the same number of samples; received 40 "
                                         r"and 39"):
        ours.fit([XA, XB], [Y_REG, Y_CLS[:39]], verbose=0)
    with pytest.raises(ValueError, match=r"Input 'b' of model .* expected `x\['b'\]` of shape \(None, 2\); received "
                                         r"shape \(40, 3\)"):
        ours.evaluate([XA, XA], y, verbose=0)
    with pytest.raises(ValueError, match=r"`y` has the key 'out', which names no output"):
        ours.evaluate([XA, XB], {"reg": Y_REG, "out": Y_CLS}, verbose=0)
    with pytest.raises(ValueError, match=r"has 2 outputs \[.reg., .cls.\]; `sample_weight` is a list of 3 arrays"):
        ours.fit([XA, XB], y, sample_weight=[W_REG] * 3, verbose=0)


def test_gradient_check_callbacks_and_a_custom_training_loop_on_two_outputs():
    gpudl.utils.set_random_seed(12)
    model = two_in_two_out(gpudl, outputs_as="dict")
    model.compile(optimizer=gpudl.optimizers.SGD(0.1), loss={"reg": "mse", "cls": "sparse_categorical_crossentropy"},
                  loss_weights={"reg": 0.3, "cls": 1.0}, metrics={"cls": ["accuracy"]})
    x, y = [XA[:10], XB[:10]], {"reg": Y_REG[:10], "cls": Y_CLS[:10]}
    result = gpudl.gradient_check(model, x, y)  # a float64 clone of the float32 model
    assert result.difference < 1e-7, str(result)

    twin = model.clone()
    loss, grads = model.compute_gradients(x, y)  # the custom loop's two halves ...
    model.optimizer.apply_gradients(zip(grads, model.trainable_weights))
    logs = twin.train_on_batch(x, y, return_dict=True)  # ... take train_on_batch's step
    assert loss == pytest.approx(logs["loss"], rel=1e-6)
    for ours, theirs in zip(model.get_weights(), twin.get_weights()):
        np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-7)

    seen = []
    stop = gpudl.callbacks.EarlyStopping(monitor="val_cls_loss", patience=0, mode="min")
    record = gpudl.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: seen.append(sorted(logs)))
    history = model.fit([XA, XB], {"reg": Y_REG, "cls": Y_CLS}, epochs=30, batch_size=8, verbose=0,
                        validation_split=0.25, callbacks=[stop, record])
    assert seen[0] == ["cls_accuracy", "cls_loss", "loss", "reg_loss", "val_cls_accuracy", "val_cls_loss", "val_loss",
                       "val_reg_loss"]
    assert len(history.history["loss"]) == len(seen) < 30  # stopped on the output's validation loss


def test_a_generator_of_dict_batches_trains_as_the_same_arrays():
    def batches():
        while True:
            for i in range(0, N, 10):
                yield {"a": XA[i:i + 10], "b": XB[i:i + 10]}, {"reg": Y_REG[i:i + 10], "cls": Y_CLS[i:i + 10]}

    histories, predictions = [], []
    for source in ("generator", "arrays"):
        gpudl.utils.set_random_seed(13)
        model = two_in_two_out(gpudl, outputs_as="dict")
        model.compile("sgd", loss={"reg": "mse", "cls": "sparse_categorical_crossentropy"}, metrics={"cls": ["accuracy"]})
        if source == "generator":
            histories.append(model.fit(batches(), steps_per_epoch=N // 10, epochs=2, verbose=0).history)
            predictions.append(model.predict(batches(), steps=N // 10, verbose=0))
        else:
            histories.append(model.fit([XA, XB], {"reg": Y_REG, "cls": Y_CLS}, batch_size=10, epochs=2, shuffle=False,
                                       verbose=0).history)
            predictions.append(model.predict([XA, XB], verbose=0))
    assert histories[0] == histories[1]
    for key in ("reg", "cls"):
        np.testing.assert_array_equal(predictions[0][key], predictions[1][key])
