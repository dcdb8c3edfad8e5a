"""The installed ``nas`` console script, run as a subprocess from the repository root."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from nas.spec import ArchSpec

REPO = Path(__file__).resolve().parents[1]
SCRIPT = Path(sys.executable).with_name("nas")
NAS = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "nas.cli"]
# One intra-op thread: the models are tiny and the machine is small and shared (output does not depend on it).
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
TIMEOUT = 120


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*NAS, *args], cwd=REPO, env=ENV, capture_output=True, text=True, timeout=TIMEOUT)


def start(*args: str) -> subprocess.Popen:
    return subprocess.Popen([*NAS, *args], cwd=REPO, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def finish(proc: subprocess.Popen) -> subprocess.CompletedProcess:
    out, err = proc.communicate(timeout=TIMEOUT)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


@pytest.fixture(scope="module")
def samples() -> dict[str, subprocess.CompletedProcess]:
    """`nas space sample mobile -n 3 --seed 4` twice and once with --json, run side by side (each imports torch)."""
    procs = {
        "first": start("space", "sample", "mobile", "-n", "3", "--seed", "4"),
        "second": start("space", "sample", "mobile", "-n", "3", "--seed", "4"),
        "json": start("space", "sample", "mobile", "-n", "3", "--seed", "4", "--json"),
    }
    return {name: finish(proc) for name, proc in procs.items()}


def test_validate_shipped_space_by_name():
    result = run("space", "validate", "vision")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok: vision (image)")
    assert "baseline(s) fit" in result.stdout
    assert result.stderr == ""


def test_validate_baseline_spec_fits_its_space():
    result = run("space", "validate", "search_spaces/baselines/resnet.yaml")
    assert result.returncode == 0, result.stderr
    out = result.stdout.strip()
    assert re.match(r"ok: spec [0-9a-f]{12}, fits space 'vision': stem=conv3x16 relu batchnorm \| s1 3x16 ", out), out
    assert len(out.splitlines()) == 1
    assert result.stderr == ""


def test_validate_says_when_the_space_a_spec_names_is_not_found(tmp_path):
    spec = (REPO / "search_spaces" / "baselines" / "resnet.yaml").read_text().replace("space: vision", "space: nope")
    assert "space: nope" in spec
    (tmp_path / "s.yaml").write_text(spec)
    result = run("space", "validate", str(tmp_path / "s.yaml"))
    assert result.returncode == 0, result.stderr
    assert ", names space 'nope', which is not found (not checked against it)" in result.stdout


def test_show_lists_every_stage_and_the_size():
    result = run("space", "show", "sequence")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    first = out.splitlines()[0]
    assert re.match(r"sequence \(sequence\) — ~?[0-9.,^]+ architectures, \d+ choices", first), first
    for title in ("stem", "multipliers", "regularization", "cell (shared by all stages)", "stage 1", "stage 2",
                  "head", "baselines"):
        assert title in out, title
    assert "stage 3" not in out  # sequence has two stages
    assert "mamba" in out and "transformer_encoder" in out


def test_show_lists_each_familys_choices_under_its_name():
    result = run("space", "show", "vision")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "family = {resnet, convnext, vit, hybrid}" in out
    for title in ("resnet: stem", "resnet: stage 3", "convnext: stage 4", "vit: stage 1", "vit: head",
                  "hybrid: cell (shared by all stages)"):
        assert title in out, title
    assert "vit: stage 2" not in out  # the vit family has one stage
    assert "post_act = {True, False} when skip in {residual}" in out  # a condition, without the family's name
    assert "family in" not in out


def test_sample_prints_hash_params_flops(samples):
    result = samples["first"]
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 3, result.stdout
    for line in lines:
        assert re.match(r"[0-9a-f]{12}  ", line), line
        assert "params=" in line and "flops=" in line
        assert "stem=conv3x" in line


def test_sample_is_deterministic(samples):
    assert samples["first"].returncode == samples["second"].returncode == 0
    assert samples["first"].stdout == samples["second"].stdout


def test_sample_json_matches_the_table(samples):
    result = samples["json"]
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 3
    from nas.builder import build, example_input
    from nas.cli.space import si as _si
    from nas.evaluate.measure import count_flops, count_params
    from nas.grammar import load_space

    shape, classes = load_space("mobile").reference_input
    table = samples["first"].stdout.splitlines()
    for line, row in zip(lines, table):
        json.loads(line)  # each line is one JSON document
        spec = ArchSpec.from_json(line)
        assert spec.space == "mobile"
        assert spec.hash() == row.split()[0]
        assert ArchSpec.from_json(spec.to_json()).hash() == row.split()[0]
        model = build(spec, shape, classes)  # the table's counts are the built network's
        params, flops = count_params(model), count_flops(model, example_input(model, 1))
        assert f"params={_si(params):>7}  flops={_si(flops):>7}  " in row


@pytest.mark.parametrize("name", ["does-not-exist.yaml", "does-not-exist.json", "no_such_space"])
def test_missing_file_is_one_line_exit_2(name):
    result = run("space", "validate", name)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: {name}: cannot read ")
    assert "No such file" in lines[0]


@pytest.mark.parametrize("statement", ["import nas", "import nas.errors, nas.spec, nas.io, nas.grammar, nas.cli"])
def test_import_is_cheap(statement):
    code = (f"import sys; {statement}; "
            "print(','.join(m for m in ('torch', 'optuna', 'ray') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=ENV, capture_output=True, text=True,
                            timeout=TIMEOUT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"{statement!r} imported {result.stdout.strip()}"


def _subparsers(parser, prefix=("nas",)):
    import argparse

    yield prefix, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _subparsers(sub, (*prefix, name))


def test_every_option_of_every_command_says_what_it_does():
    from nas.cli import build_parser

    missing = [f"{' '.join(prefix)} {action.option_strings[-1]}"
               for prefix, parser in _subparsers(build_parser()) for action in parser._actions
               if action.option_strings and action.help is None]
    assert missing == []


def test_a_command_without_its_subcommand_prints_that_commands_help(capsys):
    from nas.cli import main

    assert main(["space"]) == 2
    out = capsys.readouterr().out
    assert out.startswith("usage: nas space") and "validate" in out and "sample" in out
    assert main([]) == 2 and capsys.readouterr().out.startswith("usage: nas ")


@pytest.fixture(scope="module")
def exported_arch(tmp_path_factory) -> Path:
    """The arch.json of an export folder as `nas export` writes it (no ONNX / TorchScript: not needed here)."""
    from nas.archjson import ARCH_FILE
    from nas.export import export_model

    spec = ArchSpec.load(REPO / "search_spaces" / "baselines" / "resnet.yaml")
    out = tmp_path_factory.mktemp("export")
    export_model(spec, out, input_shape=(1, 8, 8), num_classes=10, formats=(), latency_repeats=0)
    return out / ARCH_FILE


def test_an_exported_arch_json_is_read_by_validate_eval_and_export(exported_arch, tmp_path):
    result = run("space", "validate", str(exported_arch))
    assert result.returncode == 0, result.stderr
    assert re.match(r"ok: spec [0-9a-f]{12}, fits space 'vision', exported for input \[1, 8, 8\] and 10 classes: ",
                    result.stdout), result.stdout
    result = run("eval", str(exported_arch), "--dataset", "digits", "--epochs", "0.05", "--train-subset", "100",
                 "--no-zero-cost", "--device", "cpu", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["status"] == "ok"  # the result alone on stdout; progress on stderr
    progress = result.stderr.splitlines()
    assert progress[0].startswith("the spec: ") and progress[1] == "loading digits ..."
    assert progress[2].startswith("data: 90 training / 10 validation examples; ")
    last = progress[-1]
    assert last.startswith("epoch ") and ": train loss " in last and last.endswith(" s of training)")
    result = run("export", str(exported_arch), "--dataset", "digits", "-o", str(tmp_path / "again"))
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "again" / "arch.json").read_text())["hash"] == \
        json.loads(exported_arch.read_text())["hash"]


@pytest.mark.parametrize("args, message", [
    (("eval", "sequence", "--dataset", "digits"),
     "error: --dataset: space 'sequence' is for sequence input but dataset 'digits' is image data"),
    (("eval", "search_spaces/baselines/mamba.yaml", "--dataset", "digits"),
     "error: search_spaces/baselines/mamba.yaml: --dataset: the spec is for sequence input but dataset 'digits' "
     "is image data"),
    (("export", "search_spaces/baselines/resnet.yaml", "--input-shape", "0,8,8", "--num-classes", "10"),
     "error: nas export: argument --input-shape: expected positive integers such as 3,32,32 or 784,1, got "
     "'0,8,8'"),
    (("export", "search_spaces/baselines/resnet.yaml", "--dataset", "digits", "--opset", "5"),
     "error: --opset: ONNX opset 5 is not supported: the TorchScript-based exporter of torch "),
])
def test_bad_eval_and_export_options_are_one_line_exit_2(args, message, tmp_path, capsys, monkeypatch):
    """Through nas.cli.main in this process (from the repository root, as ``run`` does; the first case also as a
    real process): exit 2, one line, nothing written."""
    from nas import cli

    args = (*args, "-o", str(tmp_path / "out")) if args[0] == "export" else args
    monkeypatch.chdir(REPO)
    capsys.readouterr()
    try:
        code = cli.main(list(args))
    except SystemExit as e:  # argparse's own errors
        code = e.code
    out, err = capsys.readouterr()
    assert code == 2, out + err
    assert err.startswith(message) and len(err.splitlines()) == 1, err
    assert not (tmp_path / "out").exists()
    if args[0] == "eval" and "sequence" == args[1]:
        result = run(*args)
        assert (result.returncode, result.stderr) == (2, err)


SEEDED = [["space", "sample", "vision"], ["eval", "vision"], ["search", "experiments/digits_demo.yaml"],
          ["train", "runs/x/exports/trial-0000", "--epochs", "1"]]


@pytest.mark.parametrize("seed", ["-1", "2147483647", "1.5", "x"])
@pytest.mark.parametrize("command", SEEDED, ids=lambda c: " ".join(c[:2]))
def test_a_bad_seed_is_one_line_exit_2(command, seed, capsys):
    from nas import cli

    with pytest.raises(SystemExit) as info:
        cli.main([*command, "--seed", seed])
    out, err = capsys.readouterr()
    assert info.value.code == 2 and out == ""
    assert err.splitlines() == [f"error: nas {command[0]}{' ' + command[1] if command[0] == 'space' else ''}: "
                                f"argument --seed: expected an integer in [0, 2147483646], got {seed!r} "
                                f"(see nas {command[0]}{' ' + command[1] if command[0] == 'space' else ''} --help)"]


def test_usage_errors_are_one_line(capsys):
    from nas import cli

    for argv in (["eval"], ["bogus"], ["eval", "vision", "--threads", "0"],
                 ["train", "runs/x/exports/trial-0000", "--epochs", "1", "--max-epochs", "0"]):
        with pytest.raises(SystemExit) as info:
            cli.main(argv)
        out, err = capsys.readouterr()
        assert info.value.code == 2 and out == "" and len(err.splitlines()) == 1, err
        assert err.startswith("error: nas") and "--help)" in err
        assert "max_epochs_this_call" not in err  # the flag is named, not the Python parameter


SPEC = {"input": "image", "stem": {"type": "conv", "width": 8, "kernel_size": 3},
        "stages": [{"depth": 1, "width": 8, "mixer": {"type": "conv", "options": {"kernel_size": 3}}}],
        "head": {"type": "pool", "dropout": 0.0}}


@pytest.mark.parametrize("threads, expected", [(None, 1), ("2", 2)])
def test_eval_trains_with_torch_threads_unless_told(threads, expected, tmp_path, capsys, monkeypatch):
    """`nas eval` trains with torch's thread count (it follows OMP_NUM_THREADS; here the tests set 1), not a
    count of its own (it used min(4, cpu_count)); --threads sets it."""
    import torch

    from nas import cli

    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(SPEC))
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        status = cli.main(["eval", str(spec), "--epochs", "0.1", "--train-subset", "100", "--no-zero-cost", "--json"]
                          + (["--threads", threads] if threads else []))
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    out, err = capsys.readouterr()
    assert status == 0, err
    assert json.loads(out)["training"]["threads"] == expected


@pytest.mark.parametrize("command", [["space", "show"], ["space", "sample"], ["space", "validate"], ["eval"]],
                         ids=" ".join)
def test_what_is_not_a_space_is_named_as_such(command, exported_arch, tmp_path, capsys, monkeypatch):
    """A spec, an export, a run folder, a run config or an empty name where a space is expected: one line saying what
    it is (it was read as a space file: 'unknown key 'space'', 'unknown key 'format'', '.: Is a directory')."""
    from nas import cli

    monkeypatch.chdir(REPO)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "run.json").write_text("{}")
    cases = {str(run_dir): f"error: {run_dir}: is a search run folder, not a space (the run's space is "
                           f"{run_dir / 'space.yaml'})",
             "": "error: empty space name; give a shipped space (vision, mobile, sequence) or a space file"}
    cases["experiments/digits_demo.yaml"] = ("error: experiments/digits_demo.yaml: is a run config (for `nas search`) "
                                             "of space 'vision', not a space")
    if command != ["eval"] and command != ["space", "validate"]:  # those two take a spec
        cases["search_spaces/baselines/resnet.yaml"] = (
            "error: search_spaces/baselines/resnet.yaml: is an architecture spec of space 'vision', not a space "
            "(`nas space validate` checks a spec)")
        cases[str(exported_arch.parent)] = (
            f"error: {exported_arch.parent}: is an architecture spec of space 'vision', not a space "
            "(`nas space validate` checks a spec)")
    for target, message in cases.items():
        assert cli.main([*command, target]) == 2, target
        out, err = capsys.readouterr()
        assert out == "" and err.splitlines() == [message], err


@pytest.mark.parametrize("device, message", [
    ("tpu", "error: --latency-device: unknown latency device 'tpu' (cpu, cuda or cuda:N)"),
    ("", "error: --latency-device: unknown latency device '' (cpu, cuda or cuda:N)"),
])
def test_eval_names_the_latency_device_flag(device, message, capsys):
    """It said 'device: not a torch device: ...', which names the other flag (--device, the training device)."""
    from nas import cli

    assert cli.main(["eval", "vision", "--latency-device", device, "--epochs", "0.1", "--no-zero-cost"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.splitlines() == [message], err
