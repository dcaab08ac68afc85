"""Random search, coarse to fine (the course: "try random values, don't use a grid";
then zoom into the region of the best ones and sample more densely there).

    search = RandomSearch(build_model, space, objective="val_accuracy", max_trials=25,
                          directory="runs/digits")
    search.run(x, y, validation_data=(x_dev, y_dev), epochs=40, executor="processes", workers=2)
    search.zoom(top_k=5)            # stage 1: a narrower space around the 5 best
    search.run(x, y, validation_data=(x_dev, y_dev), epochs=40)
    search.summary(); search.plot("search.png"); model = search.best_model()

Trial i of stage s draws its parameters and its seed from default_rng([seed, s, i]), so
a search is reproducible in any executor. With `directory`, every finished trial is
appended to trials.jsonl as it arrives and its model saved; constructing the search
again on that directory resumes it without rerunning those trials.
"""

import csv
import io
import itertools
import json
import math
import os
import shutil
import tempfile
import warnings

import numpy as np

from gpudl.errors import invalid_value
from gpudl.saving import load_model, write_atomically
from gpudl.frontend.tuning.executors import EXECUTORS
from gpudl.frontend.tuning.plotting import plot_search
from gpudl.frontend.tuning.spaces import Choice, SearchSpace
from gpudl.frontend.tuning.trial import PRUNERS, BuildModelError, Objective, TrialSetup, TrialSpec, build_checked

FORMAT, VERSION = "gpudl-search", 1
STAGE_NAMES = ("coarse", "fine")


def stage_name(stage):
    return STAGE_NAMES[stage] if stage < len(STAGE_NAMES) else f"fine {stage}"


def random_specs(space, seed, stage, count):
    """Trial i: seed, then parameters, from default_rng([seed, stage, i])."""
    for index in range(count):
        rng = np.random.default_rng([seed, stage, index])
        trial_seed = int(rng.integers(2**31))
        yield TrialSpec(stage, index, trial_seed, space.sample(rng))


def grid_specs(space, seed, stage, count):
    """The largest full grid of at most `count` points: k values per numeric parameter (evenly
    on its own scale) with k**d * (choices) <= count; inactive conditionals dropped."""
    numeric = [d for d in space.distributions.values() if not isinstance(d, Choice)]
    choices = math.prod(len(d.values) for d in space.distributions.values() if isinstance(d, Choice))
    per_axis = max(1, int(math.floor((count / choices) ** (1 / max(1, len(numeric))) + 1e-9)))
    axes = space.grid(per_axis)
    points, seen = [], set()
    for values in itertools.product(*axes.values()):
        point = {}
        for (name, distribution), value in zip(space.distributions.items(), values):
            if distribution.active(point):
                point[name] = value
        if repr(point) not in seen:
            seen.add(repr(point))
            points.append(point)
    for index, point in enumerate(points[:count]):
        yield TrialSpec(stage, index, int(np.random.default_rng([seed, stage, index]).integers(2**31)), point)


