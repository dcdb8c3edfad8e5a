"""The trial a run picks (nas.control.pick): the rule, its default resolved into a new run's config, kept on resume,
and the one pick that nas export, nas show and the report name."""
from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from nas.control.config import RunConfig, load_config
from nas.control.pick import best_trial, complete_trials, mean_rank, ranked_trial, recorded_proxies, run_pick
from nas.errors import ConfigError
from tests.control.control_helpers import TINY


def _trials(rows, proxies):
    return [SimpleNamespace(number=i, values=[v], user_attrs={"spec": "{}", "zero_cost": z})
            for i, (v, z) in enumerate(zip(rows, proxies))]


def test_mean_rank_averages_each_columns_ranks_and_leaves_out_a_nan():
    assert mean_rank([0.1, 0.3, 0.2], [3.0, 1.0, 2.0]) == [2.0, 2.0, 2.0]
    assert mean_rank([0.1, 0.3, 0.2], [1.0, 3.0, 2.0]) == [1.0, 3.0, 2.0]
    assert mean_rank([0.1, 0.1, 0.5]) == [1.5, 1.5, 3.0]  # ties share the average rank
    out = mean_rank([0.1, float("nan"), 0.5], [5.0, 6.0, 7.0])
    assert out[0] == 1.0 and math.isnan(out[1]) and out[2] == 2.0  # ranked among the rows every column has


def test_the_rank_rule_weighs_the_proxy_as_much_as_the_objective():
    # accuracy ranks 3, 2, 1, 4 (trial 3 the most accurate) and naswot ranks 1, 3, 4, 2 -> means 2, 2.5, 2.5, 3
    trials = _trials([0.80, 0.75, 0.70, 0.85], [{"naswot": 1.0}, {"naswot": 3.0}, {"naswot": 4.0},
                                                 {"naswot": 2.0}])
    assert best_trial(trials, ["accuracy"], ["maximize"])[0].number == 3
    chosen, why = ranked_trial(trials, ["accuracy"], ["maximize"], "naswot")
    assert chosen.number == 3 and why == "best mean rank under accuracy and the zero-cost proxy naswot of 4 " \
                                         "complete trials"
    for t, score in zip(trials, [1.0, 4.0, 3.0, 0.5]):  # naswot ranks 2, 4, 3, 1 -> means 2.5, 3, 2, 2.5
        t.user_attrs["zero_cost"]["naswot"] = score
    chosen, _ = ranked_trial(trials, ["accuracy"], ["maximize"], "naswot")
    assert chosen.number == 1  # not the most accurate: the proxy weighs as much as the objective


def test_a_trial_without_a_finite_proxy_is_left_out_and_none_recorded_falls_back_to_the_best():
    trials = _trials([0.9, 0.5, 0.6], [{"naswot": None}, {"naswot": 2.0}, {"naswot": 1.0}])
    chosen, why = run_pick(trials, ["accuracy"], ["maximize"], "naswot")
    # trial 0, the most accurate, has no naswot; trials 1 and 2 tie on the mean rank: the more accurate wins
    assert chosen.number == 2 and why.endswith("of 2 complete trials; 1 without a finite naswot left out")
    assert recorded_proxies(trials) == ["naswot"]
    chosen, why = run_pick(trials, ["accuracy"], ["maximize"], "synflow")
    assert chosen.number == 0
    assert why == "best accuracy of 3 complete trials (no trial recorded a finite synflow, the run's rank_with)"
    assert run_pick(trials, ["accuracy"], ["maximize"], "none")[0].number == 0
    assert run_pick(trials, ["accuracy"], ["maximize"], None)[0].number == 0  # a run stored before the rule
    assert run_pick([], ["accuracy"], ["maximize"], "naswot") is None


def test_a_trial_that_reused_an_earlier_result_is_not_ranked_twice():
    trials = [SimpleNamespace(number=i, state=SimpleNamespace(name="COMPLETE"), values=[0.5],
                              user_attrs={"spec": "{}", **({"reused_from": 0} if i == 1 else {})}) for i in range(3)]
    trials.append(SimpleNamespace(number=3, state=SimpleNamespace(name="FAIL"), values=None, user_attrs={}))
    study = SimpleNamespace(get_trials=lambda deepcopy=False: trials)
    assert [t.number for t in complete_trials(study)] == [0, 2]


def test_a_minimised_first_objective_ranks_the_other_way():
    trials = _trials([5.0, 1.0, 2.0], [{"naswot": 3.0}, {"naswot": 1.0}, {"naswot": 2.0}])
    # latency ranks (lower is better) 1, 3, 2 and naswot 3, 1, 2: means 2, 2, 2 -> the fastest of the tie, trial 1
    assert ranked_trial(trials, ["latency_ms"], ["minimize"], "naswot")[0].number == 1
    assert best_trial(trials, ["latency_ms"], ["minimize"])[0].number == 1


BASE = {"space": "vision", "trials": 2}


