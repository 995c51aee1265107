"""Classification rules for the last layer of the box head: how logits become a loss and scores.

Each rule has ``num_logits``, ``loss(logits, labels)``, ``scores(logits, features)`` giving
(N, C + 1) scores (column 0 background), ``class_rows`` (which rows of the last layer belong to
classes 1..C), ``init_layer`` for a fresh last layer and ``meta()``, what a model file records
to score as it does; ``from_meta`` reads it back. ``LongTailRoIHeads`` calls them in training
and post-processing. Rules that hold tensors (post-hoc ones) are modules, saved with the model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torchvision.ops import sigmoid_focal_loss

from bags.group_softmax import group_softmax_loss, group_softmax_scores
from bags.groups import Groups
from bags.losses import (
    eqlv2_loss,
    eqlv2_weights,
    equalization_loss,
    federated_classes,
    federated_loss,
    seesaw_loss,
    weighted_cross_entropy,
)
from bags.values import beta_value, parse_beta


@dataclass
class RoIFeatures:
    """What the box head saw of each RoI, for rules that score from features: the pooled
    features and the last fc layer's output before its ReLU (None where not available)."""

    pooled: torch.Tensor | None = None
    fc: torch.Tensor | None = None


def init_normal(layer: nn.Linear, std: float = 0.01, bias: float = 0.0) -> nn.Linear:
    """A fresh last layer as the reference initialises one: weights N(0, std), constant bias."""
    with torch.no_grad():
        nn.init.normal_(layer.weight, std=std)
        nn.init.constant_(layer.bias, bias)
    return layer


class SoftmaxClassifier(nn.Module):
    """Plain softmax cross-entropy over background and C classes (the baseline)."""

    kind = "softmax"

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.num_logits = num_classes + 1

    @property
    def class_rows(self) -> torch.Tensor:
        return torch.arange(1, self.num_classes + 1)

    def init_layer(self, layer: nn.Linear) -> nn.Linear:
        return init_normal(layer)

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, labels)

    def step_done(self) -> None:
        """Called after every training step's loss calls (a rule that keeps statistics of the
        training commits them here, as a step's GPUs share theirs)."""

    def scores(self, logits: torch.Tensor, features: RoIFeatures | None = None) -> torch.Tensor:
        return F.softmax(logits, dim=1)

    def meta(self) -> dict[str, Any]:
        return {"classifier": self.kind}


class GroupSoftmaxClassifier(SoftmaxClassifier):
    """Balanced Group Softmax; ``generator`` makes the "others" sampling reproducible."""

    kind = "bags"

    def __init__(
        self, groups: Groups, beta: float, generator: torch.Generator | None = None
    ) -> None:
        super().__init__(groups.num_classes)
        self.groups = groups
        self.beta = beta
        self.generator = generator
        self.num_logits = groups.num_logits

    @property
    def class_rows(self) -> torch.Tensor:
        return self.groups.class_logit

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return group_softmax_loss(logits, labels, self.groups, self.beta, self.generator)

    def scores(self, logits: torch.Tensor, features: RoIFeatures | None = None) -> torch.Tensor:
        return group_softmax_scores(logits, self.groups)

    def meta(self) -> dict[str, Any]:
        return {
            "classifier": self.kind,
            "groups": self.groups.to_json(),
            "beta": beta_value(self.beta),
        }


class WeightedSoftmaxClassifier(SoftmaxClassifier):
    """Softmax cross-entropy with a weight per label (the re-weighting rows)."""

    def __init__(self, weights: torch.Tensor) -> None:
        super().__init__(len(weights) - 1)
        self.weights = weights

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return weighted_cross_entropy(logits, labels, self.weights)


class SigmoidFocalClassifier(SoftmaxClassifier):
    """The reference's focal loss: sigmoid focal loss on the one-hot label over all C + 1
    columns (background included), averaged over N x (C + 1); softmax scores."""

    def __init__(self, num_classes: int, alpha: float = 0.25, gamma: float = 2.0) -> None:
        super().__init__(num_classes)
        self.alpha, self.gamma = alpha, gamma

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        target = F.one_hot(labels, logits.shape[1]).to(logits.dtype)
        return sigmoid_focal_loss(logits, target, self.alpha, self.gamma, reduction="mean")


class EqualizationClassifier(SoftmaxClassifier):
    """EQL: C sigmoid logits and no background logit (background is the all-zero target);
    the negative term of a rare class j is dropped for foreground RoIs. A fresh layer starts
    with bias -log((1 - prior) / prior); a class's score is its sigmoid."""

    kind = "sigmoid"

    def __init__(self, threshold: torch.Tensor, prior: float = 0.001) -> None:
        super().__init__(len(threshold))
        self.threshold = threshold
        self.prior = prior
        self.num_logits = self.num_classes

    @property
    def class_rows(self) -> torch.Tensor:
        return torch.arange(self.num_classes)

    def init_layer(self, layer: nn.Linear) -> nn.Linear:
        return init_normal(layer, bias=-math.log((1 - self.prior) / self.prior))

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return equalization_loss(logits, labels, self.threshold)

    def scores(self, logits: torch.Tensor, features: RoIFeatures | None = None) -> torch.Tensor:
        return F.pad(torch.sigmoid(logits), (1, 0))  # background column 0


