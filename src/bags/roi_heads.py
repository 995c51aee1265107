"""torchvision ``RoIHeads`` whose classification loss and scores come from a ``Classifier``."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchvision.models.detection.faster_rcnn import TwoMLPHead
from torchvision.models.detection.roi_heads import RoIHeads
from torchvision.ops import boxes as box_ops

from bags.batched import select_training_samples
from bags.classifiers import RoIFeatures, SoftmaxClassifier
from bags.loss_scope import chunk_ranges, mean_over_chunks

Detections = list[dict[str, torch.Tensor]]
TORCHVISION_BOX_BETA = 1 / 9  # torchvision's smooth L1 beta in the box head; mmdetection's is 1.0


def box_regression_loss(
    box_regression: torch.Tensor,
    labels: torch.Tensor,
    regression_targets: torch.Tensor,
    beta: float,
) -> torch.Tensor:
    """Class-specific smooth L1 on positive RoIs, summed and divided by the number of RoIs, as
    torchvision's ``fastrcnn_loss`` and mmdetection's box head compute it."""
    positive = torch.where(labels > 0)[0]
    deltas = box_regression.reshape(box_regression.shape[0], -1, 4)[positive, labels[positive]]
    loss = F.smooth_l1_loss(deltas, regression_targets[positive], beta=beta, reduction="sum")
    return loss / max(labels.numel(), 1)


def top_batched_nms(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    labels: torch.Tensor,
    iou_threshold: float,
    top: int,
    candidates: int | None = None,
) -> torch.Tensor:
    """Indices of the ``top`` best boxes that per-class NMS keeps, best first: torchvision's
    ``batched_nms(...)[:top]``, found from the highest-scored boxes alone.

    Exact: NMS suppresses a box only through higher-scored boxes of its class, so NMS over every
    box scored at least s decides each of them as NMS over all boxes does. The candidates
    (``4 * top`` at first) grow fourfold until ``top`` of them survive or every box is in. With
    LVIS's 1,203 classes and a score threshold of 0.0, this replaces one NMS per class over
    1.2 million boxes by one NMS over a few thousand.
    """
    if top < 1 or (candidates is not None and candidates < 1):
        raise ValueError(f"top and candidates must be at least 1, got {top} and {candidates}")
    count = len(scores)
    candidates = 4 * top if candidates is None else candidates
    while True:
        if candidates >= count:
            chosen = torch.arange(count, device=scores.device)
        else:
            floor = scores.topk(candidates, sorted=False).values.min()
            chosen = torch.where(scores >= floor)[0]  # ties at the floor all come in
        keep = chosen[per_class_nms(boxes[chosen], scores[chosen], labels[chosen], iou_threshold)]
        if len(keep) >= top or len(chosen) == count:
            return keep[:top]
        candidates *= 4


def per_class_nms(
    boxes: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor, iou_threshold: float
) -> torch.Tensor:
    """NMS within each class in one call, by torchvision's coordinate trick: each class's boxes
    are moved clear of the others'. The move is done in float64, where it is exact (in float32 a
    move by 1,203 image widths would round the coordinates); IoUs are then computed in float64,
    so only a pair whose IoU lies within float32 rounding of the threshold could go otherwise
    than in torchvision's float32 NMS."""
    if len(boxes) == 0:
        return torch.empty(0, dtype=torch.int64, device=boxes.device)
    boxes = boxes.double()
    span = boxes.max() - boxes.min() + 1  # wider than any box and any gap between two
    moved = boxes + (labels.double() * span)[:, None]
    return box_ops.nms(moved, scores.double(), iou_threshold)


