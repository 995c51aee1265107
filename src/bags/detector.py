"""Turn a torchvision ``FasterRCNN`` into a long-tail one: a classification rule on its box head,
and the layer surgery each comparison row starts with."""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor

from bags.classifiers import (
    SoftmaxClassifier,
    init_normal,
)
from bags.roi_heads import LongTailRoIHeads, mlp_features


def classification_layer(model: FasterRCNN) -> nn.Linear:
    """The last classification layer (torchvision's ``box_predictor.cls_score``)."""
    return model.roi_heads.box_predictor.cls_score


def num_classes_of(model: FasterRCNN) -> int:
    """Foreground classes of a detector, read off its class-specific box regression."""
    return model.roi_heads.box_predictor.bbox_pred.out_features // 4 - 1


def backbone_features(model: FasterRCNN, images) -> OrderedDict:
    """The backbone's feature maps of a transformed batch, by name (one map is named "0")."""
    features = model.backbone(images.tensors)
    return OrderedDict([("0", features)]) if isinstance(features, torch.Tensor) else features


def box_head_features(model: FasterRCNN, pooled: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The box head's last fc layer before and after its ReLU, from RoIAlign features."""
    return mlp_features(model.roi_heads.box_head, pooled)


def fresh_predictor(model: FasterRCNN, num_classes: int) -> FasterRCNN:
    """A new box predictor for ``num_classes`` (class scores N(0, 0.01), boxes N(0, 0.001), zero
    biases), as the reference's start from a model trained on other classes gets one."""
    old = model.roi_heads.box_predictor
    predictor = FastRCNNPredictor(old.cls_score.in_features, num_classes + 1)
    init_normal(predictor.cls_score, 0.01)
    init_normal(predictor.bbox_pred, 0.001)
    model.roi_heads.box_predictor = predictor.to(old.cls_score.weight.device)
    return model


def set_classifier(
    model: FasterRCNN,
    classifier: SoftmaxClassifier,
    new_layer: bool = False,
    score_thresh: float | None = None,
    detections_per_img: int | None = None,
) -> FasterRCNN:
    """Put ``classifier`` on the box head, with a fresh last layer if asked or if its width
    differs (made and initialised by the classifier). Every other weight is kept (the same
    tensors), and the heads' score threshold and detections per image unless given. Returns
    ``model``, changed in place."""
    layer = classification_layer(model)
    num_classes = num_classes_of(model)
    if classifier.num_classes != num_classes:
        raise ValueError(
            f"the model has {num_classes} classes but the classifier {classifier.num_classes}"
        )
    if new_layer or layer.out_features != classifier.num_logits:
        fresh = classifier.init_layer(nn.Linear(layer.in_features, classifier.num_logits))
        model.roi_heads.box_predictor.cls_score = fresh.to(layer.weight.device, layer.weight.dtype)
    model.roi_heads = LongTailRoIHeads.from_roi_heads(
        model.roi_heads, classifier, score_thresh, detections_per_img
    )
    return model


def to_softmax(
    model: FasterRCNN, score_thresh: float | None = None, detections_per_img: int | None = None
) -> FasterRCNN:
    """The plain softmax baseline on the same RoI heads (keeps the existing last layer)."""
    classifier = SoftmaxClassifier(num_classes_of(model))
    return set_classifier(model, classifier, False, score_thresh, detections_per_img)
