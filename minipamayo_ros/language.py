"""The fixed pseudo-language of minipamayo's captions, defined once for data, model and text node.

A closed vocabulary (< 128 words including the special tokens) keeps the model's text head tiny
and makes every caption checkable. The simulator's expert writes captions in it, the dataset
stores them as token ids, the model predicts ids and the text node decodes them.

Token ids: ``PAD=0`` (padding), ``BOS=1`` / ``EOS=2`` (sequence start / end, added by the model
side, never stored in dataset captions), ``UNK=3`` (a word outside the vocabulary).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import numpy as np
from numpy.typing import NDArray

PAD, BOS, EOS, UNK = 0, 1, 2, 3
SPECIAL_TOKENS = ("<pad>", "<bos>", "<eos>", "<unk>")
#: longest caption in tokens (BOS/EOS not counted)
MAX_CAPTION_TOKENS = 32

_WORDS = (
    # actions
    "keeping", "following", "slowing", "stopping", "stopped", "waiting", "braking", "accelerating",
    "returning", "proceeding", "driving", "approaching", "holding", "steering", "continuing",
    "yielding", "resuming", "passing",
    # objects and places
    "lane", "centre", "road", "curve", "line", "stop", "sign", "obstacle", "object", "vehicle",
    "speed", "cruise", "edge", "marking", "markings", "path", "straight", "bend", "intersection",
    # qualifiers
    "sharp", "gentle", "left", "right", "ahead", "behind", "near", "far", "slow", "fast", "low",
    "high", "clear", "blocked", "safe", "unsafe", "uncertain", "unclear", "new", "full", "short",
    "long", "small", "large", "drifting", "off",
    # function words
    "a", "an", "the", "at", "for", "to", "in", "on", "of", "and", "then", "until", "with", "is",
    "not", "no", "after", "before", "down", "up",
    # system / text node
    "plan", "confidence", "requested", "explanation", "scene", "model", "reason", "because",
    "event", "visible", "gone", "moved", "again", "now",
    # traffic world (appended: the ids above never change)
    "red", "amber", "green", "light", "pedestrian", "crossing", "lead", "gap", "cutting", "parked",
    "oncoming", "moving", "turning", "traffic",
)

#: id -> word; the index of a word is its token id
VOCAB: tuple[str, ...] = SPECIAL_TOKENS + tuple(dict.fromkeys(_WORDS))
VOCAB_SIZE = len(VOCAB)
_WORD_TO_ID = {w: i for i, w in enumerate(VOCAB)}
_SPLIT = re.compile(r"[^a-z]+")

assert VOCAB_SIZE <= 128, f"vocabulary has {VOCAB_SIZE} words, the limit is 128"


def tokenize(text: str) -> list[str]:
    """Lower-case words of ``text``; punctuation and digits separate words and are dropped."""
    return [w for w in _SPLIT.split(text.lower()) if w]


def encode(text: str, strict: bool = False) -> list[int]:
    """Token ids of ``text`` (no BOS/EOS). Unknown words become ``UNK``, or raise if ``strict``.

    Raises ``ValueError`` when the caption is longer than :data:`MAX_CAPTION_TOKENS`.
    """
    ids = []
    for word in tokenize(text):
        idx = _WORD_TO_ID.get(word)
        if idx is None or idx < len(SPECIAL_TOKENS):
            if strict:
                raise ValueError(f"word {word!r} is not in the caption vocabulary")
            idx = UNK
        ids.append(idx)
    if len(ids) > MAX_CAPTION_TOKENS:
        raise ValueError(f"caption has {len(ids)} tokens, the limit is {MAX_CAPTION_TOKENS}: {text!r}")
    return ids


def decode(ids: Iterable[int]) -> str:
    """Text of token ids: PAD and BOS are skipped, decoding stops at EOS, bad ids read ``<unk>``."""
    words = []
    for raw in ids:
        i = int(raw)
        if i == EOS:
            break
        if i in (PAD, BOS):
            continue
        words.append(VOCAB[i] if 0 <= i < VOCAB_SIZE else SPECIAL_TOKENS[UNK])
    return " ".join(words)


def pad_tokens(ids: Sequence[int], length: int = MAX_CAPTION_TOKENS) -> NDArray[np.int32]:
    """``ids`` right-padded with ``PAD`` to ``length`` (int32); raises if they do not fit."""
    if len(ids) > length:
        raise ValueError(f"{len(ids)} tokens do not fit in {length}")
    out = np.full(length, PAD, dtype=np.int32)
    out[: len(ids)] = ids
    return out


def in_vocabulary(text: str) -> bool:
    """True if every word of ``text`` is in the vocabulary and it fits in a caption."""
    words = tokenize(text)
    return len(words) <= MAX_CAPTION_TOKENS and all(
        _WORD_TO_ID.get(w, 0) >= len(SPECIAL_TOKENS) for w in words
    )
