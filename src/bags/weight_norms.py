"""Per-class L2 norms of the last classification layer, in category order (paper Figure 1)."""

from __future__ import annotations

import torch
from torch import nn

from bags.groups import Groups


def class_weight_norms(layer: nn.Linear, rows: Groups | torch.Tensor | None = None) -> torch.Tensor:
    """(C,) ||w_c||_2 for classes 1..C: the layer's rows ``rows`` (a classifier's
    ``class_rows``); by default rows 1..C of a softmax layer (row 0, background, left out).
    Given BAGS groups, their class rows (no background, foreground or "others" rows)."""
    weight = layer.weight.detach()
    if rows is None:
        return weight[1:].norm(dim=1)
    if isinstance(rows, Groups):
        if weight.shape[0] != rows.num_logits:
            raise ValueError(
                f"a BAGS layer for these groups has {rows.num_logits} rows, this one has "
                f"{weight.shape[0]}"
            )
        rows = rows.class_logit
    return weight[rows.to(weight.device)].norm(dim=1)
