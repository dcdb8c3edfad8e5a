"""Broken space files and spec files: every one must fail with a one-line error naming file, line and key.

Each case is written to ``tmp_path`` and checked twice:

* through the API (``Space.load`` -> :class:`SpaceError`, ``Space.check_feasible`` for the constraint case,
  ``ArchSpec.load`` -> :class:`SpecError`): the exception's ``.file``, ``.line``, ``.key`` and message;
* through the CLI in-process (``nas space validate FILE``): exit status 2, nothing on stdout, exactly one line on
  stderr starting with ``error: `` that names the file (and line and key), and no traceback.

Space cases are one-line edits of ``BASE_SPACE`` (its line numbers are written at the end of each line), so a case's
expected line is the line it edits. Spec cases are edits of ``BASE_SPEC`` (JSON: no line numbers except for JSON
syntax errors) or of ``BASE_SPEC_YAML`` (YAML specs: errors carry the line of the key).
"""
from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pytest

from nas.catalog import MIXERS

from nas import cli
from nas.errors import NasError, SpaceError, SpecError
from nas.evaluate.costs import check_feasible
from nas.grammar import Space
from nas.spec import ArchSpec

# A small valid space: 2 stages, a shared norm, two productions. The trailing comments are the line numbers.
BASE_SPACE = """\
name: tiny                                 #  1
input: image                               #  2
stem:                                      #  3
  type: conv                               #  4
  width: 8                                 #  5
  kernel_size: 3                           #  6
cell:                                      #  7
  shared: [norm]                           #  8
  mixer:                                   #  9
    conv: {kernel_size: [3, 5]}            # 10
    mbconv: {expansion_ratio: [2, 4]}      # 11
  skip: [none, residual]                   # 12
  norm: batch                              # 13
  act: relu                                # 14
stages:                                    # 15
  - width: [8, 16]                         # 16
    depth: 1                               # 17
  - width: 16                              # 18
    depth: {int: [1, 2]}                   # 19
    downsample: conv                       # 20
head:                                      # 21
  type: pool                               # 22
  dropout: 0.0                             # 23
"""
BASE_SPACE_LINES = len(BASE_SPACE.splitlines())

# A valid spec (JSON) with no `space:` (so the CLI does not look for a space to fit it into).
BASE_SPEC: dict[str, Any] = {
    "input": "image",
    "stem": {"type": "conv", "width": 8, "kernel_size": 3},
    "stages": [
        {"depth": 1, "width": 8, "mixer": {"type": "conv", "options": {"kernel_size": 3}}},
        {"depth": 1, "width": 16, "downsample": "conv", "mixer": {"type": "mbconv", "options": {}}},
    ],
    "head": {"type": "pool", "dropout": 0.0},
}

# The same spec as YAML (what baselines are written in). Trailing comments: line numbers.
BASE_SPEC_YAML = """\
input: image                                                                 # 1
stem: {type: conv, width: 8, kernel_size: 3}                                 # 2
stages:                                                                      # 3
  - {depth: 1, width: 8, mixer: {type: conv, options: {kernel_size: 3}}}     # 4
  - depth: 1                                                                 # 5
    width: 16                                                                # 6
    downsample: conv                                                         # 7
    mixer: {type: mbconv}                                                    # 8
head: {type: pool, dropout: 0.0}                                             # 9
"""

# A baseline (in <space dir>/baselines/) naming the `tiny` space whose stem width (12) is not among its choices (8).
MISFIT_BASELINE = """\
# a baseline that does not fit the tiny space: stem width 12, the space only has 8
space: tiny
input: image
stem: {type: conv, width: 12, kernel_size: 3}
stages:
  - {depth: 1, width: 8, mixer: {type: conv, options: {kernel_size: 3}}}
  - {depth: 1, width: 16, downsample: conv, mixer: {type: conv, options: {kernel_size: 3}}}
"""

ANY = object()  # "not checked in this row" (a separate xfail row pins the right value)


