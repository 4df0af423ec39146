"""Policy context vectors (``/vla/context``) at the text node's edge: the one check before one is
buffered, so that a caption is never generated from a vector the text model cannot take.

Rules: a stamp at most ``max_future`` ahead of the ROS clock and at most ``max_age`` behind it (an
older vector can serve no request: requests older than that are dropped), exactly ``dim`` values
(the text model's context size), all finite.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from minipamayo_ros.safety.rejection import BAD_SHAPE, Rejection, first_non_finite
from minipamayo_ros.safety.stamps import check_stamp


def check_context(stamp: float, now: float, max_future: float, max_age: float,
                  values: NDArray[np.float32], dim: int) -> Rejection | None:
    """Why a ``PolicyContext`` must be dropped on arrival, or None (times [s], ROS clock)."""
    bad = check_stamp(stamp, now, max_future, max_age)
    if bad is not None:
        return bad
    if values.ndim != 1 or values.size != dim:
        return Rejection(BAD_SHAPE, "context", f"{values.size} values", f"the text model needs {dim}")
    return first_non_finite("context", values)
