"""torchvision Faster R-CNN builders."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.ops import MultiScaleRoIAlign


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
    detections_per_img: int = 300,
    score_thresh: float = 0.0,
) -> FasterRCNN:
    """A CPU-sized Faster R-CNN trained from scratch on ``image_size`` square images.

    ``rpn_proposals`` is (train, test) proposals kept after NMS; images are not resized.
    """
    backbone = conv_backbone(channels, layers)
    anchors = AnchorGenerator(sizes=(tuple(anchor_sizes),), aspect_ratios=((0.5, 1.0, 2.0),))
    train_proposals, test_proposals = rpn_proposals
    return FasterRCNN(
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
        box_roi_pool=MultiScaleRoIAlign(["0"], output_size=roi_size, sampling_ratio=2),
        box_head=TwoMLPHead(channels * roi_size**2, representation),
        box_predictor=FastRCNNPredictor(representation, num_classes + 1),
        box_batch_size_per_image=rois_per_image,
        box_score_thresh=score_thresh,
        box_detections_per_img=detections_per_img,
    )


def build_detector(arch: dict, num_classes: int) -> FasterRCNN:
    """A detector from its config: ``{"name": "small", ...keyword arguments}``."""
    options = dict(arch)
    name = options.pop("name", "small")
    if name == "small":
        return small_faster_rcnn(num_classes, **options)
    raise ValueError(f"unknown detector {name!r}; known: small")
