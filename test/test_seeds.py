"""The seed split (training / validation / test) and the one seed syntax."""

from __future__ import annotations

import pytest

from minipamayo_ros import seeds
from minipamayo_ros.seeds import SPLITS, first, format_seeds, parse_seeds, require_split, split_of


def test_seed_syntax() -> None:
    assert parse_seeds("3:6") == [3, 4, 5]
    assert parse_seeds("1,9, 20:22") == [1, 9, 20, 21]
    assert parse_seeds("validation")[:2] == [1000, 1001] and len(parse_seeds("test")) == 1000
    assert parse_seeds("test:3") == [20000, 20001, 20002] and parse_seeds("training:1,5000") == [0, 5000]
    for bad in ("", "6:3", "a", "1,1", "1:2:3", "0-3"):
        with pytest.raises(ValueError):
            parse_seeds(bad)


def test_format_is_the_inverse_of_parse() -> None:
    for spec in ("3:6", "1,9,20:22", "0", "1000:1060,20000:20040"):
        assert format_seeds(parse_seeds(spec)) == spec


def test_splits_are_disjoint_and_the_history_is_where_it_belongs() -> None:
    all_seeds = [s for rs in SPLITS.values() for r in rs for s in r.seeds()]
    assert len(all_seeds) == len(set(all_seeds))
    assert split_of(449) == seeds.TRAINING and split_of(5399) == seeds.TRAINING  # expert + DAgger data
    assert split_of(1000) == split_of(1059) == seeds.VALIDATION  # chose checkpoints and DAgger rounds
    assert split_of(first(seeds.TEST, 1)[0]) == seeds.TEST and split_of(-1) is None


def test_require_split_names_the_offenders() -> None:
    require_split([0, 1, 5000], seeds.TRAINING, "x")
    with pytest.raises(ValueError, match=r"seeds 1000:1002 are not training seeds"):
        require_split([0, 1000, 1001], seeds.TRAINING, "--train-seeds")
    assert first(seeds.TRAINING, 1002)[-2:] == [5000, 5001]
