"""The packages' import graph: layered, without circles, and private names kept private.

Every import counts, at module level, inside functions and under ``TYPE_CHECKING`` alike:
evo_nas_common -> search_spaces -> {surrogates, ground_truths} -> evo_nas, where an arrow
means "may be imported by", and the two scorer packages do not import each other. Inside
evo_nas the wings are layered the same way (``WINGS``), and the front door
(``evo_nas/__init__.py``) stands above them all: no wing imports it.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

#: package -> layer; a module may import its own package and lower layers only
LAYERS = {
    "evo_nas_common": 0,
    "search_spaces": 1,
    "surrogates": 2,
    "ground_truths": 2,
    "evo_nas": 3,
}
#: evo_nas's wings -> layer; a wing imports its own modules and lower wings only
WINGS = {
    "config": 0,
    "execution": 1,
    "rundir": 2,
    "search": 3,
    "reports": 4,
    "compare": 5,
    "dashboard": 6,
    "cli": 7,
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for package in LAYERS for p in sorted((REPO / package).rglob("*.py"))}


def _imports(module: str) -> list[tuple[str, list[str]]]:
    """(module imported, names taken from it) for every import statement of ``module``."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                out.append((sub, []) if sub in MODULES else (base, [alias.name]))
    return [(m, names) for m, names in out if m.split(".")[0] in LAYERS]


GRAPH = {m: _imports(m) for m in MODULES}


def _package(module: str) -> str:
    return module.split(".")[0]


def test_every_package_of_the_layers_is_found() -> None:
    assert {_package(m) for m in MODULES} == set(LAYERS)
    assert all(m in MODULES for edges in GRAPH.values() for m, _ in edges), "an unknown module"


def test_imports_go_down_the_layers_only() -> None:
    upward = [
        f"{m} imports {target}"
        for m, edges in GRAPH.items()
        for target, _ in edges
        if _package(target) != _package(m) and LAYERS[_package(target)] >= LAYERS[_package(m)]
    ]
    assert upward == []


def _wing(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "evo_nas" and len(parts) > 1 else None


def test_every_wing_is_layered() -> None:
    found = {_wing(m) for m in MODULES} - {None}
    assert found <= set(WINGS), f"a wing missing from WINGS: {found - set(WINGS)}"


def test_wings_import_down_only_and_never_the_front_door() -> None:
    upward = [
        f"{m} imports {target}"
        for m, edges in GRAPH.items()
        if _wing(m) is not None
        for target, _ in edges
        if _package(target) == "evo_nas"
        and (_wing(target) is None or WINGS[_wing(target)] > WINGS[_wing(m)])
    ]
    assert upward == []


def test_no_module_imports_itself_through_a_circle() -> None:
    """Depth-first search over the modules; a back edge is a circle (named in the failure)."""
    edges = {m: sorted({t for t, _ in GRAPH[m] if t != m}) for m in GRAPH}
    state: dict[str, str] = {}
    circles: list[list[str]] = []

    def visit(m: str, path: list[str]) -> None:
        state[m] = "open"
        for t in edges[m]:
            if state.get(t) == "open":
                circles.append(path[path.index(t) :] + [m, t] if t in path else [m, t])
            elif t not in state:
                visit(t, path + [m])
        state[m] = "done"

    for m in sorted(edges):
        if m not in state:
            visit(m, [])
    assert circles == []


def test_no_private_name_is_imported_from_another_module() -> None:
    private = [
        f"{m} imports {name} from {target}"
        for m, edges in GRAPH.items()
        for target, names in edges
        for name in names
        if target != m and name.startswith("_")
    ]
    assert private == []


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_private_member_of_another_object_is_used(module: str) -> None:
    """``obj._x`` only on ``self`` and ``cls``: a module does not reach into another's parts."""
    tree = ast.parse(MODULES[module].read_text())
    reached = [
        f"line {node.lineno}: {ast.unparse(node)}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and node.attr.startswith("_")
        and not node.attr.startswith("__")
        and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
    ]
    assert reached == []


def test_the_front_door_is_cheap_and_every_name_it_lists_is_there() -> None:
    """``import evo_nas`` loads neither torch nor the engine; each public name resolves."""
    code = (
        "import sys, evo_nas\n"
        "heavy = sorted(m for m in ('torch', 'numpy', 'evo_nas.search', 'surrogates') "
        "if m in sys.modules)\n"
        "assert not heavy, heavy\n"
        "missing = [n for n in evo_nas.__all__ if getattr(evo_nas, n, None) is None]\n"
        "assert not missing, missing\n"
        "assert evo_nas.Surrogate.__module__ == 'surrogates.base'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr
