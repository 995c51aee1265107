"""Per-class NMS cut to the top detections, from the highest-scored boxes alone, gives what
torchvision's ``batched_nms`` over every box gives."""

from __future__ import annotations

import pytest
import torch
from torchvision.ops import batched_nms

from bags.roi_heads import per_class_nms, top_batched_nms


def _detections(classes: int, proposals: int, seed: int, image: float = 800.0):
    """Every proposal's box for every class, as the box head decodes them: one proposal's boxes
    lie close to each other, and neighbouring proposals overlap."""
    generator = torch.Generator().manual_seed(seed)
    centres = torch.rand(proposals, 1, 2, generator=generator) * image * 0.3 + image * 0.35
    jitter = torch.randn(proposals, classes, 2, generator=generator) * 8
    sizes = 40 + torch.rand(proposals, classes, 2, generator=generator) * 60
    low = (centres + jitter - sizes / 2).clamp(0, image)
    high = (centres + jitter + sizes / 2).clamp(0, image)
    boxes = torch.cat([low, high], dim=2).reshape(-1, 4)
    count = proposals * classes  # distinct scores: no ties for NMS to break either way
    scores = (torch.randperm(count, generator=generator) + 1).float() / count
    labels = torch.arange(1, classes + 1).repeat(proposals)
    return boxes, scores, labels


@pytest.mark.parametrize(
    ("classes", "proposals", "top", "candidates"),
    [
        (1203, 60, 300, None),  # LVIS's classes: per-class NMS in torchvision's class loop
        (40, 200, 100, 100),  # few candidates at first: they have to grow until 100 survive
        (5, 30, 300, None),  # fewer boxes survive than asked for: every box goes in
        (3, 4, 10, 1),
    ],
)
def test_top_nms_keeps_what_nms_over_every_box_keeps(classes, proposals, top, candidates):
    boxes, scores, labels = _detections(classes, proposals, seed=classes)
    expected = batched_nms(boxes, scores, labels, 0.5)[:top]
    kept = top_batched_nms(boxes, scores, labels, 0.5, top, candidates)
    assert kept.tolist() == expected.tolist()


def test_scores_tied_across_classes_give_the_same_detections():
    # Every class scores its proposals with the same 100 values: ties across classes, none
    # within one, so what NMS keeps is fixed and only the order of equal scores may differ.
    boxes, _, labels = _detections(30, 100, seed=1)
    generator = torch.Generator().manual_seed(2)
    ranks = torch.stack([torch.randperm(100, generator=generator) for _ in range(30)], dim=1)
    scores = ((ranks + 1).float() / 100).reshape(-1)
    every = batched_nms(boxes, scores, labels, 0.5)
    kept = top_batched_nms(boxes, scores, labels, 0.5, 200, candidates=50)
    assert scores[kept].tolist() == scores[every[:200]].tolist()
    cut = scores[kept[-1]]
    above = set(every[scores[every] > cut].tolist())
    assert above == set(kept[scores[kept] > cut].tolist())
    assert set(kept.tolist()) <= set(every.tolist())


def test_classes_far_apart_keep_their_own_boxes():
    # One box per class, all at the same place: no class suppresses another, even at class ids
    # whose float32 coordinate shift would round the boxes.
    boxes = torch.tensor([[100.0, 100.0, 140.3, 160.7]]).repeat(1203, 1)
    scores = torch.linspace(1.0, 0.5, 1203)
    labels = torch.arange(1, 1204)
    assert per_class_nms(boxes, scores, labels, 0.5).tolist() == list(range(1203))
    assert len(per_class_nms(boxes, scores, torch.ones(1203, dtype=torch.long), 0.5)) == 1
    assert per_class_nms(boxes[:0], scores[:0], labels[:0], 0.5).tolist() == []


def test_the_shift_between_classes_keeps_small_boxes_exact():
    # Two boxes of class 1203 with IoU 100 / 199.5 > 0.5, in an image 1333 pixels wide. Shifted
    # by 1203 x 1334 pixels in float32, their coordinates round to 1/8 of a pixel and the IoU to
    # exactly 0.5: the second box would wrongly survive.
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 19.95], [0, 0, 1333, 800]])
    scores = torch.tensor([0.9, 0.8, 0.7])
    labels = torch.tensor([1203, 1203, 1])
    assert per_class_nms(boxes, scores, labels, 0.5).tolist() == [0, 2]


@pytest.mark.parametrize(("top", "candidates"), [(0, None), (10, 0)])
def test_top_nms_needs_something_to_keep(top, candidates):
    boxes, scores, labels = _detections(3, 4, seed=0)
    with pytest.raises(ValueError, match="at least 1"):
        top_batched_nms(boxes, scores, labels, 0.5, top, candidates)


def test_classes_stay_apart_whatever_the_coordinates():
    # Boxes left of and above the origin (a caller that does not clip): the move between
    # classes still clears every box of another class.
    boxes = torch.tensor([[-500.0, -500.0, -10.0, -10.0], [-500.0, -500.0, -10.0, -10.0]])
    scores = torch.tensor([0.9, 0.8])
    assert per_class_nms(boxes, scores, torch.tensor([1, 2]), 0.5).tolist() == [0, 1]
    assert per_class_nms(boxes, scores, torch.tensor([1, 1]), 0.5).tolist() == [0]