def mlp_features(head: TwoMLPHead, pooled: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """torchvision's two-layer box head, returning its last fc layer before and after the ReLU."""
    if not isinstance(head, TwoMLPHead):
        raise ValueError(f"expected torchvision's TwoMLPHead box head, got {type(head).__name__}")
    before = head.fc7(F.relu(head.fc6(pooled.flatten(1))))
    return before, F.relu(before)


class LongTailRoIHeads(RoIHeads):
    """Box-only RoI heads with a pluggable classification rule (no mask or keypoint branch).

    Training settings (``bags.engine.train.apply_loss_settings`` sets them): ``loss_images``,
    the images per loss call (``bags.loss_scope``); ``box_loss_beta``, the box loss's beta.
    """

    def __init__(self, classifier: SoftmaxClassifier, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.classifier = classifier
        self.loss_images: int | None = None
        self.box_loss_beta = TORCHVISION_BOX_BETA

    @classmethod
    def from_roi_heads(
        cls,
        heads: RoIHeads,
        classifier: SoftmaxClassifier,
        score_thresh: float | None = None,
        detections_per_img: int | None = None,
    ) -> LongTailRoIHeads:
        """Wrap the submodules of ``heads`` (weights shared, not copied) under a new rule."""
        if heads.has_mask() or heads.has_keypoint():
            raise ValueError(
                "only box heads are supported: the model has a mask or keypoint branch"
            )
        new = cls(
            classifier,
            heads.box_roi_pool,
            heads.box_head,
            heads.box_predictor,
            fg_iou_thresh=heads.proposal_matcher.high_threshold,
            bg_iou_thresh=heads.proposal_matcher.low_threshold,
            batch_size_per_image=heads.fg_bg_sampler.batch_size_per_image,
            positive_fraction=heads.fg_bg_sampler.positive_fraction,
            bbox_reg_weights=heads.box_coder.weights,
            score_thresh=heads.score_thresh if score_thresh is None else score_thresh,
            nms_thresh=heads.nms_thresh,
            detections_per_img=(
                heads.detections_per_img if detections_per_img is None else detections_per_img
            ),
        )
        new.loss_images = getattr(heads, "loss_images", None)
        new.box_loss_beta = getattr(heads, "box_loss_beta", TORCHVISION_BOX_BETA)
        return new

    def forward(self, features, proposals, image_shapes, targets=None):  # type: ignore[override]
        if self.training:
            if targets is None:
                raise ValueError("targets are required in training mode")
            self.check_targets(targets)
            proposals, labels, regression_targets = select_training_samples(
                self, proposals, targets
            )
        pooled = self.box_roi_pool(features, proposals, image_shapes)
        before_relu, box_features = mlp_features(self.box_head, pooled)
        class_logits, box_regression = self.box_predictor(box_features)
        if self.training:
            ranges = chunk_ranges([len(x) for x in labels], self.loss_images)
            labels, targets = torch.cat(labels), torch.cat(regression_targets)

            def losses(rows: slice) -> dict[str, torch.Tensor]:
                return {
                    "loss_classifier": self.classifier.loss(class_logits[rows], labels[rows]),
                    "loss_box_reg": box_regression_loss(
                        box_regression[rows], labels[rows], targets[rows], self.box_loss_beta
                    ),
                }

            result = mean_over_chunks(losses, ranges)
            self.classifier.step_done()
            return [], result
        boxes, scores, labels = self.postprocess_detections(
            class_logits, box_regression, proposals, image_shapes, RoIFeatures(pooled, before_relu)
        )
        detections = [
            {"boxes": b, "labels": lab, "scores": s} for b, s, lab in zip(boxes, scores, labels)
        ]
        return detections, {}

    def postprocess_detections(  # type: ignore[override]
        self, class_logits, box_regression, proposals, image_shapes, features=None
    ):
        """Per-class boxes above ``score_thresh``, per-class NMS, top ``detections_per_img``."""
        scores_all = self.classifier.scores(class_logits, features)
        num_columns = scores_all.shape[1]
        boxes_all = self.box_coder.decode(box_regression, proposals)
        per_image = [len(p) for p in proposals]
        out_boxes, out_scores, out_labels = [], [], []
        for boxes, scores, shape in zip(
            boxes_all.split(per_image), scores_all.split(per_image), image_shapes
        ):
            boxes = box_ops.clip_boxes_to_image(boxes, shape)[:, 1:].reshape(-1, 4)
            labels = torch.arange(1, num_columns, device=scores.device).repeat(len(scores))
            scores = scores[:, 1:].reshape(-1)
            keep = torch.where(scores > self.score_thresh)[0]
            boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
            keep = box_ops.remove_small_boxes(boxes, min_size=1e-2)
            boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
            keep = top_batched_nms(boxes, scores, labels, self.nms_thresh, self.detections_per_img)
            out_boxes.append(boxes[keep])
            out_scores.append(scores[keep])
            out_labels.append(labels[keep])
        return out_boxes, out_scores, out_labels
