"""Balanced Group Softmax: the training loss with "others" sampling and the inference merge."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from bags.groups import Groups


def _check(logits: torch.Tensor, groups: Groups) -> None:
    if logits.dim() != 2 or logits.shape[1] != groups.num_logits:
        raise ValueError(
            f"logits must have shape (N, {groups.num_logits}) for {groups.num_classes} classes in "
            f"{groups.num_groups} groups, got {tuple(logits.shape)}"
        )


def sample_counted(
    labels: torch.Tensor,
    groups: Groups,
    beta: float,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """(N, G) mask of the RoIs that count in each group's loss.

    Group 0: all RoIs. Group g >= 1: its own RoIs plus floor(beta * n_fg) "others" drawn uniformly
    without replacement (all of them when there are not that many; none when n_fg = 0).
    ``beta = math.inf`` keeps every "others" RoI whenever the group has a foreground RoI.
    """
    if not beta > 0:
        raise ValueError(f"beta must be > 0 (math.inf keeps every 'others' RoI), got {beta}")
    device = labels.device
    in_group = groups.class_group.to(device)[labels][:, None] == torch.arange(
        1, groups.num_groups, device=device
    )
    n_fg = in_group.sum(0)
    if math.isinf(beta):
        quota = torch.where(n_fg > 0, labels.numel(), 0)
    else:
        quota = torch.floor(n_fg.double() * beta).long()
    # The k smallest of i.i.d. uniform keys form a uniform sample without replacement.
    keys = torch.rand(
        in_group.shape, generator=generator, device=generator.device if generator else device
    )
    keys = keys.to(device).masked_fill(in_group, -1.0)
    rank = keys.argsort(0).argsort(0) - n_fg  # rank among the "others" of each group
    counted = in_group | (rank < quota)
    return torch.cat([torch.ones_like(counted[:, :1]), counted], dim=1)


def group_softmax_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    groups: Groups,
    beta: float,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Sum over groups of the mean softmax cross-entropy over the RoIs that count in the group."""
    _check(logits, groups)
    if labels.shape != logits.shape[:1]:
        raise ValueError(f"labels must have shape ({logits.shape[0]},), got {tuple(labels.shape)}")
    if labels.numel() and (labels.min() < 0 or labels.max() > groups.num_classes):
        low, high = labels.min().item(), labels.max().item()
        raise ValueError(f"labels must lie in 0..{groups.num_classes}, got {low}..{high}")
    labels = labels.long()
    counted = sample_counted(labels, groups, beta, generator)
    targets = groups.targets.to(labels.device)[labels]
    picked = [
        F.log_softmax(chunk, dim=1).gather(1, targets[:, g : g + 1])
        for g, chunk in enumerate(logits.split(groups.widths, dim=1))
    ]
    nll = -torch.cat(picked, dim=1)
    weight = counted.to(nll.dtype)
    per_group = (nll * weight).sum(0) / weight.sum(0).clamp(min=1)
    return per_group.sum()


@torch.no_grad()
def group_softmax_scores(
    logits: torch.Tensor, groups: Groups, block_rows: int = 1024
) -> torch.Tensor:
    """(N, C + 1) scores: column 0 = p0(bg); column c = p0(fg) * p_g(c), "others" dropped.

    No renormalisation, as in the reference. Inference only (not differentiable). Rows are done
    in blocks so that the temporaries stay small; only the output is full size. Half-precision
    logits (mixed-precision inference) give float32 scores, as a plain softmax does under autocast.
    """
    _check(logits, groups)
    columns = torch.cat([groups.class_logit.new_zeros(1), groups.class_logit])
    columns = columns.to(logits.device)
    dtype = torch.promote_types(logits.dtype, torch.float32)
    scores = logits.new_empty(logits.shape[0], groups.num_classes + 1, dtype=dtype)
    for start in range(0, logits.shape[0], block_rows):
        chunks = logits[start : start + block_rows].split(groups.widths, dim=1)
        probs = torch.cat([F.softmax(chunk, dim=1, dtype=dtype) for chunk in chunks], dim=1)
        block = scores[start : start + block_rows]
        torch.index_select(probs, 1, columns, out=block)
        block[:, 1:].mul_(probs[:, 1:2])
    return scores
