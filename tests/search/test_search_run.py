"""A search in this process: the budget is checked before training, trials are ordinary run directories,
pruning comes from the per-epoch events, best.yaml retrains to the trial's metric, several objectives give
a non-dominated front."""
from __future__ import annotations

import json
import os

import pytest

import layerforge as lf
from layerforge.search.events import SearchCallback
from tests.search.conftest import iris_search

pytest.importorskip("optuna")

BUDGET = """
search:
  objective: val_accuracy
  trials: 5
  sampler: random
  seed: 2                      # draws h1.units 64, 4, 64, 8, 4
  budget: {max_params: 200}
  space:
    model.layers.h1.units: {space: choice, categories: [4, 8, 64]}
    train.optimizer.lr: {space: loguniform, lower: 3e-3, upper: 3e-2}
"""  # h1 with 64 units: 4*64+64 + 64*8+8 + 8*3+3 = 867 parameters, over budget; with 4: 87, with 8: 139


class Events(SearchCallback):
    def __init__(self) -> None:
        self.rows, self.info, self.result = [], None, None

    def on_start(self, info) -> None:
        self.info = info

    def on_trial(self, row) -> None:
        self.rows.append(row)

    def on_end(self, result) -> None:
        self.result = result


@pytest.fixture(scope="module")
def budget_study(tmp_path_factory):
    """A 5-trial random search where some samples are over the parameter budget; train calls are counted."""
    from layerforge.engine import api

    tmp = tmp_path_factory.mktemp("budget")
    spec = iris_search(tmp, BUDGET)
    calls = []
    real = api.train

    def counting(*args, **kwargs):
        calls.append(kwargs.get("out"))
        return real(*args, **kwargs)

    cwd = os.getcwd()
    os.chdir(tmp)
    api.train = counting
    try:
        events = Events()
        result = lf.search(spec, callbacks=[events])
    finally:
        api.train = real
        os.chdir(cwd)
    return tmp, result, events, calls


def test_an_over_budget_trial_is_pruned_before_any_training(budget_study):
    tmp, result, _, calls = budget_study
    over = [t for t in result.trials if t.params is not None and t.params > 200]
    within = [t for t in result.trials if t.params is not None and t.params <= 200]
    assert over and within, [(t.number, t.params) for t in result.trials]  # the seed gives both kinds
    for t in over:
        assert t.state == "pruned" and t.params == 867
        assert t.reason == "over budget: params 867 > max_params 200"
        assert t.run_dir is None and not (tmp / "runs/iris_search/search-default" / f"trial-{t.number}").exists()
    for t in within:
        assert t.state == "complete" and (tmp / t.run_dir / "run.json").is_file()
    assert sorted(str(c) for c in calls) == sorted(t.run_dir for t in within)  # trained exactly these
    assert result.counts["over_budget"] == len(over) and result.counts["complete"] == len(within)


def test_each_trial_is_an_ordinary_run_directory_with_its_sampled_spec(budget_study):
    tmp, result, events, _ = budget_study
    t = result.best[0]
    run = lf.load_spec(tmp / t.run_dir / "spec.yaml")[0]  # the front door reads it like any spec
    assert run.search is None and run.model.layers[0].units == t.sampled["model.layers.h1.units"]
    assert run.train.optimizer.lr == t.sampled["train.optimizer.lr"]
    assert run.train.early_stopping.monitor == "val_accuracy"  # auto became the objective
    assert [r.state for r in events.rows if r.number == t.number][-1] == "complete"
    assert {r.state for r in events.rows} >= {"running", "complete", "pruned"}
    assert events.info.objectives == [("val_accuracy", "max")] and events.info.sampler == "random"
    report = json.loads((tmp / result.study_dir / "report.json").read_text())
    assert report["best"][0]["number"] == t.number and len(report["trials"]) == 5
    assert {p.name for p in result.plots} == {"history.png", "pareto.png", "importances.png"}


def test_best_yaml_retrains_to_the_same_metric_with_the_same_seed(budget_study, tmp_path):
    tmp, result, _, _ = budget_study
    best = result.best[0]
    assert result.best_spec is not None and "search:" not in (tmp / result.best_spec).read_text()
    again = lf.train(tmp / result.best_spec, out=tmp_path / "again")
    assert again.best["val_accuracy"] == best.values[0]
    assert again.best["val_loss"] == pytest.approx(best.metrics["val_loss"], rel=1e-6)


def test_the_pruner_stops_a_trial_after_an_epoch_and_its_run_says_pruned(tmp_path, monkeypatch):
    import optuna

    from layerforge.search.api import prepare

    monkeypatch.chdir(tmp_path)
    spec = iris_search(tmp_path, "search:\n  objective: val_accuracy\n  space:\n"
                                 "    train.optimizer.lr: {space: uniform, lower: 0.01, upper: 0.02}\n", epochs=3)
    _, runner, study_dir = prepare(spec, None, None, "p")
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.ThresholdPruner(lower=2.0))  # always
    trial = study.ask()
    outcome = runner.run(trial)
    assert outcome.state == "pruned" and outcome.reason == "pruned after epoch 1"
    run = json.loads((study_dir.trial(trial.number) / "run.json").read_text())
    assert run["status"] == "pruned" and run["epochs_run"] == 1
    assert study.trials[0].intermediate_values.keys() == {1}  # reported from the epoch event


MULTI = """
search:
  objective: [val_accuracy: max, params: min]
  trials: 6
  space:
    model.layers.h1.units: {space: choice, categories: [2, 4, 8, 16]}
    model.layers.h2: {space: choice, categories: [{type: dense, units: 8, activation: relu}, null]}
    train.optimizer.lr: {space: loguniform, lower: 3e-3, upper: 3e-2}
"""


def test_several_objectives_give_a_front_that_no_trial_dominates(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = lf.search(iris_search(tmp_path, MULTI, epochs=1))
    done = [t for t in result.trials if t.state == "complete"]
    assert len(done) == 6 and result.objectives == [("val_accuracy", "max"), ("params", "min")]

    def dominates(a, b):  # a at least as good on both, better on one
        (acc_a, p_a), (acc_b, p_b) = a.values, b.values
        return acc_a >= acc_b and p_a <= p_b and (acc_a > acc_b or p_a < p_b)

    front = {t.number for t in result.best}
    assert front
    for t in done:
        beaten = any(dominates(o, t) for o in done)
        assert beaten == (t.number not in front), (t.number, t.values)
    assert result.best[0].values[0] == max(t.values[0] for t in result.best)  # best accuracy first
    assert (tmp_path / result.study_dir / "plots" / "pareto.png").is_file()
    assert [t.params for t in done] == [t.values[1] for t in done]  # params as an objective: the graph's count


def test_a_latency_budget_times_the_untrained_model_and_prunes_before_training(tmp_path, monkeypatch):
    import optuna

    from layerforge.search.api import prepare

    monkeypatch.chdir(tmp_path)
    spec = iris_search(tmp_path, "search:\n  budget: {max_latency_ms: 1.0e-6}\n  space:\n"
                                 "    model.layers.h1.units: {space: choice, categories: [4, 8]}\n")
    _, runner, study_dir = prepare(spec, ["profile.min_run_time=0.001", "profile.warmup=1"], None, "lat")
    outcome = runner.run(optuna.trial.FixedTrial({"model.layers.h1.units": 4}))
    assert outcome.state == "pruned" and outcome.reason.startswith("over budget: latency_ms ")
    assert 0 < outcome.attrs["latency_ms"] < 1000  # a real timing, in milliseconds
    assert not study_dir.path.exists()


def test_a_dead_workers_trial_is_queued_again_once_and_an_interrupted_one_always():
    import optuna

    from layerforge.search.study import requeue

    study = optuna.create_study()
    first = study.ask()
    first.suggest_int("x", 0, 9)
    requeue(study, study.tell(first, state=optuna.trial.TrialState.FAIL), once=True)
    again = study.ask()  # the queued one: same parameters
    assert again.params == first.params and again.user_attrs["retry_of"] == first.number
    frozen = study.tell(again, state=optuna.trial.TrialState.FAIL)
    requeue(study, frozen, once=True)  # a re-run that dies too: not a third time
    assert not [t for t in study.trials if t.state.name == "WAITING"]
    requeue(study, frozen, once=False)  # Ctrl-C is never the trial's fault
    waiting = [t for t in study.trials if t.state.name == "WAITING"]
    assert len(waiting) == 1 and waiting[0].user_attrs["retry_of"] == first.number


@pytest.mark.parametrize("objectives, sampler, pruner", [
    ("val_accuracy", "TPESampler", "MedianPruner"),
    ("[val_accuracy, flops]", "NSGAIISampler", "NopPruner"),
    ("params", "TPESampler", "NopPruner"),  # nothing reported per epoch: nothing to prune on
])
def test_auto_sampler_and_pruner_follow_the_objectives(tmp_path, objectives, sampler, pruner):
    from layerforge.search.api import prepare
    from layerforge.search.study import make_pruner, make_sampler

    spec = iris_search(tmp_path, f"search:\n  objective: {objectives}\n  space:\n"
                                 "    model.layers.h1.units: {space: choice, categories: [4, 8]}\n")
    base, runner, _ = prepare(spec, None, None, "s")
    assert type(make_sampler(base.search, len(runner.goals), 0, 20)).__name__ == sampler
    assert type(make_pruner(base.search, runner.goals, base.train.epochs)).__name__ == pruner


def test_an_objective_the_runs_do_not_report_is_a_located_error(tmp_path):
    from layerforge.errors import SpecError
    from layerforge.search.api import prepare

    spec = iris_search(tmp_path, "search:\n  objective: [val_acuracy: max, flops: min]\n  space:\n"
                                 "    model.layers.h1.units: {space: choice, categories: [4, 8]}\n")
    with pytest.raises(SpecError) as e:
        prepare(spec, None, None, "s")
    (issue,) = e.value.issues
    assert "objective 'val_acuracy' is not reported" in issue.message and issue.hint == "did you mean 'val_accuracy'?"
    assert issue.line == 13


def test_a_timeout_that_has_passed_starts_no_trial_and_still_reports(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = iris_search(tmp_path, "search:\n  space:\n    model.layers.h1.units: {space: choice, categories: [4, 8]}\n")
    result = lf.search(spec, timeout=1e-9)
    assert result.status == "timeout" and result.trials == [] and result.best == [] and result.best_spec is None
    assert json.loads((tmp_path / result.study_dir / "report.json").read_text())["status"] == "timeout"
    again = lf.search(spec, resume=True, trials=1)  # the study exists: --resume continues it
    assert again.status == "completed" and [t.state for t in again.trials] == ["complete"]
