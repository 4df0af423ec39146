"""The parameter tables in README.md and docs/ are the ``param(...)`` declarations, regenerated.

``python -m minipamayo_ros.tools.param_docs --write`` rewrites them; this test fails when one is
stale (a parameter added, renamed, re-described or given another default without regenerating).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from minipamayo_ros.tools.param_docs import COMMAND, INDEX_DOC, NODES, main, stale

REPO = Path(__file__).resolve().parents[1]


def test_parameter_tables_are_generated_from_the_declarations() -> None:
    diffs = stale(REPO)
    assert not diffs, f"stale parameter tables: run `{COMMAND}`\n" + "\n".join(diffs.values())


def test_every_node_config_has_a_table() -> None:
    declared = {m for path in (REPO / "minipamayo_ros" / "nodes").glob("*_node.py")
                for m in re.findall(r"declare_config\(self, (\w+)", path.read_text())}
    assert declared == {n.config.__name__ for n in NODES}


def _copy_docs(dst: Path) -> Path:
    for doc in {INDEX_DOC, *(n.doc for n in NODES)}:
        (dst / doc).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / doc, dst / doc)
    return dst


def test_a_stale_or_unmarked_table_is_caught(tmp_path: Path) -> None:
    root = _copy_docs(tmp_path)
    follower = root / "docs/follower.md"
    text = follower.read_text()
    edited = text.replace("| `rate_hz` | 50.0 | Hz |", "| `rate_hz` | 100.0 | Hz |")
    assert edited != text
    follower.write_text(edited)
    assert set(stale(root)) == {"docs/follower.md"}
    assert main(["--check", "--root", str(root)]) == 1
    assert main(["--write", "--root", str(root)]) == 0
    assert follower.read_text() == text and not stale(root)

    follower.write_text(text.replace("<!-- param-table:follower end -->", ""))
    with pytest.raises(ValueError, match="param-table:follower"):
        stale(root)