def space(edits: dict[int, str] | None = None, append: str = "") -> str:
    """BASE_SPACE with whole lines replaced (1-based; "#" blanks a line, keeping the numbering) and text appended."""
    lines = BASE_SPACE.splitlines()
    for number, text in (edits or {}).items():
        assert 1 <= number <= len(lines), number
        lines[number - 1] = text
    return "\n".join(lines) + "\n" + append


def blank(first: int, last: int) -> dict[int, str]:
    return {n: "#" for n in range(first, last + 1)}


def spec_json(change: Callable[[dict], Any]) -> str:
    data = copy.deepcopy(BASE_SPEC)
    change(data)
    return json.dumps(data, indent=2) + "\n"


def spec_yaml(edits: dict[int, str]) -> str:
    lines = BASE_SPEC_YAML.splitlines()
    for number, text in edits.items():
        lines[number - 1] = text
    return "\n".join(lines) + "\n"


@dataclass
class Case:
    id: str
    kind: str  # "space" (Space.load), "feasible" (Space.load then check_feasible), "spec" (ArchSpec.load)
    text: str
    fragments: tuple[str, ...]  # every one must be in the message
    key: Any = None  # expected .key (None: no key), or ANY
    line: Any = None  # expected .line (None: no line), or ANY
    name: str = "case.yaml"  # file name the case is written to (in tmp_path)
    extra_files: dict[str, str] = field(default_factory=dict)  # other files under tmp_path
    error_file: str | None = None  # the file the error must name (default: `name`)


def _set(path: tuple, value: Any) -> Callable[[dict], None]:
    def change(data):
        node = data
        for k in path[:-1]:
            node = node[k]
        node[path[-1]] = value

    return change


def _pop(path: tuple) -> Callable[[dict], None]:
    def change(data):
        node = data
        for k in path[:-1]:
            node = node[k]
        del node[path[-1]]

    return change


KNOWN_BLOCKS = ", ".join(sorted(MIXERS))  # the catalogue: a new block is named in the message too

