"""The import graph points down: a declared layer order, checked on every import in the package.

Lowest first. A module may import its own package, any package of a lower layer, and the base
modules; never a package of its own layer (siblings stay independent) or of a higher one. Lazy
(function-level) and relative imports count: hiding a dependency does not remove it. A new package
must be given a layer here (the test fails until it is). Within that order, no two modules may
import each other, directly or through others (an import cycle), in a package or among the base
modules.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "minipamayo_ros"

#: lowest layer first. Layer 0: the top-level modules (geometry, trajectory, manifest, io_contract,
#: seeds, params, ...), the generated ``msg`` package and the packages in BASE (pure cores everything
#: may use); they import only each other.
BASE = {"safety"}                     # input/output validation core (trajectory.py delegates to it)
LAYERS: list[set[str]] = [
    {"sim", "control"},               # simulator; follower (siblings: neither imports the other)
    {"scoring"},                      # the run's score from the simulator's ground truth (scene frames)
    {"model"},                        # torch network, training, export (reads sim datasets)
    {"inference"},                    # backends (torch backend runs model/)
    {"policy", "text"},               # the nodes' cores: pipeline / model loading; text generation
    {"nodes"},                        # thin ROS nodes
    {"replay"},                       # rosbag record / lock-step replay / compare
    {"bringup"},                      # runner, demo (records bags through replay), reports
    {"evaluation", "tools"},          # closed loop, DAgger, evaluator (DDS through bringup); engine tools
]


def _layer_of(package: str) -> int:
    """Layer index (0 = top-level modules); AssertionError for an undeclared package."""
    if package in BASE:
        return 0
    for i, names in enumerate(LAYERS, start=1):
        if package in names:
            return i
    if (PACKAGE / package).is_dir():
        raise AssertionError(f"package minipamayo_ros.{package} has no layer: add it to test/test_layers.py")
    return 0


def _package(module: str) -> str:
    """``minipamayo_ros.a.b`` -> ``a`` (a top-level module is its own name)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _module_of(rel: Path) -> str:
    """``minipamayo_ros/a/b.py`` -> ``minipamayo_ros.a.b``; a package's ``__init__.py`` -> the package."""
    parts = rel.with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(name: str) -> bool:
    """Whether ``name`` (``minipamayo_ros.x.y``) is a module or package of the source tree."""
    path = PACKAGE.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _type_checking_only(tree: ast.AST) -> set[int]:
    """ids of the nodes under ``if TYPE_CHECKING:`` (never run)."""
    inside: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            inside |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
    return inside


