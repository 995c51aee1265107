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
from bags.losses import equalization_loss, softmax_focal_loss, weighted_cross_entropy


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


class WeightedSoftmaxClassifier(SoftmaxClassifier):
    """Softmax cross-entropy with a weight per label (re-weighting, class-balanced loss)."""

    def __init__(self, weights: torch.Tensor) -> None:
        super().__init__(len(weights) - 1)
        self.weights = weights

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return weighted_cross_entropy(logits, labels, self.weights)


class FocalClassifier(SoftmaxClassifier):
    """Softmax focal loss; softmax scores."""

    def __init__(self, num_classes: int, gamma: float = 2.0) -> None:
        super().__init__(num_classes)
        self.gamma = gamma

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return softmax_focal_loss(logits, labels, self.gamma)


class EqualizationClassifier:
    """EQL: sigmoid cross-entropy without the rare classes' negative terms on foreground RoIs;
    each column's sigmoid is its score."""

    def __init__(self, threshold: torch.Tensor) -> None:
        self.threshold = threshold
        self.num_logits = len(threshold)

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return equalization_loss(logits, labels, self.threshold)

    def scores(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(logits)
