"""The names an MLP script types, looked up in each Keras 3 namespace (keras/api/*): for
every namespace, the list of these names that are missing (Keras: none). Convolution,
recurrent, image, text, embedding, categorical-preprocessing, multi-input (Concatenate,
Add) and functional-API names are left out (not part of gpudl), and so are RemoteMonitor
(HTTP), SwapEMAWeights (optimizer EMA) and MeanIoU (segmentation)."""

import json

import keras

NAMES = {
    "layers": ["Dense", "Dropout", "BatchNormalization", "LayerNormalization", "Normalization", "Flatten", "Reshape",
               "Activation", "ReLU", "LeakyReLU", "PReLU", "ELU", "Softmax", "GaussianNoise", "GaussianDropout",
               "AlphaDropout", "ActivityRegularization", "Rescaling", "InputLayer", "Input", "Identity",
               "UnitNormalization"],
    "losses": ["BinaryCrossentropy", "CategoricalCrossentropy", "SparseCategoricalCrossentropy", "MeanSquaredError",
               "MeanAbsoluteError", "MeanAbsolutePercentageError", "MeanSquaredLogarithmicError", "Huber", "LogCosh",
               "Hinge", "SquaredHinge", "CategoricalHinge", "KLDivergence", "Poisson", "CosineSimilarity",
               "BinaryFocalCrossentropy", "CategoricalFocalCrossentropy", "Loss", "get", "serialize", "deserialize",
               "binary_crossentropy", "categorical_crossentropy", "sparse_categorical_crossentropy",
               "mean_squared_error", "mean_absolute_error", "huber", "hinge", "kl_divergence", "poisson"],
    "metrics": ["Accuracy", "BinaryAccuracy", "CategoricalAccuracy", "SparseCategoricalAccuracy",
                "TopKCategoricalAccuracy", "SparseTopKCategoricalAccuracy", "AUC", "Precision", "Recall",
                "TruePositives", "TrueNegatives", "FalsePositives", "FalseNegatives", "PrecisionAtRecall",
                "RecallAtPrecision", "SensitivityAtSpecificity", "SpecificityAtSensitivity", "F1Score", "FBetaScore",
                "MeanSquaredError", "MeanAbsoluteError", "RootMeanSquaredError", "MeanAbsolutePercentageError",
                "MeanSquaredLogarithmicError", "CosineSimilarity", "LogCoshError", "R2Score", "BinaryCrossentropy",
                "CategoricalCrossentropy", "SparseCategoricalCrossentropy", "KLDivergence", "Poisson", "Hinge",
                "Mean", "Sum", "MeanMetricWrapper", "Metric", "get", "serialize", "deserialize",
                "binary_accuracy", "categorical_accuracy", "sparse_categorical_accuracy"],
    "optimizers": ["SGD", "RMSprop", "Adam", "AdamW", "Adagrad", "Adadelta", "Adamax", "Nadam", "Lion", "Ftrl",
                   "Optimizer", "get", "serialize", "deserialize"],
    "optimizers.schedules": ["ExponentialDecay", "PiecewiseConstantDecay", "InverseTimeDecay", "PolynomialDecay",
                             "CosineDecay", "CosineDecayRestarts", "LearningRateSchedule", "serialize", "deserialize"],
    "callbacks": ["Callback", "CallbackList", "History", "ProgbarLogger", "EarlyStopping", "ModelCheckpoint",
                  "ReduceLROnPlateau", "LearningRateScheduler", "CSVLogger", "LambdaCallback", "TerminateOnNaN",
                  "BackupAndRestore", "TensorBoard"],
    "initializers": ["GlorotUniform", "GlorotNormal", "HeNormal", "HeUniform", "LecunNormal", "LecunUniform",
                     "RandomNormal", "RandomUniform", "TruncatedNormal", "Zeros", "Ones", "Constant", "Identity",
                     "Orthogonal", "VarianceScaling", "Initializer", "get", "serialize", "deserialize"],
    "regularizers": ["L1", "L2", "L1L2", "OrthogonalRegularizer", "Regularizer", "l1", "l2", "l1_l2", "get"],
    "constraints": ["MaxNorm", "MinMaxNorm", "NonNeg", "UnitNorm", "Constraint", "get"],
    "activations": ["relu", "sigmoid", "softmax", "tanh", "elu", "selu", "gelu", "softplus", "softsign", "swish",
                    "silu", "relu6", "hard_sigmoid", "exponential", "mish", "leaky_relu", "log_softmax", "linear",
                    "get", "serialize", "deserialize"],
    "utils": ["to_categorical", "normalize", "set_random_seed", "PyDataset", "split_dataset", "Progbar",
              "custom_object_scope", "get_custom_objects", "register_keras_serializable", "serialize_keras_object",
              "deserialize_keras_object"],
    "models": ["Sequential", "Model", "load_model", "save_model", "model_from_json", "clone_model"],
    "saving": ["load_model", "save_model", "register_keras_serializable", "get_custom_objects",
               "serialize_keras_object", "deserialize_keras_object", "custom_object_scope"],
    "backend": ["clear_session", "floatx", "set_floatx", "epsilon", "backend"],
    "keras": ["Sequential", "Input", "Model", "layers", "models", "losses", "metrics", "optimizers", "callbacks",
              "initializers", "regularizers", "constraints", "activations", "utils", "saving", "backend"],
}


def namespace(path):
    module = keras
    for part in path.split(".")[1:] if path == "keras" else path.split("."):
        module = getattr(module, part)
    return module


out = {}
for path, names in NAMES.items():
    module = keras if path == "keras" else namespace(path)
    out[path] = [name for name in names if not hasattr(module, name)]

print(json.dumps(out))