def imports_of(rel: Path, source: str, runtime_only: bool = False,
               is_module: Callable[[str], bool] = _is_module) -> list[tuple[str, int]]:
    """(imported minipamayo_ros module, line) of one file, lazy and relative imports included
    (``runtime_only``: without those under ``if TYPE_CHECKING:``).

    ``from P import n`` imports the module ``P.n`` when there is one (else names from ``P``); a
    relative import is resolved from ``rel``'s package.
    """
    here = _module_of(rel).split(".")
    package = here if rel.name == "__init__.py" else here[:-1]
    tree = ast.parse(source, str(rel))
    skip = _type_checking_only(tree) if runtime_only else set()
    out = []
    for node in ast.walk(tree):
        names: list[str] = []
        if id(node) in skip:
            continue
        if isinstance(node, ast.ImportFrom):
            if node.level:
                parent = package[:len(package) - node.level + 1]
                base = ".".join(parent + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            subs = [f"{base}.{a.name}" for a in node.names]
            names = [n for n in subs if is_module(n)]
            if len(names) < len(subs):
                names.append(base)  # the other names come from ``base`` itself
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        out += [(n, node.lineno) for n in names if n.startswith("minipamayo_ros.")]
    return out


def import_cycles(sources: dict[Path, str]) -> list[list[str]]:
    """The import cycles among ``sources`` (file -> text): each strongly connected group of two or
    more modules, sorted (Tarjan's algorithm over the module graph; lazy imports count, imports for
    type checking only do not: they never run)."""
    graph: dict[str, set[str]] = {_module_of(rel): set() for rel in sources}
    for rel, text in sources.items():
        src = _module_of(rel)
        for target, _line in imports_of(rel, text, runtime_only=True,
                                        is_module=lambda n: n in graph or _is_module(n)):
            while target not in graph and "." in target:  # ``pkg.mod.Name`` -> ``pkg.mod``
                target = target.rsplit(".", 1)[0]
            if target in graph and target != src:
                graph[src].add(target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                cycles.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(cycles)


def arrows(rel: Path, source: str) -> list[str]:
    """The upward or sideways imports of one file (``rel`` relative to the repository root)."""
    parts = rel.with_suffix("").parts  # ("minipamayo_ros", pkg, ...) or ("minipamayo_ros", module)
    src_pkg = parts[1] if len(parts) > 2 else ""
    bad = []
    for target, line in imports_of(rel, source):
        dst_pkg = _package(target)
        if not (PACKAGE / dst_pkg).is_dir():
            dst_pkg = ""  # a top-level module
        if src_pkg == dst_pkg:
            continue
        a, b = _layer_of(src_pkg) if src_pkg else 0, _layer_of(dst_pkg) if dst_pkg else 0
        if b > a or (a == b and a > 0) or (a == 0 and b > 0):
            bad.append(f"{rel}:{line} imports {target} (layer {a} -> {b})")
    return bad


def _package_sources() -> dict[Path, str]:
    return {path.relative_to(PACKAGE.parent): path.read_text() for path in sorted(PACKAGE.rglob("*.py"))}


def test_the_import_graph_has_no_upward_arrow() -> None:
    bad = [b for rel, text in _package_sources().items() for b in arrows(rel, text)]
    assert not bad, "imports that point up or sideways:\n" + "\n".join(bad)


def test_no_two_modules_import_each_other() -> None:
    cycles = import_cycles(_package_sources())
    assert not cycles, "import cycles (move what both need into a lower module):\n" + "\n".join(
        " <-> ".join(c) for c in cycles)


def test_the_checker_can_fail() -> None:
    """Lazy and relative upward, sideways and base-to-package imports are all reported; downward ones
    are not; cycles are found among base modules and across packages."""
    lazy_up = "def f():\n    from minipamayo_ros.evaluation import closed_loop\n"
    assert arrows(Path("minipamayo_ros/control/x.py"), lazy_up) == [
        "minipamayo_ros/control/x.py:2 imports minipamayo_ros.evaluation.closed_loop "
        f"(layer 1 -> {_layer_of('evaluation')})"]
    assert arrows(Path("minipamayo_ros/sim/x.py"), "import minipamayo_ros.control.follower\n")
    assert arrows(Path("minipamayo_ros/geometry.py"), "from minipamayo_ros import sim\n")
    assert arrows(Path("minipamayo_ros/policy/x.py"), "from minipamayo_ros.text import generator\n")
    assert arrows(Path("minipamayo_ros/evaluation/x.py"),
                  "from minipamayo_ros.sim.world import World\nfrom minipamayo_ros import seeds\n") == []
    relative_up = "def f():\n    from ..nodes import policy_node\n    from . import follower\n"
    assert arrows(Path("minipamayo_ros/control/x.py"), relative_up) == [
        "minipamayo_ros/control/x.py:2 imports minipamayo_ros.nodes.policy_node "
        f"(layer 1 -> {_layer_of('nodes')})"]
    assert arrows(Path("minipamayo_ros/safety/x.py"), "from ..sim.road import Road\n")
    assert imports_of(Path("minipamayo_ros/control/__init__.py"), "from .follower import Follower\n") == [
        ("minipamayo_ros.control.follower", 1)]

    base_cycle = {  # the cycle this test once missed (issue 20): lazy, between a base package and module
        Path("minipamayo_ros/trajectory.py"): "def f():\n    from .safety import trajectory_input\n",
        Path("minipamayo_ros/safety/trajectory_input.py"): "from ..trajectory import X\n"}
    assert import_cycles(base_cycle) == [["minipamayo_ros.safety.trajectory_input",
                                          "minipamayo_ros.trajectory"]]
    typing_only = {Path("minipamayo_ros/sim/a.py"): "from minipamayo_ros.sim import b\n",
                   Path("minipamayo_ros/sim/b.py"):
                       "if TYPE_CHECKING:\n    from minipamayo_ros.sim.a import A\n"}
    assert import_cycles(typing_only) == []
    three = {Path("minipamayo_ros/sim/a.py"): "from minipamayo_ros.sim import b\n",
             Path("minipamayo_ros/sim/b.py"): "from minipamayo_ros.sim.c import f\n",
             Path("minipamayo_ros/sim/c.py"): "import minipamayo_ros.sim.a\n",
             Path("minipamayo_ros/sim/d.py"): "from minipamayo_ros.sim import a\n"}
    assert import_cycles(three) == [["minipamayo_ros.sim.a", "minipamayo_ros.sim.b", "minipamayo_ros.sim.c"]]
    assert import_cycles({k: v for k, v in three.items() if not k.name.startswith("c")}) == []
