"""Turn a torchvision ``FasterRCNN`` into a long-tail one: a classification rule on its box head."""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models.detection import FasterRCNN

from bags.classifiers import Classifier, GroupSoftmaxClassifier, SoftmaxClassifier
from bags.groups import Groups
from bags.roi_heads import LongTailRoIHeads


def classification_layer(model: FasterRCNN) -> nn.Linear:
    """The last classification layer (torchvision's ``box_predictor.cls_score``)."""
    return model.roi_heads.box_predictor.cls_score


def num_classes_of(model: FasterRCNN) -> int:
    """Foreground classes of a detector, read off its class-specific box regression."""
    return model.roi_heads.box_predictor.bbox_pred.out_features // 4 - 1


def new_classification_layer(in_features: int, num_logits: int) -> nn.Linear:
    """A fresh last layer initialised as the reference does: weights N(0, 0.01), bias 0."""
    layer = nn.Linear(in_features, num_logits)
    nn.init.normal_(layer.weight, std=0.01)
    nn.init.zeros_(layer.bias)
    return layer


def set_classifier(
    model: FasterRCNN,
    classifier: Classifier,
    new_layer: bool = False,
    score_thresh: float | None = None,
    detections_per_img: int = 300,
) -> FasterRCNN:
    """Put ``classifier`` on the box head, with a fresh last layer if asked or if its width differs.

    Every other weight is kept (the same tensors). Returns ``model``, changed in place.
    """
    layer = classification_layer(model)
    num_classes = num_classes_of(model)
    expected = getattr(classifier, "groups", None)
    if expected is not None and expected.num_classes != num_classes:
        raise ValueError(
            f"the model has {num_classes} classes but the groups hold {expected.num_classes}"
        )
    if new_layer or layer.out_features != classifier.num_logits:
        fresh = new_classification_layer(layer.in_features, classifier.num_logits)
        model.roi_heads.box_predictor.cls_score = fresh.to(layer.weight.device, layer.weight.dtype)
    model.roi_heads = LongTailRoIHeads.from_roi_heads(
        model.roi_heads, classifier, score_thresh, detections_per_img
    )
    return model


def to_group_softmax(
    model: FasterRCNN,
    groups: Groups,
    beta: float = 8.0,
    generator: torch.Generator | None = None,
    score_thresh: float | None = None,
    detections_per_img: int = 300,
) -> FasterRCNN:
    """Make ``model`` a BAGS detector: new (C + 1 + G)-wide last layer, everything else kept."""
    classifier = GroupSoftmaxClassifier(groups, beta, generator)
    return set_classifier(model, classifier, True, score_thresh, detections_per_img)


def to_softmax(
    model: FasterRCNN, score_thresh: float | None = None, detections_per_img: int = 300
) -> FasterRCNN:
    """The plain softmax baseline on the same RoI heads (keeps the existing last layer)."""
    classifier = SoftmaxClassifier(num_classes_of(model))
    return set_classifier(model, classifier, False, score_thresh, detections_per_img)
