"""Per-class L2 norms of the last classification layer, in category order (paper Figure 1)."""

from __future__ import annotations

import torch
from torch import nn

from bags.groups import Groups


def class_weight_norms(layer: nn.Linear, groups: Groups | None = None) -> torch.Tensor:
    """(C,) ||w_c||_2 for classes 1..C.

    Plain softmax head: rows 1..C (row 0, background, left out). BAGS head: the class rows only
    (no background, foreground or "others" rows).
    """
    weight = layer.weight.detach()
    if groups is None:
        return weight[1:].norm(dim=1)
    if weight.shape[0] != groups.num_logits:
        raise ValueError(
            f"a BAGS layer for these groups has {groups.num_logits} rows, this one has "
            f"{weight.shape[0]}"
        )
    return weight[groups.class_logit.to(weight.device)].norm(dim=1)
