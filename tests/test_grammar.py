"""Grammar semantics: conditions, sharing, overrides, multipliers, size, mutation, suggest adapters."""
from __future__ import annotations

import itertools
import random

import pytest

from nas.errors import SpaceError
from nas.grammar import RandomSuggest, ReplaySuggest, Space
from nas.spec import ArchSpec
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


@pytest.mark.parametrize("path", SPACES, ids=[p.stem for p in SPACES])
def test_a_mutated_parent_gives_the_same_children_from_the_cache_as_fresh(path):
    space = Space.load(path)
    parents = [space.sample(seed) for seed in range(5)]
    first = [space.mutate(parent, seed) for seed, parent in enumerate(parents)]  # fills the cache
    for _ in range(3):
        again = [space.mutate(parent, seed) for seed, parent in enumerate(parents)]
        assert [c.canonical() for c in again] == [c.canonical() for c in first]
    fresh = Space.load(path)  # an empty cache
    assert [fresh.mutate(parent, seed).canonical() for seed, parent in enumerate(parents)] == \
        [c.canonical() for c in first]
    assert all(space.assignment(p) == fresh.assignment(p) for p in parents)  # mutating did not touch the cache


def test_a_condition_on_strings_and_one_on_numbers_hold_as_same_value_says():
    from nas.grammar.domains import Domain, Param

    domain = Domain("categorical", choices=("x", "y"))
    on_type = Param("a", domain, ("stem", "type"), when=(("mixer", ("conv", "mbconv")),))
    assert on_type.active({"mixer": "mbconv"}) and not on_type.active({"mixer": "ssm"})
    assert not on_type.active({}) and not on_type.active({"mixer": 1})
    on_number = Param("b", domain, ("stem", "width"), when=(("depth", (1, 2.0)), ("gate", (True,))))
    assert on_number.active({"depth": 2, "gate": True}) and on_number.active({"depth": 1.0 + 1e-12, "gate": True})
    assert not on_number.active({"depth": 2, "gate": 1})  # a bool is not a number here
    assert not on_number.active({"depth": 3, "gate": True})


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


# -- upper bounds of the structural keys ---------------------------------------------------------------------------

# A space that names every bounded key once, each on its own line (the trailing comments are the line numbers).
BOUNDED = """\
name: bounded                                                     #  1
input: image                                                      #  2
stem: {type: [conv, patchify], width: 8, kernel_size: 3,          #  3
       patch_size: 2}                                             #  4
multipliers: {width: 1.0,                                         #  5
              depth: 1.0,                                         #  6
              resolution: 1.0}                                    #  7
cell:                                                             #  8
  mixer:                                                          #  9
    conv: {kernel_size: 3}                                        # 10
    bottleneck: {reduction_ratio: 4}                              # 11
    mbconv: {expansion_ratio: 4}                                  # 12
    transformer: {heads: 2, mlp_ratio: 4}                         # 13
    ssm: {state_size: 16, conv_kernel: 4}                         # 14
  skip: [residual, dense]                                         # 15
  growth_rate: 16                                                 # 16
  norm: [batch, group]                                            # 17
  norm_groups: 8                                                  # 18
  se_reduction: 4                                                 # 19
stages:                                                           # 20
  - {width: 8,                                                    # 21
     depth: 1}                                                    # 22
"""

# bounded field -> (the text that sets it in BOUNDED, its line, the dotted key the error names)
BOUNDED_KEYS = {
    "depth": ("depth: 1", 22, "stages.0.depth"),
    "width": ("width: 8", 21, "stages.0.width"),
    "kernel_size": ("kernel_size: 3", 10, "cell.mixer.conv.kernel_size"),
    "patch_size": ("patch_size: 2", 4, "stem.patch_size"),
    "heads": ("heads: 2", 13, "cell.mixer.transformer.heads"),
    "mlp_ratio": ("mlp_ratio: 4", 13, "cell.mixer.transformer.mlp_ratio"),
    "expansion_ratio": ("expansion_ratio: 4", 12, "cell.mixer.mbconv.expansion_ratio"),
    "reduction_ratio": ("reduction_ratio: 4", 11, "cell.mixer.bottleneck.reduction_ratio"),
    "state_size": ("state_size: 16", 14, "cell.mixer.ssm.state_size"),
    "conv_kernel": ("conv_kernel: 4", 14, "cell.mixer.ssm.conv_kernel"),
    "growth_rate": ("growth_rate: 16", 16, "cell.growth_rate"),
    "norm_groups": ("norm_groups: 8", 18, "cell.norm_groups"),
    "se_reduction": ("se_reduction: 4", 19, "cell.se_reduction"),
    "width_multiplier": ("width: 1.0", 5, "multipliers.width"),
    "depth_multiplier": ("depth: 1.0", 6, "multipliers.depth"),
    "resolution_multiplier": ("resolution: 1.0", 7, "multipliers.resolution"),
}


