"""Classification losses of the comparison methods (bags-spec section 7), on (N, C + 1) logits
(column 0 background; EQL's have no background column). Labels lie in 0..C; class statistics
are given for classes 1..C."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F


def _positive_counts(counts: Sequence[int], name: str) -> torch.Tensor:
    table = torch.as_tensor(counts, dtype=torch.float64)
    if table.dim() != 1 or len(table) == 0 or (table < 0).any():
        raise ValueError(f"{name}: expected one non-negative count per class, got {counts!r}")
    return table


def reweight_weights(counts: Sequence[int], low: float = 0.1, high: float = 5.0) -> torch.Tensor:
    """(C + 1,) the reference re-weighting: w_c = (1/n_c) / mean(1/n), clipped to [low, high];
    background 1. A class without instances gets the upper clip."""
    n = _positive_counts(counts, "reweight")
    inverse = 1.0 / n.clamp(min=1e-12)
    weights = (inverse / inverse[n > 0].mean()).clamp(low, high)
    return torch.cat([torch.ones(1, dtype=torch.float64), weights]).float()


def effective_number_weights(
    counts: Sequence[int], beta: float = 0.999, low: float = 0.1, high: float = 5.0
) -> torch.Tensor:
    """(C + 1,) Cui et al.'s class-balanced weights as the reference's re-weight-cls row uses
    them: w_c = (1 - b) / (1 - b^n_c), normalised to mean 1 over the classes, clipped to
    [low, high]; background 1."""
    if not 0 < beta < 1:
        raise ValueError(f"effective-number beta must lie in (0, 1), got {beta}")
    n = _positive_counts(counts, "effective_number").clamp(min=1)
    weights = (1 - beta) / (1 - beta**n)
    weights = (weights / weights.mean()).clamp(low, high)
    return torch.cat([torch.ones(1, dtype=torch.float64), weights]).float()


def weighted_cross_entropy(
    logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor
) -> torch.Tensor:
    """Softmax cross-entropy of each RoI times its label's weight, averaged over the RoIs."""
    per_roi = F.cross_entropy(logits, labels, reduction="none")
    return (per_roi * weights.to(logits.device)[labels]).mean()


def eql_threshold(
    image_counts: Sequence[int], num_images: int, lam: float = 1.76e-3
) -> torch.Tensor:
    """(C,) T_lambda(f_j): 1 for a class whose frequency f_j (the share of training images that
    contain it, as Tan et al. define it) is below lambda, else 0."""
    n = _positive_counts(image_counts, "eql")
    if num_images < 1:
        raise ValueError(f"eql: num_images must be >= 1, got {num_images}")
    return (n / num_images < lam).float()


def equalization_loss(
    logits: torch.Tensor, labels: torch.Tensor, threshold: torch.Tensor
) -> torch.Tensor:
    """EQL (Tan et al.) on (N, C) logits without a background column: sigmoid cross-entropy
    against the one-hot label (all zeros for background), where the negative term of a rare
    class j is dropped for foreground RoIs, w_j = 1 - E(r) T(f_j) (1 - y_j); summed and
    divided by the number of RoIs."""
    target = F.one_hot(labels, logits.shape[1] + 1)[:, 1:].to(logits.dtype)
    foreground = (labels > 0).to(logits.dtype)[:, None]
    weight = 1 - foreground * threshold.to(logits.device)[None, :] * (1 - target)
    loss = F.binary_cross_entropy_with_logits(logits, target, weight=weight, reduction="sum")
    return loss / max(len(labels), 1)
