"""The package's layout rules, checked on its source.

- no module over 600 lines: each file can be read in one sitting;
- no module imports another module's private (`_`-prefixed) names;
- no import cycle among the package's modules, function-level imports included;
- the kit (`tlrecipes`, `tlrecipes/*.py`) never imports the lab, and importing
  `tlrecipes` imports neither the lab nor any backend library;
- at most 20 top-level exports;
- nothing in the repository points at files outside it (a sibling `shared` folder).
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import tlrecipes

PACKAGE = Path(tlrecipes.__file__).resolve().parent
ROOT = PACKAGE.parent
MAX_LINES = 600
MAX_EXPORTS = 20


def _modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package."""
    modules = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


MODULES = _modules()


def _imports(name: str, path: Path) -> list[tuple[str, list[str], int]]:
    """(imported module, imported names, line) for every import in the file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, [], node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, module] if module else base)
            found.append((module, [alias.name for alias in node.names], node.lineno))
    return found


def _internal_edges(name: str, path: Path) -> set[str]:
    """The package modules that `name` imports (a name that is a submodule counts)."""
    edges = set()
    for module, names, _ in _imports(name, path):
        if module in MODULES:
            edges.add(module)
        for imported in names:
            if f"{module}.{imported}" in MODULES:
                edges.add(f"{module}.{imported}")
    edges.discard(name)
    return edges


def test_no_module_is_over_600_lines():
    long = {
        str(path.relative_to(ROOT)): n
        for path in MODULES.values()
        if (n := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert not long, f"Modules over {MAX_LINES} lines: {long}"


def test_no_module_imports_another_modules_private_names():
    private = []
    for name, path in MODULES.items():
        for module, names, line in _imports(name, path):
            if not module.startswith("tlrecipes") or module == name:
                continue
            parts = module.split(".") + names
            bad = [p for p in parts if p.startswith("_") and not p.startswith("__")]
            if bad:
                private.append(f"{path.relative_to(ROOT)}:{line} imports {bad}")
    assert not private, "\n".join(private)


def test_no_import_cycles():
    graph = {name: _internal_edges(name, path) for name, path in MODULES.items()}
    # A package's __init__ may name its submodules lazily; a submodule importing
    # its package's __init__ is then no cycle, so only module -> module edges count.
    for name in graph:
        graph[name] = {m for m in graph[name] if not _is_package(m)}
    cycles = []
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join(stack[stack.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, "Import cycles:\n" + "\n".join(cycles)


def _is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def test_the_kit_never_imports_the_lab():
    kit = {n: p for n, p in MODULES.items() if not n.startswith("tlrecipes.lab")}
    offenders = []
    for name, path in kit.items():
        for module, names, line in _imports(name, path):
            if module.startswith("tlrecipes.lab") or (
                module == "tlrecipes" and "lab" in names
            ):
                offenders.append(f"{path.relative_to(ROOT)}:{line}")
    # tlrecipes/__init__ hands out `tlrecipes.lab` on request (`tl.lab`), lazily,
    # and `python -m tlrecipes` is the lab's command line, never imported by the kit.
    allowed = ("tlrecipes/__init__.py", "tlrecipes/__main__.py")
    offenders = [o for o in offenders if not o.startswith(allowed)]
    assert not offenders, f"Kit modules importing the lab: {offenders}"


def test_importing_the_kit_imports_neither_the_lab_nor_a_backend_library():
    code = (
        "import sys, tlrecipes\n"
        "heavy = ('tlrecipes.lab', 'keras', 'tensorflow', 'jax', 'torch')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy "
        "or m.startswith('tlrecipes.lab')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]", out.stdout


def test_tl_names_resolve_and_are_few():
    assert len(tlrecipes.__all__) <= MAX_EXPORTS
    assert len(set(tlrecipes.__all__)) == len(tlrecipes.__all__)
    for name in tlrecipes.__all__:
        assert getattr(tlrecipes, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'not_a_name'"):
        tlrecipes.not_a_name  # noqa: B018


def test_nothing_refers_to_files_outside_the_repository():
    repo = ROOT
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=repo, capture_output=True, text=True
    )
    if tracked.returncode != 0:
        pytest.skip("not a git checkout")
    needle = "../" + "shared"
    hits = []
    for rel in tracked.stdout.splitlines():
        path = repo / rel
        binary = {".npz", ".keras", ".png", ".gz", ".h5"}
        if path.suffix in binary or not path.is_file():
            continue
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        if needle in text:
            hits.append(rel)
    assert not hits, f"Files that cite {needle}: {hits}"
