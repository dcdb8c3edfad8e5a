"""Run configs: validation with one-line errors naming file, line and key; overrides; change detection."""
from __future__ import annotations

from pathlib import Path

import pytest
from control_helpers import REPO

from nas.control.config import apply_overrides, describe_changes, load_config, parse_set, resolve_space_path
from nas.errors import ConfigError
from nas.objectives import OBJECTIVES

EXPERIMENTS = sorted((REPO / "experiments").glob("*.yaml"))


@pytest.mark.parametrize("path", EXPERIMENTS, ids=[p.stem for p in EXPERIMENTS])
def test_shipped_experiments_validate(path):
    config, file = load_config(path)
    assert file == path
    assert resolve_space_path(config.space, file).is_file()
    assert config.trials or config.time_budget_s
    assert set(config.objectives) <= set(OBJECTIVES)


def test_shipped_experiment_set():
    assert {p.stem for p in EXPERIMENTS} >= {"digits_demo", "fashion_mnist", "cifar10_mobile",
                                              "seqmnist_ssm_vs_attention"}


def test_objectives_match_the_evaluator():
    from nas.objectives import OBJECTIVES as EVAL

    assert OBJECTIVES == EVAL


def test_demo_uses_the_default_sampler_predictor_with_two_objectives():
    config, _ = load_config(REPO / "experiments" / "digits_demo.yaml")
    assert config.objectives == ["accuracy", "latency_ms"]
    assert config.directions == ["maximize", "minimize"]
    assert config.sampler is None and config.sampler_name == "predictor"
    single, _ = load_config({"space": "vision", "trials": 2, "objectives": ["accuracy"]})
    assert single.sampler_name == "tpe"
    params, _ = load_config({"space": "vision", "trials": 2, "objectives": ["accuracy", "params"]})
    assert params.sampler_name == "predictor"  # TPE for counted costs is the table's default only


def _error(tmp_path: Path, text: str, **overrides) -> ConfigError:
    path = tmp_path / "run.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path, overrides)
    message = info.value.one_line()
    assert "\n" not in message
    return info.value


@pytest.mark.parametrize("text, line, key, words", [
    ("space: vision\ntrials: 2\nbogus: 1\n", 3, "bogus", "unknown key 'bogus'"),
    ("space: vision\ntrials: 2\nsampler: annealing\n", 3, "sampler", "unknown sampler 'annealing'"),
    ("space: vision\ntrials: 2\nobjectives: [accuracy, speed]\n", 3, "objectives", "unknown objective 'speed'"),
    ("space: vision\ntrials: 2\nbudget:\n  epochs: 1\n  epoch: 2\n", 5, "budget.epoch", "unknown key 'epoch'"),
    ("space: vision\ntrials: 2\nbudget:\n  epochs: -1\n", 4, "budget.epochs", "greater than 0"),
    ("space: vision\ntrials: 2\nbudget:\n  data_fraction: 2\n", 4, "budget.data_fraction", "less than or equal"),
    ("space: vision\ntrials: 2\nconstraints: {max_latency: 3}\n", 3, "constraints.max_latency", "unknown key"),
    ("space: vision\ntrials: 0\n", 2, "trials", "must be >= 1 (got 0)"),
    ("space: vision\ntrials: x\n", 2, "trials", "must be an integer (got x)"),
    ("space: vision\ntrails: 2\n", 2, "trails", "unknown key 'trails' (did you mean 'trials'? expected one of: "),
    ("space: vision\ntrials: 2\nseed: -1\n", 3, "seed", "must be >= 0"),
    ("space: vision\ntrials: 2\nseed: 4294967296\n", 3, "seed", "must be <= 2147483646"),
    ("space: vision\n", None, "trials", "trials and/or time_budget_s"),
    ("space: vision\ntrials: 2\nrungs: [0.5, 0.2]\n", 3, "rungs", "increasing"),
    ("space: vision\ntrials: 2\nobjectives: [latency_ms]\nrungs: [0.5]\n", 4, "rungs", "accuracy"),
    ("trials: 2\n", None, "space", "missing key 'space'"),
    ("space: vision\ntrials: [2\n", 3, None, "YAML syntax error"),
    ("space: vision\ntrials: 2\nlatency:\n  runtime: tvm\n", 4, "latency_runtime", "'torch' or 'onnxruntime'"),
    ("space: vision\ntrials: 2\nlatency:\n  sorce: table\n", 4, "latency.sorce", "did you mean 'source'?"),
    ("space: vision\ntrials: 2\nlatency_threads: 2\nlatency: {threads: 4}\n", 4, "latency.threads",
     "given twice"),
    ("space: vision\ntrials: 2\nlatency: table\n", 3, "latency", "must be a mapping"),
])
def test_errors_name_file_line_and_key(tmp_path, text, line, key, words):
    error = _error(tmp_path, text)
    assert error.file == str(tmp_path / "run.yaml")
    assert error.line == line
    assert error.key == key
    assert words in error.message


def test_override_errors_name_the_override(tmp_path):
    error = _error(tmp_path, "space: vision\ntrials: 2\n", **{"budget.epochs": "many"})
    assert error.key == "budget.epochs" and "from an override" in error.message and error.line is None
    error = _error(tmp_path, "space: vision\ntrials: 2\n", sampler="annealing")
    assert "unknown sampler" in error.message and "from an override" in error.message


