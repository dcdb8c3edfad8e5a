"""The package's structure as a checked contract (docs/architecture.md): the import-linter layers in pyproject.toml,
no import circle, no underscore name taken from another module, nas imports at module top (the few lazy ones say
which heavy package they keep out of start-up), and no module so long it holds several rooms."""
from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "nas"
MODULES = sorted(PACKAGE.rglob("*.py"))
MAX_LAZY = 22  # the CLI's command handlers, the Python API's functions and the three samplers built on optuna
MAX_LINES = 700


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def nas_imports(path: Path):
    """(node, imported module, names, inside a function) of every import of a nas module in ``path``."""
    tree = ast.parse(path.read_text())
    inside = set()
    for fn in ast.walk(tree):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            inside.update(id(n) for n in ast.walk(fn))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and node.module.split(".")[0] == "nas":
            yield node, node.module, [a.name for a in node.names], id(node) in inside
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "nas":
                    yield node, alias.name, [], id(node) in inside


def test_import_linter_contracts_hold():
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    assert lint, "import-linter is a test dependency (pip install -e '.[test]')"
    result = subprocess.run([lint, "--config", str(ROOT / "pyproject.toml")], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def test_no_import_circle_among_nas_modules():
    """Every nas import counts, lazy ones included (a circle kept importable by a lazy import is still a circle)."""
    graph: dict[str, set[str]] = {}
    names = {module_name(p) for p in MODULES}
    for path in MODULES:
        edges = graph.setdefault(module_name(path), set())
        for _, module, imported, _ in nas_imports(path):
            for target in [f"{module}.{n}" for n in imported] + [module]:
                if target in names and target != module_name(path):
                    edges.add(target)
                    break
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                pytest.fail("import circle: " + " -> ".join(stack[stack.index(nxt):] + [nxt]))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)


@pytest.mark.parametrize("path", MODULES + sorted((ROOT / "experiments").glob("*.py")),
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_no_underscore_name_is_imported_from_another_module(path):
    for node, module, imported, _ in nas_imports(path):
        private = [n for n in imported if n.startswith("_") and not n.startswith("__")]
        assert not private, f"{path.relative_to(ROOT)}:{node.lineno} imports {private} from {module}"


def test_nas_imports_inside_functions_are_few_and_say_why():
    lazy = []
    for path in MODULES:
        lines = path.read_text().splitlines()
        for node, module, _, inside in nas_imports(path):
            if inside:
                where = f"{path.relative_to(ROOT)}:{node.lineno}"
                assert "# heavy:" in lines[node.end_lineno - 1], f"{where}: a lazy nas import names its reason"
                lazy.append(where)
    assert len(lazy) <= MAX_LAZY, lazy


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_holds_several_rooms(path):
    assert len(path.read_text().splitlines()) <= MAX_LINES, f"{path.relative_to(ROOT)}: split it by room"
