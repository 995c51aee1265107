"""torchvision Faster R-CNN builders."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn
from torchvision.models import resnet50
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import _resnet_fpn_extractor
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.ops import FrozenBatchNorm2d

from bags.batched import BatchedRPN, SameSizeTransform
from bags.roi_pool import GridRoIAlign
from bags.safe_load import load_weights_only, one_line
from bags.schema import DETECTIONS_PER_IMAGE


def conv_backbone(channels: int = 64, layers: int = 4, downsample: int = 2) -> nn.Sequential:
    """A plain conv-BN-ReLU stack; the first ``downsample`` layers have stride 2."""
    blocks: list[nn.Module] = []
    in_channels = 3
    for i in range(layers):
        stride = 2 if i < downsample else 1
        blocks += [
            nn.Conv2d(in_channels, channels, 3, stride, 1, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
        ]
        in_channels = channels
    backbone = nn.Sequential(*blocks)
    backbone.out_channels = channels  # type: ignore[assignment]
    return backbone


def small_faster_rcnn(
    num_classes: int,
    image_size: int = 64,
    channels: int = 64,
    layers: int = 4,
    anchor_sizes: Sequence[int] = (12, 20, 32),
    roi_size: int = 5,
    representation: int = 256,
    rois_per_image: int = 64,
    rpn_proposals: tuple[int, int] = (200, 100),
    detections_per_img: int = DETECTIONS_PER_IMAGE,
    score_thresh: float = 0.0,
) -> FasterRCNN:
    """A CPU-sized Faster R-CNN trained from scratch on ``image_size`` square images.

    ``rpn_proposals`` is (train, test) proposals kept after NMS; images are not resized.
    """
    # Channels-last convolutions are oneDNN's fast path on a CPU (the same numbers to float
    # rounding).
    backbone = conv_backbone(channels, layers).to(memory_format=torch.channels_last)
    anchors = AnchorGenerator(sizes=(tuple(anchor_sizes),), aspect_ratios=((0.5, 1.0, 2.0),))
    train_proposals, test_proposals = rpn_proposals
    model = FasterRCNN(
        backbone,
        min_size=image_size,
        max_size=image_size,
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.25, 0.25, 0.25],
        rpn_anchor_generator=anchors,
        rpn_pre_nms_top_n_train=2 * train_proposals,
        rpn_post_nms_top_n_train=train_proposals,
        rpn_pre_nms_top_n_test=2 * test_proposals,
        rpn_post_nms_top_n_test=test_proposals,
        box_roi_pool=GridRoIAlign("0", output_size=roi_size, sampling_ratio=2),
        box_head=TwoMLPHead(channels * roi_size**2, representation),
        box_predictor=FastRCNNPredictor(representation, num_classes + 1),
        box_batch_size_per_image=rois_per_image,
        box_score_thresh=score_thresh,
        box_detections_per_img=detections_per_img,
    )
    model.transform = SameSizeTransform.from_transform(model.transform)
    model.rpn = BatchedRPN.from_rpn(model.rpn)
    return model


class FrozenStatisticsBatchNorm2d(FrozenBatchNorm2d):
    """Batch norm whose statistics stay as loaded and whose scale and shift train: the
    reference's ResNet (mmdetection's ``norm_eval=True`` with ``requires_grad=True``). eps 0,
    as torchvision builds its COCO-trained Faster R-CNN (``overwrite_eps(model, 0.0)``): those
    weights were trained with it. The state dict is ``FrozenBatchNorm2d``'s, key for key."""

    def __init__(self, num_features: int, eps: float = 0.0) -> None:
        super().__init__(num_features, eps)
        weight, bias = self.weight, self.bias
        del self.weight, self.bias  # buffers in FrozenBatchNorm2d
        self.weight = nn.Parameter(weight)
        self.bias = nn.Parameter(bias)


def r50_fpn_faster_rcnn(
    num_classes: int,
    min_size: int = 800,
    max_size: int = 1333,
    rois_per_image: int = 512,
    rpn_proposals: tuple[int, int] = (2000, 1000),
    detections_per_img: int = DETECTIONS_PER_IMAGE,
    score_thresh: float = 0.0,
    coco_weights: Path | str | None = None,
) -> FasterRCNN:
    """torchvision's Faster R-CNN R50-FPN, optionally initialised from its COCO-trained weights
    (a local file), with a new (C + 1)-way box predictor as the reference recipe does."""
    train_proposals, test_proposals = rpn_proposals
    # As torchvision builds it around COCO weights, so that the checkpoint loads key for key:
    # stem and layer1 frozen (the reference's frozen_stages=1, their norms' scale and shift
    # too), the batch norms' statistics frozen with eps 0.
    body = resnet50(weights=None, norm_layer=FrozenStatisticsBatchNorm2d)
    model = FasterRCNN(
        _resnet_fpn_extractor(body, trainable_layers=3),
        num_classes=91,
        min_size=min_size,
        max_size=max_size,
        rpn_pre_nms_top_n_train=train_proposals,
        rpn_post_nms_top_n_train=train_proposals,
        rpn_pre_nms_top_n_test=test_proposals,
        rpn_post_nms_top_n_test=test_proposals,
        box_batch_size_per_image=rois_per_image,
        box_detections_per_img=detections_per_img,
        box_score_thresh=score_thresh,
    )
    if coco_weights is not None:
        state = load_weights_only(coco_weights, "readable weights file")
        try:
            model.load_state_dict(state)
        except Exception as error:
            raise ValueError(
                f"{coco_weights}: not torchvision's COCO Faster R-CNN weights ({one_line(error)})"
            ) from error
    in_features = model.roi_heads.box_predictor.cls_score.in_features
    predictor = FastRCNNPredictor(in_features, num_classes + 1)
    for layer, std in ((predictor.cls_score, 0.01), (predictor.bbox_pred, 0.001)):
        nn.init.normal_(layer.weight, std=std)  # as the reference initialises them
        nn.init.zeros_(layer.bias)
    model.roi_heads.box_predictor = predictor
    model.rpn = BatchedRPN.from_rpn(model.rpn)
    return model


def build_detector(
    arch: dict, num_classes: int, coco_weights: Path | str | None = None
) -> FasterRCNN:
    """A detector from its config: ``{"name": "small" | "r50_fpn", ...keyword arguments}``.

    ``coco_weights`` initialises an R50-FPN from a COCO-trained checkpoint file.
    """
    options = dict(arch)
    name = options.pop("name", "small")
    options.pop("pretrained", None)  # which file to start from is the rule's input
    if name == "small":
        if coco_weights is not None:
            raise ValueError("the small detector has no COCO-trained weights")
        return small_faster_rcnn(num_classes, **options)
    if name == "r50_fpn":
        return r50_fpn_faster_rcnn(num_classes, coco_weights=coco_weights, **options)
    raise ValueError(f"unknown detector {name!r}; known: small, r50_fpn")