class RandomSearch:
    """Random search over a SearchSpace, stage after stage (coarse, then zoomed).

    Args:
        build_model: function hp -> compiled model; hp maps parameter names to this trial's
            values (conditional parameters appear only when active). Parameters named like
            fit's arguments (batch_size) are also passed to fit.
        space: a SearchSpace, or a dict of name -> distribution.
        objective: the fit-history key to optimize, scored at its best epoch ("val_accuracy").
        direction: "max", "min" or "auto" (max for accuracy-like names).
        max_trials: trials per stage (`run(max_trials=...)` overrides it).
        seed: the search's seed.
        directory: where trials.jsonl, search.json and the trials' models go; a search found
            there is resumed.
        overwrite: delete a search found in `directory` and start fresh.
        pruner: None, "median", "successive_halving", or a MedianPruner/SuccessiveHalving.
    """

    make_specs = staticmethod(random_specs)

    def __init__(self, build_model, space, objective="val_accuracy", max_trials=25, seed=0, directory=None,
                 overwrite=False, pruner=None, direction="auto"):
        where = type(self).__name__
        if not callable(build_model):
            raise invalid_value("build_model", "a function hp -> compiled model", build_model, where)
        if isinstance(max_trials, bool) or not isinstance(max_trials, int) or max_trials < 1:
            raise invalid_value("max_trials", "a positive integer", max_trials, where)
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise invalid_value("seed", "a non-negative integer", seed, where)
        if isinstance(pruner, str):
            if pruner not in PRUNERS:
                raise invalid_value("pruner", f"None, one of {sorted(PRUNERS)}, or a pruner object", pruner, where)
            pruner = PRUNERS[pruner]()
        elif pruner is not None and not hasattr(pruner, "should_stop"):
            raise invalid_value("pruner", f"None, one of {sorted(PRUNERS)}, or a pruner object", pruner, where)
        self.build_model, self.max_trials, self.seed, self.pruner = build_model, max_trials, seed, pruner
        self.objective = objective if isinstance(objective, Objective) else Objective(objective, direction)
        self.stages = [SearchSpace(space)]
        self.stage = 0
        self.records = []
        self._saved_stages = []
        self._best_model_bytes = None
        self.directory = None if directory is None else os.fspath(directory)
        if self.directory is not None:
            self._open_directory(overwrite)

    @property
    def space(self):
        """The space of the current stage."""
        return self.stages[self.stage]

    # -- running ------------------------------------------------------------
    def run(self, x, y, validation_data=None, epochs=10, executor="sequential", workers=2, max_trials=None,
            address=None, verbose=1, **fit_kwargs):
        """Run the current stage's trials that are not finished yet (up to `max_trials`).

        executor: "sequential", "processes" (`workers` processes on this machine) or "ray"
        (`workers` tasks in flight on the Ray cluster at `address`). Other keyword arguments
        go to fit. Returns the results table.
        """
        if executor not in EXECUTORS:
            raise invalid_value("executor", f"one of {sorted(EXECUTORS)}", executor, "run")
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise invalid_value("workers", "a positive integer", workers, "run")
        count = self.max_trials if max_trials is None else max_trials
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise invalid_value("max_trials", "a positive integer", count, "run")
        setup = TrialSetup(self.build_model, x, y, validation_data, {"epochs": epochs, **fit_kwargs},
                           self.objective, self.pruner)
        done = {(r["stage"], r["trial"]) for r in self.records}
        todo = [s for s in self.make_specs(self.space, self.seed, self.stage, count) if (s.stage, s.index) not in done]
        if not todo:
            if verbose:
                print(f"Stage {self.stage} ({stage_name(self.stage)}): all {count} trials are finished.")
            return self.results
        self._check_setup(setup, todo)
        if verbose:
            print(f"Stage {self.stage} ({stage_name(self.stage)}): running {len(todo)} trials "
                  f"({executor}, {workers if executor != 'sequential' else 1} at a time); objective {self.objective}")

        def with_finished_curves(specs):
            for spec in specs:  # advanced only when a worker is free: the curves finished by then
                spec.finished_curves = [r["curve"] for r in self.records if r["status"] != "failed"]
                yield spec

        for record, model_bytes in EXECUTORS[executor](setup, with_finished_curves(todo), workers, address):
            self._add(record, model_bytes)
            if verbose:
                print(self._progress_line(record, count))
        return self.results

    def _check_setup(self, setup, specs):
        """Before any trial: build_model returns a compiled model that takes x and y, and the
        objective is a key that fit will report. Checked on the first trial whose build_model
        does not raise (a trial that raises is recorded as failed when it runs)."""
        for spec in specs:
            try:
                model = build_checked(self.build_model, spec.params, spec.seed)
            except BuildModelError:
                raise
            except Exception:
                continue
            rows = slice(0, 64)
            keys = set(model.evaluate(setup.x[rows], setup.y[rows], return_dict=True))
            has_validation = setup.validation_data is not None or setup.fit_kwargs.get("validation_split")
            reported = keys | ({"val_" + k for k in keys} if has_validation else set())
            if self.objective.name not in reported:
                raise ValueError(f"No trial can report the objective {self.objective.name!r}: fit's logs will "
                                 f"have {sorted(reported)}. Compile the metric it needs, or pass "
                                 f"validation_data for a val_* objective.")
            return

    def _add(self, record, model_bytes):
        self.records.append(record)
        if model_bytes is not None and self.directory is None and record["status"] != "failed":
            if self.best_trial is record:
                self._best_model_bytes = model_bytes
        if self.directory is not None:
            if model_bytes is not None:
                _write_atomically(self._model_path(record), model_bytes)
            with open(os.path.join(self.directory, "trials.jsonl"), "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")
                f.flush()
                os.fsync(f.fileno())

    def _progress_line(self, record, count):
        if record["status"] == "failed":
            outcome = f"failed: {record['error']}"
        else:
            outcome = (f"{self.objective.name}={record['objective']:.4f} ({record['epochs']} epochs"
                       f"{', pruned' if record['status'] == 'pruned' else ''}, {record['seconds']:.1f}s)")
        params = ", ".join(f"{k}={_format(v)}" for k, v in record["params"].items())
        return f"  trial {record['trial'] + 1:>3}/{count} {outcome}  {params}"

    # -- coarse to fine -------------------------------------------------------
    def zoom(self, top_k=5):
        """Start the next stage in a space narrowed around the `top_k` best trials so far (each
        parameter on its own scale, inside the original bounds); returns that space."""
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
            raise invalid_value("top_k", "a positive integer", top_k, "zoom")
        best = [r for r in self._ranked() if r["stage"] <= self.stage][:top_k]  # a resumed search may hold later stages
        if not best:
            raise ValueError("zoom needs finished trials to zoom around: call run() first.")
        narrowed = self.stages[0].zoom([r["params"] for r in best])
        next_stage = self.stage + 1
        if next_stage < len(self._saved_stages) and self._saved_stages[next_stage] != narrowed:
            raise ValueError(f"The search in {self.directory} zoomed stage {next_stage} into another space than "
                             f"this run does: {'; '.join(self._saved_stages[next_stage].differences(narrowed))}. "
                             f"Use another directory, or overwrite=True to start fresh.")
        del self.stages[next_stage:]
        self.stages.append(narrowed)
        self.stage = next_stage
        self._write_meta()
        return narrowed

    # -- results ------------------------------------------------------------
    def _ranked(self):
        scored = [r for r in self.records if r["status"] != "failed"]
        return sorted(scored, key=lambda r: (self.objective.sort_key(r["objective"]), r["stage"], r["trial"]))

    @property
    def best_trial(self):
        """The record of the best trial so far (None before any succeeds)."""
        ranked = self._ranked()
        return ranked[0] if ranked else None

    @property
    def best_params(self):
        best = self.best_trial
        if best is None:
            raise ValueError("No trial has finished successfully yet.")
        return dict(best["params"])

    def best_model(self):
        """The best trial's model, with the weights of its best epoch (compiled, ready to evaluate)."""
        best = self.best_trial
        if best is None:
            raise ValueError("No trial has finished successfully yet.")
        if self.directory is not None:
            return load_model(self._model_path(best))
        with tempfile.TemporaryDirectory(prefix="gpudl-best-") as directory:
            path = os.path.join(directory, "model.npz")
            _write_atomically(path, self._best_model_bytes)
            return load_model(path)

    @property
    def results(self):
        """A ResultsTable: one row per finished trial, in the order they finished."""
        names = list(dict.fromkeys(n for space in self.stages for n in space.distributions))
        return ResultsTable(self.records, names, self.objective)

    def summary(self, num_trials=10, print_fn=print):
        """KerasTuner's results_summary: the best trials with their parameters and score."""
        ranked = self._ranked()
        counts = {s: sum(r["status"] == s for r in self.records) for s in ("ok", "pruned", "failed")}
        print_fn("Results summary")
        print_fn(f"Results in {self.directory or '(memory)'}")
        print_fn(f"Showing {min(num_trials, len(ranked))} best trials of {len(self.records)} "
                 f"({counts['ok']} finished, {counts['pruned']} pruned, {counts['failed']} failed)")
        print_fn(str(self.objective))
        for record in ranked[:num_trials]:
            print_fn("")
            print_fn(f"Trial {record['trial']} of stage {record['stage']} ({stage_name(record['stage'])}) summary")
            print_fn("Hyperparameters:")
            for name, value in record["params"].items():
                print_fn(f"{name}: {_format(value)}")
            print_fn(f"Score: {record['objective']:.6g} (epoch {record['best_epoch']} of {record['epochs']})")

    def plot(self, path):
        """The objective against each parameter on its own scale (log axes for log parameters,
        1 - beta on a log axis for OneMinusLogUniform), one colour per stage; writes a PNG."""
        stage_names = {record["stage"]: stage_name(record["stage"]) for record in self.records}
        plot_search(self.stages[0], self.records, self.objective.name, stage_names, os.fspath(path))

    # -- persistence ------------------------------------------------------------
    def _model_path(self, record):
        return os.path.join(self.directory, "models", f"stage{record['stage']}_trial{record['trial']:04d}.npz")

    def _meta(self):
        return {"format": FORMAT, "version": VERSION, "search": type(self).__name__, "seed": self.seed,
                "objective": self.objective.get_config(), "stages": [s.get_config() for s in self.stages]}

    def _write_meta(self):
        if self.directory is not None:
            meta = self._meta()  # stages zoomed in an earlier run and not yet reached again are kept
            meta["stages"] += [s.get_config() for s in self._saved_stages[len(self.stages):]]
            _write_atomically(os.path.join(self.directory, "search.json"), json.dumps(meta, indent=1).encode())

    def _open_directory(self, overwrite):
        meta_path = os.path.join(self.directory, "search.json")
        if overwrite and os.path.exists(self.directory):
            for name in ("search.json", "trials.jsonl"):
                if os.path.exists(os.path.join(self.directory, name)):
                    os.remove(os.path.join(self.directory, name))
            shutil.rmtree(os.path.join(self.directory, "models"), ignore_errors=True)
        os.makedirs(os.path.join(self.directory, "models"), exist_ok=True)
        if not os.path.exists(meta_path):
            self._write_meta()
            return
        with open(meta_path, encoding="utf-8") as f:
            saved = json.load(f)
        if saved.get("format") != FORMAT:
            raise ValueError(f"{meta_path} is not a gpudl search file.")
        saved_stages = [SearchSpace.from_config(c) for c in saved["stages"]]
        differences = []
        for key, mine in (("search", type(self).__name__), ("seed", self.seed),
                          ("objective", self.objective.get_config())):
            if saved[key] != mine:
                differences.append(f"{key}: {mine!r} here, {saved[key]!r} there")
        differences += self.stages[0].differences(saved_stages[0])
        if differences:
            raise ValueError(f"The directory {self.directory!r} holds a search with a different setup:\n  "
                             + "\n  ".join(differences)
                             + "\nTo start fresh, use another directory or pass overwrite=True "
                               "(which deletes the trials there).")
        self._saved_stages = saved_stages
        self.records = _read_trials(os.path.join(self.directory, "trials.jsonl"))
        per_stage = {}
        for record in self.records:
            per_stage[record["stage"]] = per_stage.get(record["stage"], 0) + 1
        print(f"Resuming the search in {self.directory}: {len(self.records)} finished trials loaded "
              f"({', '.join(f'stage {s}: {n}' for s, n in sorted(per_stage.items())) or 'none'}); "
              f"they will not be run again.")


