"""Why an input sample (or an output) was refused: kind (a counter key), field, value."""

from __future__ import annotations

import math
from dataclasses import dataclass

#: rejection kinds (diagnostics counter keys)
NON_FINITE = "non_finite"
OUT_OF_RANGE = "out_of_range"
BAD_QUATERNION = "bad_quaternion"
BAD_SHAPE = "bad_shape"
BAD_ENCODING = "bad_encoding"
WRONG_FRAME = "wrong_frame"
FUTURE_STAMP = "future_stamp"
OLD_STAMP = "old_stamp"
OUT_OF_ORDER = "out_of_order"
IMPLAUSIBLE = "implausible"


@dataclass(frozen=True)
class Rejection:
    """A refused sample: ``kind`` is one of the constants above, ``field`` the message field
    (e.g. ``twist.twist.linear.x``), ``value`` the offending value, ``detail`` the rule broken."""

    kind: str
    field: str
    value: object
    detail: str

    def __str__(self) -> str:
        return f"{self.field} = {format_value(self.value)}: {self.detail}"


def format_value(value: object) -> str:
    """Short text for a logged value (floats with 6 significant digits, nan/inf spelt out)."""
    if isinstance(value, float):
        return repr(value) if not math.isfinite(value) else f"{value:.6g}"
    text = str(value)
    return text if len(text) <= 80 else text[:77] + "..."


def first_non_finite(name: str, values: object) -> Rejection | None:
    """A NON_FINITE rejection for the first NaN/inf in ``values`` (scalar or 1-D), else None."""
    import numpy as np

    given = np.asarray(values, dtype=np.float64)
    arr = given.reshape(-1)
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size == 0:
        return None
    i = int(bad[0])
    field = name if given.ndim == 0 else f"{name}[{i}]"
    return Rejection(NON_FINITE, field, float(arr[i]), "not finite")
