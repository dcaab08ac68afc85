"""After keras-io guides/writing_your_own_callbacks.py (Keras 3): a callback that logs every
hook with the keys of its logs during fit (with validation_split), evaluate and predict;
a loss-printing callback; early stopping at minimum loss with get_weights/set_weights; a
learning-rate schedule that reads and sets `self.model.optimizer.learning_rate`."""

import json

import numpy as np

import keras

keras.utils.set_random_seed(1)


def get_model():
    model = keras.Sequential()
    model.add(keras.layers.Dense(1, input_dim=32))
    model.compile(
        optimizer=keras.optimizers.RMSprop(learning_rate=0.1),
        loss="mean_squared_error",
        metrics=["mean_absolute_error"],
    )
    return model


rng = np.random.default_rng(1)
x_train = rng.random((400, 32)).astype("float32")
y_train = rng.integers(0, 10, 400)
x_test = rng.random((300, 32)).astype("float32")
y_test = rng.integers(0, 10, 300)

events = []


class CustomCallback(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        events.append(["on_train_begin", None, sorted(logs.keys())])

    def on_train_end(self, logs=None):
        events.append(["on_train_end", None, sorted(logs.keys())])

    def on_epoch_begin(self, epoch, logs=None):
        events.append(["on_epoch_begin", epoch, sorted(logs.keys())])

    def on_epoch_end(self, epoch, logs=None):
        events.append(["on_epoch_end", epoch, sorted(logs.keys())])

    def on_test_begin(self, logs=None):
        events.append(["on_test_begin", None, sorted(logs.keys())])

    def on_test_end(self, logs=None):
        events.append(["on_test_end", None, sorted(logs.keys())])

    def on_predict_begin(self, logs=None):
        events.append(["on_predict_begin", None, sorted(logs.keys())])

    def on_predict_end(self, logs=None):
        events.append(["on_predict_end", None, sorted(logs.keys())])

    def on_train_batch_begin(self, batch, logs=None):
        events.append(["on_train_batch_begin", batch, sorted(logs.keys())])

    def on_train_batch_end(self, batch, logs=None):
        events.append(["on_train_batch_end", batch, sorted(logs.keys())])

    def on_test_batch_begin(self, batch, logs=None):
        events.append(["on_test_batch_begin", batch, sorted(logs.keys())])

    def on_test_batch_end(self, batch, logs=None):
        events.append(["on_test_batch_end", batch, sorted(logs.keys())])

    def on_predict_batch_begin(self, batch, logs=None):
        events.append(["on_predict_batch_begin", batch, sorted(logs.keys())])

    def on_predict_batch_end(self, batch, logs=None):
        events.append(["on_predict_batch_end", batch, sorted(logs.keys())])


out = {}
model = get_model()
model.fit(x_train, y_train, batch_size=128, epochs=1, verbose=0, validation_split=0.5, callbacks=[CustomCallback()])
out["fit_events"] = events
events = []
res = model.evaluate(x_test, y_test, batch_size=128, verbose=0, callbacks=[CustomCallback()])
out["evaluate_events"] = events
out["evaluate_type"] = type(res).__name__
events = []
res = model.predict(x_test, batch_size=128, callbacks=[CustomCallback()], verbose=0)
out["predict_events"] = events
out["predict_shape"] = list(res.shape)

printed = []


class LossAndErrorPrintingCallback(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        printed.append("For batch {}, loss is {:7.2f}.".format(batch, logs["loss"]))

    def on_test_batch_end(self, batch, logs=None):
        printed.append("For batch {}, loss is {:7.2f}.".format(batch, logs["loss"]))

    def on_epoch_end(self, epoch, logs=None):
        printed.append(
            "The average loss for epoch {} is {:7.2f} "
            "and mean absolute error is {:7.2f}.".format(epoch, logs["loss"], logs["mean_absolute_error"])
        )


model = get_model()
model.fit(x_train, y_train, batch_size=128, epochs=2, verbose=0, callbacks=[LossAndErrorPrintingCallback()])
res = model.evaluate(x_test, y_test, batch_size=128, verbose=0, callbacks=[LossAndErrorPrintingCallback()])
out["printed_lines"] = len(printed)
out["printed_prefixes"] = [line.split(" is ")[0] for line in printed]


class EarlyStoppingAtMinLoss(keras.callbacks.Callback):
    def __init__(self, patience=0):
        super().__init__()
        self.patience = patience
        self.best_weights = None

    def on_train_begin(self, logs=None):
        self.wait = 0
        self.stopped_epoch = 0
        self.best = np.inf

    def on_epoch_end(self, epoch, logs=None):
        current = logs.get("loss")
        if np.less(current, self.best):
            self.best = current
            self.wait = 0
            self.best_weights = self.model.get_weights()
        else:
            self.wait += 1
            if self.wait >= self.patience:
                self.stopped_epoch = epoch
                self.model.stop_training = True
                print("Restoring model weights from the end of the best epoch.")
                self.model.set_weights(self.best_weights)

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")


model = get_model()
stopper = EarlyStoppingAtMinLoss()
history = model.fit(x_train, y_train, batch_size=64, epochs=30, verbose=0, callbacks=[stopper])
out["best_weights_type"] = type(stopper.best_weights).__name__
out["best_weights_shapes"] = [list(w.shape) for w in stopper.best_weights]
out["best_weights_item_type"] = type(stopper.best_weights[0]).__name__
epochs_run = len(history.history["loss"])
out["epochs_run_matches_stop"] = epochs_run == (stopper.stopped_epoch + 1 if stopper.stopped_epoch else 30)
restored = all(np.array_equal(a, b) for a, b in zip(model.get_weights(), stopper.best_weights))
out["restored_best"] = restored if stopper.stopped_epoch else True


class CustomLearningRateScheduler(keras.callbacks.Callback):
    def __init__(self, schedule):
        super().__init__()
        self.schedule = schedule
        self.rates = []

    def on_epoch_begin(self, epoch, logs=None):
        if not hasattr(self.model.optimizer, "learning_rate"):
            raise ValueError('Optimizer must have a "learning_rate" attribute.')
        lr = self.model.optimizer.learning_rate
        scheduled_lr = self.schedule(epoch, lr)
        self.model.optimizer.learning_rate = scheduled_lr
        self.rates.append(float(np.array(scheduled_lr)))
        print(f"\nEpoch {epoch}: Learning rate is {float(np.array(scheduled_lr))}.")


LR_SCHEDULE = [(3, 0.05), (6, 0.01), (9, 0.005), (12, 0.001)]


def lr_schedule(epoch, lr):
    if epoch < LR_SCHEDULE[0][0] or epoch > LR_SCHEDULE[-1][0]:
        return lr
    for i in range(len(LR_SCHEDULE)):
        if epoch == LR_SCHEDULE[i][0]:
            return LR_SCHEDULE[i][1]
    return lr


model = get_model()
scheduler = CustomLearningRateScheduler(lr_schedule)
model.fit(x_train, y_train, batch_size=64, epochs=15, verbose=0, callbacks=[LossAndErrorPrintingCallback(), scheduler])
out["scheduled_rates"] = scheduler.rates
out["final_learning_rate"] = float(np.array(model.optimizer.learning_rate))

print(json.dumps(out))
