"""The import rules ARCHITECTURE.md states, enforced: each room imports only the rooms below it.

Every edge is read from the source, so a rule broken lazily or by name still fails:

* every ``import`` / ``from`` statement, including those inside functions (where zoo imports
  heavy frameworks);
* ``importlib.import_module("...")`` and ``__import__("...")`` with a literal name;
* ``"module:attr"`` strings naming a zoo module (a spec's ``entry``, ``sniff``, ``records``;
  f-strings resolved through the module's own string constants): a plugin reached by name
  is an edge as much as one imported;
* the entry points in pyproject.toml: the ``zoo`` command is the CLI's, a ``zoo`` plugin
  entry point names a plugin package.

The contract room is defined by inclusion (:data:`CONTRACT`): a new top-level module that is
in no room fails until it is placed.
"""

from __future__ import annotations

import ast
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

import zoo

ROOT = Path(zoo.__file__).resolve().parent  # zoo/
REPO = ROOT.parent

#: The contract room, named module by module: the types every room and every plugin shares.
#: A new top-level module joins it here (and in ARCHITECTURE.md) or lives in a room.
CONTRACT = {
    "zoo", "zoo.atomic", "zoo.backend", "zoo.checksums", "zoo.config", "zoo.dataset", "zoo.dicom",
    "zoo.errors", "zoo.files", "zoo.hookspecs", "zoo.lifetime", "zoo.metrics", "zoo.nifti", "zoo.pixels",
    "zoo.predictions", "zoo.progress", "zoo.registry", "zoo.selection", "zoo.specs", "zoo.tasks",
    "zoo.testing",
    "zoo.configs",  # configs/, installed as zoo.configs: the YAML defaults, no code
}
ROOMS = ("data", "training", "evaluation", "pipeline", "cli", "adapters", "plugins")
#: A zoo module in no room (:func:`_room`): fails :func:`test_every_module_is_in_a_room`.
NOWHERE = "nowhere"

#: room -> the rooms its modules may import (its own included).
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
#: Known breaks, each removed as it is fixed. Empty is the goal; never add to it.
KNOWN: set[str] = set()


def _room(module: str) -> str | None:
    """The room of a module; None outside zoo, :data:`NOWHERE` for a zoo module in none."""
    parts = module.split(".")
    if parts[0] != "zoo":
        return None
    if module in CONTRACT:
        return "contract"
    if parts[1] == "__main__":  # python -m zoo: the CLI's front door
        return "cli"
    if parts[1] in ROOMS:
        return parts[1]
    return NOWHERE


@dataclass(frozen=True)
class Source:
    """One module's text, and where it is."""

    module: str
    text: str
    where: str  # path relative to the repo, for messages
    package: bool = False  # an __init__.py: relative imports start from the module itself


def _sources():
    for base, pkg in ((ROOT, "zoo"), (REPO / "adapters", "zoo.adapters"), (REPO / "plugins", "zoo.plugins")):
        for path in sorted(base.rglob("*.py")):
            rel = path.relative_to(base).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            yield Source(".".join([pkg, *parts]), path.read_text(), str(path.relative_to(REPO)),
                         path.name == "__init__.py")


