"""nas.objectives: one definition per objective, read by config validation, the controller, the report and the CLI."""
from __future__ import annotations

import pytest

from nas.control.config import load_config
from nas.control.engine import Engine, prepare
from nas.errors import ConfigError
from nas.evaluate.evaluate import EvalConfig, evaluate
from nas.evaluate.evaluators import EVALUATORS
from nas.grammar import load_space
from nas.objectives import OBJECTIVES, direction, label, register_objective


@pytest.mark.parametrize("name", list(OBJECTIVES))
def test_every_objective_is_defined_whole_and_accepted_by_a_run_config(name):
    objective = OBJECTIVES.get(name)
    assert objective.name == name and objective.direction in ("maximize", "minimize") and objective.label
    config, _ = load_config({"space": "vision", "trials": 1, "objectives": [name]})
    assert config.directions == [direction(name)]


def test_the_proxy_evaluator_reports_every_built_in_objective():
    spec = load_space("vision").sample(0)
    result = evaluate(spec, EvalConfig.from_options(dataset="digits", budget={"epochs": 0.2, "batch_size": 64},
                                                    device="cpu", latency_repeats=2, latency_warmup=0,
                                                    latency_min_time_s=0, zero_cost=False, train_subset=100))
    assert result.status == "ok", result.reason
    assert set(OBJECTIVES) <= set(result.objectives) == set(evaluate.reports)
    assert result.objectives["val_loss"] == result.curve[-1]["val_loss"] > 0


@pytest.mark.parametrize("name", list(EVALUATORS))
def test_what_an_evaluator_says_it_reports_are_registered_objectives(name):
    reports = getattr(EVALUATORS.get(name), "reports", None)
    assert reports is None or (reports and set(reports) <= set(OBJECTIVES))


def test_an_unknown_objective_is_refused_with_the_known_ones():
    with pytest.raises(ConfigError, match="unknown objective 'acuracy'.*known: accuracy, latency_ms"):
        load_config({"space": "vision", "trials": 1, "objectives": ["acuracy"]})


def test_a_registered_objective_is_accepted_and_labelled():
    name = "test_objective_energy_mj"
    register_objective(name, "minimize", "energy (mJ)", "mJ")
    try:
        config, _ = load_config({"space": "vision", "trials": 1, "objectives": ["accuracy", name]})
        assert config.directions == ["maximize", "minimize"] and label(name) == "energy (mJ)"
        with pytest.raises(TypeError):
            register_objective("test_objective_bad", "up", "bad")
        # accepted by the config, but the default evaluator does not report it: refused before any trial
        with pytest.raises(ConfigError, match=f"objectives: evaluator 'proxy' reports accuracy, .*; not {name}"):
            Engine(prepare({"space": "vision", "dataset": "digits", "trials": 1, "objectives": ["accuracy", name]}))
    finally:
        OBJECTIVES.unregister(name)
    assert label("not_an_objective") == "not_an_objective"
