"""The nas.data package's layout rules: nas imports only at module top, no underscore names imported across modules,
no import cycle among its modules, and the public face keeps the single module's names."""
from __future__ import annotations

import ast
from pathlib import Path

import nas.data

PACKAGE = Path(nas.data.__file__).resolve().parent
MODULES = {p.stem: ast.parse(p.read_text(), filename=str(p)) for p in sorted(PACKAGE.glob("*.py"))}
# the public names of the single-module nas.data this package replaced
SINGLE_MODULE_NAMES = {
    "Dataset", "load_dataset", "dataset_names", "resolve_data_dir", "read_cifar10_tarball", "download_cifar10",
    "make_selective_copy", "CIFAR10_URL", "CIFAR10_MD5", "CIFAR10_TARBALL", "CIFAR10_SIZE", "DEFAULT_DATA_DIR",
    "TEST_SPLIT_SEED", "TEST_FRACTION", "SC_TOKENS", "SC_POOL", "SC_TEST", "SC_MIN_LENGTH", "SC_MAX_LENGTH",
    "crop_padding", "random_crop", "random_flip",
}


def _nas_imports(tree: ast.Module):
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "nas":
            yield node, node.module, [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "nas":
                    yield node, alias.name, []


def test_nas_imports_at_module_top_and_no_underscore_names():
    for stem, tree in MODULES.items():
        for node, module, names in _nas_imports(tree):
            assert node in tree.body, f"nas/data/{stem}.py:{node.lineno}: import of {module} inside a function"
            private = [n for n in names if n.startswith("_")]
            assert not private, f"nas/data/{stem}.py:{node.lineno}: imports {private} from {module}"


def test_no_import_cycle():
    def edges(tree):
        for _, module, names in _nas_imports(tree):
            if module == "nas.data":  # the package itself, or its submodules by name
                yield from (n for n in names if n in MODULES) if names else ["__init__"]
                if any(n not in MODULES for n in names):
                    yield "__init__"
            elif module.startswith("nas.data."):
                yield module.split(".")[2]

    graph = {stem: set(edges(tree)) for stem, tree in MODULES.items()}
    assert graph["__init__"] >= {"digits", "npz", "cifar10", "folder", "selective_copy"}  # sources register
    done: set[str] = set()

    def visit(stem, path):
        assert stem not in path, f"import cycle: {' -> '.join(path + [stem])}"
        if stem not in done:
            for nxt in graph[stem]:
                visit(nxt, path + [stem])
            done.add(stem)

    for stem in graph:
        visit(stem, [])


def test_public_face_keeps_the_single_module_names():
    assert set(nas.data.__all__) == SINGLE_MODULE_NAMES
    for name in SINGLE_MODULE_NAMES:
        assert getattr(nas.data, name) is not None
