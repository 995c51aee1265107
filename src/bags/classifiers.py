"""Classification rules for the last layer of the box head: how logits become a loss and scores.

Each rule has ``num_logits``, ``loss(logits, labels)`` and ``scores(logits) -> (N, C + 1)``
(column 0 background). ``LongTailRoIHeads`` calls them in training and post-processing.
"""

from __future__ import annotations

from typing import Protocol

import torch
import torch.nn.functional as F

from bags.group_softmax import group_softmax_loss, group_softmax_scores
from bags.groups import Groups


class Classifier(Protocol):
    num_logits: int

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor: ...

    def scores(self, logits: torch.Tensor) -> torch.Tensor: ...


class SoftmaxClassifier:
    """Plain softmax cross-entropy over background and C classes (the baseline)."""

    def __init__(self, num_classes: int) -> None:
        self.num_logits = num_classes + 1

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, labels)

    def scores(self, logits: torch.Tensor) -> torch.Tensor:
        return F.softmax(logits, dim=1)


class GroupSoftmaxClassifier:
    """Balanced Group Softmax; ``generator`` makes the "others" sampling reproducible."""

    def __init__(
        self, groups: Groups, beta: float = 8.0, generator: torch.Generator | None = None
    ) -> None:
        self.groups = groups
        self.beta = beta
        self.generator = generator
        self.num_logits = groups.num_logits

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return group_softmax_loss(logits, labels, self.groups, self.beta, self.generator)

    def scores(self, logits: torch.Tensor) -> torch.Tensor:
        return group_softmax_scores(logits, self.groups)