def _bounded_with(field: str, value: str) -> str:
    """BOUNDED with the value of ``field`` replaced by ``value`` (YAML text), on its own line."""
    text, line, _ = BOUNDED_KEYS[field]
    lines = BOUNDED.splitlines(keepends=True)
    assert lines[line - 1].count(text) == 1, (field, lines[line - 1])
    lines[line - 1] = lines[line - 1].replace(text, f"{text.split(':')[0]}: {value}")
    return "".join(lines)


def test_every_bounded_field_is_tested_and_the_base_is_valid():
    from nas.catalog import MAX_VALUE

    assert set(BOUNDED_KEYS) == set(MAX_VALUE)
    Space.from_text(BOUNDED)


@pytest.mark.parametrize("field", sorted(BOUNDED_KEYS))
def test_structural_values_have_an_upper_bound(field, tmp_path):
    from nas.catalog import MAX_VALUE
    from nas.errors import SpaceError

    limit = MAX_VALUE[field]
    _, line, key = BOUNDED_KEYS[field]
    odd = field in ("kernel_size",)  # kernel sizes must be odd: step past the bound by 2
    over = limit + (2 if odd else 1)
    number = (lambda v: f"{v:g}") if isinstance(limit, float) else str
    Space.from_text(_bounded_with(field, number(limit)))  # the bound itself is allowed
    for text in (number(over), f"[1, {number(over)}]", f"{{{'int' if isinstance(limit, int) else 'float'}: "
                                                        f"[1, 99999999999999999999]}}"):
        path = tmp_path / "space.yaml"
        path.write_text(_bounded_with(field, text))
        with pytest.raises(SpaceError) as info:
            Space.load(path)
        e = info.value
        assert (e.file, e.line, e.key) == (str(path), line, key), e.one_line()
        assert f"at most {limit:g}" in e.message


@pytest.mark.parametrize("shape, classes, key", [
    ("[3, 4097, 32]", 10, "constraints.reference_input.shape"),
    ("[3, 32, 99999999999999999999]", 10, "constraints.reference_input.shape"),
    ("[3, 32, 32]", 10**7, "constraints.reference_input.num_classes"),
])
def test_the_reference_input_has_an_upper_bound(shape, classes, key):
    from nas.errors import SpaceError

    text = BOUNDED + f"constraints: {{max_params: 1000, reference_input: {{shape: {shape}, num_classes: {classes}}}}}\n"
    with pytest.raises(SpaceError) as info:
        Space.from_text(text, file="s.yaml")
    assert (info.value.line, info.value.key) == (23, key)


def test_shipped_spaces_are_within_the_bounds():
    for path in SPACES:
        Space.load(path)


# -- canonical form: what a run's fingerprint compares -----------------------------------------------------------

SAME_AS_TINY = {
    "comments": "# a note\n" + TINY.replace("input: image", "input: image   # images only"),
    "blank lines and indentation": TINY.replace("cell:\n  mixer:\n    conv", "\n\ncell:\n    mixer:\n        conv")
    .replace("    dwsep:", "        dwsep:").replace("  skip:", "    skip:")
    .replace("  growth_rate:", "    growth_rate:"),
    "block style": TINY.replace("stem: {type: conv, width: 8, kernel_size: 3}",
                                "stem:\n  type: conv\n  width: 8\n  kernel_size: 3"),
    "quoting": TINY.replace("type: conv,", "type: 'conv',"),
    "stem key order": TINY.replace("{type: conv, width: 8, kernel_size: 3}", "{kernel_size: 3, width: 8, type: conv}"),
    "top key order": TINY.replace("name: tiny\ninput: image\n", "input: image\nname: tiny\n"),
    "description": TINY + "description: eight small nets\n",
    "a list for one value": TINY.replace("dwsep: {kernel_size: 3}", "dwsep: {kernel_size: [3]}"),
    "CRLF line ends": TINY.replace("\n", "\r\n"),
}
DIFFERENT_FROM_TINY = {
    "a choice added": TINY.replace("conv: {kernel_size: [3, 5]}", "conv: {kernel_size: [3, 5, 7]}"),
    "choice order": TINY.replace("conv: {kernel_size: [3, 5]}", "conv: {kernel_size: [5, 3]}"),
    "production order": TINY.replace("    conv: {kernel_size: [3, 5]}\n    dwsep: {kernel_size: 3}\n",
                                     "    dwsep: {kernel_size: 3}\n    conv: {kernel_size: [3, 5]}\n"),
    "a range": TINY.replace("depth: {int: [1, 2]}", "depth: {int: [1, 3]}"),
    "a fixed value": TINY.replace("width: 8,", "width: 16,"),
    "another norm": TINY.replace("growth_rate: [4, 8]", "growth_rate: [4, 8]\n  norm: layer"),
    "the name": TINY.replace("name: tiny", "name: tiny2"),
    "a stage": TINY + "  - {width: 16, depth: 1}\n",
    "a constraint": TINY + "constraints: {max_params: 100000}\n",
}


