"""Keras 3 MLP scripts run on gpudl with only the import changed (issue 10).

Each file in tests/keras_scripts/ imitates public Keras 3 code an MLP user writes (the
keras-io training, callbacks and saving guides, the TensorFlow basic-regression
tutorial, the Pima diabetes and mnist_mlp classics, Keras's docstring examples, and
fixed-weight numbers) with plain `import keras`. Here each script runs with
`import keras` -> `import gpudl as keras` and `from keras...` -> `from gpudl...`, in a
subprocess in its own temporary folder, and the JSON line it prints last must equal the
one real Keras printed for the same script: same keys, list lengths, type names, shapes,
strings and booleans; floats (all of them come from fixed data or fixed weights) equal
to float32 rounding.

EXPECTED was printed by Keras 3.15.1 on the JAX 0.10.2 CPU backend (NumPy 2.4.6):
`cd $(mktemp -d) && KERAS_BACKEND=jax /work/kerasvenv/bin/python tests/keras_scripts/<name>.py`,
last line of stdout, pasted below.

Where gpudl still differs, the difference is one entry of KNOWN_GAPS (one output key) or
CRASHES (the script stops), each a strict xfail naming the gap and the Keras source that
defines the behaviour; the rest of that script's output is still checked.
"""

import json
import math
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

SCRIPTS_DIR = Path(__file__).parent / "keras_scripts"
SCRIPTS = sorted(path.stem for path in SCRIPTS_DIR.glob("*.py"))
SCRIPT_TIMEOUT_S = 240

# Scripts that stop with an error on gpudl today: script -> the gap.
CRASHES = {
    "basic_regression_one_feature": (
        "Normalization(axis=None).adapt and a Sequential whose input is (None, 1) refuse 1-D arrays; Keras adapts on "
        "1-D data and expands rank-1 x to (N, 1) in fit/predict/evaluate (keras/src/layers/preprocessing/"
        "normalization.py; keras/src/models/functional.py Functional._adjust_input_rank)"),
    "docstring_normalization": (
        "Normalization(axis=None).adapt refuses 1-D data; Keras's docstring adapts on [1, 2, 3, 4, 5] and normalizes "
        "a 1-D input (keras/src/layers/preprocessing/normalization.py)"),
    "docstring_early_stopping": (
        "mse refuses targets of shape (5,) for outputs (None, 10); Keras's docstring example runs because, with "
        "batch_size=1, each (1,) target broadcasts against the (1, 10) output (keras/src/losses/losses.py "
        "mean_squared_error: squeeze_or_expand_to_same_rank changes nothing when the last axis is not 1, then "
        "y_true - y_pred broadcasts)"),
    "serialization_layers": (
        "keras.layers.serialize / keras.layers.deserialize do not exist; Keras has them for any layer "
        "(keras/src/layers/__init__.py, used by the saving guide's custom-layer example)"),
    "docstring_schedules": (
        "CosineDecay(initial_learning_rate=0.0, warmup_target=0.1, warmup_steps=...) is refused (`a positive number`); "
        "Keras's CosineDecay docstring warms up from initial_learning_rate = 0 "
        "(keras/src/optimizers/schedules/learning_rate_schedule.py)"),
}

# Output keys where gpudl differs from Keras today: (script, key) -> the gap.
KNOWN_GAPS = {
    ("pima_diabetes", "summary_param_lines_after_fit"): (
        "summary() after fit: Keras's 'Total params' adds the optimizer's variables (665 = 221 + 444) and "
        "'Optimizer params' counts `iterations` and `learning_rate` too (444 = 2 * 221 + 2); gpudl prints 221 and "
        "442 (keras/src/utils/summary_utils.py print_summary)"),
    ("sequential_guide", "nested_counts"): (
        "Sequential([base_model, Dense(10)]) with a built base model is not built at once, so the head has no "
        "weights before fit; Keras builds it from the first layer's input_shape (keras/src/models/sequential.py "
        "_maybe_rebuild)"),
    ("sequential_guide", "nested_unchanged"): (
        "same cause as nested_counts: get_weights() before fit lacks the head's kernel and bias "
        "(keras/src/models/sequential.py _maybe_rebuild)"),
    ("fixed_weights_layers", "losses_len"): (
        "model.losses does not exist; Keras lists one penalty per regularized weight (3 here: the first Dense's "
        "kernel and bias, the second's kernel), plus the activity penalties of the last eager call "
        "(keras/src/layers/layer.py Layer.losses)"),
    ("fixed_weights_layers", "activations_get_callable"): (
        "keras.activations.get('swish') returns gpudl's (forward, backward) pair; Keras returns the activation "
        "function itself (keras/src/activations/__init__.py get)"),
    ("serialization_api", "resumed_loss_name"): (
        "model.loss is a MeanSquaredError object after compile(loss='mse') (and after load_model); Keras keeps what "
        "compile received, the string 'mse' (keras/src/trainers/trainer.py compile: self.loss = loss)"),
    ("serialization_api", "loss_by_name"): (
        "keras.losses.get('mse') returns a MeanSquaredError object; Keras returns the function mean_squared_error "
        "(keras/src/losses/__init__.py ALL_OBJECTS_DICT maps 'mse' to it)"),
    ("saving_guide", "json_top_keys"): (
        "model.to_json() holds only class_name and config; Keras's serialize_keras_object adds module, "
        "registered_name, build_config and compile_config (keras/src/models/model.py to_json, "
        "keras/src/saving/serialization_lib.py)"),
    ("saving_guide", "sequential_config_keys"): (
        "Sequential.get_config() has input_shape and seed; Keras has build_input_shape and no seed "
        "(keras/src/models/sequential.py get_config)"),
    ("saving_guide", "sequential_config_layer_classes"): (
        "Sequential.get_config()['layers'] leaves out the InputLayer that keras.Input adds; Keras lists it first "
        "(keras/src/models/sequential.py get_config iterates super().layers)"),
}

# Keys Keras 3.15 adds that are no part of an MLP script's surface: left out of the comparison.
VERSION_SPECIFIC = {
    # Dense.get_config() gained `quantization_config` with Keras's int8/int4 quantization.
    ("saving_guide", "dense_config_keys"): {"quantization_config"},
}


def gpudl_source(text):
    """The script with only its Keras imports changed."""
    text = re.sub(r"^import keras$", "import gpudl as keras", text, flags=re.MULTILINE)
    return re.sub(r"^from keras([. ])", r"from gpudl\1", text, flags=re.MULTILINE)


def run_script(name, folder):
    """Runs one script under gpudl in `folder`; returns (returncode, stdout, stderr)."""
    source = gpudl_source((SCRIPTS_DIR / f"{name}.py").read_text())
    (folder / f"{name}.py").write_text(source)
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    result = subprocess.run([sys.executable, f"{name}.py"], cwd=folder, env=env, capture_output=True, text=True,
                            timeout=SCRIPT_TIMEOUT_S)
    return result.returncode, result.stdout, result.stderr


@pytest.fixture(scope="module")
def script_runs(tmp_path_factory):
    """Starts every script at once (in parallel subprocesses); name -> future of run_script."""
    pool = ThreadPoolExecutor(max_workers=max(2, min(len(SCRIPTS), os.cpu_count() or 2)))
    runs = {name: pool.submit(run_script, name, tmp_path_factory.mktemp(name)) for name in SCRIPTS}
    yield runs
    pool.shutdown(wait=True)


def script_output(script_runs, name):
    """The JSON object the script printed last under gpudl; fails with its stderr if it stopped."""
    returncode, stdout, stderr = script_runs[name].result()
    assert returncode == 0, f"{name}.py stopped under gpudl (exit {returncode}):\n{stderr[-3000:]}"
    return json.loads(stdout.strip().splitlines()[-1])


def mismatches(actual, expected, path):
    """Where `actual` differs from Keras's `expected` JSON value: dict keys, list lengths,
    value types, strings/ints/booleans exactly, floats to max(1e-5 * |e|, 1e-6) (float32
    rounding, grown over a few training steps)."""
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{path}: Keras gives a dict, gpudl {actual!r}"]
        found = [f"{path}: keys differ: Keras {sorted(expected)}, gpudl {sorted(actual)}"] if set(actual) != set(
            expected) else []
        for key in sorted(set(actual) & set(expected)):
            found += mismatches(actual[key], expected[key], f"{path}.{key}")
        return found
    if isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            return [f"{path}: Keras gives {expected!r}, gpudl {actual!r}"]
        return [item for i, (a, e) in enumerate(zip(actual, expected)) for item in mismatches(a, e, f"{path}[{i}]")]
    if isinstance(expected, float):
        if isinstance(actual, (int, float)) and not isinstance(actual, bool) and math.isclose(
                actual, expected, rel_tol=1e-5, abs_tol=1e-6):
            return []
        return [f"{path}: Keras gives {expected!r}, gpudl {actual!r}"]
    if type(actual) is not type(expected) or actual != expected:
        return [f"{path}: Keras gives {expected!r}, gpudl {actual!r}"]
    return []


def expected_value(name, key):
    value = EXPECTED[name][key]
    if (name, key) in VERSION_SPECIFIC:
        value = [item for item in value if item not in VERSION_SPECIFIC[name, key]]
    return value


def test_every_script_has_a_keras_reference():
    assert sorted(EXPECTED) == SCRIPTS
    assert all(name in SCRIPTS for name in CRASHES)
    assert all(name in SCRIPTS and key in EXPECTED[name] for name, key in KNOWN_GAPS)


def test_import_rewrite_touches_only_keras_imports():
    text = "import keras\nfrom keras import layers\nfrom keras.models import Sequential\nimport kerastuner\nx = 'import keras'\n"
    assert gpudl_source(text) == ("import gpudl as keras\nfrom gpudl import layers\nfrom gpudl.models import Sequential\n"
                                  "import kerastuner\nx = 'import keras'\n")


def test_mismatches_names_each_kind_of_difference():
    expected = {"lengths": [1, 2], "rate": 0.5, "built": True, "name": "x"}
    assert mismatches({"lengths": [1, 2], "rate": 0.5000001, "built": True, "name": "x"}, expected, "out") == []
    found = mismatches({"lengths": [1], "rate": 0.51, "built": 1, "other": "x"}, expected, "out")
    assert [line.split(":")[0] for line in found] == ["out", "out.built", "out.lengths", "out.rate"]


@pytest.mark.parametrize("name", [
    pytest.param(name, marks=pytest.mark.xfail(strict=True, reason=CRASHES[name])) if name in CRASHES else name
    for name in SCRIPTS])
def test_script_runs_on_gpudl_and_prints_what_keras_prints(script_runs, name):
    output = script_output(script_runs, name)
    found = []
    for key in EXPECTED[name]:
        if (name, key) in KNOWN_GAPS:
            continue
        found += mismatches(output.get(key, "<missing>"), expected_value(name, key), key)
    assert not found, f"{name}.py under gpudl differs from Keras:\n" + "\n".join(found)


@pytest.mark.parametrize("name, key", [
    pytest.param(name, key, marks=pytest.mark.xfail(strict=True, reason=reason)) for (name, key), reason in KNOWN_GAPS.items()])
def test_known_gap_matches_keras(script_runs, name, key):
    output = script_output(script_runs, name)
    found = mismatches(output.get(key, "<missing>"), expected_value(name, key), key)
    assert not found, "\n".join(found)


