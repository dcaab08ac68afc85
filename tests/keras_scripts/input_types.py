"""What Keras 3 accepts as data and returns, for the inputs MLP scripts pass without
thinking: integer and float64 arrays, boolean labels, validation_data as a tuple, predict
without batch_size over more than one batch (Python lists are left out: Keras refuses
them, "Unrecognized data type", where gpudl converts them); and the types of what comes
back (float32 arrays from predict and calls, floats from evaluate/train_on_batch/
test_on_batch without metrics, dicts with return_dict, float32 ndarrays from
get_weights, History.params keys)."""

import json

import numpy as np

import keras

keras.utils.set_random_seed(25)
out = {}
model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, activation="sigmoid")])
model.compile("sgd", "binary_crossentropy", metrics=["accuracy"])
out["fit_int_x"] = sorted(model.fit(np.array([[0, 1], [1, 0]]), np.array([0, 1]), verbose=0).history)
out["predict_float64_dtype"] = str(model.predict(np.zeros((2, 2)), verbose=0).dtype)
out["predict_int_dtype"] = str(model.predict(np.zeros((2, 2), dtype=int), verbose=0).dtype)
out["evaluate_bool_y"] = len(model.evaluate(np.zeros((2, 2)), np.array([True, False]), verbose=0))
history = model.fit(np.zeros((4, 2)), np.zeros(4), validation_data=(np.zeros((2, 2)), np.zeros(2)), verbose=0)
out["fit_tuple_validation"] = sorted(history.history)
out["history_params_keys"] = sorted(history.params)
out["predict_70_rows"] = model.predict(np.zeros((70, 2)), verbose=0).shape[0]
out["call_float64_dtype"] = str(np.asarray(model(np.zeros((1, 2)))).dtype)
out["train_on_batch_return_dict"] = sorted(model.train_on_batch(np.zeros((2, 2)), np.zeros(2), return_dict=True))
out["predict_on_batch_type"] = type(model.predict_on_batch(np.zeros((2, 2)))).__name__
out["get_weights_types"] = sorted({type(w).__name__ for w in model.get_weights()})
out["get_weights_dtypes"] = sorted({str(w.dtype) for w in model.get_weights()})
out["learning_rate"] = float(model.optimizer.learning_rate)
out["iterations"] = int(model.optimizer.iterations)

loss_only = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
loss_only.compile("sgd", "mse")
out["train_on_batch_loss_only"] = type(loss_only.train_on_batch(np.zeros((2, 2)), np.zeros(2))).__name__
out["test_on_batch_loss_only"] = type(loss_only.test_on_batch(np.zeros((2, 2)), np.zeros(2))).__name__
out["evaluate_loss_only"] = type(loss_only.evaluate(np.zeros((2, 2)), np.zeros(2), verbose=0)).__name__

print(json.dumps(out))