class NearestClassMean(SoftmaxClassifier):
    """The reference's NCM (rows 10 and 11), on the baseline's last layer: the background score
    is the baseline's p_bg; class c scores (1 - p_bg) x softmax_c(cos(f, mu_c)), f the RoI's
    ``source`` feature ("fc": the last fc layer before its ReLU; "pooled": the RoIAlign
    features, flattened) and mu_c the mean of that feature over class c's training boxes."""

    kind = "ncm"

    def __init__(self, centres: torch.Tensor, source: str) -> None:
        super().__init__(len(centres))
        if source not in ("fc", "pooled"):
            raise ValueError(f"NCM source must be 'fc' or 'pooled', got {source!r}")
        self.source = source
        self.register_buffer("centres", centres)

    def scores(self, logits: torch.Tensor, features: RoIFeatures | None = None) -> torch.Tensor:
        feature = getattr(features, self.source, None) if features else None
        if feature is None:
            raise ValueError(f"NCM on {self.source} features needs them from the box head")
        background = F.softmax(logits, dim=1)[:, :1]
        feature = F.normalize(feature.flatten(1), dim=1)
        centres = F.normalize(self.centres, dim=1)
        classes = F.softmax(feature @ centres.T, dim=1) * (1 - background)
        return torch.cat([background, classes], dim=1)

    def meta(self) -> dict[str, Any]:
        return {
            "classifier": self.kind,
            "source": self.source,
            "feature_size": self.centres.shape[1],
        }


class TauNormSelect(SoftmaxClassifier):
    """The reference's tau-norm-select (row 13): a RoI the baseline calls foreground takes the
    class the tau-normalised layer ``normed`` prefers; if that class is in ``selected`` (fewer
    than 100 training instances in the reference), the RoI gets that layer's scores, else it
    keeps the baseline's."""

    kind = "tau_norm_select"

    def __init__(self, normed: nn.Linear, selected: torch.Tensor) -> None:
        super().__init__(normed.out_features - 1)
        self.normed = normed
        self.register_buffer("selected", torch.cat([selected.new_zeros(1), selected]).bool())

    def scores(self, logits: torch.Tensor, features: RoIFeatures | None = None) -> torch.Tensor:
        if features is None or features.fc is None:
            raise ValueError("tau-norm-select needs the box head's features")
        original = F.softmax(logits, dim=1)
        normed = F.softmax(self.normed(F.relu(features.fc)), dim=1)
        choice = torch.where(original.argmax(1) == 0, 0, normed.argmax(1))
        return torch.where(self.selected[choice][:, None], normed, original)

    def meta(self) -> dict[str, Any]:
        return {"classifier": self.kind, "feature_size": self.normed.in_features}


def from_meta(meta: dict[str, Any]) -> SoftmaxClassifier:
    """A classifier that scores as the one ``meta`` was made with (its loss is not kept); the
    tensors of post-hoc rules are placeholders that the model's weights fill."""
    kind, num_classes = meta["classifier"], meta["num_classes"]
    if kind == "softmax":
        return SoftmaxClassifier(num_classes)
    if kind == "bags":
        if "groups" not in meta or "beta" not in meta:
            raise ValueError("a model scored by BAGS must record its groups and beta")
        return GroupSoftmaxClassifier(Groups.from_json(meta["groups"]), parse_beta(meta["beta"]))
    if kind == "sigmoid":
        return EqualizationClassifier(torch.zeros(num_classes))
    if kind == "eqlv2":
        return EQLv2Classifier(num_classes)
    if kind == "seesaw":
        return SeesawClassifier(num_classes)
    if kind == "federated":
        return FederatedClassifier(torch.ones(num_classes))
    if kind == "ncm":
        return NearestClassMean(torch.zeros(num_classes, meta["feature_size"]), meta["source"])
    if kind == "tau_norm_select":
        normed = nn.Linear(meta["feature_size"], num_classes + 1)
        return TauNormSelect(normed, torch.zeros(num_classes, dtype=torch.bool))
    raise ValueError(
        f"unknown classifier {kind!r}; known: softmax, bags, sigmoid, eqlv2, seesaw, federated, "
        "ncm, tau_norm_select"
    )