CASES: list = [
    # ---------------------------------------------------------------------------------------------- space: YAML
    Case("yaml-syntax", "space", space({5: "  width: 8: 9"}), ("YAML syntax error", "mapping values"), None, 5),
    Case("yaml-tab", "space", space({5: "\twidth: 8"}), ("YAML syntax error",), None, 5),
    Case("duplicate-key", "space", space({14: "  norm: layer"}), ("duplicate key",), "cell.norm", 14),
    Case("not-a-mapping", "space", "- conv\n- mbconv\n", ("expected a mapping", "list"), None, None),
    # ---------------------------------------------------------------------------------------------- space: keys
    Case("unknown-top-key", "space", space(append="optimiser: sgd\n"),
         ("unknown key 'optimiser'", "stem", "stages", "constraints"), "optimiser", 24),
    Case("unknown-stage-key", "space", space({20: "    colour: red"}),
         ("unknown key 'colour'", "depth, width, downsample, cell"), "stages.1.colour", 20),
    Case("missing-stem", "space", space(blank(3, 6)), ("missing key 'stem'",), None, None),
    Case("missing-stages", "space", space(blank(15, 20)), ("missing key 'stages'",), None, None),
    Case("missing-cell", "space", space(blank(7, 14)), ("missing key 'cell'",), None, None),
    Case("missing-mixer", "space", space(blank(9, 11)), ("missing key 'mixer'",), "cell", 7),
    Case("missing-stem-width", "space", space({5: "#"}), ("missing key 'width'",), "stem", 3),
    Case("empty-stages", "space", space({15: "stages: []", **blank(16, 20)}), ("non-empty list",), "stages", 15),
    # ------------------------------------------------------------------------------------- space: productions
    Case("unknown-block", "space", space({11: "    resnet: {kernel_size: [3]}"}),
         ("unknown production / block 'resnet'", KNOWN_BLOCKS), "cell.mixer.resnet", 11),
    Case("unknown-block-in-stage", "space", space({20: "    cell: {mixer: {resnet: {}}}"}),
         ("'resnet'", KNOWN_BLOCKS), "stages.1.cell.mixer.resnet", 20),
    Case("unknown-option", "space", space({10: "    conv: {kernel_size: [3, 5], groups: 2}"}),
         ("unknown key 'groups'", "kernel_size, num_convs"), "cell.mixer.conv.groups", 10),
    Case("bad-option-value", "space", space({10: "    conv: {kernel_size: [3, 4]}"}),
         ("value 4", "odd integer"), "cell.mixer.conv.kernel_size", 10),
    Case("empty-mixer", "space", space({9: "  mixer: {}", **blank(10, 11)}), ("empty choice list",), "cell.mixer", 9),
    # ------------------------------------------------------------------------------------------ space: values
    Case("wrong-type-string-for-int", "space", space({5: '  width: "big"'}),
         ("'big'", "an integer >= 1"), "stem.width", 5),
    Case("wrong-type-float-for-int", "space", space({17: "    depth: 1.5"}),
         ("1.5", "an integer >= 1"), "stages.0.depth", 17),
    Case("wrong-type-bool-for-int", "space", space({5: "  width: true"}), ("True", "an integer"), "stem.width", 5),
    Case("invalid-enum", "space", space({13: "  norm: fancy"}),
         ("'fancy'", "batch, layer, group, instance, none"), "cell.norm", 13),
    Case("invalid-input", "space", space({2: "input: audio"}), ("'audio'", "image, sequence"), "input", 2),
    Case("empty-choice-list", "space", space({12: "  skip: []"}), ("empty choice list",), "cell.skip", 12),
    Case("duplicate-choices", "space", space({16: "  - width: [8, 8]"}), ("duplicate choices",), "stages.0.width", 16),
    Case("int-range-min-gt-max", "space", space({19: "    depth: {int: [3, 1]}"}),
         ("min > max", "[3, 1]"), "stages.1.depth.int", 19),
    Case("int-range-float-bound", "space", space({19: "    depth: {int: [1, 2.5]}"}),
         ("2.5", "not an integer"), "stages.1.depth.int", 19),
    Case("range-step-zero", "space", space({19: "    depth: {int: [1, 4], step: 0}"}),
         ("step must be a positive integer",), "stages.1.depth.step", 19),
    Case("log-range-min-zero", "space", space({23: "  dropout: {float: [0.0, 0.3], log: true}"}),
         ("log range needs min > 0",), "head.dropout.float", 23),
    Case("float-range-for-int", "space", space({17: "    depth: {float: [1.0, 2.0]}"}),
         ("float range is not allowed",), "stages.0.depth", 17),
    # ------------------------------------------------------------------------------------ space: conditions
    Case("when-unknown-parameter", "space", space({12: "  skip: {values: [none, residual], when: {colour: red}}"}),
         ("condition names unknown or later parameter 'colour'", "known here"), "cell.skip.when.colour", 12),
    Case("when-later-parameter", "space", space({12: "  skip: {values: [none, residual], when: {act: relu}}"}),
         ("condition names unknown or later parameter 'act'",), "cell.skip.when.act", 12),
    Case("when-value-not-in-domain", "space",
         space({12: "  skip: {values: [none, residual], when: {mixer: resnet}}"}),
         ("'resnet'",), "cell.skip.when.mixer", 12),
    # ---------------------------------------------------------------------------------- space: structure
    Case("shared-key-overridden", "space", space({20: "    cell: {norm: layer}"}),
         ("'norm' is shared by all stages", "cannot override"), "stages.1.cell.norm", 20),
    Case("unknown-shared-key", "space", space({8: "  shared: [colour]"}),
         ("unknown cell key 'colour'", "mixer, skip"), "cell.shared.0", 8),
    Case("fpn-stages-too-many", "space", space({22: "  type: fpn", 23: "  fpn_stages: 3"}),
         ("fpn_stages 3 exceeds the number of stages (2)",), "head.fpn_stages", 23),
    Case("compound-base-below-1", "space",
         space(append="multipliers:\n  compound: {phi: [0, 1], alpha: 0.9, beta: 1.1, gamma: 1.15}\n"),
         ("alpha must be a number >= 1",), "multipliers.compound.alpha", 25),
    Case("constraint-bad-value", "space", space(append="constraints:\n  max_params: -1\n"),
         ("max_params is -1", "an integer >= 1"), "constraints.max_params", 25),
    Case("constraint-infeasible", "feasible", space(append="constraints:\n  max_params: 10\n"),
         ("no architecture meets the constraints", "max_params 10"), "constraints.max_params", 25),
    # --------------------------------------------------------------------------------- space: baselines
    Case("baseline-does-not-fit", "space", space(), ("value 12", "not in the space's choices", "stem.width"),
         "stem.width", 4, extra_files={"baselines/misfit.yaml": MISFIT_BASELINE},
         error_file="baselines/misfit.yaml"),
    Case("baseline-does-not-fit-line", "space", space(), ("value 12",), "stem.width", 4,
         extra_files={"baselines/misfit.yaml": MISFIT_BASELINE}, error_file="baselines/misfit.yaml"),
    # ------------------------------------------------------------------------------------------- spec: JSON
    Case("spec-not-json", "spec", '{\n  "input": "image",\n  oops\n}\n', ("not valid JSON",), None, 3,
         name="spec.json"),
    Case("spec-empty-file", "spec", "", ("not valid JSON",), None, 1, name="spec.json"),
    Case("spec-not-a-mapping", "spec", "[1, 2]\n", ("spec is a mapping", "list"), None, None, name="spec.json"),
    Case("spec-unknown-block", "spec", spec_json(_set(("stages", 0, "mixer", "type"), "resnet")),
         ("unknown block 'resnet'", KNOWN_BLOCKS), "stages.0.mixer.type", None, name="spec.json"),
    Case("spec-unsupported-schema-version", "spec", spec_json(_set(("schema_version",), 2)),
         ("unsupported schema version 2",), "schema_version", None, name="spec.json"),
    Case("spec-missing-field", "spec", spec_json(_pop(("input",))), ("missing field",), "input", None,
         name="spec.json"),
    Case("spec-missing-stage-field", "spec", spec_json(_pop(("stages", 0, "width"))), ("missing field",),
         "stages.0.width", None, name="spec.json"),
    Case("spec-extra-field", "spec", spec_json(_set(("colour",), "red")), ("unknown field",), "colour", None,
         name="spec.json"),
    Case("spec-extra-stage-field", "spec", spec_json(_set(("stages", 1, "colour"), "red")), ("unknown field",),
         "stages.1.colour", None, name="spec.json"),
    Case("spec-option-bad-value", "spec", spec_json(_set(("stages", 0, "mixer", "options", "kernel_size"), 4)),
         ("'kernel_size'", "is 4", "odd integer"), "stages.0.mixer.options.kernel_size", None, name="spec.json"),
    Case("spec-unknown-option", "spec", spec_json(_set(("stages", 0, "mixer", "options", "groups"), 2)),
         ("takes no option 'groups'", "kernel_size, num_convs"), "stages.0.mixer.options.groups", None,
         name="spec.json"),
    Case("spec-growth-rate-without-dense", "spec", spec_json(_set(("stages", 0, "growth_rate"), 16)),
         ("growth_rate is set exactly when skip is dense",), "stages.0.growth_rate", None, name="spec.json"),
    Case("spec-wrong-type", "spec", spec_json(_set(("stem", "width"), "big")), ("must be an integer",), "stem.width",
         None, name="spec.json"),
    Case("spec-invalid-enum", "spec", spec_json(_set(("stages", 0, "norm"), "fancy")), ("'batch'",),
         "stages.0.norm", None, name="spec.json"),
    Case("spec-no-stages", "spec", spec_json(_set(("stages",), [])), ("at least 1",), "stages", None,
         name="spec.json"),
    Case("spec-fpn-stages-too-many", "spec",
         spec_json(_set(("head",), {"type": "fpn", "fuse": "add", "fpn_stages": 3})),
         ("fpn_stages=3", "2 stage(s)"), "head.fpn_stages", None, name="spec.json"),
    Case("spec-fpn-stages-key", "spec", spec_json(_set(("head",), {"type": "fpn", "fuse": "add", "fpn_stages": 3})),
         ("fpn_stages=3",), "head.fpn_stages", None, name="spec.json"),
    # ------------------------------------------------------------------------------------------- spec: YAML
    Case("spec-yaml-syntax", "spec", spec_yaml({6: "    width: 16: 17"}), ("YAML syntax error",), None, 6,
         name="spec.yaml"),
    Case("spec-yaml-duplicate-key", "spec", spec_yaml({7: "    width: 32"}), ("duplicate key",), "stages.1.width", 7,
         name="spec.yaml"),
    Case("spec-yaml-extra-stage-field", "spec", spec_yaml({7: "    colour: red"}), ("unknown field",),
         "stages.1.colour", 7, name="spec.yaml"),
    Case("spec-yaml-stem-even-kernel", "spec", spec_yaml({2: "stem: {type: conv, width: 8, kernel_size: 4}"}),
         ("kernel_size, an odd integer",), "stem.kernel_size", 2, name="spec.yaml"),
]


