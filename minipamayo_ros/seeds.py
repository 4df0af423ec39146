"""Simulator seeds: the training / validation / test split (declared here, once) and the one seed syntax.

A seed names one generated road and its scenario (``sim.world.World(seed)``). Who may use which seeds:

* **training**: expert data (0-449 so far) and policy-driven DAgger rollouts (5000-5399 so far);
* **validation**: every decision (checkpoint choice, DAgger rounds, bars while developing) —
  1000-1059 were used this way, so they are validation seeds, not held-out test seeds;
* **test**: only the final report of a released model. No training, tuning or selection may read
  them; a figure measured on them says how the model drives on roads nothing was fitted to.

Seed syntax (every CLI): comma-separated items, each ``N``, ``A:B`` (``A`` .. ``B - 1``, Python's
half-open range), a split name (``training``, ``validation``, ``test``: the whole split) or
``SPLIT:N`` (the first N seeds of a split): ``"1000:1020,1500"``, ``"test"``, ``"test:40"``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class SeedRange:
    """Seeds ``start`` .. ``stop - 1``."""

    start: int
    stop: int

    def __contains__(self, seed: object) -> bool:
        return isinstance(seed, int) and self.start <= seed < self.stop

    def seeds(self) -> list[int]:
        return list(range(self.start, self.stop))

    def __str__(self) -> str:
        return f"{self.start}:{self.stop}"


#: disjoint by construction (checked at import); ranges of a split are listed in order
SPLITS: dict[str, tuple[SeedRange, ...]] = {
    "training": (SeedRange(0, 1000), SeedRange(5000, 10000)),
    "validation": (SeedRange(1000, 5000),),
    "test": (SeedRange(20000, 21000),),
}
TRAINING, VALIDATION, TEST = "training", "validation", "test"


def _check_disjoint() -> None:
    ranges = sorted((r.start, r.stop, name) for name, rs in SPLITS.items() for r in rs)
    for (_, stop, a), (start, _, b) in zip(ranges, ranges[1:], strict=False):
        if start < stop:
            raise AssertionError(f"seed splits {a} and {b} overlap")


_check_disjoint()


def split_of(seed: int) -> str | None:
    """The split ``seed`` belongs to, or None (outside every split: ad-hoc use only)."""
    for name, ranges in SPLITS.items():
        if any(seed in r for r in ranges):
            return name
    return None


def first(split: str, count: int) -> list[int]:
    """The first ``count`` seeds of ``split`` (in range order)."""
    out: list[int] = []
    for r in SPLITS[split]:
        out += r.seeds()[: count - len(out)]
    if len(out) < count:
        raise ValueError(f"split {split} has only {len(out)} seeds, {count} requested")
    return out


def parse_seeds(text: str) -> list[int]:
    """The seeds of a seed spec (module doc), in the order given; ValueError on a bad spec or duplicates."""
    out: list[int] = []
    for item in (s.strip() for s in text.split(",")):
        if not item:
            continue
        name, _, count = item.partition(":")
        if name in SPLITS:
            out += first(name, _int(count, text)) if count else [s for r in SPLITS[name] for s in r.seeds()]
        elif ":" in item:
            a, _, b = item.partition(":")
            lo, hi = _int(a, text), _int(b, text)
            if hi <= lo:
                raise ValueError(f"seed range {item!r} is empty (A:B means A .. B-1)")
            out += list(range(lo, hi))
        else:
            out.append(_int(item, text))
    if not out:
        raise ValueError(f"no seeds in {text!r}")
    if len(set(out)) != len(out):
        raise ValueError(f"seed spec {text!r} names a seed twice")
    return out


def format_seeds(seeds: Iterable[int]) -> str:
    """The shortest seed spec of ``seeds`` (runs become ``A:B``), e.g. for reports and manifests."""
    items: list[str] = []
    run: list[int] = []
    for s in [*seeds, None]:
        if s is not None and run and s == run[-1] + 1:
            run.append(s)
            continue
        if run:
            items.append(str(run[0]) if len(run) == 1 else f"{run[0]}:{run[-1] + 1}")
        run = [] if s is None else [s]
    return ",".join(items)


def require_split(seeds: Iterable[int], split: str, what: str) -> None:
    """Raise ValueError naming the offending seeds unless all of ``seeds`` are in ``split``."""
    bad = [s for s in seeds if split_of(s) != split]
    if bad:
        ranges = ", ".join(str(r) for r in SPLITS[split])
        raise ValueError(f"{what}: seeds {format_seeds(bad[:20])} are not {split} seeds ({ranges}; "
                         "see minipamayo_ros/seeds.py)")


def _int(text: str, spec: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"bad seed spec {spec!r}: {text!r} is not an integer, A:B range or split name "
                         f"({', '.join(SPLITS)})") from None
