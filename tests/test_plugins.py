"""Plugins (nas.plugins): a run config's `plugins:` modules are imported before validation, so a user's own block,
dataset, objective and evaluator work in a search without a fork. The example plugin is
tests/plugin_example/my_nas_plugin.py; the search runs in a subprocess, so its registrations do not leak into the
registries other tests parametrize over."""
from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nas.control.config import load_config
from nas.control.rundir import RunDir
from nas.errors import ConfigError
from nas.plugins import load_plugins

HERE = Path(__file__).resolve().parent
EXAMPLE = HERE / "plugin_example"


def test_a_search_uses_the_plugins_block_dataset_objective_and_evaluator(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text(f"space: {EXAMPLE / 'pointwise_space.yaml'}\ndataset: quadrants\nevaluator: zero_cost_only\n"
                      "objectives: [naswot, params]\nplugins: [my_nas_plugin]\nsampler: random\ntrials: 6\n"
                      "device: cpu\ntrain_threads: 1\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(EXAMPLE), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, "-m", "nas.cli", "search", str(config), "--name", "plug", "--runs-dir",
                             str(tmp_path / "runs"), "--quiet"], capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    study = RunDir.open(tmp_path / "runs" / "plug").load_study()
    complete = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    assert len(complete) == 6
    assert all(math.isfinite(t.values[0]) and t.values[1] > 0 for t in complete)  # naswot, params
    assert all(set(t.user_attrs["objectives"]) == {"naswot", "params"} for t in complete)
    assert any(t.params.get("s1.mixer") == "pointwise" for t in complete)  # the plugin's block was sampled and built
    assert all(t.user_attrs["input_shape"] == [1, 8, 8] for t in complete)  # the plugin's dataset
    # an objective the plugin's evaluator says it does not report: refused before anything is written
    config.write_text(config.read_text().replace("objectives: [naswot, params]", "objectives: [naswot, latency_ms]"))
    refused = subprocess.run([sys.executable, "-m", "nas.cli", "search", str(config), "--name", "other", "--runs-dir",
                              str(tmp_path / "runs"), "--quiet"], capture_output=True, text=True, env=env, timeout=600)
    assert refused.returncode == 2 and refused.stderr.strip() == (
        f"error: {config}:4: objectives: evaluator 'zero_cost_only' reports naswot, params; not latency_ms")
    assert not (tmp_path / "runs" / "other").exists()


def test_a_plugin_that_cannot_be_imported_is_one_line_naming_its_config_line(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("space: vision\ntrials: 2\nplugins:\n  - my_nas_plugin_that_is_not_there\n")
    with pytest.raises(ConfigError) as info:
        load_config(config)
    error = info.value
    assert (error.file, error.line, error.key) == (str(config), 4, "plugins.0")
    assert "cannot import plugin 'my_nas_plugin_that_is_not_there'" in error.message and "\n" not in str(error)


@pytest.mark.parametrize("value", ["my_module", [""], [3]])
def test_plugins_must_be_a_list_of_module_names(value):
    with pytest.raises(ConfigError):
        load_plugins(value)


def test_an_unknown_evaluator_is_named_with_the_known_ones(tmp_path):
    from nas.control.engine import Engine, prepare

    config = tmp_path / "run.yaml"
    config.write_text("space: vision\ndataset: digits\ntrials: 1\ndevice: cpu\nevaluator: proxie\n")
    with pytest.raises(ConfigError, match=r"unknown evaluator 'proxie' \(known: proxy.*did you mean 'proxy'") as info:
        Engine(prepare(config))
    assert info.value.line == 5