def _case(param) -> Case:
    return param.values[0] if hasattr(param, "values") else param


PARAMS = [c if hasattr(c, "values") else pytest.param(c, id=c.id) for c in CASES]


def test_enough_cases_and_unique_ids():
    ids = [_case(c).id for c in CASES]
    assert len(ids) == len(set(ids))
    assert len(ids) >= 24


def _write(case: Case, tmp_path: Path) -> tuple[Path, str]:
    for rel, text in case.extra_files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    path = tmp_path / case.name
    path.write_text(case.text)
    return path, str(tmp_path / (case.error_file or case.name))


def _check_fragments(text: str, case: Case) -> None:
    for fragment in case.fragments:
        assert fragment in text, f"{fragment!r} not in {text!r}"


@pytest.mark.parametrize("case", PARAMS)
def test_api(case: Case, tmp_path):
    path, error_file = _write(case, tmp_path)
    if case.kind == "spec":
        with pytest.raises(SpecError) as info:
            ArchSpec.load(path)
    elif case.kind == "space":
        with pytest.raises(SpaceError) as info:
            Space.load(path)
    else:  # "feasible": the file parses; its constraints cannot be met
        loaded = Space.load(path)
        with pytest.raises(SpaceError) as info:
            check_feasible(loaded)
    e = info.value
    assert e.file == error_file
    if case.line is not ANY:
        assert e.line == case.line
    if case.key is not ANY:
        assert e.key == case.key
    _check_fragments(e.message, case)
    assert "\n" not in e.one_line()
    assert str(e) == e.one_line()