def test_overrides_apply_before_validation(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("space: vision\ntrials: 2\nbudget: {epochs: 2, batch_size: 32}\n")
    config, _ = load_config(path, {"trials": 5, "budget.epochs": 0.5, "sampler": "random", "seed": 3})
    assert (config.trials, config.budget.epochs, config.budget.batch_size) == (5, 0.5, 32)
    assert (config.sampler, config.seed) == ("random", 3)
    config, _ = load_config(path, {"budget": {"lr": 0.01}})  # a mapping merges into a mapping
    assert (config.budget.epochs, config.budget.lr) == (2, 0.01)


def test_parse_set():
    assert parse_set(["budget.epochs=0.5", "objectives=[accuracy, params]", "sampler=tpe", "data_dir="]) == {
        "budget.epochs": 0.5, "objectives": ["accuracy", "params"], "sampler": "tpe", "data_dir": None}
    with pytest.raises(ConfigError):
        parse_set(["epochs"])
    data, touched = apply_overrides({"budget": {"epochs": 1}}, {"budget.lr": 0.1})
    assert data == {"budget": {"epochs": 1, "lr": 0.1}} and ("budget", "lr") in touched


def test_fingerprint_changes_are_described():
    base, _ = load_config({"space": "vision", "trials": 2})
    other, _ = load_config({"space": "vision", "trials": 9, "sampler": "tpe", "seed": 4})
    assert describe_changes(base.fingerprint("x"), other.fingerprint("x")) == []  # harmless changes
    changed, _ = load_config({"space": "vision", "trials": 2, "dataset": "mnist", "budget": {"epochs": 3},
                              "objectives": ["accuracy"]})
    changes = describe_changes(base.fingerprint("x"), changed.fingerprint("y"))
    assert "dataset (digits -> mnist)" in changes
    assert "budget.epochs (1.0 -> 3.0)" in changes
    assert "space (its content differs)" in changes
    assert any(c.startswith("objectives") for c in changes)
    assert not any(c.startswith("latency") for c in changes)


def test_loading_a_config_does_not_import_torch():
    import subprocess
    import sys

    code = ("import sys; from nas.control.config import load_config; "
            "load_config({'space': 'vision', 'trials': 2}); import nas; "
            "print([m for m in ('torch', 'optuna', 'ray') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert out.stdout.strip() == "[]", out.stderr


@pytest.mark.parametrize("given, what", [
    ("search_spaces/vision.yaml", "a search space"),
    ("search_spaces/baselines/resnet.yaml", "an architecture spec"),
])
def test_a_space_or_a_spec_given_as_the_run_config_is_named_as_such(given, what):
    """They were "missing key 'space'" and "unknown key 'input'": true, but not what went wrong."""
    with pytest.raises(ConfigError) as info:
        load_config(REPO / given)
    assert info.value.one_line() == (f"{REPO / given}: is {what}, not a run config (a run config names its space: "
                                     "space: vision or a file; see experiments/*.yaml)")


def test_an_exported_arch_json_given_as_the_run_config_is_named_as_such(tmp_path):
    import json

    arch = tmp_path / "arch.json"
    arch.write_text(json.dumps({"format": "patternnas-arch", "spec": {}}))
    with pytest.raises(ConfigError, match=r"arch.json: is an exported architecture, not a run config"):
        load_config(arch)


def test_the_latency_runtime_is_part_of_a_latency_run_fingerprint():
    torch_run, _ = load_config({"space": "vision", "trials": 2, "objectives": ["accuracy", "latency_ms"]})
    assert "latency_runtime" not in torch_run.fingerprint("x")  # runs timed by torch keep their fingerprints
    ort_run, _ = load_config({"space": "vision", "trials": 2, "objectives": ["accuracy", "latency_ms"],
                              "latency_runtime": "onnxruntime"})
    assert describe_changes(torch_run.fingerprint("x"), ort_run.fingerprint("x")) == [
        "latency_runtime (torch -> onnxruntime)"]
    assert ort_run.eval_options()["latency_runtime"] == "onnxruntime"


@pytest.mark.parametrize("extra", [{"latency_source": "table"}, {"latency_table": "t.json"}])
def test_a_latency_table_and_its_source_come_together(extra):
    with pytest.raises(ConfigError, match="latency_table .* is given exactly when latency_source is table"):
        load_config({"space": "vision", "trials": 2, **extra})


def test_a_latency_block_is_the_flat_latency_keys():
    block, _ = load_config({"space": "vision", "trials": 2, "latency": {"source": "table", "table": "t.json",
                                                                       "runtime": "onnxruntime", "threads": 2}})
    flat, _ = load_config({"space": "vision", "trials": 2, "latency_source": "table", "latency_table": "t.json",
                           "latency_runtime": "onnxruntime", "latency_threads": 2})
    assert block == flat and block.latency_source == "table" and block.latency_threads == 2


@pytest.mark.parametrize("field", ["depth", "width"])
def test_budget_depth_and_width_are_checked_and_keep_older_runs_fingerprints_at_their_defaults(field):
    """budget.depth / budget.width (reduced proxies) are run config budget keys like the others; at their defaults
    they are left out of the fingerprint and the reuse key, so runs made before the keys existed resume and reuse as
    before."""
    import hashlib
    import json

    base = {"space": "vision", "trials": 2}
    whole, _ = load_config(base)
    assert not {"depth", "width"} & set(whole.fingerprint("s")["budget"])
    older = {"budget": {k: v for k, v in whole.budget.model_dump().items() if k not in ("depth", "width")},
             "dataset": whole.dataset, "train_subset": None, "val_fraction": whole.val_fraction, "rungs": None}
    assert whole.budget_key() == hashlib.sha256(json.dumps(older, sort_keys=True).encode()).hexdigest()[:12]
    reduced, _ = load_config({**base, "budget": {field: 0.25}})
    assert reduced.fingerprint("s")["budget"][field] == 0.25 and reduced.budget_key() != whole.budget_key()
    assert getattr(reduced.budget_obj(), field) == 0.25
    with pytest.raises(ConfigError, match=field):
        load_config({**base, "budget": {field: 1.5}})
