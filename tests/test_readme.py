"""The README stays true: its Quick start targets exist, every ``nas`` command it shows parses with the real CLI,
and its Python API example runs."""
from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pytest

from nas.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def _blocks(language: str) -> list[tuple[int, str]]:
    """Every fenced block of ``language``: (line number of its first line, text)."""
    lines = README.read_text().splitlines()
    blocks, current, start = [], None, 0
    for number, line in enumerate(lines, 1):
        if current is None and line.strip() == f"```{language}":
            current, start = [], number + 1
        elif current is not None and line.strip() == "```":
            blocks.append((start, "\n".join(current)))
            current = None
        elif current is not None:
            current.append(line)
    return blocks


def _nas_commands() -> list[tuple[int, list[str]]]:
    found = []
    for start, text in _blocks("bash"):
        for offset, line in enumerate(text.splitlines()):
            command = line.split("  #")[0].strip()
            if command.startswith("nas "):
                found.append((start + offset, shlex.split(command)[1:]))
    return found


def test_quick_start_is_two_make_targets_that_exist():
    start, text = _blocks("bash")[0]
    commands = [line.split("#")[0].strip() for line in text.splitlines() if line.strip()]
    assert commands == ["make demo", "make test"], f"README.md:{start}: the Quick start changed: {commands}"
    for target in ("demo", "test"):
        dry = subprocess.run(["make", "-n", target], cwd=ROOT, capture_output=True, text=True)
        assert dry.returncode == 0, f"make -n {target}: {dry.stderr}"


def test_readme_shows_nas_commands():
    assert len(_nas_commands()) >= 10  # the command-line section is where the parser test below gets its input


@pytest.mark.parametrize("line,argv", _nas_commands(), ids=lambda v: str(v) if isinstance(v, int) else None)
def test_readme_nas_command_parses(line, argv):
    """The subcommand and every flag shown exist (parsing only: nothing runs)."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # argparse prints the reason on stderr
        pytest.fail(f"README.md:{line}: `nas {shlex.join(argv)}` does not parse (exit {e.code})")
    assert callable(getattr(args, "handler", None)), f"README.md:{line}: `nas {shlex.join(argv)}` names no command"


def test_readme_python_api_example_runs(capsys):
    """The Python API block, run as written (the embedded digits set, 2 proxy epochs)."""
    (start, code), = [b for b in _blocks("python") if "from nas" in b[1]]
    namespace: dict = {}
    exec(compile(code, f"README.md:{start}", "exec"), namespace)
    spec, child, result = namespace["spec"], namespace["child"], namespace["result"]
    space = namespace["space"]
    a, b = space.assignment(spec), space.assignment(child)
    changed = [k for k in a if k in b and a[k] != b[k]]
    assert len(changed) == 1, changed  # "exactly one choice changed" (active in both)
    assert namespace["model"](__import__("torch").randn(2, 3, 32, 32)).shape == (2, 10)
    assert result.status == "ok" and 0.0 <= result.objectives["accuracy"] <= 1.0
    printed = capsys.readouterr().out
    for key in re.findall(r"# (.+)$", code.splitlines()[-1])[0].split(", "):
        assert key in result.objectives and key in printed


def test_the_configuration_page_shows_the_demo_config_as_shipped():
    """docs/configuration.md opens with the demo's config: the same keys and values as experiments/digits_demo.yaml."""
    import yaml

    page = (ROOT / "docs" / "configuration.md").read_text()
    block = re.search(r"```yaml\n# experiments/digits_demo.yaml\n(.*?)```", page, re.S)
    assert block, "docs/configuration.md lost its copy of experiments/digits_demo.yaml"
    shipped = yaml.safe_load((ROOT / "experiments" / "digits_demo.yaml").read_text())
    assert yaml.safe_load(block.group(1)) == shipped