@pytest.mark.parametrize("variant", sorted(SAME_AS_TINY))
def test_fingerprint_ignores_comments_and_layout(variant):
    base = Space.from_text(TINY)
    same = Space.from_text(SAME_AS_TINY[variant])
    assert same.canonical() == base.canonical()
    assert same.fingerprint() == base.fingerprint()


@pytest.mark.parametrize("variant", sorted(DIFFERENT_FROM_TINY))
def test_fingerprint_sees_every_real_change(variant):
    assert Space.from_text(DIFFERENT_FROM_TINY[variant]).fingerprint() != Space.from_text(TINY).fingerprint()


PER_BLOCK = """
name: perblock
input: image
stem: {type: conv, width: 8, kernel_size: 3}
cell:
  mixer:
    mbconv: {kernel_size: 3, expansion_ratio: {values: [1, 3, 6], per_block: true}}
    dwsep: {kernel_size: 3}
stages:
  - {width: 8, depth: {int: [1, 3]}}
"""


def test_per_block_choices_are_one_per_cell_and_active_with_the_depth():
    space = Space.from_text(PER_BLOCK)
    names = [p.name for p in space.params if "expansion_ratio" in p.name]
    assert names == ["s1.mbconv.expansion_ratio", "s1.mbconv.expansion_ratio.b2", "s1.mbconv.expansion_ratio.b3"]
    # dwsep at 3 depths, mbconv with 3 ratios per cell at depth 1, 2, 3
    assert space.size().discrete == 3 + 3 + 9 + 27 == brute_force_count(space)
    lists = set()
    for seed in range(200):
        spec = space.sample(seed)
        values = space.assignment(spec)
        stage = spec.stages[0]
        cells = [k for k in values if k.startswith("s1.mbconv.expansion_ratio")]
        assert len(cells) == (stage.depth if stage.mixer.type == "mbconv" else 0)
        if stage.mixer.type == "mbconv":
            ratios = tuple(stage.cell(i).mixer.options["expansion_ratio"] for i in range(stage.depth))
            assert ratios == tuple(values[n] for n in cells)
            lists.add(ratios)
        assert space.replay(values) == spec
    assert (6.0, 1.0, 3.0) in lists and (1.0, 1.0) in lists


def test_a_spec_with_per_cell_values_is_contained_and_mutates_one_cell():
    space = Space.from_text(PER_BLOCK)
    spec = ArchSpec.from_data({"input": "image", "stem": {"type": "conv", "width": 8, "kernel_size": 3},
                               "stages": [{"depth": 3, "width": 8, "mixer": {"type": "mbconv", "options": {
                                   "kernel_size": 3}}, "per_block": {"expansion_ratio": [6, 3, 3]}}]})
    values = space.assignment(spec)
    assert [values[f"s1.mbconv.expansion_ratio{b}"] for b in ("", ".b2", ".b3")] == [6.0, 3.0, 3.0]
    outside = spec.model_copy(update={"stages": (spec.stages[0].model_copy(
        update={"per_block": {"expansion_ratio": (6.0, 4.0, 3.0)}}),)})
    with pytest.raises(SpaceError, match=r"per_block.expansion_ratio.1: value 4.0 .*expansion_ratio\.b2"):
        space.assignment(outside)
    rng = random.Random(3)
    for _ in range(30):
        child = space.mutate(spec, rng)
        after = space.assignment(child)
        changed = [k for k in values if k in after and after[k] != values[k]]
        assert len(changed) == 1, (values, after)


@pytest.mark.parametrize("text, key, message", [
    (PER_BLOCK.replace("cell:\n", "cell:\n  shared: [mixer]\n"), "per_block", "chosen per stage"),
    (PER_BLOCK.replace("depth: {int: [1, 3]}", "depth: {int: [1, 3], per_block: true}"), "depth.per_block",
     "options of a mixer"),
    (PER_BLOCK.replace("per_block: true", "per_block: yes please"), "per_block", "true or false"),
])
def test_per_block_errors_name_the_line_and_key(text, key, message):
    with pytest.raises(SpaceError, match=message) as e:
        Space.from_text(text, file="space.yaml")
    assert e.value.key.endswith(key) and e.value.line is not None


