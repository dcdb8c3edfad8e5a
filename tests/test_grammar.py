"""Grammar semantics: conditions, sharing, overrides, multipliers, size, mutation, suggest adapters."""
from __future__ import annotations

import itertools
import random

import pytest

from nas.grammar import RandomSuggest, ReplaySuggest, Space
from tests.conftest import SPACES

TINY = """
name: tiny
input: image
stem: {type: conv, width: 8, kernel_size: 3}
cell:
  mixer:
    conv: {kernel_size: [3, 5]}
    dwsep: {kernel_size: 3}
  skip: [none, dense]
  growth_rate: [4, 8]
stages:
  - {width: [8, 16], depth: {int: [1, 2]}}
"""


def brute_force_count(space: Space) -> int:
    """Enumerate every combination of every parameter's values and count the distinct specs."""
    params = [p for p in space.params]
    specs = set()

    def walk(i, values):
        if i == len(params):
            specs.add(space.replay(values).hash())
            return
        p = params[i]
        if not p.active(values):
            walk(i + 1, values)
            return
        for v in p.domain.values():
            walk(i + 1, {**values, p.name: v})

    walk(0, {})
    return len(specs)


def test_size_matches_brute_force_on_a_small_space():
    space = Space.from_text(TINY)
    # width 2 x depth 2 x mixer (conv: 2 kernels + dwsep: 1) x skip (none + dense x 2 growth rates)
    assert space.size().discrete == 2 * 2 * 3 * 3 == brute_force_count(space)


def test_size_with_shared_and_conditional_keys_matches_brute_force():
    text = TINY.replace("  skip: [none, dense]", "  shared: [skip]\n  skip: [none, dense]") + \
        "  - {width: 8, depth: 1, cell: {mixer: {glu: {expansion_ratio: [2, 4]}}}}\n"
    space = Space.from_text(text)
    assert space.size().discrete == brute_force_count(space)


def test_conditional_parameters_appear_only_when_active():
    space = Space.from_text(TINY)
    for seed in range(40):
        values = space.assignment(space.sample(seed))
        assert ("s1.conv.kernel_size" in values) == (values["s1.mixer"] == "conv")
        assert ("s1.growth_rate" in values) == (values["s1.skip"] == "dense")


def test_shared_choice_is_the_same_in_every_stage_and_per_stage_varies():
    text = """
name: shared
input: image
stem: {type: conv, width: 8, kernel_size: 3}
cell:
  shared: [norm]
  mixer: [conv, dwsep, mbconv]
  norm: [batch, layer, group]
  act: [relu, gelu, silu]
stages:
  - {width: 8, depth: 1}
  - {width: 8, depth: 1}
  - {width: 8, depth: 1}
"""
    space = Space.from_text(text)
    specs = [space.sample(seed) for seed in range(60)]
    assert all(len({s.norm for s in spec.stages}) == 1 for spec in specs)
    assert any(len({s.act for s in spec.stages}) > 1 for spec in specs)
    assert any(len({s.mixer.type for s in spec.stages}) > 1 for spec in specs)
    assert "cell.norm" in {p.name for p in space.params} and "s1.norm" not in {p.name for p in space.params}


def test_stage_override_narrows_the_productions():
    space = Space.from_text(TINY + "  - {width: 8, depth: 1, cell: {mixer: [attention, ssm]}}\n")
    for seed in range(30):
        spec = space.sample(seed)
        assert spec.stages[0].mixer.type in ("conv", "dwsep")
        assert spec.stages[1].mixer.type in ("attention", "ssm")


def test_float_and_log_ranges():
    text = TINY + "head: {dropout: {float: [0.0, 0.5]}}\nregularization: {drop_path: {float: [0.01, 0.3], log: true}}\n"
    space = Space.from_text(text)
    drops = [space.sample(s).head.dropout for s in range(50)]
    assert all(0.0 <= d <= 0.5 for d in drops) and len(set(drops)) > 40
    assert set(space.size().continuous) == {"head.dropout", "regularization.drop_path"}
    paths = [space.sample(s).drop_path for s in range(200)]
    assert sum(p < 0.0866 for p in paths) > 60  # log-uniform: about half below the geometric mean


def test_compound_scaling_ties_the_multipliers():
    text = TINY + "multipliers: {compound: {phi: [0, 1, 2], alpha: 1.2, beta: 1.1, gamma: 1.15}}\n"
    space = Space.from_text(text)
    for seed in range(20):
        spec = space.sample(seed)
        phi = space.assignment(spec)["multipliers.phi"]
        assert spec.depth_multiplier == pytest.approx(1.2**phi, abs=1e-6)
        assert spec.width_multiplier == pytest.approx(1.1**phi, abs=1e-6)
        assert spec.resolution_multiplier == pytest.approx(1.15**phi, abs=1e-6)


@pytest.mark.parametrize("path", SPACES, ids=[p.stem for p in SPACES])
def test_mutation_changes_exactly_one_choice(path):
    space = Space.load(path)
    rng = random.Random(0)
    for seed in range(60):
        parent = space.sample(seed)
        child = space.mutate(parent, rng)
        assert space.contains(child)
        before, after = space.assignment(parent), space.assignment(child)
        common = set(before) & set(after)
        changed = [k for k in common if before[k] != after[k]]
        assert len(changed) == 1, (changed, parent.summary(), child.summary())
        # parameters that appear or disappear are conditional on the one changed choice
        for name in set(before) ^ set(after):
            p = next(p for p in space.params if p.name == name)
            assert any(cond in changed or cond in set(before) ^ set(after) for cond, _ in p.when), name


def test_replay_needs_every_active_value():
    space = Space.from_text(TINY)
    values = space.assignment(space.sample(0))
    values.pop("s1.width")
    with pytest.raises(Exception, match="s1.width"):
        space.replay(values)
    spec = space.sample(ReplaySuggest(values, fallback=RandomSuggest(1)))
    assert spec.stages[0].width in (8, 16)


def test_optuna_define_by_run_sees_only_active_parameters():
    optuna = pytest.importorskip("optuna")
    from nas.control.suggest import OptunaSuggest

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = Space.load(SPACES[0].parent / "vision.yaml")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(15):
        trial = study.ask()
        spec = space.sample(OptunaSuggest(trial))
        study.tell(trial, 0.0)
        stored = study.trials[-1].params
        assert set(stored) == {k for k, v in space.assignment(spec).items()
                               if next(p for p in space.params if p.name == k).is_choice}
        assert space.replay({**space.assignment(spec), **stored}) == spec


def test_enumerated_choices_are_the_report_columns():
    space = Space.from_text(TINY)
    names = [p.name for p in space.choices()]
    assert names == ["s1.depth", "s1.width", "s1.mixer", "s1.conv.kernel_size", "s1.skip", "s1.growth_rate"]
    assert all(not p.is_choice for p in space.params if p.name not in names)


def test_random_suggest_covers_every_value():
    space = Space.from_text(TINY)
    seen = {(s.stages[0].mixer.type, s.stages[0].skip, s.stages[0].width, s.stages[0].depth)
            for s in (space.sample(i) for i in range(300))}
    assert seen == set(itertools.product(["conv", "dwsep"], ["none", "dense"], [8, 16], [1, 2]))
