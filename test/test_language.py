"""The caption vocabulary shared by the dataset, the model and the text node."""

from __future__ import annotations

import numpy as np
import pytest

from minipamayo_ros import language
from minipamayo_ros.language import BOS, EOS, MAX_CAPTION_TOKENS, PAD, UNK, VOCAB, VOCAB_SIZE


def test_special_tokens_and_size() -> None:
    assert (PAD, BOS, EOS, UNK) == (0, 1, 2, 3)
    assert VOCAB[:4] == ("<pad>", "<bos>", "<eos>", "<unk>")
    assert VOCAB_SIZE <= 128 and len(set(VOCAB)) == VOCAB_SIZE
    assert MAX_CAPTION_TOKENS == 32


def test_round_trip_ignores_case_and_punctuation() -> None:
    ids = language.encode("Slowing for sharp, LEFT curve!")
    assert language.decode(ids) == "slowing for sharp left curve"
    assert all(i >= 4 for i in ids)


def test_unknown_words() -> None:
    assert language.encode("slowing for giraffe") [-1] == UNK
    with pytest.raises(ValueError, match="giraffe"):
        language.encode("slowing for giraffe", strict=True)
    assert not language.in_vocabulary("slowing for giraffe")
    assert language.in_vocabulary("waiting at stop line")


def test_decode_stops_at_eos_and_skips_padding() -> None:
    ids = [BOS] + language.encode("waiting at stop line") + [EOS] + language.encode("curve")
    assert language.decode(ids) == "waiting at stop line"
    padded = language.pad_tokens(language.encode("keeping lane"))
    assert padded.dtype == np.int32 and padded.shape == (MAX_CAPTION_TOKENS,)
    assert language.decode(padded) == "keeping lane"
    assert language.decode([999]) == "<unk>"


def test_length_limit() -> None:
    with pytest.raises(ValueError, match="limit"):
        language.encode(" ".join(["lane"] * (MAX_CAPTION_TOKENS + 1)))
    with pytest.raises(ValueError):
        language.pad_tokens([5] * 40)
