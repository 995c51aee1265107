"""The batched training steps give torchvision's numbers: the same proposals, samples, losses
and gradients from the same random state."""

from __future__ import annotations

import copy

import pytest
import torch
from torchvision.models.detection.roi_heads import RoIHeads
from torchvision.models.detection.rpn import RegionProposalNetwork
from torchvision.models.detection.transform import GeneralizedRCNNTransform

from bags import batched
from bags.builders import build_detector
from bags.detector import to_softmax

ARCH = {"name": "small", "channels": 8, "layers": 2, "representation": 32}


def _batch(sizes: list[int], boxes_per_image: list[int], seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    images, targets = [], []
    for size, count in zip(sizes, boxes_per_image):
        images.append(torch.rand(3, size, size, generator=generator))
        corner = torch.rand(count, 2, generator=generator) * (size - 20)
        extent = 6 + torch.rand(count, 2, generator=generator) * 12
        labels = torch.randint(1, 6, (count,), generator=generator)
        targets.append({"boxes": torch.cat([corner, corner + extent], 1), "labels": labels})
    return images, targets


def _models():
    torch.manual_seed(0)
    model = to_softmax(build_detector(ARCH, 5))
    reference = copy.deepcopy(model)
    # torchvision's own classes on the same weights and settings
    reference.rpn = RegionProposalNetwork.__new__(RegionProposalNetwork)
    reference.rpn.__dict__ = model.rpn.__dict__.copy()
    reference.transform = GeneralizedRCNNTransform.__new__(GeneralizedRCNNTransform)
    reference.transform.__dict__ = model.transform.__dict__.copy()
    return model, reference


def _step(model, images, targets, select, monkeypatch):
    monkeypatch.setattr("bags.roi_heads.select_training_samples", select)
    model.train()
    model.zero_grad()
    torch.manual_seed(7)
    losses = model(list(images), [dict(t) for t in targets])
    sum(losses.values()).backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return {k: v.item() for k, v in losses.items()}, grads


def _torchvision_select(heads, proposals, targets):
    sampled, _, labels, regression_targets = RoIHeads.select_training_samples(
        heads, proposals, targets
    )
    return sampled, labels, regression_targets


@pytest.mark.parametrize(
    ("sizes", "boxes"),
    [
        ([64] * 6, [1, 2, 3, 4, 1, 2]),  # the small detector's case: one size, batched paths
        ([64, 64, 64], [2, 0, 3]),  # an image without boxes
        ([64, 48, 64], [1, 2, 2]),  # mixed sizes: torchvision's transform, per-image pooling
    ],
)
def test_training_step_equals_torchvision(sizes, boxes, monkeypatch):
    images, targets = _batch(sizes, boxes)
    model, reference = _models()
    losses, grads = _step(model, images, targets, batched.select_training_samples, monkeypatch)
    expected, expected_grads = _step(reference, images, targets, _torchvision_select, monkeypatch)
    assert losses == pytest.approx(expected, rel=1e-6, abs=1e-7)
    assert grads.keys() == expected_grads.keys()
    for name, grad in grads.items():
        torch.testing.assert_close(grad, expected_grads[name], rtol=1e-5, atol=1e-6, msg=name)


def test_rpn_proposals_and_samples_equal_torchvision():
    images, targets = _batch([64] * 5, [3, 1, 4, 2, 2], seed=1)
    model, reference = _models()
    model.train()
    reference.train()
    image_list, targets = model.transform(images, targets)
    features = model.backbone(image_list.tensors)
    features = {"0": features}
    torch.manual_seed(3)
    boxes, losses = model.rpn(image_list, features, targets)
    torch.manual_seed(3)
    expected_boxes, expected_losses = reference.rpn(image_list, features, targets)
    for got, want in zip(boxes, expected_boxes):
        assert torch.equal(got, want)
    for name, value in losses.items():
        assert value.item() == pytest.approx(expected_losses[name].item(), rel=1e-6)
    heads = model.roi_heads
    torch.manual_seed(4)
    got = batched.select_training_samples(heads, boxes, targets)
    torch.manual_seed(4)
    want = _torchvision_select(heads, boxes, targets)
    for got_part, want_part in zip(got, want):
        for g, w in zip(got_part, want_part):
            assert torch.equal(g, w)


@pytest.mark.parametrize("low_quality", [True, False])
def test_matcher_equals_torchvision(low_quality):
    """Values exactly at the thresholds, and a ground truth whose best IoU is below them (it
    keeps its best predictions, ties included, when low-quality matches are allowed)."""
    from torchvision.models.detection._utils import Matcher

    quality = torch.tensor([[0.2, 0.2, 0.1, 0.6, 0.4, 0.5], [0.0, 0.3, 0.3, 0.1, 0.2, 0.39]])
    expected = Matcher(0.5, 0.4, allow_low_quality_matches=low_quality)(quality.clone())
    padded = torch.cat([quality, torch.zeros(1, 6)])[None]
    valid = torch.tensor([[True, True, False]])
    got = batched.match(padded, valid, None, 0.5, 0.4, low_quality)
    assert torch.equal(got[0], expected)


def test_same_size_transform_equals_resizing():
    images, targets = _batch([64] * 3, [1, 2, 1])
    model, reference = _models()
    for mode in (True, False):
        model.train(mode)
        reference.train(mode)
        torch.manual_seed(0)
        got, got_targets = model.transform(images, targets)
        state = torch.get_rng_state()
        torch.manual_seed(0)
        want, want_targets = reference.transform(images, targets)
        assert torch.equal(state, torch.get_rng_state())  # the same random draws
        torch.testing.assert_close(got.tensors, want.tensors, rtol=0, atol=1e-6)
        assert got.image_sizes == want.image_sizes
        for g, w in zip(got_targets, want_targets):
            assert torch.equal(g["boxes"], w["boxes"])
