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


def eqlv2_weights(
    pos_neg: torch.Tensor, gamma: float, mu: float, alpha: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """(C + 1,) EQLv2's (Tan et al. 2021) positive and negative weights from each class's
    accumulated positive-to-negative gradient ratio: neg_j = 1 / (1 + exp(-gamma (ratio_j -
    mu))), pos_j = 1 + alpha (1 - neg_j); the background column 0 weighs 1 both ways."""
    negative = 1 / (1 + torch.exp(-gamma * (pos_neg - mu)))
    negative = torch.cat([negative.new_ones(1), negative])
    return 1 + alpha * (1 - negative), negative


def eqlv2_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    positive: torch.Tensor,
    negative: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """EQLv2 on (N, C + 1) sigmoid logits (column 0 the background or objectness logit): the
    sigmoid cross-entropy against the one-hot label, each term weighted by its column's
    ``positive`` weight where the target is 1 and its ``negative`` weight elsewhere, summed and
    divided by N. Also returns what the class's gradient ratio accumulates: per class, the
    weighted gradient magnitudes |sigmoid(z) - y| of its positive and of its negative terms,
    summed over the RoIs (background column left out)."""
    target = F.one_hot(labels, logits.shape[1]).to(logits.dtype)
    weight = positive[None, :] * target + negative[None, :] * (1 - target)
    terms = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    loss = (terms * weight).sum() / max(len(labels), 1)
    grad = (torch.sigmoid(logits.detach()) - target).abs() * weight
    return loss, (grad * target).sum(0)[1:], (grad * (1 - target)).sum(0)[1:]


def seesaw_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    samples: torch.Tensor,
    p: float,
    q: float,
    eps: float,
) -> torch.Tensor:
    """Seesaw loss (Wang et al. 2021) on (N, C + 2) logits: columns 0 and 1 the objectness
    (background, foreground), columns 2.. the C classes. Over every RoI, a 2-way cross-entropy
    of the objectness; over the foreground RoIs, a cross-entropy of the classes in which class
    j's exponential, for a RoI of class i, is scaled by S_ij = M_ij C_ij: the mitigation
    (N_j / N_i)^p where class j has had fewer samples (``samples``, per class, at least 1) and
    the compensation (sigma_j / sigma_i)^q where the RoI scores j above i (sigma: the detached
    softmax over the classes, sigma_i at least ``eps``). Both terms are summed and divided by N,
    the RoIs of the call."""
    count = max(len(labels), 1)
    objectness = F.cross_entropy(logits[:, :2], (labels > 0).long(), reduction="sum")
    positive = labels > 0
    classes, label = logits[positive, 2:], labels[positive] - 1
    if not len(label):
        return objectness / count + classes.sum()
    seen = samples.clamp(min=1)
    ratio = seen[None, :] / seen[:, None]
    mitigation = torch.where(ratio < 1, ratio.pow(p), torch.ones_like(ratio))[label]
    scores = F.softmax(classes.detach(), dim=1)
    own = scores.gather(1, label[:, None]).clamp(min=eps)
    relative = scores / own
    compensation = torch.where(relative > 1, relative.pow(q), torch.ones_like(relative))
    others = 1 - F.one_hot(label, classes.shape[1]).to(classes.dtype)
    scaled = classes + (mitigation * compensation).log() * others
    return (objectness + F.cross_entropy(scaled, label, reduction="sum")) / count


def federated_classes(
    labels: torch.Tensor, weights: torch.Tensor, count: int, generator: torch.Generator | None
) -> torch.Tensor:
    """(C,) the classes 1..C whose terms count in the federated loss (Zhou et al. 2021, as
    detectron2 draws them): the labels of the call (background among them takes a place, as
    there), and further classes drawn without replacement, with probability proportional to
    ``weights`` (C,), until ``count`` are chosen."""
    present = torch.unique(labels)
    chosen = torch.zeros(len(weights) + 1, dtype=torch.bool, device=labels.device)
    chosen[present] = True
    if len(present) < count:
        probability = torch.cat([weights.new_zeros(1), weights.float()]).to(labels.device)
        probability[present] = 0
        more = min(count - len(present), int((probability > 0).sum()))
        if more:
            chosen[torch.multinomial(probability, more, generator=generator)] = True
    return chosen[1:]


def federated_loss(
    logits: torch.Tensor, labels: torch.Tensor, chosen: torch.Tensor
) -> torch.Tensor:
    """The federated loss on (N, C + 1) logits (column 0 the background logit, which gets no
    loss): sigmoid cross-entropy of classes 1..C against the one-hot label (all zeros for
    background), only the ``chosen`` classes' terms, summed and divided by N."""
    target = F.one_hot(labels, logits.shape[1])[:, 1:].to(logits.dtype)
    terms = F.binary_cross_entropy_with_logits(logits[:, 1:], target, reduction="none")
    return (terms * chosen.to(terms.dtype)[None, :]).sum() / max(len(labels), 1)