class GridSearch(RandomSearch):
    """Grid search, only to show the course's point: on the same budget a grid tries few
    distinct values of each parameter (k per axis), random search tries as many as trials."""

    make_specs = staticmethod(grid_specs)


def compare_grid_vs_random(space, max_trials=25, seed=0):
    """How many distinct values of each parameter a grid and a random search try on the same
    budget: {name: {"grid": n, "random": n}} (no model is trained)."""
    space = SearchSpace(space)
    counts = {}
    for kind, make_specs in (("grid", grid_specs), ("random", random_specs)):
        specs = list(make_specs(space, seed, 0, max_trials))
        for name in space.distributions:
            counts.setdefault(name, {})[kind] = len({repr(s.params[name]) for s in specs if name in s.params})
    return counts


class ResultsTable:
    """The trials as rows: stage, trial, status, objective, best epoch, epochs run, seconds and
    each parameter ("" when inactive). Prints as a table; exports CSV or JSON."""

    def __init__(self, records, parameter_names, objective):
        self.objective = objective
        self.columns = (["stage", "trial", "status", objective.name, "best_epoch", "epochs", "seconds"]
                        + parameter_names)
        self.rows = [{"stage": r["stage"], "trial": r["trial"], "status": r["status"],
                      objective.name: r["objective"], "best_epoch": r["best_epoch"], "epochs": r["epochs"],
                      "seconds": round(r["seconds"], 3), **{n: r["params"].get(n, "") for n in parameter_names}}
                     for r in records]

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, index):
        return self.rows[index]

    def __iter__(self):
        return iter(self.rows)

    def column(self, name):
        return [row[name] for row in self.rows]

    def __str__(self):
        cells = [self.columns] + [[_format(row[c]) for c in self.columns] for row in self.rows]
        widths = [max(len(str(line[i])) for line in cells) for i in range(len(self.columns))]
        return "\n".join("  ".join(str(v).rjust(w) for v, w in zip(line, widths)) for line in cells)

    def to_csv(self, path=None):
        """Write CSV to `path` (or return it as a string)."""
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, self.columns)
        writer.writeheader()
        writer.writerows(self.rows)
        return _text_out(buffer.getvalue(), path)

    def to_json(self, path=None):
        """Write the rows as a JSON list to `path` (or return it as a string)."""
        return _text_out(json.dumps(self.rows, indent=1), path)


def _text_out(text, path):
    if path is None:
        return text
    _write_atomically(os.fspath(path), text.encode("utf-8"))
    return None


def _format(value):
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def _read_trials(path):
    """The records of trials.jsonl; a torn last line (a crash mid-write) is skipped with a warning."""
    if not os.path.exists(path):
        return []
    records = []
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    for number, line in enumerate(lines, 1):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if number != len(lines):
                raise ValueError(f"{path}: line {number} is not valid JSON; the file is damaged.") from None
            warnings.warn(f"{path}: the last line is incomplete (a crash while writing?); that trial will run again.")
    return records


def _write_atomically(path, data):
    write_atomically(path, lambda f: f.write(data))
