"""Corpus mode: a folder / list of bags replayed and compared on 2 local processes and on a local Ray
cluster, with per-bag reports, a corpus summary, and a non-zero exit when one bag regresses."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from helpers.replay_bags import copy_bag

from minipamayo_ros.replay.bagio import BagReader
from minipamayo_ros.replay.corpus import find_bags
from minipamayo_ros.replay.corpus import main as corpus_main

GOLDEN_BAG = Path(__file__).resolve().parent / "data" / "replay" / "sim_seed20008"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two 2 s bags (slices of the golden drive) with goldens made by --update-golden."""
    root = tmp_path_factory.mktemp("corpus")
    with BagReader(GOLDEN_BAG) as r:
        assert r.info is not None
        t0 = r.info.start_ns
    for k, name in enumerate(("drive_a", "drive_b")):
        start = t0 + k * 3_000_000_000
        copy_bag(
            GOLDEN_BAG,
            root / "bags" / name,
            "mcap",
            topics=["/camera/image_raw/compressed", "/odom"],
            start_ns=start,
            end_ns=start + 2_000_000_000,
        )
    assert (
        corpus_main(
            [
                str(root / "bags"),
                "--out",
                str(root / "init"),
                "--workers",
                "1",
                "--update-golden",
                "--no-plots",
            ]
        )
        == 0
    )
    return root


def test_find_bags_from_folders_and_lists(corpus: Path, tmp_path: Path) -> None:
    bags = corpus / "bags"
    listing = tmp_path / "bags.txt"
    listing.write_text(f"# two drives\n{bags / 'drive_b'}\n{bags / 'drive_a'}  # again\n")
    assert [b.name for b in find_bags([bags])] == ["drive_a", "drive_b"]
    assert [b.name for b in find_bags([listing])] == ["drive_b", "drive_a"]


def _results(out: Path) -> dict[str, dict]:
    summary = json.loads((out / "corpus_summary.json").read_text())
    return {Path(r["bag"]).name: r for r in summary["results"]} | {"_": summary}


def test_two_local_workers_pass_and_a_regression_fails_the_corpus(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "ok"
    assert corpus_main([str(corpus / "bags"), "--out", str(out), "--workers", "2", "--no-latency-gates"]) == 0
    res = _results(out)
    assert res["_"]["verdicts"] == {"PASS": 2} and res["_"]["executor"] == "local:2"
    assert res["drive_a"]["pid"] != res["drive_b"]["pid"]  # really two processes
    for name in ("drive_a", "drive_b"):
        assert (out / name / "report.png").is_file() and (out / name / "frames.jsonl").is_file()
    suites = ET.parse(out / "junit.xml").getroot().findall("testsuite")
    assert [s.get("name") for s in suites] == ["drive_a", "drive_b"]

    # tamper with one golden: that bag regresses, the other passes, the exit code says so
    golden = corpus / "bags" / "drive_b.golden.jsonl"
    lines = golden.read_text().splitlines()
    k = next(i for i, x in enumerate(lines) if '"kind":"trajectory"' in x)
    rec = json.loads(lines[k])
    rec["speed"][5] += 0.5
    tampered = tmp_path / "goldens"
    tampered.mkdir()
    (tampered / "drive_b.golden.jsonl").write_text(
        "\n".join([*lines[:k], json.dumps(rec), *lines[k + 1 :]]) + "\n"
    )
    (tampered / "drive_a.golden.jsonl").write_text((corpus / "bags" / "drive_a.golden.jsonl").read_text())
    out = tmp_path / "bad"
    assert (
        corpus_main(
            [
                str(corpus / "bags"),
                "--out",
                str(out),
                "--workers",
                "2",
                "--no-latency-gates",
                "--golden-dir",
                str(tampered),
                "--no-plots",
            ]
        )
        == 1
    )
    res = _results(out)
    assert res["drive_a"]["verdict"] == "PASS" and res["drive_b"]["verdict"] == "REGRESSION"
    assert "speed[5]" in res["drive_b"]["reason"]


def test_missing_bag_is_an_error_not_a_crash(corpus: Path, tmp_path: Path) -> None:
    rc = corpus_main(
        [
            str(corpus / "bags" / "drive_a"),
            str(tmp_path / "nope"),
            "--out",
            str(tmp_path / "o"),
            "--workers",
            "1",
            "--no-latency-gates",
            "--no-plots",
        ]
    )
    assert rc == 1
    res = _results(tmp_path / "o")
    assert res["drive_a"]["verdict"] == "PASS"
    assert res["nope"]["verdict"] == "ERROR" and "does not exist" in res["nope"]["reason"]


def test_ray_local_cluster_one_task_per_bag(corpus: Path, tmp_path: Path) -> None:
    import ray  # noqa: F401  (requirements/dev.txt: a missing Ray fails here, it is never skipped)

    out = tmp_path / "ray"
    rc = corpus_main(
        [
            str(corpus / "bags"),
            "--out",
            str(out),
            "--ray",
            "local",
            "--workers",
            "2",
            "--no-latency-gates",
            "--no-plots",
        ]
    )
    assert rc == 0
    res = _results(out)
    assert res["_"]["executor"] == "ray:local" and res["_"]["verdicts"] == {"PASS": 2}
    assert (out / "drive_a" / "summary.json").is_file()