FAMILIES = """
name: fam
input: image
stem: {type: conv, width: 8, kernel_size: [3, 5]}
cell:
  mixer:
    conv: {kernel_size: [3, 5]}
  skip: [none, residual]
stages:
  - {width: [8, 16], depth: {int: [1, 2]}}
head: {type: pool, dropout: [0.0, 0.1]}
families:
  cnn:
  strided:
    stages:
      - {width: 8, depth: 1}
      - {width: [16, 32], depth: 1, downsample: [none, stride]}
  vit:
    stem: {type: patchify, patch_size: 2, class_token: true, position: learned}
    cell: {mixer: {transformer: {heads: [2, 4]}}, norm: layer, skip: residual}
    stages: [{width: 8, depth: {int: [1, 3]}}]
    head: {pool: token, final_norm: true}
"""


def test_families_are_a_first_choice_and_their_sizes_add_up():
    space = Space.from_text(FAMILIES)
    assert space.params[0].name == "family" and space.params[0].domain.values() == ["cnn", "strided", "vit"]
    assert space.families == {"cnn": 1, "strided": 2, "vit": 1}
    # cnn: stem kernel 2 x width 2 x depth 2 x conv kernel 2 x skip 2 x dropout 2; strided: stem 2 x (kernel 2 x
    # skip 2) for each of its 2 stages x width 2 x downsample 2 x dropout 2; vit: depth 3 x heads 2 x dropout 2
    sizes = {"cnn": 2 * 2 * 2 * 2 * 2 * 2, "strided": 2 * 4 * 4 * 2 * 2 * 2, "vit": 3 * 2 * 2}
    assert space.size().discrete == sum(sizes.values()) == brute_force_count(space)


def test_a_familys_keys_replace_the_top_levels_key_by_key():
    space = Space.from_text(FAMILIES)
    by_family = {}
    for seed in range(60):
        spec = space.sample(seed)
        values = space.assignment(spec)
        by_family.setdefault(values["family"], []).append(spec)
        assert all(name == "family" or name.startswith(values["family"] + ".") or "." not in name
                   or name.split(".")[0] in ("regularization", "multipliers") for name in values)
        assert space.replay(values) == spec and space.contains(spec)
    assert set(by_family) == {"cnn", "strided", "vit"}
    vit = by_family["vit"][0]
    assert vit.stem.type == "patchify" and vit.stem.class_token and vit.head.pool == "token"
    assert vit.stem.width == 8 and vit.head.dropout in (0.0, 0.1)  # the top level's width and dropout
    assert {len(s.stages) for s in by_family["strided"]} == {2}
    assert any(s.stages[1].downsample == "stride" for s in by_family["strided"])
    assert all(s.stages[0].mixer.type == "conv" for s in by_family["cnn"])


def test_a_spec_no_family_writes_names_the_closest_family():
    space = Space.from_text(FAMILIES)
    spec = space.sample(ReplaySuggest({"family": "vit", "vit.s1.depth": 2, "vit.s1.transformer.heads": 4,
                                       "vit.head.dropout": 0.0}))
    assert space.assignment(spec)["family"] == "vit"
    other = ArchSpec.from_data({**spec.model_dump(mode="json"), "head": {**spec.head.model_dump(mode="json"),
                                                                          "dropout": 0.3}})
    with pytest.raises(SpaceError, match=r"0\.3 is not in .*closest family: vit"):
        space.assignment(other)


def test_a_family_change_is_one_mutation():
    space = Space.from_text(FAMILIES)
    rng = random.Random(1)
    crossed = 0
    for seed in range(80):
        parent = space.sample(seed)
        child = space.mutate(parent, rng)
        before, after = space.assignment(parent), space.assignment(child)
        if before["family"] != after["family"]:
            crossed += 1
            assert [k for k in set(before) & set(after) if before[k] != after[k]] == ["family"]
    assert crossed > 0


@pytest.mark.parametrize("edit, key, message", [
    (("  vit:\n", "  2vit:\n"), "families.2vit", "plain identifier"),
    (("    head: {pool: token", "    heads: {pool: token"), "families.vit.heads", "unknown key 'heads'"),
    (("    stages: [{width: 8, depth: {int: [1, 3]}}]\n", "    stages: []\n"), "families.vit.stages",
     "non-empty list"),
    (("    stages: [{width: 8, depth: {int: [1, 3]}}]", "    stages: [{width: 8, depth: 1, downsample: [none, conv]}]"),
     "families.vit.stem.class_token", "stage 1 may not downsample"),
    (("      - {width: [16, 32], depth: 1, downsample: [none, stride]}",
      "      - {width: [16, 32], depth: 1, downsample: [none, stride]}\n    cell: {mixer: [conv, attention]}"),
     "families.strided.stages.1.downsample", "stride needs mixers that can stride"),
])
def test_errors_inside_a_family_name_its_line_and_key(edit, key, message):
    text = FAMILIES.replace(*edit)
    assert text != FAMILIES
    with pytest.raises(SpaceError, match=message) as e:
        Space.from_text(text, file="fam.yaml")
    assert e.value.key == key and e.value.line is not None, (e.value.key, e.value.line)
