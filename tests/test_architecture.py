"""The import rules ARCHITECTURE.md states, enforced: each room imports only the rooms below it.

Imports are read from the source (every ``import``/``from`` statement, including those inside
functions, which is where zoo imports heavy frameworks), so a rule broken lazily still fails.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import zoo

ROOT = Path(zoo.__file__).resolve().parent  # zoo/
REPO = ROOT.parent

#: room -> the rooms its modules may import (its own included). "contract" is the top level of
#: zoo/: the types every room and every plugin shares.
MAY_IMPORT = {
    "contract": {"contract"},
    "data": {"contract", "data"},
    "training": {"contract", "data", "training"},
    "evaluation": {"contract", "data", "evaluation"},
    "pipeline": {"contract", "data", "training", "evaluation", "pipeline"},
    "cli": {"contract", "data", "training", "evaluation", "pipeline", "cli"},
    # first-party plugins, registered as a third party's are: never the pipeline or the CLI
    "adapters": {"contract", "data", "evaluation", "adapters"},
    "plugins": {"contract", "data", "training", "evaluation", "plugins"},
}
#: zoo.testing is the plugin author's kit: it drives a backend through data, training and scoring.
EXCEPTIONS = {"zoo.testing": {"data", "training", "evaluation"}}
#: Known breaks, each removed as issue 15 lands. Empty is the goal; never add to it.
KNOWN: set[str] = set()


def _room(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "zoo":
        return None
    if len(parts) == 1:
        return "contract"
    if parts[1] == "__main__":  # python -m zoo: the CLI's front door
        return "cli"
    if parts[1] in {"data", "training", "evaluation", "pipeline", "cli", "adapters", "plugins"}:
        return parts[1]
    if parts[1] == "configs":
        return "contract"
    return "contract"


def _sources():
    for base, pkg in ((ROOT, "zoo"), (REPO / "adapters", "zoo.adapters"), (REPO / "plugins", "zoo.plugins")):
        for path in sorted(base.rglob("*.py")):
            rel = path.relative_to(base).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            yield path, ".".join([pkg, *parts])


def _typing_only(tree: ast.Module) -> set[int]:
    """ids of the import nodes under ``if TYPE_CHECKING:``: annotations, never run."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            out |= {id(n) for b in node.body for n in ast.walk(b)}
    return out


def _imports(path: Path, module: str, typing_too: bool = True):
    tree = ast.parse(path.read_text(), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    skip = set() if typing_too else _typing_only(tree)
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            for a in node.names:
                yield node.lineno, a.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target == "zoo":  # from zoo import x: x may be a room
                for a in node.names:
                    yield node.lineno, f"zoo.{a.name}" if a.name in MAY_IMPORT else "zoo"
            else:
                yield node.lineno, target


#: plugin -> the plugins it is built on, each declared by its extra in pyproject.toml (the MONAI
#: networks train through the smp plugin's SegmentationBackend, and zoo[monai] installs smp).
BUILT_ON = {"monai_nets": {"smp"}}


def _another_plugin(module: str, target: str) -> bool:
    """A backend plugin importing another one (zoo.plugins.a -> zoo.plugins.b) that it is not
    declared to be built on: each is installed and registered on its own, as a third party's;
    what they share is the contract and the rooms below it."""
    mine, theirs = module.split("."), target.split(".")
    if not (mine[:2] == theirs[:2] == ["zoo", "plugins"] and len(mine) > 2 and len(theirs) > 2):
        return False
    return mine[2] != theirs[2] and theirs[2] not in BUILT_ON.get(mine[2], set())


def _breaks():
    for path, module in _sources():
        room = _room(module)
        allowed = MAY_IMPORT[room] | EXCEPTIONS.get(module, set())
        for line, target in _imports(path, module):
            to = _room(target)
            if (to is not None and to not in allowed) or _another_plugin(module, target):
                yield f"{module} -> {target}", f"{path.relative_to(REPO)}:{line}"


def test_every_room_imports_only_what_architecture_md_allows():
    found = {}
    for edge, where in _breaks():
        found.setdefault(edge, where)
    new = {e: w for e, w in found.items() if e not in KNOWN}
    assert not new, "imports ARCHITECTURE.md forbids:\n" + "\n".join(f"  {w}: {e}" for e, w in sorted(new.items(), key=lambda x: x[1]))


def test_known_breaks_are_still_there():
    """A fixed break leaves KNOWN, so the list only shrinks."""
    found = {edge for edge, _ in _breaks()}
    assert not (KNOWN - found), f"fixed, remove from KNOWN: {sorted(KNOWN - found)}"


def _import_graph() -> dict[str, set[str]]:
    modules = dict((m, p) for p, m in _sources())
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for module, path in modules.items():
        for _, target in _imports(path, module, typing_too=False):
            # ``from zoo.x import y``: y is a module when zoo.x.y is one
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != module and target != "zoo":
                graph[module].add(target)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            part = []
            while True:
                w = stack.pop()
                part.append(w)
                if w == v:
                    break
            if len(part) > 1:
                cycles.append(sorted(part))

    for v in graph:
        if v not in index:
            visit(v)
    return cycles


def test_no_import_cycles():
    """No two modules import each other, even lazily inside a function (an import inside a
    function is how a circle usually hides); ``if TYPE_CHECKING:`` imports are annotations."""
    assert _cycles(_import_graph()) == []


@pytest.mark.parametrize("room", ["data", "training", "evaluation", "pipeline", "cli"])
def test_each_room_is_a_package(room):
    assert (ROOT / room / "__init__.py").is_file()