# Printed by Keras 3.15.1 (JAX backend), see the module docstring.
EXPECTED = {'basic_regression': {'dnn_history_lengths': {'loss': 10, 'val_loss': 10},
                      'linear_fixed_weights_mae': 5.581996917724609,
                      'linear_fixed_weights_predict': [25.32634735107422, 22.84061622619629, 23.810888290405273],
                      'linear_kernel_shape': [8, 1],
                      'linear_predict_shape': [10, 1],
                      'normalized_first': [0.8639557361602783, -0.8854281306266785, -1.6341443061828613,
                                           -2.9238266944885254, 1.0208759307861328, -1.3141034841537476,
                                           1.064581274986267, 1.0],
                      'normalized_first_shape': [1, 8],
                      'normalizer_mean': [5.52734375, 198.12222290039062, 106.54804992675781, 2971.802734375,
                                          15.691634178161621, 75.86328125, 0.46875, 0.5],
                      'normalizer_mean_shape': [1, 8],
                      'normalizer_variance': [2.9054927825927734, 9530.4150390625, 1441.638916015625, 759278.9375,
                                              6.557876110076904, 13.696186065673828, 0.2490234375, 0.25],
                      'reloaded_evaluate_equal': True,
                      'reloaded_layers': ['Normalization', 'Dense', 'Dense', 'Dense'],
                      'test_predictions_shape': [64],
                      'test_results_types': {'dnn_model': 'float', 'linear_model': 'float'}},
 'basic_regression_one_feature': {'horsepower_history_epoch': [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
                                  'horsepower_history_keys': ['loss', 'val_loss'],
                                  'horsepower_mean': [106.54803466796875],
                                  'horsepower_predict_shape': [10, 1],
                                  'horsepower_variance': [1441.6392822265625],
                                  'line_predict_shape': [251, 1],
                                  'test_results_types': {'horsepower_model': 'float'}},
 'callbacks_guide': {'best_weights_item_type': 'ndarray',
                     'best_weights_shapes': [[32, 1], [1]],
                     'best_weights_type': 'list',
                     'epochs_run_matches_stop': True,
                     'evaluate_events': [['on_test_begin', None, []], ['on_test_batch_begin', 0, []],
                                         ['on_test_batch_end', 0, ['loss', 'mean_absolute_error']],
                                         ['on_test_batch_begin', 1, []],
                                         ['on_test_batch_end', 1, ['loss', 'mean_absolute_error']],
                                         ['on_test_batch_begin', 2, []],
                                         ['on_test_batch_end', 2, ['loss', 'mean_absolute_error']],
                                         ['on_test_end', None, ['loss', 'mean_absolute_error']]],
                     'evaluate_type': 'list',
                     'final_learning_rate': 0.0010000000474974513,
                     'fit_events': [['on_train_begin', None, []], ['on_epoch_begin', 0, []],
                                    ['on_train_batch_begin', 0, []],
                                    ['on_train_batch_end', 0, ['loss', 'mean_absolute_error']],
                                    ['on_train_batch_begin', 1, []],
                                    ['on_train_batch_end', 1, ['loss', 'mean_absolute_error']],
                                    ['on_test_begin', None, []], ['on_test_batch_begin', 0, []],
                                    ['on_test_batch_end', 0, ['loss', 'mean_absolute_error']],
                                    ['on_test_batch_begin', 1, []],
                                    ['on_test_batch_end', 1, ['loss', 'mean_absolute_error']],
                                    ['on_test_end', None, ['loss', 'mean_absolute_error']],
                                    ['on_epoch_end', 0,
                                     ['loss', 'mean_absolute_error', 'val_loss', 'val_mean_absolute_error']],
                                    ['on_train_end', None,
                                     ['loss', 'mean_absolute_error', 'val_loss', 'val_mean_absolute_error']]],
                     'predict_events': [['on_predict_begin', None, []], ['on_predict_batch_begin', 0, []],
                                        ['on_predict_batch_end', 0, ['outputs']], ['on_predict_batch_begin', 1, []],
                                        ['on_predict_batch_end', 1, ['outputs']], ['on_predict_batch_begin', 2, []],
                                        ['on_predict_batch_end', 2, ['outputs']], ['on_predict_end', None, []]],
                     'predict_shape': [300, 1],
                     'printed_lines': 13,
                     'printed_prefixes': ['For batch 0, loss', 'For batch 1, loss', 'For batch 2, loss',
                                          'For batch 3, loss', 'The average loss for epoch 0', 'For batch 0, loss',
                                          'For batch 1, loss', 'For batch 2, loss', 'For batch 3, loss',
                                          'The average loss for epoch 1', 'For batch 0, loss', 'For batch 1, loss',
                                          'For batch 2, loss'],
                     'restored_best': True,
                     'scheduled_rates': [0.10000000149011612, 0.10000000149011612, 0.10000000149011612, 0.05,
                                         0.05000000074505806, 0.05000000074505806, 0.01, 0.009999999776482582,
                                         0.009999999776482582, 0.005, 0.004999999888241291, 0.004999999888241291,
                                         0.001, 0.0010000000474974513, 0.0010000000474974513]},
 'docstring_callbacks': {'checkpoint_files': ['checkpoint.model.keras', 'checkpoint.weights.h5'],
                         'checkpoint_model_type': 'Sequential',
                         'csv_header': 'epoch,accuracy,loss,val_accuracy,val_loss',
                         'csv_rows': 3,
                         'lambda_batches': [0, 1, 2, 0, 1, 2],
                         'lambda_json_closed': True,
                         'lambda_json_keys': [['epoch', 'loss'], ['epoch', 'loss']],
                         'reduce_lr_history_keys': ['accuracy', 'learning_rate', 'loss', 'val_accuracy',
                                                    'val_loss']},
 'docstring_early_stopping': {'early_stopping_epochs': 4},
 'docstring_lr_scheduler': {'history_keys': ['learning_rate', 'loss'],
                            'history_learning_rate': [0.009999999776482582, 0.009999999776482582,
                                                      0.009999999776482582, 0.009999999776482582,
                                                      0.009999999776482582, 0.009999999776482582,
                                                      0.009999999776482582, 0.009999999776482582,
                                                      0.009999999776482582, 0.009999999776482582,
                                                      0.009048374369740486, 0.008187307976186275,
                                                      0.007408182602375746, 0.006703200750052929,
                                                      0.006065306719392538],
                            'rate_after': 0.0060699996538460255,
                            'rate_before': 0.009999999776482582},
 'docstring_normalization': {'norm_adapted_mean': [[1.0, 8.0, 5.0]],
                             'norm_adapted_variance': [[1.0, 1.0, 1.0]],
                             'norm_axis_last': [[-1.0, -1.0, -1.0]],
                             'norm_axis_none': [-1.4142135381698608, -0.7071067690849304, 0.0],
                             'norm_invert': [[2.8164966106414795], [3.632993221282959], [4.449489593505859]],
                             'norm_mean_variance': [[-1.4142135381698608], [-0.7071067690849304], [0.0]]},
 'docstring_schedules': {'config_keys': {'CosineDecay': ['alpha', 'decay_steps', 'initial_learning_rate', 'name',
                                                         'warmup_steps', 'warmup_target'],
                                         'CosineDecayWarmup': ['alpha', 'decay_steps', 'initial_learning_rate',
                                                               'name', 'warmup_steps', 'warmup_target'],
                                         'ExponentialDecay': ['decay_rate', 'decay_steps', 'initial_learning_rate',
                                                              'name', 'staircase'],
                                         'InverseTimeDecay': ['decay_rate', 'decay_steps', 'initial_learning_rate',
                                                              'name', 'staircase'],
                                         'PiecewiseConstantDecay': ['boundaries', 'name', 'values'],
                                         'PolynomialDecay': ['cycle', 'decay_steps', 'end_learning_rate',
                                                             'initial_learning_rate', 'name', 'power']},
                         'exponential_config': {'decay_rate': 0.96,
                                                'decay_steps': 3,
                                                'initial_learning_rate': 0.1,
                                                'name': 'ExponentialDecay',
                                                'staircase': True},
                         'optimizer_iterations': 20,
                         'optimizer_rate_after_fit': 0.07827576994895935,
                         'values': {'CosineDecay': [0.10000000149011612, 0.09991120547056198, 0.09779754281044006,
                                                    0.09140576422214508, 0.010000000707805157,
                                                    0.010000000707805157],
                                    'CosineDecayWarmup': [0.0, 0.010000000707805157, 0.05000000074505806,
                                                          0.10000000149011612, 0.009549147449433804, 0.0],
                                    'ExponentialDecay': [0.10000000149011612, 0.09330330044031143,
                                                         0.0707106813788414, 0.05000000074505806,
                                                         0.0031250000465661287, 9.765625145519152e-05],
                                    'InverseTimeDecay': [0.10000000149011612, 0.06666667014360428,
                                                         0.02857142873108387, 0.01666666753590107,
                                                         0.003846153849735856, 0.0019607844296842813],
                                    'PiecewiseConstantDecay': [1.0, 1.0, 1.0, 1.0, 0.5, 0.10000000149011612],
                                    'PolynomialDecay': [0.10000000149011612, 0.09909545630216599,
                                                        0.09538149833679199, 0.09049844741821289,
                                                        0.009999999776482582, 0.009999999776482582]}},
 'docstring_sequential_dense': {'categorical_crossentropy': [0.10536040365695953, 0.8280664682388306,
                                                             0.10109605640172958, 1.7719568014144897],
                                'dense_input_shape': [None, 16],
                                'dense_output_shape': [None, 32],
                                'get_layer_name': 'dense',
                                'seq_build_weights': 4,
                                'seq_delayed_built': False,
                                'seq_fit_built_weights': 4,
                                'seq_fit_weight_shapes': [[16, 8], [8], [8, 1], [1]],
                                'seq_input_weights': 2,
                                'seq_pop_layers': 1,
                                'to_categorical': [[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0],
                                                   [0.0, 0.0, 0.0, 1.0]]},
 'faq_and_callbacks': {'backup_resumed_epochs': 6,
                       'early_best_epoch_is_argmin': True,
                       'early_best_value': True,
                       'early_restored_best': True,
                       'early_stopped_epoch_consistent': True,
                       'frozen_counts': [0, 4],
                       'frozen_flags': [False, False, False],
                       'frozen_unchanged': True,
                       'inference_call_matches_predict': True,
                       'normalize': [[0.6, 0.8], [1.0, 0.0], [0.0, 0.0]],
                       'seeded_histories_equal': True,
                       'seeded_weights_equal': True,
                       'terminate_on_nan_epochs': 1,
                       'terminate_on_nan_last_is_nan': False,
                       'training_call_differs': True,
                       'unfrozen_counts': [4, 0]},
 'fixed_weights': {'class_weight_history_loss': [1.0800955295562744, 1.0184489488601685],
                   'class_weight_weights': [-0.7380614280700684, -0.7105383276939392, -0.44063130021095276,
                                            -0.37427252531051636, -0.27696117758750916, 0.05483703687787056,
                                            0.06340695172548294, 0.3372369110584259, 0.45942842960357666,
                                            0.5537276268005371, 0.7743765711784363, 0.8772048354148865,
                                            0.10807241499423981, -0.0972943902015686, 0.05011790990829468,
                                            -0.0008987964247353375, 0.6530960202217102, -0.6603420972824097,
                                            0.45747554302215576, -0.44887715578079224, 0.03900563344359398],
                   'evaluate': [0.7614096403121948, 0.32499998807907104],
                   'evaluate_weighted': [1.0098683834075928, 0.32499998807907104],
                   'metric_names': ['auc', 'loss', 'mae', 'precision', 'recall'],
                   'metric_values': {'auc': 0.4561128616333008,
                                     'loss': 0.7614096403121948,
                                     'mae': 0.5281897783279419,
                                     'precision': 0.2647058963775635,
                                     'recall': 0.8181818127632141},
                   'momentum_weights_after_three_steps': [-0.7336294054985046, -0.7203904390335083,
                                                          -0.43253833055496216, -0.37704867124557495,
                                                          -0.266171395778656, 0.03892793506383896,
                                                          0.07248803228139877, 0.32792535424232483,
                                                          0.47236311435699463, 0.5476998686790466,
                                                          0.7822877168655396, 0.8756035566329956,
                                                          0.038728609681129456, -0.03337695077061653,
                                                          -0.00175376795232296, 0.03975639492273331,
                                                          0.6326906085014343, -0.6458835005760193,
                                                          0.45866715908050537, -0.43150413036346436,
                                                          -0.10035713762044907],
                   'predict': [0.5405975580215454, 0.6244180202484131, 0.4970698356628418, 0.5605058073997498,
                               0.5791230797767639],
                   'predict_on_batch': [0.5405975580215454, 0.6244180202484131, 0.4970698356628418],
                   'sample_weight_weights': [-0.7285012602806091, -0.7256731390953064, -0.4274091124534607,
                                             -0.38164088129997253, -0.2620465159416199, 0.045492105185985565,
                                             0.07206093519926071, 0.3333563506603241, 0.4768570065498352,
                                             0.5380341410636902, 0.7859118580818176, 0.8691356182098389,
                                             0.02210761234164238, -0.016485679894685745, -0.015500740148127079,
                                             0.051574911922216415, 0.6362624168395996, -0.6508654952049255,
                                             0.46832600235939026, -0.43077462911605835, -0.14139458537101746],
                   'sgd_weights_after_one_step': [-0.7879430651664734, -0.6592019200325012, -0.4801322817802429,
                                                  -0.3437210023403168, -0.19744671881198883, -0.0154374148696661,
                                                  0.11720238626003265, 0.2901151478290558, 0.4430655539035797,
                                                  0.5832309126853943, 0.7524006962776184, 0.8956844210624695,
                                                  0.08846032619476318, -0.0876215472817421, 0.04019271209836006,
                                                  0.007351492997258902, 0.6869530081748962, -0.6076347827911377,
                                                  0.4918362498283386, -0.4053451120853424, 0.021972939372062683],
                   'test_on_batch': [0.7614096403121948, 0.32499998807907104],
                   'train_on_batch': [0.7614096403121948, 0.32499998807907104],
                   'weighted_metric_values': {'accuracy': 0.32499998807907104,
                                              'binary_accuracy': 0.2947312295436859,
                                              'loss': 1.0098683834075928,
                                              'mae': 0.5328598022460938}},
 'fixed_weights_layers': {'activations': {'elu': [-0.9502129554748535, -0.8646647334098816, -0.6321205496788025,
                                                  0.0, 1.0, 2.0, 3.0],
                                          'gelu': [-0.0040496960282325745, -0.045500267297029495,
                                                   -0.15865527093410492, 0.0, 0.8413447141647339,
                                                   1.9544997215270996, 2.995950222015381],
                                          'hard_sigmoid': [0.0, 0.1666666716337204, 0.3333333432674408, 0.5,
                                                           0.6666666865348816, 0.8333333730697632, 1.0],
                                          'leaky_relu': [-0.6000000238418579, -0.4000000059604645,
                                                         -0.20000000298023224, 0.0, 1.0, 2.0, 3.0],
                                          'mish': [-0.14564745128154755, -0.2525014579296112, -0.3034014403820038,
                                                   0.0, 0.8650984764099121, 1.9439589977264404,
                                                   2.9865355491638184],
                                          'relu': [0.0, 0.0, 0.0, 0.0, 1.0, 2.0, 3.0],
                                          'relu6': [0.0, 0.0, 0.0, 0.0, 1.0, 2.0, 3.0],
                                          'selu': [-1.670568823814392, -1.5201665163040161, -1.1113307476043701,
                                                   0.0, 1.0507010221481323, 2.1014020442962646,
                                                   3.1521029472351074],
                                          'sigmoid': [0.04742587357759476, 0.11920291930437088, 0.2689414322376251,
                                                      0.5, 0.7310585975646973, 0.8807970285415649,
                                                      0.9525741338729858],
                                          'softplus': [0.04858735203742981, 0.12692800164222717, 0.3132616877555847,
                                                       0.6931471824645996, 1.3132617473602295, 2.1269280910491943,
                                                       3.0485873222351074],
                                          'softsign': [-0.75, -0.6666666865348816, -0.5, 0.0, 0.5,
                                                       0.6666666865348816, 0.75],
                                          'swish': [-0.14227762818336487, -0.23840583860874176, -0.2689414322376251,
                                                    0.0, 0.7310585975646973, 1.7615940570831299,
                                                    2.857722282409668],
                                          'tanh': [-0.9950547218322754, -0.9640275835990906, -0.7615941762924194,
                                                   0.0, 0.7615941762924194, 0.9640275835990906,
                                                   0.9950547218322754]},
                          'activations_get_callable': True,
                          'evaluate': [1.8377948999404907, 1.0385099649429321],
                          'loss_objects': {'Huber(delta=0.5)': 0.60916668176651,
                                           'LogCosh': 1.005759358406067,
                                           'MeanSquaredError(sample_weight)': 2.2616665363311768},
                          'losses': {'cosine_similarity': -0.2603130042552948,
                                     'huber': 1.0749999284744263,
                                     'log_cosh': 1.005759358406067,
                                     'mean_absolute_error': 1.433333396911621,
                                     'mean_squared_logarithmic_error': 0.5865296125411987},
                          'losses_len': 3,
                          'predict': [1.0827797651290894, 0.4558616578578949, -0.8650016188621521,
                                      -0.39863431453704834, 1.0011250972747803, 0.4166288673877716,
                                      -0.06186135113239288, -0.10968496650457382],
                          'predict_without_random_layers': [1.0827797651290894, 0.4558616578578949,
                                                            -0.8650016188621521, -0.39863431453704834,
                                                            1.0011250972747803, 0.4166288673877716,
                                                            -0.06186135113239288, -0.10968496650457382],
                          'train_on_batch': [1.8391319513320923, 1.0394426584243774],
                          'trainable_counts': [10, 2],
                          'weight_shapes': [[4, 6], [6], [6], [6], [6], [6], [6, 5], [5], [5], [5], [5, 2], [2]],
                          'weights_after_fit': [0.4262656569480896, 0.44973838329315186, 0.06536500155925751,
                                                -0.3893800675868988, -0.4995046854019165, -0.10077014565467834,
                                                0.3126491606235504, 0.5015491843223572, 0.2106265276670456,
                                                -0.26754581928253174, -0.47521984577178955, -0.2581133544445038,
                                                0.22493876516819, 0.506845235824585, 0.33899468183517456,
                                                -0.110611692070961, -0.46721819043159485, -0.32592886686325073,
                                                0.06110040098428726, 0.43848320841789246, 0.40203171968460083,
                                                -0.010890782810747623, -0.4230136275291443, -0.5086349248886108,
                                                0.0792958065867424, 0.040048953145742416, 0.01671725884079933,
                                                -0.08011958748102188, -0.12428996711969376, 0.011147347278892994,
                                                1.1976022720336914, 1.186324119567871, 1.011459469795227,
                                                0.8702061176300049, 0.7909901738166809, 0.9410687685012817,
                                                0.08367014676332474, 0.09206531941890717, 0.01908142864704132,
                                                -0.06893794983625412, -0.09218744188547134, -0.02822817675769329,
                                                0.2579685151576996, 0.28605327010154724, 0.05600230023264885,
                                                -0.20600399374961853, -0.25929445028305054, -0.06924895197153091,
                                                1.2669087648391724, 1.3078703880310059, 1.001878023147583,
                                                0.6593320369720459, 0.5883288383483887, 0.8392536640167236,
                                                0.5023255348205566, 0.4491617977619171, 0.04151638224720955,
                                                -0.30687862634658813, -0.5338135957717896, -0.06594456732273102,
                                                0.30299893021583557, 0.47727885842323303, 0.2652393579483032,
                                                -0.3314714729785919, -0.4580681324005127, -0.28762996196746826,
                                                0.19702669978141785, 0.5266287326812744, 0.2813921570777893,
                                                -0.15498486161231995, -0.5364354848861694, -0.36049172282218933,
                                                0.05168374255299568, 0.45135530829429626, 0.38603508472442627,
                                                -0.049058228731155396, -0.37895482778549194, -0.48822280764579773,
                                                -0.05811955779790878, 0.35450613498687744, 0.4620440602302551,
                                                0.19773638248443604, -0.3586978614330292, -0.4833701550960541,
                                                0.05797462537884712, 0.12561997771263123, -0.007728401105850935,
                                                -0.08228068053722382, -0.08060756325721741, 1.076532244682312,
                                                1.1921775341033936, 0.9524424076080322, 0.9115996360778809,
                                                0.7838984727859497, 0.09171655029058456, 0.09697286784648895,
                                                -2.9569891921710223e-05, -0.06503919512033463, -0.08749403804540634,
                                                0.20607809722423553, 0.3819640874862671, 0.17861780524253845,
                                                -0.3830333352088928, -0.3076857328414917, -0.09902492165565491,
                                                0.42887166142463684, 0.5297545790672302, 0.05402851477265358,
                                                -0.2813534736633301, 0.12126051634550095, 0.08289384841918945],
                          'weights_after_step': [0.4535726308822632, 0.46671536564826965, 0.06105463206768036,
                                                 -0.382418692111969, -0.4784831404685974, -0.09818711876869202,
                                                 0.28676292300224304, 0.4845193028450012, 0.18589694797992706,
                                                 -0.2746654450893402, -0.4921591579914093, -0.30598023533821106,
                                                 0.19545532763004303, 0.48325368762016296, 0.3366841673851013,
                                                 -0.12714308500289917, -0.4861421585083008, -0.3788597881793976,
                                                 0.08678559213876724, 0.46962136030197144, 0.4201398193836212,
                                                 -8.935521327657625e-05, -0.4231555163860321, -0.4412734806537628,
                                                 0.10350444912910461, 0.07449333369731903, 0.01634879969060421,
                                                 -0.07527291029691696, -0.10341662168502808, 0.00019959216297138482,
                                                 1.1643331050872803, 1.1800018548965454, 1.036233901977539,
                                                 0.8540195822715759, 0.7993100881576538, 0.9470627307891846,
                                                 0.09814175218343735, 0.08717157691717148, -0.002014754805713892,
                                                 -0.08107118308544159, -0.08282408118247986, -0.015136619098484516,
                                                 0.2533286511898041, 0.27518120408058167, 0.04464913532137871,
                                                 -0.22345270216464996, -0.28272107243537903, -0.08144580572843552,
                                                 1.3247520923614502, 1.3547759056091309, 1.047275185585022,
                                                 0.6908251047134399, 0.6118866801261902, 0.8800214529037476,
                                                 0.4529578387737274, 0.4337230324745178, 0.0523901991546154,
                                                 -0.3300057053565979, -0.5041963458061218, -0.10904176533222198,
                                                 0.3040024936199188, 0.47799649834632874, 0.2564719021320343,
                                                 -0.29953497648239136, -0.47913500666618347, -0.2924514412879944,
                                                 0.19989316165447235, 0.5400818586349487, 0.29956740140914917,
                                                 -0.15055449306964874, -0.4988395571708679, -0.3729064464569092,
                                                 0.0881400927901268, 0.4457101821899414, 0.4106542766094208,
                                                 -0.015195774845778942, -0.41391313076019287, -0.4481123685836792,
                                                 -0.07433725893497467, 0.36857807636260986, 0.478171706199646,
                                                 0.15440250933170319, -0.3411827087402344, -0.4967668056488037,
                                                 0.07365383207798004, 0.11996597796678543, 0.01297577004879713,
                                                 -0.11656234413385391, -0.0746573731303215, 1.1312236785888672,
                                                 1.1822361946105957, 1.0015060901641846, 0.8678790330886841,
                                                 0.8034586310386658, 0.08249279111623764, 0.09443612396717072,
                                                 0.012847966514527798, -0.07813458889722824, -0.09258566796779633,
                                                 0.3536985516548157, 0.42112022638320923, 0.09222915023565292,
                                                 -0.3763798773288727, -0.4285614788532257, -0.11762692779302597,
                                                 0.35492652654647827, 0.5105076432228088, 0.17224811017513275,
                                                 -0.28232529759407043, 0.08920850604772568, 0.0826072245836258]},
 'imbalanced_classification': {'checkpoints': ['fraud_model_at_epoch_1.keras', 'fraud_model_at_epoch_2.keras',
                                               'fraud_model_at_epoch_3.keras'],
                               'count_types': ['float'],
                               'epoch_lines': ['Epoch 1/3', '4/4', 'Epoch 2/3', '4/4', 'Epoch 3/3', '4/4'],
                               'evaluate_keys': ['fn', 'fp', 'loss', 'precision', 'recall', 'tn', 'tp'],
                               'fp_matches_predict': True,
                               'history_keys': ['fn', 'fp', 'loss', 'precision', 'recall', 'tn', 'tp', 'val_fn',
                                                'val_fp', 'val_loss', 'val_precision', 'val_recall', 'val_tn',
                                                'val_tp'],
                               'tp_matches_predict': True,
                               'train_counts_sum_to_samples': True,
                               'val_counts_sum_to_samples': True},
 'mnist_mlp': {'accuracy_matches_predict': True,
               'count_params': 669706,
               'dropout_rate': 0.2,
               'evaluate_deterministic': True,
               'history_keys': ['accuracy', 'loss', 'val_accuracy', 'val_loss'],
               'layer_classes': ['Dense', 'Dropout', 'Dense', 'Dropout', 'Dense'],
               'predict_deterministic': True,
               'predict_shape': [200, 10],
               'score_len': 2,
               'to_categorical_dtype': 'float64',
               'to_categorical_shape': [512, 10],
               'to_categorical_type': 'ndarray',
               'verbose2_lines': ['Epoch N/N',
                                  'N/N - N - N/step - accuracy: N - loss: N - val_accuracy: N - val_loss: N',
                                  'Epoch N/N',
                                  'N/N - N - N/step - accuracy: N - loss: N - val_accuracy: N - val_loss: N',
                                  'Epoch N/N',
                                  'N/N - N - N/step - accuracy: N - loss: N - val_accuracy: N - val_loss: N']},
 'pima_diabetes': {'accuracy_matches_predictions': True,
                   'accuracy_type': 'float',
                   'built': True,
                   'history_keys': ['accuracy', 'loss'],
                   'history_params': {'epochs': 3, 'steps': 77, 'verbose': 0},
                   'input_shape': [None, 8],
                   'output_shape': [None, 1],
                   'predictions_shape': [768, 1],
                   'probabilities_dtype': 'float32',
                   'probabilities_in_unit_interval': True,
                   'summary_param_lines': ['Total params: 221 (884.00 B)', 'Trainable params: 221 (884.00 B)',
                                           'Non-trainable params: 0 (0.00 B)'],
                   'summary_param_lines_after_fit': ['Total params: 665 (2.60 KB)',
                                                     'Trainable params: 221 (884.00 B)',
                                                     'Non-trainable params: 0 (0.00 B)',
                                                     'Optimizer params: 444 (1.73 KB)']},
 'saving_guide': {'clone_is_new_object': True,
                  'clone_type': 'Sequential',
                  'clone_weight_shapes': [[32, 1], [1]],
                  'count_params': 55050,
                  'dense_config_activation': 'relu',
                  'dense_config_keys': ['activation', 'bias_constraint', 'bias_initializer', 'bias_regularizer',
                                        'dtype', 'kernel_constraint', 'kernel_initializer', 'kernel_regularizer',
                                        'name', 'quantization_config', 'trainable', 'units', 'use_bias'],
                  'dense_config_units': 3,
                  'from_config_layers': ['Dense'],
                  'from_config_output_shape': [4, 1],
                  'iterations_after_resume': 8,
                  'json_is_str': True,
                  'json_top_keys': ['build_config', 'class_name', 'compile_config', 'config', 'module',
                                    'registered_name'],
                  'layer_weights_equal': True,
                  'load_weights_equal': True,
                  'model_from_json_weights': [[32, 1], [1]],
                  'optimizer_iterations_kept': True,
                  'reconstructed_optimizer': 'Adam',
                  'reconstructed_type': 'Sequential',
                  'resumed_history_keys': ['loss'],
                  'save_weights_bad_suffix': 'ValueError',
                  'sequential_config_keys': ['build_input_shape', 'dtype', 'layers', 'name', 'trainable'],
                  'sequential_config_layer_classes': ['InputLayer', 'Dense'],
                  'trainable_weights_len': 6,
                  'transfer_equal': True,
                  'weights_names': ['kernel', 'bias', 'kernel', 'bias', 'kernel', 'bias'],
                  'weights_shapes': [[784, 64], [64], [64, 64], [64], [64, 10], [10]]},
 'sequential_guide': {'after_pop': 2,
                      'built_layer_weight_shapes': [[4, 3], [3]],
                      'call_equals_layer_chain': True,
                      'call_shape': [3, 4],
                      'frozen_counts': [2, 6],
                      'frozen_unchanged': [True, True, True, True, True, True, False, False],
                      'input_shape_built': 2,
                      'input_shape_output_shape': [None, 2],
                      'layer_names': ['layer1', 'layer2', 'layer3'],
                      'layers_with_input': ['Dense'],
                      'model_name': 'my_sequential',
                      'nested_counts': [2, 4, 6],
                      'nested_layer_types': ['Sequential', 'Dense'],
                      'nested_trainable_flags': [False, False],
                      'nested_unchanged': [True, True, True, True, False, False],
                      'summary_total_line': ['Total params: 35 (140.00 B)'],
                      'unbuilt_layer_weights': 0,
                      'unfrozen_counts': [6, 0],
                      'weights_after_call': 6},
 'serialization_api': {'adam_defaults': {'amsgrad': False,
                                         'beta_1': 0.9,
                                         'beta_2': 0.999,
                                         'learning_rate': 0.0010000000474974513,
                                         'name': 'adam'},
                       'constant_values': [[2.5, 2.5], [2.5, 2.5]],
                       'identity_values': [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]],
                       'initializer_by_name': 'HeNormal',
                       'initializer_call_shape': [3, 4],
                       'loss_by_name': [True, 'mean_squared_error'],
                       'loss_by_name_value': 3.5625,
                       'loss_from_config': ['Huber', 1.65625],
                       'loss_serialize': True,
                       'optimizer_by_name': 'Adam',
                       'optimizer_roundtrip': ['SGD', 0.05000000074505806, 0.9, True],
                       'optimizer_serialized_class': 'SGD',
                       'regularizer_by_name': ['L2', {'l2': 0.01}],
                       'regularizer_values': [0.14249999821186066, 0.12999999523162842, 0.492499977350235],
                       'resume_matches_uninterrupted': True,
                       'resumed_evaluate_len': 2,
                       'resumed_iterations': 8,
                       'resumed_loss_name': 'mse',
                       'variance_scaling_config': {'distribution': 'untruncated_normal',
                                                   'input_axes': None,
                                                   'mode': 'fan_in',
                                                   'output_axes': None,
                                                   'scale': 2.0,
                                                   'seed': None}},
 'serialization_layers': {'activation_serialize': 'relu',
                          'layer_roundtrip': ['Dense', 4, 'hidden', 'relu'],
                          'layer_serialized_class': 'Dense'},
 'training_guide': {'checkpoint_files': ['mymodel_1.keras', 'mymodel_2.keras'],
                    'checkpoint_reload_predict_shape': [5, 10],
                    'class_weight_history_keys': ['loss', 'sparse_categorical_accuracy'],
                    'early_stopping_keys': ['loss', 'sparse_categorical_accuracy', 'val_loss',
                                            'val_sparse_categorical_accuracy'],
                    'early_stopping_stopped_epoch_consistent': True,
                    'evaluate_dict_keys': ['loss', 'sparse_categorical_accuracy'],
                    'evaluate_dict_matches_list': True,
                    'evaluate_item_types': ['float', 'float'],
                    'evaluate_len': 2,
                    'evaluate_type': 'list',
                    'history_epoch': [0, 1],
                    'history_keys': ['loss', 'sparse_categorical_accuracy', 'val_loss',
                                     'val_sparse_categorical_accuracy'],
                    'history_lengths': {'loss': 2,
                                        'sparse_categorical_accuracy': 2,
                                        'val_loss': 2,
                                        'val_sparse_categorical_accuracy': 2},
                    'history_params': {'epochs': 2, 'steps': 8, 'verbose': 0},
                    'history_type': 'History',
                    'history_value_type': 'float',
                    'model_history_is_history': True,
                    'optimizer_iterations': 8,
                    'per_batch_loss_is_number': True,
                    'per_batch_losses_len': 16,
                    'predict_dtype': 'float32',
                    'predict_rows_sum_to_one': True,
                    'predict_shape': [3, 10],
                    'predict_type': 'ndarray',
                    'sample_weight_history_keys': ['loss', 'sparse_categorical_accuracy'],
                    'schedule_history_keys': ['loss']},
 'training_guide_data': {'generator_history_lengths': {'loss': 2, 'sparse_categorical_accuracy': 2},
                         'generator_iterations': 12,
                         'initial_epoch_epochs': [1, 2],
                         'initial_epoch_loss_len': 2,
                         'pydataset_epoch_end_called': True,
                         'pydataset_evaluate_len': 2,
                         'pydataset_history_keys': ['loss', 'sparse_categorical_accuracy', 'val_loss',
                                                    'val_sparse_categorical_accuracy'],
                         'pydataset_len': 10,
                         'pydataset_predict_shape': [70, 5],
                         'pydataset_steps': 10,
                         'validation_freq_lengths': {'loss': 4,
                                                     'sparse_categorical_accuracy': 4,
                                                     'val_loss': 2,
                                                     'val_sparse_categorical_accuracy': 2},
                         'weighted_pydataset_keys': ['loss', 'sparse_categorical_accuracy'],
                         'weighted_validation_keys': ['loss', 'sparse_categorical_accuracy', 'val_loss',
                                                      'val_sparse_categorical_accuracy'],
                         'workers_history_keys': ['loss', 'sparse_categorical_accuracy']},
 'verbose_output': {'checkpoint_verbose': ['Epoch N: val_loss improved from None to N, saving model to '
                                           'best.weights.hN',
                                           'Epoch N: finished saving model to best.weights.hN',
                                           'Epoch N: val_loss improved from N to N, saving model to '
                                           'best.weights.hN',
                                           'Epoch N: finished saving model to best.weights.hN'],
                    'early_stopping_verbose': ['Epoch N: early stopping'],
                    'evaluate_auto': ['N/N ━━━━━━━━━━━━━━━━━━━━ N N/step - accuracy: N - loss: N'],
                    'fit_auto': ['Epoch N/N',
                                 'N/N ━━━━━━━━━━━━━━━━━━━━ N N/step - accuracy: N - loss: N - val_accuracy: N - '
                                 'val_loss: N',
                                 'Epoch N/N',
                                 'N/N ━━━━━━━━━━━━━━━━━━━━ N N/step - accuracy: N - loss: N - val_accuracy: N - '
                                 'val_loss: N'],
                    'fit_verbose_1': ['N/N ━━━━━━━━━━━━━━━━━━━━ N N/step - accuracy: N - loss: N'],
                    'fit_verbose_2': ['N/N - N - N/step - accuracy: N - loss: N'],
                    'predict_auto': ['N/N ━━━━━━━━━━━━━━━━━━━━ N N/step']}}