class EQLv2Classifier(SoftmaxClassifier):
    """EQLv2 (Tan et al. 2021, tztztztztz/eqlv2): C + 1 sigmoid logits (column 0 the
    objectness, background's target), each class's positive and negative terms weighted by its
    accumulated gradient ratio (``bags.losses.eqlv2_weights``). The ratio accumulates after each
    step over the step's loss calls and processes, as the reference's GPUs share theirs; every
    weight starts at 1. A fresh layer's biases start at -log(999) (prior 0.001); class j scores
    sigmoid(z_j) (1 - sigmoid(z_0))."""

    kind = "eqlv2"

    def __init__(
        self, num_classes: int, gamma: float = 12.0, mu: float = 0.8, alpha: float = 4.0
    ) -> None:
        super().__init__(num_classes)
        self.gamma, self.mu, self.alpha = gamma, mu, alpha
        self.register_buffer("pos_grad", torch.zeros(num_classes))
        self.register_buffer("neg_grad", torch.zeros(num_classes))
        self.register_buffer("pos_neg", torch.full((num_classes,), 100.0))
        self._pending: list[torch.Tensor] = []

    def init_layer(self, layer: nn.Linear) -> nn.Linear:
        return init_normal(layer, bias=-math.log(999))

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        positive, negative = eqlv2_weights(self.pos_neg, self.gamma, self.mu, self.alpha)
        loss, pos_grad, neg_grad = eqlv2_loss(logits, labels, positive, negative)
        self._pending.append(torch.stack([pos_grad, neg_grad]))
        return loss

    def step_done(self) -> None:
        if not self._pending:
            return
        grads = torch.stack(self._pending).sum(0)
        self._pending = []
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(grads)
        self.pos_grad += grads[0]
        self.neg_grad += grads[1]
        self.pos_neg = self.pos_grad / (self.neg_grad + 1e-10)

    def scores(self, logits: torch.Tensor, features: RoIFeatures | None = None) -> torch.Tensor:
        probabilities = torch.sigmoid(logits)
        background = probabilities[:, :1]
        return torch.cat([background, probabilities[:, 1:] * (1 - background)], dim=1)

    def meta(self) -> dict[str, Any]:
        return {"classifier": self.kind}


class NormedLinear(nn.Linear):
    """mmdetection's normalised linear classifier: logit_k = temperature x cos(x, w_k) + b_k
    (x and w_k divided by their norm plus 1e-6), weights N(0, 0.01), bias 0."""

    temperature = 20.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.weight / (self.weight.norm(dim=1, keepdim=True) + 1e-6)
        x = x / (x.norm(dim=1, keepdim=True) + 1e-6)
        return F.linear(x * self.temperature, weight, self.bias)


class SeesawClassifier(SoftmaxClassifier):
    """Seesaw loss (Wang et al. 2021, mmdetection's ``SeesawLoss`` and its LVIS configs): C + 2
    logits from a normalised linear layer (temperature 20), columns 0 and 1 the objectness
    (background, foreground), 2.. the classes (``bags.losses.seesaw_loss``, p, q, eps). Each
    loss call first adds its RoIs' labels to the per-label sample counts, as each of the
    reference's GPUs counts its own. Class j scores softmax_j(classes) x P(foreground)."""

    kind = "seesaw"

    def __init__(self, num_classes: int, p: float = 0.8, q: float = 2.0, eps: float = 1e-2):
        super().__init__(num_classes)
        self.p, self.q, self.eps = p, q, eps
        self.num_logits = num_classes + 2
        self.register_buffer("samples", torch.zeros(num_classes + 1))

    @property
    def class_rows(self) -> torch.Tensor:
        return torch.arange(2, self.num_classes + 2)

    def init_layer(self, layer: nn.Linear) -> nn.Linear:
        normed = NormedLinear(layer.in_features, layer.out_features)
        return init_normal(normed.to(layer.weight.device))

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        self.samples += torch.bincount(labels, minlength=len(self.samples)).to(self.samples)
        return seesaw_loss(logits, labels, self.samples[1:], self.p, self.q, self.eps)

    def scores(self, logits: torch.Tensor, features: RoIFeatures | None = None) -> torch.Tensor:
        objectness = F.softmax(logits[:, :2], dim=1)
        classes = F.softmax(logits[:, 2:], dim=1) * objectness[:, 1:]
        return torch.cat([objectness[:, :1], classes], dim=1)

    def meta(self) -> dict[str, Any]:
        return {"classifier": self.kind}


class FederatedClassifier(SoftmaxClassifier):
    """The federated loss (Zhou et al. 2021, detectron2's ``use_fed_loss``): C + 1 logits
    (column 0 the background logit, which neither trains nor scores), sigmoid cross-entropy
    over the classes of the call's labels and ``count`` in all, drawn by ``weights`` (C,: the
    training image count to the power 0.5). Class j scores sigmoid(z_j)."""

    kind = "federated"

    def __init__(self, weights: torch.Tensor, count: int = 50) -> None:
        super().__init__(len(weights))
        self.count = count
        self.register_buffer("weights", weights.float())

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        chosen = federated_classes(labels, self.weights, self.count, None)
        return federated_loss(logits, labels, chosen)

    def scores(self, logits: torch.Tensor, features: RoIFeatures | None = None) -> torch.Tensor:
        return F.pad(torch.sigmoid(logits[:, 1:]), (1, 0))  # background column 0

    def meta(self) -> dict[str, Any]:
        return {"classifier": self.kind}
