"""Instance-count bins [0, e1), [e1, e2), ..., [e_last, inf), shared by the BAGS groups and the
per-bin AP (their default edges: ``bags.schema.EDGES``)."""

from __future__ import annotations

import bisect
from collections.abc import Sequence


def bin_index(count: int, edges: Sequence[int]) -> int:
    """0-based bin of an instance count (a count equal to an edge goes to the upper bin)."""
    return bisect.bisect_right(edges, count)