@pytest.mark.parametrize("case", PARAMS)
def test_cli_validate(case: Case, tmp_path, capsys):
    path, error_file = _write(case, tmp_path)
    status = cli.main(["space", "validate", str(path)])
    out, err = capsys.readouterr()
    assert status == 2
    assert out == ""
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    line = lines[0]
    assert line.startswith("error: ")
    where = error_file + (f":{case.line}" if case.line not in (None, ANY) else "") + ": "
    assert line.startswith("error: " + where), line
    if case.key not in (None, ANY):
        assert line[len("error: " + where):].startswith(f"{case.key}: "), line
    _check_fragments(line, case)


def test_cli_validate_no_constraints_skips_feasibility(tmp_path, capsys):
    path = tmp_path / "space.yaml"
    path.write_text(space(append="constraints:\n  max_params: 10\n"))
    assert cli.main(["space", "validate", "--no-constraints", str(path)]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("ok: tiny (image)") and err == ""


def test_base_files_are_valid(tmp_path):
    """The edits above break a file that is otherwise valid."""
    (tmp_path / "space.yaml").write_text(BASE_SPACE)
    loaded = Space.load(tmp_path / "space.yaml")
    assert loaded.num_stages == 2 and loaded.name == "tiny"
    assert BASE_SPACE_LINES == 23
    (tmp_path / "spec.json").write_text(json.dumps(BASE_SPEC))
    (tmp_path / "spec.yaml").write_text(BASE_SPEC_YAML)
    a, b = ArchSpec.load(tmp_path / "spec.json"), ArchSpec.load(tmp_path / "spec.yaml")
    assert a.hash() == b.hash()
    assert loaded.contains(a.model_copy(update={"space": "tiny"}))


def test_errors_are_nas_errors():
    assert issubclass(SpaceError, NasError) and issubclass(SpecError, NasError)


# -- files that cannot be read: not UTF-8, or a folder ---------------------------------------------------------

NOT_UTF8 = b"name: tiny\n\xff\xfe oops\n"  # the bad bytes are on line 2


def _tiny_config(tmp_path: Path, **changes) -> Path:
    import yaml

    space_file = tmp_path / "space.yaml"
    if not space_file.exists():
        space_file.write_text(BASE_SPACE)
    data = {"space": str(space_file), "dataset": "digits", "objectives": ["accuracy"], "trials": 1, **changes}
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(data))
    return config


