"""The parameter tables of README.md and docs/*.md, generated from the ``param(...)`` declarations.

    python -m minipamayo_ros.tools.param_docs --write    # rewrite the tables in a source checkout
    python -m minipamayo_ros.tools.param_docs --check    # exit 1 when a table is stale (a test runs it)
    python -m minipamayo_ros.tools.param_docs            # print the tables

Each node's configuration dataclass (``minipamayo_ros.params``) is the only place a parameter is
described, so its documentation is derived like its ROS descriptor: every table lies between
``<!-- param-table:NAME begin ... -->`` and ``<!-- param-table:NAME end -->`` and is replaced
whole (as generate_parameter_library does for its docs). Cross-parameter rules are the config's
``__post_init__``; their prose stays beside the table.
"""

from __future__ import annotations

import argparse
import difflib
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from minipamayo_ros.control.config import FollowerConfig
from minipamayo_ros.params import ParamSpec, param_specs
from minipamayo_ros.policy.config import PolicyConfig
from minipamayo_ros.sim.config import SimulatorConfig
from minipamayo_ros.text.config import TextConfig

COMMAND = "python -m minipamayo_ros.tools.param_docs --write"


@dataclass(frozen=True)
class NodeParams:
    """One node: its config class, its defaults file and the doc that holds its table."""

    node: str
    config: type
    yaml: str           # config/<file>: the shipped defaults (tests check they match)
    doc: str            # markdown file (repository-relative) holding the table


NODES: tuple[NodeParams, ...] = (
    NodeParams("policy", PolicyConfig, "config/policy.yaml", "docs/policy.md"),
    NodeParams("follower", FollowerConfig, "config/follower.yaml", "docs/follower.md"),
    NodeParams("text", TextConfig, "config/text.yaml", "docs/text.md"),
    NodeParams("simulator", SimulatorConfig, "config/simulator.yaml", "docs/simulator.md"),
)
INDEX_DOC = "README.md"  # the table of nodes (param-table:nodes)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _value(v: object) -> str:
    """A default as a parameter file writes it (a double keeps its decimal point: ROS types it)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return f"`{v}`" if v else "`''`"
    if isinstance(v, list):
        return "`[" + ", ".join(str(x) for x in v) + "]`"
    return repr(v)


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def _range(spec: ParamSpec) -> str:
    if spec.choices is not None:
        return ", ".join(f"`{c}`" if c else "`''`" for c in spec.choices)
    lo, hi = spec.min, spec.max
    if lo is not None and hi is not None:
        return f"{_num(lo)} – {_num(hi)}"
    if lo is not None:
        return f"≥ {_num(lo)}"
    return "" if hi is None else f"≤ {_num(hi)}"


def node_table(node: NodeParams) -> str:
    """The markdown table of one node's parameters, in declaration order."""
    rows = ["| name | default | unit | range | changeable | description |", "|---|---|---|---|---|---|"]
    for s in param_specs(node.config):
        rows.append(f"| `{s.name}` | {_cell(_value(s.default))} | {_cell(s.unit)} | {_cell(_range(s))} | "
                    f"{'read-only' if s.read_only else 'at runtime'} | {_cell(s.description)} |")
    return "\n".join(rows)


def index_table() -> str:
    """The README table: one row per node, linking to its parameter table."""
    rows = ["| node | defaults | declared in | parameters (read-only) | table |", "|---|---|---|---|---|"]
    for n in NODES:
        specs = param_specs(n.config)
        module = n.config.__module__.replace(".", "/") + ".py"
        rows.append(f"| `{n.node}` | `{n.yaml}` | `{module}` `{n.config.__name__}` | "
                    f"{len(specs)} ({sum(s.read_only for s in specs)}) | [{n.doc}]({n.doc}) |")
    return "\n".join(rows)


def tables() -> dict[str, dict[str, str]]:
    """{doc path: {table name: generated markdown}}."""
    out: dict[str, dict[str, str]] = {}
    for n in NODES:
        out.setdefault(n.doc, {})[n.node] = node_table(n)
    out.setdefault(INDEX_DOC, {})["nodes"] = index_table()
    return out


def _block(name: str, body: str) -> str:
    return (f"<!-- param-table:{name} begin (generated from the param() declarations by `{COMMAND}`; "
            f"do not edit) -->\n{body}\n<!-- param-table:{name} end -->")


def render(text: str, generated: dict[str, str], doc: str) -> str:
    """``text`` with each marked table replaced by its generated version; ValueError for a missing
    or duplicated marker pair."""
    for name, body in generated.items():
        pattern = re.compile(rf"<!-- param-table:{re.escape(name)} begin[^\n]*-->\n.*?"
                             rf"<!-- param-table:{re.escape(name)} end -->", re.DOTALL)
        found = list(pattern.finditer(text))
        if len(found) != 1:
            raise ValueError(f"{doc}: expected one 'param-table:{name}' marker pair, found {len(found)}")
        text = text[:found[0].start()] + _block(name, body) + text[found[0].end():]
    return text


def stale(root: Path) -> dict[str, str]:
    """{doc path: unified diff} of every doc whose tables differ from the declarations."""
    out = {}
    for doc, generated in tables().items():
        current = (root / doc).read_text()
        fresh = render(current, generated, doc)
        if fresh != current:
            out[doc] = "".join(difflib.unified_diff(current.splitlines(True), fresh.splitlines(True),
                                                    f"{doc} (now)", f"{doc} (from the declarations)"))
    return out


def source_root() -> Path:
    """The source checkout this module lives in (colcon installs it as a symlink)."""
    return Path(__file__).resolve().parents[2]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="rewrite the tables in the docs")
    mode.add_argument("--check", action="store_true", help="exit 1 when a table is stale")
    parser.add_argument("--root", type=Path, default=None, help="source checkout (default: this module's)")
    args = parser.parse_args(argv)
    root = args.root or source_root()
    if not args.write and not args.check:
        for doc, generated in tables().items():
            for name, body in generated.items():
                print(f"## {name} ({doc})\n\n{body}\n")
        return 0
    if not (root / INDEX_DOC).is_file():
        print(f"param_docs: {root} is not a source checkout (no {INDEX_DOC}); pass --root", file=sys.stderr)
        return 2
    diffs = stale(root)
    if args.check:
        for diff in diffs.values():
            sys.stdout.write(diff)
        if diffs:
            print(f"param_docs: stale parameter tables in {', '.join(diffs)}: run `{COMMAND}`")
        return 1 if diffs else 0
    for doc, generated in tables().items():
        path = root / doc
        path.write_text(render(path.read_text(), generated, doc))
    print(f"param_docs: {len(diffs)} file(s) rewritten" + (f" ({', '.join(diffs)})" if diffs else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
