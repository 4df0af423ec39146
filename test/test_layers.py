"""The import graph points down: a declared layer order, checked on every import in the package.

Lowest first. A module may import its own package, any package of a lower layer, and the base
modules; never a package of its own layer (siblings stay independent) or of a higher one. Lazy
(function-level) imports count: hiding a dependency does not remove it. A new package must be
given a layer here (the test fails until it is).
"""

from __future__ import annotations

import ast
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
    {"policy"},                       # the policy node's core: pipeline, model loading
    {"text"},                         # the text node's core (resolves manifests like the policy)
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


def imports_of(rel: Path, source: str) -> list[tuple[str, int]]:
    """(imported minipamayo_ros module, line) of one file, lazy imports included."""
    out = []
    for node in ast.walk(ast.parse(source, str(rel))):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "minipamayo_ros":  # `from minipamayo_ros import x`: x is the module
                names = [f"minipamayo_ros.{a.name}" for a in node.names]
            else:
                names = [node.module]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        out += [(n, node.lineno) for n in names if n.startswith("minipamayo_ros.")]
    return out


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


def test_the_import_graph_has_no_upward_arrow() -> None:
    bad = [b for path in sorted(PACKAGE.rglob("*.py"))
           for b in arrows(path.relative_to(PACKAGE.parent), path.read_text())]
    assert not bad, "imports that point up or sideways:\n" + "\n".join(bad)


def test_the_checker_can_fail() -> None:
    """Lazy upward, sideways and base-to-package imports are all reported; downward ones are not."""
    lazy_up = "def f():\n    from minipamayo_ros.evaluation import closed_loop\n"
    assert arrows(Path("minipamayo_ros/control/x.py"), lazy_up) == [
        f"minipamayo_ros/control/x.py:2 imports minipamayo_ros.evaluation (layer 1 -> {len(LAYERS)})"]
    assert arrows(Path("minipamayo_ros/sim/x.py"), "import minipamayo_ros.control.follower\n")
    assert arrows(Path("minipamayo_ros/geometry.py"), "from minipamayo_ros import sim\n")
    assert arrows(Path("minipamayo_ros/evaluation/x.py"),
                  "from minipamayo_ros.sim.world import World\nfrom minipamayo_ros import seeds\n") == []