def _unreadable(tmp_path: Path, name: str, kind: str) -> Path:
    path = tmp_path / name
    if kind == "folder":
        path.mkdir()
    else:
        path.write_bytes(NOT_UTF8)
    return path


# (arguments with FILE for the unreadable file, its name, whether the file is given directly or named by a config)
UNREADABLE_CASES = {
    "space validate space": (["space", "validate", "FILE"], "space.yaml"),
    "space validate spec": (["space", "validate", "FILE"], "spec.json"),
    "space validate yaml spec": (["space", "validate", "FILE"], "spec.yml"),
    "space show": (["space", "show", "FILE"], "space.yaml"),
    "space sample": (["space", "sample", "FILE"], "space.yaml"),
    "eval space": (["eval", "FILE"], "space.yaml"),
    "eval spec": (["eval", "FILE"], "spec.json"),
    "export spec": (["export", "FILE", "--dataset", "digits"], "spec.json"),
    "search config": (["search", "FILE"], "run.yaml"),
}


@pytest.mark.parametrize("kind", ["not utf-8", "folder"])
@pytest.mark.parametrize("case", sorted(UNREADABLE_CASES))
def test_cli_unreadable_file_is_one_line(case, kind, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args, name = UNREADABLE_CASES[case]
    path = _unreadable(tmp_path, name, kind)
    status = cli.main([str(path) if a == "FILE" else a for a in args] + (
        ["--runs-dir", str(tmp_path / "runs")] if args[0] == "search" else []))
    out, err = capsys.readouterr()
    assert (status, out) == (2, ""), err
    lines = err.splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    where = f"{path}:2: " if kind == "not utf-8" else f"{path}: "
    assert lines[0].startswith("error: " + where), lines[0]
    if kind == "not utf-8":
        assert "not UTF-8 text (byte 0xff" in lines[0]
    else:  # a folder where a spec is expected is read as an export folder, which says what it lacks
        assert any(why in lines[0] for why in ("Is a directory", "is a folder but not a search run",
                                               "not an export folder: no arch.json in it")), lines[0]
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("kind", ["not utf-8", "folder"])
@pytest.mark.parametrize("named", ["space", "warm_start"])
def test_cli_search_with_an_unreadable_file_named_by_the_config(named, kind, tmp_path, capsys):
    """The config reads, the file it names does not: one line naming that file; nothing is written."""
    if named == "space":
        target = _unreadable(tmp_path, "space.yaml", kind)
        config = _tiny_config(tmp_path)
    else:
        target = _unreadable(tmp_path, "warm.json", kind)
        config = _tiny_config(tmp_path, warm_start=[str(target)])
    status = cli.main(["search", str(config), "--runs-dir", str(tmp_path / "runs")])
    out, err = capsys.readouterr()
    assert (status, out) == (2, ""), err
    lines = err.splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("error: "), lines[0]
    assert (f"{target}:2: " if kind == "not utf-8" else str(target)) in lines[0], lines[0]
    assert not (tmp_path / "runs").exists()


def test_unreadable_baseline_names_the_baseline(tmp_path):
    (tmp_path / "space.yaml").write_text(BASE_SPACE)
    (tmp_path / "baselines").mkdir()
    bad = tmp_path / "baselines" / "resnet.yaml"
    bad.write_bytes(NOT_UTF8)
    with pytest.raises(SpecError) as info:
        Space.load(tmp_path / "space.yaml")
    assert (info.value.file, info.value.line) == (str(bad), 2)