def _typing_only(tree: ast.Module) -> set[int]:
    """ids of the nodes under ``if TYPE_CHECKING:``: annotations, never run."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            out |= {id(n) for b in node.body for n in ast.walk(b)}
    return out


def _statement_targets(node: ast.AST, src: Source, names: bool = False):
    """What an ``import`` / ``from ... import`` statement imports."""
    if isinstance(node, ast.Import):
        yield from (a.name for a in node.names)
    elif isinstance(node, ast.ImportFrom):
        package = src.module if src.package else src.module.rpartition(".")[0]
        if node.level:
            base = package.split(".")[: len(package.split(".")) - node.level + 1]
            target = ".".join(base + ([node.module] if node.module else []))
        else:
            target = node.module or ""
        if target == "zoo":  # from zoo import x: x may be a room or a contract module
            for a in node.names:
                sub = f"zoo.{a.name}"
                yield sub if a.name in MAY_IMPORT or a.name in ROOMS or sub in CONTRACT else "zoo"
        else:
            yield target
            if names:  # from zoo.x import y: y may be the module zoo.x.y
                yield from (f"{target}.{a.name}" for a in node.names)


#: a module name, optionally ``:attr`` (``zoo.adapters.voc:read``)
_DOTTED = r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*"
_ENTRY = re.compile(rf"({_DOTTED}):[A-Za-z_][\w.]*")
_DYNAMIC = "\0"  # an f-string's part that is not a constant of the module


def _constants(tree: ast.Module) -> dict[str, str]:
    """The module's top-level string constants (``_A = "zoo.adapters"``), for f-strings."""
    out = {}
    for node in tree.body:
        value = node.value if isinstance(node, (ast.Assign, ast.AnnAssign)) else None
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        if isinstance(value, ast.Constant) and isinstance(value.value, str):
            out.update({t.id: value.value for t in targets if isinstance(t, ast.Name)})
    return out