@pytest.mark.parametrize("changes, expected", [
    ({"objectives": ["accuracy"]}, "naswot"),
    ({"objectives": ["accuracy"], "zero_cost": ["naswot", "synflow"]}, "naswot"),
    ({"objectives": ["accuracy"], "zero_cost": ["synflow"]}, "none"),
    ({"objectives": ["accuracy"], "zero_cost": False}, "none"),
    ({"objectives": ["accuracy"], "evaluator": "nb201", "space": "nb201"}, "none"),  # the table's accuracy
    ({"objectives": ["accuracy", "latency_ms"]}, "none"),
    ({"objectives": ["val_loss"]}, "naswot"),  # the loss alone: ranked with NASWOT as the accuracy is
    ({"objectives": ["val_loss"], "zero_cost": ["synflow"]}, "none"),
    ({"objectives": ["val_loss", "params"]}, "none"),
    ({"objectives": ["params"]}, "none"),
    ({"objectives": ["accuracy"], "rank_with": "none"}, "none"),
    ({"objectives": ["accuracy", "params"], "rank_with": "synflow"}, "synflow"),
])
def test_the_default_rule_is_naswot_for_accuracy_or_loss_alone_under_proxy_training(changes, expected):
    assert RunConfig.model_validate({**BASE, **changes}).rank_with_name == expected


def test_a_rank_with_proxy_the_trials_do_not_record_is_a_config_error_naming_the_line(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("space: vision\ntrials: 2\nobjectives: [accuracy]\nzero_cost: [synflow]\nrank_with: naswot\n")
    with pytest.raises(ConfigError, match=r"run.yaml:5: rank_with: naswot is not among the zero-cost proxies the "
                                          r"trials record \(synflow\)"):
        load_config(path)
    path.write_text("space: vision\ntrials: 2\nobjectives: [accuracy]\nzero_cost: false\nrank_with: naswot\n")
    with pytest.raises(ConfigError, match=r"\(none: zero_cost is off\)"):
        load_config(path)


def test_a_run_stores_its_rule_and_export_show_and_report_name_one_pick(tmp_path):
    import nas
    from nas.control.rundir import CONFIG_FILE
    from nas.export import export_from
    from nas.export import read_metrics
    from nas.inspection import run_overview, run_text
    from nas.report import report_data

    config = {**TINY, "name": "one", "objectives": ["accuracy"], "trials": 5, "zero_cost": ["naswot"],
              "sampler": "random"}
    nas.search(config, runs_dir=tmp_path, quiet=True)
    run = tmp_path / "one"
    stored = yaml.safe_load((run / CONFIG_FILE).read_text())
    assert stored["rank_with"] == "naswot"  # the default, resolved into the snapshot

    from nas.control.rundir import RunDir

    complete = complete_trials(RunDir.open(run).load_study())
    expected, why = ranked_trial(complete, ["accuracy"], ["maximize"], "naswot")
    best, _ = best_trial(complete, ["accuracy"], ["maximize"])
    paths = export_from(run, tmp_path / "picked", latency_repeats=0)
    source = read_metrics(paths["dir"])["source"]
    assert source["trial"] == expected.number
    assert source["selected"] == f"{why} (the run's pick, config rank_with; --rank-with none: the best alone)"
    paths = export_from(run, tmp_path / "best", rank_with="none", latency_repeats=0)
    assert read_metrics(paths["dir"])["source"]["trial"] == best.number

    from nas.control.progress import front_report

    last = front_report(RunDir.open(run).load_study(), ["accuracy"], ["maximize"], "naswot").splitlines()[-1]
    assert last.startswith(f"The run's pick (nas export's default): #{expected.number} acc=") and last.endswith(why)
    overview = run_overview(run)
    assert overview["pick"] == {"number": expected.number, "reason": why}
    assert f"  pick: #{expected.number} ({why})" in run_text(overview).splitlines()
    notes = report_data(run, baselines=False).notes
    assert any(n.startswith(f"The run's pick (what `nas export` exports): trial #{expected.number} (accuracy ")
               and n.endswith(f"{why}.") for n in notes)

    # resumed with a config that does not name the rule: the stored one stays
    nas.search({**config, "trials": 6}, runs_dir=tmp_path, resume=True, quiet=True)
    assert yaml.safe_load((run / CONFIG_FILE).read_text())["rank_with"] == "naswot"


def test_a_run_stored_before_the_rule_keeps_the_best_accuracy_on_resume(tmp_path):
    import nas
    from nas.control.rundir import CONFIG_FILE

    config = {**TINY, "name": "old", "objectives": ["accuracy"], "trials": 2, "zero_cost": ["naswot"],
              "sampler": "random"}
    nas.search(config, runs_dir=tmp_path, quiet=True)
    path = Path(tmp_path / "old" / CONFIG_FILE)
    stored = yaml.safe_load(path.read_text())
    del stored["rank_with"]  # as a run made before the key was stored
    path.write_text(yaml.safe_dump(stored, sort_keys=False))
    nas.search({**config, "trials": 3}, runs_dir=tmp_path, resume=True, quiet=True)
    assert yaml.safe_load(path.read_text())["rank_with"] == "none"
