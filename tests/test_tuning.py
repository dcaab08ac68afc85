"""gpudl.tuning: sampling on the right scales, zoom, grid vs random, executors that agree,
resumable searches, pruning, panda helpers and the errors for bad input."""

import json
import math
import os

import numpy as np
import pytest
from scipy import stats

import gpudl
from gpudl.frontend.tuning import digits
from gpudl.tuning import (Choice, GridSearch, IntUniform, LogUniform, MedianPruner, Objective,
                          OneMinusLogUniform, RandomSearch, SearchSpace, SuccessiveHalving, Uniform,
                          compare_grid_vs_random, panda_callbacks, resume)


# -- a small problem whose builders live at module level (worker processes import them) --
def blobs(seed=0, n=240):
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 2.0, (3, 6))
    y = rng.integers(0, 3, n)
    x = (centers[y] + rng.normal(0, 1.0, (n, 6))).astype(np.float32)
    return x, y


SMALL_SPACE = {"learning_rate": LogUniform(1e-3, 1e-1), "units": IntUniform(4, 32, log=True),
               "mode": Choice(["train", "raise"])}


def build_small(hp):
    """A one-hidden-layer classifier; raises on purpose when hp["mode"] == "raise"."""
    if hp.get("mode") == "raise":
        raise RuntimeError("planted failure in build_model")
    model = gpudl.Sequential([gpudl.Input((6,)), gpudl.layers.Dense(hp["units"], activation="relu"),
                              gpudl.layers.Dense(3, activation="softmax")])
    model.compile(optimizer=gpudl.optimizers.Adam(hp["learning_rate"]), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def build_sgd(hp):
    model = gpudl.Sequential([gpudl.Input((6,)), gpudl.layers.Dense(8, activation="relu"),
                              gpudl.layers.Dense(3, activation="softmax")])
    model.compile(optimizer=gpudl.optimizers.SGD(hp["learning_rate"]), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def build_uncompiled(hp):
    return gpudl.Sequential([gpudl.Input((6,)), gpudl.layers.Dense(3, activation="softmax")])


def run_small(search, executor="sequential", epochs=3, **kwargs):
    x, y = blobs()
    return search.run(x[:160], y[:160], validation_data=(x[160:], y[160:]), epochs=epochs, executor=executor,
                      verbose=0, **kwargs)


def comparable(records):
    """Records keyed by (stage, trial), without wall-clock times."""
    return {(r["stage"], r["trial"]): {k: v for k, v in r.items() if k not in ("seconds", "traceback")}
            for r in records}


# -- sampling --------------------------------------------------------------------------
def test_log_uniform_puts_three_quarters_of_draws_for_1e_4_to_1_below_0_1():
    rng = np.random.default_rng(0)
    draws = np.array([LogUniform(1e-4, 1.0).sample(rng) for _ in range(20000)])
    assert draws.min() >= 1e-4 and draws.max() <= 1.0
    assert abs(np.mean(draws < 0.1) - 0.75) < 0.01
    assert stats.kstest(np.log10(draws), stats.uniform(loc=-4, scale=4).cdf).pvalue > 0.01


def test_one_minus_log_uniform_is_uniform_in_log_of_one_minus_beta():
    rng = np.random.default_rng(1)
    betas = np.array([OneMinusLogUniform(0.9, 0.999).sample(rng) for _ in range(20000)])
    assert betas.min() >= 0.9 and betas.max() <= 0.999
    r = np.log10(1 - betas)
    assert stats.kstest(r, stats.uniform(loc=-3, scale=2).cdf).pvalue > 0.01
    # each decade (0.9..0.99 and 0.99..0.999) gets half the draws, not 91% and 9% as uniform sampling would
    assert abs(np.mean(betas < 0.99) - 0.5) < 0.015


def test_int_uniform_and_choice_draw_every_value_evenly():
    rng = np.random.default_rng(2)
    ints = [IntUniform(1, 4).sample(rng) for _ in range(8000)]
    assert sorted(set(ints)) == [1, 2, 3, 4]
    assert max(abs(ints.count(v) / 8000 - 0.25) for v in range(1, 5)) < 0.02
    log_ints = np.array([IntUniform(16, 255, log=True).sample(rng) for _ in range(8000)])
    assert log_ints.min() >= 16 and log_ints.max() <= 255
    assert abs(np.mean(log_ints < 64) - 0.5) < 0.03  # 16..64 and 64..256 are one octave pair each
    choices = [Choice(["a", "b"]).sample(rng) for _ in range(4000)]
    assert abs(choices.count("a") / 4000 - 0.5) < 0.03


def test_conditional_parameter_is_drawn_only_when_its_condition_holds():
    space = SearchSpace(digits.SPACE)
    rng = np.random.default_rng(3)
    points = [space.sample(rng) for _ in range(500)]
    assert all(("units_3" in p) == (p["layers"] >= 3) for p in points)
    assert all(("units_2" in p) == (p["layers"] >= 2) for p in points)
    assert {p["layers"] for p in points} == {1, 2, 3}


def test_same_seed_gives_the_same_trials_and_another_seed_other_trials():
    first = RandomSearch(build_small, SMALL_SPACE, seed=7)
    again = RandomSearch(build_small, SMALL_SPACE, seed=7)
    other = RandomSearch(build_small, SMALL_SPACE, seed=8)
    specs = lambda s: [(t.seed, t.params) for t in s.make_specs(s.space, s.seed, 0, 10)]  # noqa: E731
    assert specs(first) == specs(again)
    assert specs(first) != specs(other)
    assert len({json.dumps(p, sort_keys=True) for _, p in specs(first)}) == 10


@pytest.mark.parametrize("seed", range(5))
def test_zoom_narrows_around_the_best_points_and_stays_inside_the_original_bounds(seed):
    space = SearchSpace({"lr": LogUniform(1e-4, 1.0), "beta": OneMinusLogUniform(0.9, 0.999),
                         "dropout": Uniform(0.0, 0.5), "units": IntUniform(16, 256, log=True),
                         "layers": IntUniform(1, 4), "act": Choice(["relu", "tanh", "elu"])})
    rng = np.random.default_rng(seed)
    points = [space.sample(rng) for _ in range(5)]
    narrowed = space.zoom(points)
    for name, distribution in narrowed.distributions.items():
        original = space.distributions[name]
        values = [p[name] for p in points]
        if isinstance(distribution, Choice):
            assert set(distribution.values) == set(values)
            continue
        assert original.low <= distribution.low <= min(values) <= max(values) <= distribution.high <= original.high
    # on the log scale: the margin is a quarter of the spread in decades, not in raw value
    lrs = np.log10([p["lr"] for p in points])
    spread = lrs.max() - lrs.min()
    expected_low = max(-4.0, lrs.min() - 0.25 * spread)
    assert math.isclose(math.log10(narrowed.distributions["lr"].low), expected_low, rel_tol=1e-9, abs_tol=1e-9)
    # zooming a zoomed space again narrows further and still stays inside
    again = narrowed.zoom(points[:2])
    assert again.distributions["lr"].low >= narrowed.distributions["lr"].low


def test_random_search_tries_as_many_distinct_values_as_trials_a_grid_only_a_few():
    space = {"learning_rate": LogUniform(1e-4, 1.0), "beta_1": OneMinusLogUniform(0.9, 0.999)}
    counts = compare_grid_vs_random(space, max_trials=25)
    assert counts == {"learning_rate": {"grid": 5, "random": 25}, "beta_1": {"grid": 5, "random": 25}}
    grid = GridSearch(build_small, space, max_trials=25)
    points = [s.params for s in grid.make_specs(grid.space, 0, 0, 25)]
    lrs = sorted({p["learning_rate"] for p in points})
    assert np.allclose(np.log10(lrs), [-4, -3, -2, -1, 0])  # evenly spaced on the log scale


# -- running -------------------------------------------------------------------------
def test_processes_with_two_workers_match_sequential_and_a_raising_trial_does_not_stop_the_search():
    sequential = RandomSearch(build_small, SMALL_SPACE, max_trials=6, seed=3)
    run_small(sequential)
    parallel = RandomSearch(build_small, SMALL_SPACE, max_trials=6, seed=3)
    run_small(parallel, executor="processes", workers=2)
    assert comparable(sequential.records) == comparable(parallel.records)
    statuses = [r["status"] for r in parallel.records]
    failed = [r for r in parallel.records if r["status"] == "failed"]
    assert failed and "ok" in statuses and len(statuses) == 6
    assert all("planted failure" in r["error"] for r in failed)
    assert all(r["params"]["mode"] == "raise" for r in failed)


def test_ray_executor_on_a_local_instance_matches_the_processes_executor():
    ray = pytest.importorskip("ray")
    (x_train, y_train), (x_dev, y_dev), _ = digits.load_splits()
    data = dict(x=x_train, y=y_train, validation_data=(x_dev, y_dev), epochs=2, verbose=0)
    by_processes = RandomSearch(digits.builder(x_train), digits.SPACE, max_trials=4, seed=5)
    by_processes.run(executor="processes", workers=2, **data)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        by_ray = RandomSearch(digits.builder(x_train), digits.SPACE, max_trials=4, seed=5)
        by_ray.run(executor="ray", workers=2, **data)
    finally:
        ray.shutdown()
    assert comparable(by_processes.records) == comparable(by_ray.records)
    assert all(r["status"] == "ok" for r in by_ray.records)


def build_sgd_on_logits(hp):
    """Logits and the exact log-sum-exp loss: at a huge learning rate the loss overflows (a
    softmax output's clipped probabilities would hold it at -log(1e-7), as in Keras)."""
    model = gpudl.Sequential([gpudl.Input((6,)), gpudl.layers.Dense(8, activation="relu"), gpudl.layers.Dense(3)])
    model.compile(optimizer=gpudl.optimizers.SGD(hp["learning_rate"]),
                  loss=gpudl.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    return model


def test_a_diverging_trial_is_marked_failed_and_the_search_goes_on():
    search = RandomSearch(build_sgd_on_logits, {"learning_rate": Choice([0.05, 1e12])}, max_trials=4, seed=0)
    run_small(search, epochs=2)
    diverged = [r for r in search.records if r["params"]["learning_rate"] == 1e12]
    assert diverged and all(r["status"] == "failed" and r["error"].startswith("diverged") for r in diverged)
    assert search.best_params == {"learning_rate": 0.05}


def test_objective_is_scored_at_its_best_epoch_and_best_model_has_those_weights(tmp_path):
    x, y = blobs()
    search = RandomSearch(build_small, {"learning_rate": LogUniform(1e-3, 1e-1), "units": IntUniform(4, 32)},
                          max_trials=3, seed=1, directory=tmp_path / "search", objective="val_loss")
    run_small(search, epochs=4)
    best = search.best_trial
    assert best["objective"] == min(best["history"]["val_loss"]) == best["history"]["val_loss"][best["best_epoch"] - 1]
    model = search.best_model()
    assert math.isclose(model.evaluate(x[160:], y[160:], return_dict=True)["loss"], best["objective"], rel_tol=1e-5)


def test_results_table_exports_csv_and_json_with_one_row_per_trial(tmp_path):
    search = RandomSearch(build_small, SMALL_SPACE, max_trials=4, seed=2)
    table = run_small(search)
    assert len(table) == 4 and table.columns[:4] == ["stage", "trial", "status", "val_accuracy"]
    table.to_csv(tmp_path / "r.csv")
    table.to_json(tmp_path / "r.json")
    rows = json.loads((tmp_path / "r.json").read_text())
    assert [r["learning_rate"] for r in rows] == [r["params"]["learning_rate"] for r in search.records]
    assert (tmp_path / "r.csv").read_text().splitlines()[0].startswith("stage,trial,status,val_accuracy")
    assert "learning_rate" in str(table)


def test_coarse_to_fine_keeps_the_stage_of_each_trial_and_plots_both(tmp_path):
    pytest.importorskip("matplotlib")
    search = RandomSearch(build_small, SMALL_SPACE, max_trials=5, seed=4)
    run_small(search)
    fine = search.zoom(top_k=2)
    run_small(search, max_trials=3)
    assert [r["stage"] for r in search.records] == [0] * 5 + [1] * 3
    assert search.space is fine and search.stage == 1
    for record in search.records[5:]:
        assert fine.distributions["learning_rate"].contains(record["params"]["learning_rate"])
    search.plot(tmp_path / "search.png")
    assert (tmp_path / "search.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    lines = []
    search.summary(num_trials=2, print_fn=lines.append)
    assert lines[0] == "Results summary" and sum(line.startswith("Trial ") for line in lines) == 2


def test_a_search_resumes_from_its_directory_without_rerunning_finished_trials(tmp_path, capsys):
    directory = tmp_path / "search"
    first = RandomSearch(build_small, SMALL_SPACE, max_trials=3, seed=6, directory=directory)
    run_small(first)
    # a crash mid-write leaves a torn last line: it is skipped, and that trial runs again
    with open(directory / "trials.jsonl", "a") as f:
        f.write('{"stage": 0, "tri')
    with pytest.warns(UserWarning, match="incomplete"):
        resumed = RandomSearch(build_small, SMALL_SPACE, max_trials=5, seed=6, directory=directory)
    assert "3 finished trials loaded" in capsys.readouterr().out
    run_small(resumed)
    assert [r["trial"] for r in resumed.records] == [0, 1, 2, 3, 4]
    uninterrupted = RandomSearch(build_small, SMALL_SPACE, max_trials=5, seed=6)
    run_small(uninterrupted)
    assert comparable(resumed.records) == comparable(uninterrupted.records)


def test_resuming_a_zoomed_search_reuses_its_stages(tmp_path):
    directory = tmp_path / "search"
    first = RandomSearch(build_small, SMALL_SPACE, max_trials=4, seed=9, directory=directory)
    run_small(first)
    fine = first.zoom(top_k=2)
    run_small(first, max_trials=1)
    again = RandomSearch(build_small, SMALL_SPACE, max_trials=4, seed=9, directory=directory)
    run_small(again)  # stage 0 is done: nothing runs
    assert again.zoom(top_k=2) == fine
    run_small(again, max_trials=2)
    assert [(r["stage"], r["trial"]) for r in again.records] == [(0, i) for i in range(4)] + [(1, 0), (1, 1)]


def test_median_pruner_stops_a_trial_below_the_median_of_finished_curves():
    objective = Objective("val_accuracy")
    pruner = MedianPruner(warmup_epochs=1, min_trials=3)
    finished = [[0.5, 0.6, 0.7], [0.4, 0.5, 0.6], [0.3, 0.4, 0.5]]
    assert not pruner.should_stop([0.1], finished, objective)            # warm-up
    assert pruner.should_stop([0.1, 0.45], finished, objective)          # median at epoch 2 is 0.5
    assert not pruner.should_stop([0.1, 0.55], finished, objective)
    assert not pruner.should_stop([0.1, 0.45], finished[:2], objective)  # too few finished trials
    loss = Objective("val_loss")
    assert pruner.should_stop([2.0, 1.5], [[1.0, 0.9], [1.1, 1.0], [1.2, 1.1]], loss)


def test_successive_halving_keeps_the_top_third_at_each_rung():
    objective = Objective("val_accuracy")
    pruner = SuccessiveHalving(min_epochs=1, reduction_factor=3)
    finished = [[0.9, 0.9, 0.9], [0.8, 0.8, 0.8], [0.2, 0.2, 0.2], [0.1, 0.1, 0.1], [0.7, 0.7, 0.7]]
    assert pruner.should_stop([0.5], finished, objective)         # rung 1: top 2 of 6 are 0.9, 0.8
    assert not pruner.should_stop([0.85], finished, objective)
    assert not pruner.should_stop([0.85, 0.1], finished, objective)  # epoch 2 is not a rung
    assert pruner.should_stop([0.5, 0.5, 0.5], finished, objective)  # rung 3


def test_pruned_trials_stop_early_in_every_executor():
    x, y = blobs()
    space = {"learning_rate": Choice([0.05, 1e-6])}
    for executor in ("sequential", "processes"):
        search = RandomSearch(build_sgd, space, max_trials=8, seed=1, pruner=MedianPruner(warmup_epochs=1, min_trials=2))
        run_small(search, executor=executor, epochs=5, workers=1)
        pruned = [r for r in search.records if r["status"] == "pruned"]
        assert pruned and all(r["epochs"] < 5 and r["params"]["learning_rate"] == 1e-6 for r in pruned)


# -- panda ---------------------------------------------------------------------------
def test_panda_checkpoints_every_epoch_and_resumes_with_a_changed_learning_rate(tmp_path):
    pytest.importorskip("matplotlib")
    x, y = blobs()
    gpudl.utils.set_random_seed(0)
    model = build_small({"learning_rate": 0.01, "units": 8})
    directory = tmp_path / "panda"
    model.fit(x, y, validation_split=0.25, epochs=2, verbose=0, callbacks=panda_callbacks(directory))
    resumed = resume(directory, learning_rate=0.003)
    assert resumed.epochs_done == 2 and resumed.optimizer.learning_rate == 0.003
    assert resumed.optimizer.iterations == model.optimizer.iterations
    for saved, trained in zip(resumed.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(saved, trained)
    callbacks = panda_callbacks(directory)
    resumed.fit(x, y, validation_split=0.25, epochs=4, initial_epoch=resumed.epochs_done, verbose=0,
                callbacks=callbacks)
    log = (directory / "log.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in log[1:]] == ["0", "1", "2", "3"]
    assert callbacks[1].epochs == [1, 2, 3, 4]  # the curves show the whole run, not only the resumed part
    assert (directory / "curves.png").exists() and (directory / "best.npz").exists()
    with pytest.raises(FileNotFoundError, match="panda_callbacks"):
        resume(tmp_path / "nothing")


# -- bad input ---------------------------------------------------------------------
@pytest.mark.parametrize("make, message", [
    (lambda: Uniform(1.0, 1.0), "empty"),
    (lambda: Uniform(2.0, 1.0), "inverted"),
    (lambda: LogUniform(0.0, 1.0), "positive"),
    (lambda: LogUniform(-1.0, 1.0), "positive"),
    (lambda: OneMinusLogUniform(0.9, 1.0), "1 - x must be positive"),
    (lambda: IntUniform(5, 2), "inverted"),
    (lambda: IntUniform(1.5, 3), "integer"),
    (lambda: Choice([]), "non-empty"),
    (lambda: Uniform(0, float("nan")), "finite"),
    (lambda: IntUniform(1, 4, when=("layers", "~", 2)), "operator"),
    (lambda: SearchSpace({"units": IntUniform(1, 4, when=("layers", ">=", 2)), "layers": IntUniform(1, 3)}),
     "defined before"),
    (lambda: SearchSpace({"lr": 0.01}), "distribution"),
])
def test_bad_spaces_are_refused_with_a_clear_error(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_an_objective_that_no_trial_reports_is_refused_before_any_trial_runs():
    search = RandomSearch(build_small, SMALL_SPACE, objective="val_auc", max_trials=2)
    with pytest.raises(ValueError, match="val_auc.*val_accuracy"):
        run_small(search)
    search = RandomSearch(build_small, SMALL_SPACE, objective="val_accuracy", max_trials=2)
    with pytest.raises(ValueError, match="validation_data"):
        x, y = blobs()
        search.run(x, y, epochs=1, verbose=0)
    assert search.records == []


def test_build_model_returning_an_uncompiled_model_is_refused():
    search = RandomSearch(build_uncompiled, {"learning_rate": LogUniform(1e-3, 1e-1)}, max_trials=2)
    with pytest.raises(ValueError, match="uncompiled.*compile"):
        run_small(search)


def test_a_directory_holding_another_search_says_what_differs_and_how_to_start_fresh(tmp_path):
    directory = tmp_path / "search"
    run_small(RandomSearch(build_small, SMALL_SPACE, max_trials=2, seed=1, directory=directory))
    other = dict(SMALL_SPACE, learning_rate=LogUniform(1e-4, 1e-1))
    with pytest.raises(ValueError, match=r"(?s)learning_rate: LogUniform\(low=0.0001.*overwrite=True"):
        RandomSearch(build_small, other, max_trials=2, seed=1, directory=directory)
    fresh = RandomSearch(build_small, other, max_trials=2, seed=1, directory=directory, overwrite=True)
    assert fresh.records == []


@pytest.mark.parametrize("kwargs, message", [
    (dict(max_trials=0), "max_trials"), (dict(seed=-1), "seed"), (dict(pruner="fastest"), "pruner"),
    (dict(objective=""), "objective"), (dict(direction="up"), "direction"),
])
def test_bad_search_arguments_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RandomSearch(build_small, SMALL_SPACE, **kwargs)


def test_bad_run_arguments_are_refused_and_an_inactive_hyperparameter_says_so():
    search = RandomSearch(build_small, SMALL_SPACE, max_trials=2)
    with pytest.raises(ValueError, match="executor"):
        run_small(search, executor="threads")
    with pytest.raises(ValueError, match="workers"):
        run_small(search, executor="processes", workers=0)
    hp = gpudl.tuning.Hyperparameters({"layers": 1})
    with pytest.raises(KeyError, match="units_3.*inactive"):
        hp["units_3"]


def test_workers_are_pinned_one_gpu_each_or_share_the_cpu_cores(monkeypatch):
    from gpudl.frontend.tuning import executors

    monkeypatch.setattr(executors, "cuda_device_count", lambda: 2)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    assert [e["CUDA_VISIBLE_DEVICES"] for e in executors.worker_environments(3)] == ["3", "5", "3"]
    monkeypatch.setattr(executors, "cuda_device_count", lambda: 0)
    cores = len(os.sched_getaffinity(0))
    for workers in (1, 2, 4):
        environments = executors.worker_environments(workers)
        assert len(environments) == workers
        assert all(e["OPENBLAS_NUM_THREADS"] == e["OMP_NUM_THREADS"] == str(max(1, cores // workers))
                   for e in environments)


def test_gpudl_tune_prints_the_table_and_writes_the_plot(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    from gpudl.tools.cli import main

    main(["tune", "--trials", "3", "--zoom-trials", "2", "--epochs", "2", "--executor", "sequential",
          "--directory", str(tmp_path / "run"), "--plot", str(tmp_path / "tune.png")])
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines() if line.split()[:1] in (["0"], ["1"])]
    assert [(row[0], row[1]) for row in rows][:5] == [("0", "0"), ("0", "1"), ("0", "2"), ("1", "0"), ("1", "1")]
    assert "best model on the test set" in out
    assert (tmp_path / "tune.png").read_bytes()[:4] == b"\x89PNG"
    assert len((tmp_path / "run" / "trials.jsonl").read_text().splitlines()) == 5