def _text(node: ast.AST, constants: dict[str, str]) -> str | None:
    """A string literal's text; an f-string's with its constants filled in and every other
    part :data:`_DYNAMIC`; None for anything else."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if not isinstance(node, ast.JoinedStr):
        return None
    parts = []
    for v in node.values:
        if isinstance(v, ast.Constant):
            parts.append(str(v.value))
        elif isinstance(v, ast.FormattedValue) and isinstance(v.value, ast.Name) and v.value.id in constants:
            parts.append(constants[v.value.id])
        else:
            parts.append(_DYNAMIC)
    return "".join(parts)


def _static_module(name: str) -> str:
    """The dotted name up to its first dynamic part (whole components only)."""
    if _DYNAMIC not in name:
        return name
    return name.split(_DYNAMIC)[0].rpartition(".")[0]


def _dynamic_import(node: ast.Call, constants: dict[str, str]) -> str | None:
    """The module ``importlib.import_module("x")`` / ``__import__("x")`` imports, when named."""
    func = node.func
    called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    if called not in ("import_module", "__import__") or not node.args:
        return None
    name = _text(node.args[0], constants)
    return _static_module(name) if name else None


def _named_module(node: ast.AST, constants: dict[str, str]) -> str | None:
    """The zoo module a ``"module:attr"`` string names (a spec's entry), else None."""
    text = _text(node, constants)
    if not text or not text.startswith("zoo.") or not _ENTRY.fullmatch(text.replace(_DYNAMIC, "x")):
        return None
    return _static_module(text.partition(":")[0])


def _edges(src: Source, typing_too: bool = True, strings: bool = True, names: bool = False):
    """(line, module) for every module ``src`` reaches: statements, ``import_module`` calls
    with a literal name and (``strings``) ``"module:attr"`` strings naming zoo modules;
    ``names``: also each ``from x import y`` as ``x.y`` (the module y, when it is one)."""
    tree = ast.parse(src.text, src.where)
    skip = set() if typing_too else _typing_only(tree)
    constants = _constants(tree)
    in_fstring = {id(v) for n in ast.walk(tree) if isinstance(n, ast.JoinedStr) for v in n.values}
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for target in _statement_targets(node, src, names):
                yield node.lineno, target
        elif isinstance(node, ast.Call) and (target := _dynamic_import(node, constants)):
            yield node.lineno, target
        elif strings and id(node) not in in_fstring and (target := _named_module(node, constants)):
            yield node.lineno, target


def _another_plugin(module: str, target: str) -> bool:
    """A backend plugin importing another one (zoo.plugins.a -> zoo.plugins.b): each is
    installed and registered on its own, as a third party's; what they share is the contract
    and the rooms below it (the dense-network kit is zoo.training.dense)."""
    mine, theirs = module.split("."), target.split(".")
    if not (mine[:2] == theirs[:2] == ["zoo", "plugins"] and len(mine) > 2 and len(theirs) > 2):
        return False
    return mine[2] != theirs[2]


def _breaks(sources=None):
    """(edge, where) for every edge the import table forbids."""
    for src in _sources() if sources is None else sources:
        room = _room(src.module)
        allowed = MAY_IMPORT.get(room, set()) | EXCEPTIONS.get(src.module, set())
        for line, target in _edges(src):
            to = _room(target)
            if (to is not None and to not in allowed) or _another_plugin(src.module, target):
                yield f"{src.module} -> {target}", f"{src.where}:{line}"


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


def test_every_module_is_in_a_room():
    """The contract is a named list: a new top-level module is placed, never in by default."""
    lost = [src.where for src in _sources() if _room(src.module) == NOWHERE]
    assert not lost, f"in no room (add to CONTRACT and ARCHITECTURE.md, or move into a room): {lost}"


def _named_modules(src: Source):
    """(line, module) for each zoo module ``src`` names in a ``"module:attr"`` string or a
    literal ``import_module``: what the registry or a loader will import later."""
    tree = ast.parse(src.text, src.where)
    constants = _constants(tree)
    for node in ast.walk(tree):
        name = _dynamic_import(node, constants) if isinstance(node, ast.Call) else _named_module(node, constants)
        if name and name.startswith("zoo.") and _DYNAMIC not in name:
            yield node.lineno, name


def test_every_module_named_by_a_string_exists():
    """A typo in a spec's entry fails here, not when a user first picks that backend."""
    sources = list(_sources())
    modules = {s.module for s in sources}
    missing = [f"{s.where}:{line}: {name}" for s in sources for line, name in _named_modules(s) if name not in modules]
    assert not missing, "named, but no such module:\n  " + "\n  ".join(missing)


def _entry_point_breaks(pyproject: dict, modules: set[str]):
    """pyproject.toml's entry points that land outside their room or on no module: the
    ``zoo`` command is the CLI's, every ``zoo`` plugin is a plugin package -- or the evaluation
    room's registration of its evaluators (``zoo_evaluators``, zoo.evaluation.plugin)."""
    project = pyproject.get("project", {})
    groups = [("cli", project.get("scripts", {}))]
    groups += [("plugin", eps) for group, eps in project.get("entry-points", {}).items() if group == "zoo"]
    for want, eps in groups:
        for name, value in eps.items():
            module = value.partition(":")[0].strip()
            room = _room(module)
            ok = room == "cli" if want == "cli" else room in ("adapters", "plugins", "evaluation")
            if not ok or (room is not None and module not in modules):
                yield f"entry point {name} = {value!r}: " + (f"not a {want} module" if not ok else "no such module")


def test_entry_points_name_modules_in_their_rooms():
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert list(_entry_point_breaks(pyproject, {s.module for s in _sources()})) == []


def _import_graph(sources=None) -> dict[str, set[str]]:
    """module -> the modules it imports when it runs. A spec's ``"module:attr"`` string is left
    out: it is how a plugin names its own parts to load later (checked by the room rules)."""
    modules = {s.module: s for s in (_sources() if sources is None else sources)}
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for module, src in modules.items():
        for _, target in _edges(src, typing_too=False, strings=False, names=True):
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


# -- imports of zoo's own modules sit at the top ------------------------------------------------------

#: Why a module keeps imports of zoo's own modules inside functions (the counts: LAZY_OWN).
PATCHED = "zoo.registry.get_registry looked up when called: tests patch it"

#: module -> (imports of zoo's own modules it keeps inside functions, why). A module not
#: listed keeps none; a count only goes down. Frameworks (torch, ...) stay lazy and are not counted.
LAZY_OWN: dict[str, tuple[int, str]] = {
    "zoo.config": (1, PATCHED),
    "zoo.data.lint_fix": (1, PATCHED),
    "zoo.pipeline.compare": (1, PATCHED),
    "zoo.pipeline.convert": (1, PATCHED),
    "zoo.pipeline.predict": (3, PATCHED),
    "zoo.pipeline.prepare": (1, PATCHED),
}


def _lazy_own_imports(src: Source):
    """(line, module) for each import of a zoo module made inside a function."""
    tree = ast.parse(src.text, src.where)
    for fn in ast.walk(tree):
        if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for node in ast.walk(fn):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                yield from ((node.lineno, t) for t in _statement_targets(node, src) if _room(t) is not None)


#: The rooms whose imports of zoo modules have been hoisted (issue 31 point 6 goes room by
#: room); in these a new lazy import of a zoo module fails. The CLI is not one: its commands
#: import the pipeline inside the command function by design (`zoo --help` / `zoo list` import
#: no pipeline and no framework, tests/test_cli.py). Nor is the evaluation room: the registry
#: loads its evaluators for `zoo list` (zoo.evaluation.plugin), so their own imports of what
#: needs numpy stay lazy. Nor are the backend plugins: a plugin's modules that import its
#: framework at their top load only when the backend is used (spec.load).
HOISTED = {"pipeline", "data", "contract", "training", "adapters"}


def _lazy_over(sources) -> dict[str, str]:
    """module -> what it imports lazily beyond its allowance (each import counted once, even when
    a nested function's is seen from its outer one too), in the rooms :data:`HOISTED`."""
    over = {}
    for src in sources:
        if _room(src.module) not in HOISTED:
            continue
        found = sorted(set(_lazy_own_imports(src)))
        allowed = LAZY_OWN.get(src.module, (0, ""))[0]
        if len(found) > allowed:
            over[src.module] = f"{len(found)} > {allowed}: " + ", ".join(f"{src.where}:{line} {t}" for line, t in found)
    return over


def test_zoo_modules_are_imported_at_the_top():
    """What a module needs shows at its top; inside a function only frameworks and the
    recorded exceptions (LAZY_OWN, each with its reason)."""
    over = _lazy_over(_sources())
    assert not over, "imports of zoo modules inside functions (hoist them, or record why in LAZY_OWN):\n" + "\n".join(
        f"  {m}: {w}" for m, w in sorted(over.items()))


def test_every_lazy_allowance_names_a_module_and_a_reason():
    modules = {s.module for s in _sources()}
    assert [m for m, (n, why) in LAZY_OWN.items() if m not in modules or n < 1 or not why] == []


# -- the checks catch what they are for: breaks planted in sources that never touch disk ------------

#: (the module a break is planted in, its text, the edge the check must report)
PLANTED = [
    ("zoo.data.planted", "from zoo.pipeline.run import execute\n", "zoo.data.planted -> zoo.pipeline.run"),
    ("zoo.data.planted", "def f():\n    import zoo.training.loop\n", "zoo.data.planted -> zoo.training.loop"),
    ("zoo.dataset", "from .evaluation import coco\n", "zoo.dataset -> zoo.evaluation"),
    ("zoo.evaluation.planted", "import importlib\nm = importlib.import_module('zoo.pipeline.report')\n",
     "zoo.evaluation.planted -> zoo.pipeline.report"),
    ("zoo.training.planted", "from importlib import import_module\ndef f():\n    import_module('zoo.cli.views')\n",
     "zoo.training.planted -> zoo.cli.views"),
    ("zoo.data.planted", "m = __import__('zoo.evaluation.semantic')\n", "zoo.data.planted -> zoo.evaluation.semantic"),
    ("zoo.data.planted", "_P = 'zoo.pipeline'\ndef f(name):\n    return import_module(f'{_P}.{name}')\n",
     "zoo.data.planted -> zoo.pipeline"),
    ("zoo.tasks", "class T:\n    evaluator_path = 'zoo.evaluation.classify:ClassifyEvaluator'\n",
     "zoo.tasks -> zoo.evaluation.classify"),
    ("zoo.adapters", "_A = 'zoo.pipeline'\nSPEC = dict(entry=f'{_A}.convert:write')\n",
     "zoo.adapters -> zoo.pipeline.convert"),
    ("zoo.plugins.smp", "def spec(cls):\n    return f'zoo.plugins.yolov8.backend:{cls}'\n",
     "zoo.plugins.smp -> zoo.plugins.yolov8.backend"),
    ("zoo.plugins.yolact.backend", "from zoo.plugins.detectron2 import backend\n",
     "zoo.plugins.yolact.backend -> zoo.plugins.detectron2"),
]


@pytest.mark.parametrize(("module", "text", "edge"), PLANTED, ids=[e for _, _, e in PLANTED])
def test_a_planted_break_is_caught(module, text, edge):
    src = Source(module, text, f"{module}.py")
    assert edge in {e for e, _ in _breaks([src])}


@pytest.mark.parametrize("text", [
    "import torch\nfrom zoo.dataset import Dataset\n",
    "from zoo.data import reading\n",
    "msg = 'zoo.yaml: bad key'\ncuda = 'cuda:0'\n",  # a file name and a device, not modules
    "'''See zoo.pipeline.run:execute for the path.'''\n",  # prose, not an entry
    "if TYPE_CHECKING:\n    pass\nx = f'{name}.run:execute'\n",  # nothing of zoo named
])
def test_what_the_rules_allow_is_not_reported(text):
    assert list(_breaks([Source("zoo.data.fine", text, "zoo/data/fine.py")])) == []


def test_a_plugins_own_entry_strings_are_allowed():
    text = "_HERE = 'zoo.plugins.smp'\ndef spec(cls):\n    return dict(entry=f'{_HERE}.backend:{cls}')\n"
    assert list(_breaks([Source("zoo.plugins.smp", text, "plugins/smp/__init__.py", package=True)])) == []


def test_a_misspelt_entry_is_caught():
    src = Source("zoo.adapters", "_A = 'zoo.adapters'\nR = dict(entry=f'{_A}.vocc:read')\n", "adapters/__init__.py", True)
    assert list(_named_modules(src)) == [(2, "zoo.adapters.vocc")]


def test_a_new_top_level_module_is_in_no_room():
    assert _room("zoo.planted") == NOWHERE
    assert _room("zoo.tasks") == "contract" and _room("zoo.data.planted") == "data" and _room("numpy") is None


def test_a_planted_entry_point_break_is_caught():
    modules = {"zoo.cli", "zoo.adapters", "zoo.plugins.smp", "zoo.pipeline.run"}
    pyproject = {"project": {
        "scripts": {"zoo": "zoo.pipeline.run:main"},
        "entry-points": {"zoo": {"adapters": "zoo.adapters", "core": "zoo.pipeline.run", "typo": "zoo.plugins.smpp"}},
    }}
    found = "\n".join(_entry_point_breaks(pyproject, modules))
    assert "zoo = 'zoo.pipeline.run:main': not a cli module" in found
    assert "core = 'zoo.pipeline.run': not a plugin module" in found
    assert "typo = 'zoo.plugins.smpp': no such module" in found
    assert "adapters" not in found


def test_a_planted_lazy_own_import_is_caught():
    text = "import torch\n\ndef f():\n    import numpy\n    from zoo.data.split import choose_split\n"
    over = _lazy_over([Source("zoo.data.planted", text, "zoo/data/planted.py")])
    assert over == {"zoo.data.planted": "1 > 0: zoo/data/planted.py:5 zoo.data.split"}


def test_a_planted_lazy_cycle_is_caught():
    a = Source("zoo.data.a", "def f():\n    from zoo.data import b\n", "a.py")
    b = Source("zoo.data.b", "from zoo.data.a import f\n", "b.py")
    assert _cycles(_import_graph([a, b])) == [["zoo.data.a", "zoo.data.b"]]
