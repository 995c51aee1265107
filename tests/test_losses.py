"""Each comparison loss, sampler and adjustment pinned to its formula on hand-computed cases."""

import math
from collections import Counter

import pytest
import torch
import torch.nn.functional as F

from bags.classifiers import SigmoidFocalClassifier
from bags.decoupling import tau_normalize
from bags.losses import (
    effective_number_weights,
    eql_threshold,
    equalization_loss,
    reweight_weights,
    weighted_cross_entropy,
)
from bags.sampling import (
    class_balanced_indices,
    repeat_factors,
    repeated_indices,
    tail_images,
)


def test_reweight_weights_and_clipping():
    # 1/n = [1, 0.1, 0.001]; mean = 0.367; ratios = [2.7248, 0.2725, 0.0027] -> clip low
    weights = reweight_weights([1, 10, 1000])
    inverse = torch.tensor([1.0, 0.1, 0.001])
    expected = (inverse / inverse.mean()).clamp(0.1, 5.0)
    assert torch.allclose(weights, torch.cat([torch.ones(1), expected]))
    assert weights[3].item() == pytest.approx(0.1)  # clipped from 0.0027
    assert reweight_weights([1] + [1000] * 9)[1].item() == pytest.approx(5.0)  # 9.9, clipped
    assert weights[0] == 1.0


def test_effective_number_weights_are_normalised_then_clipped():
    weights = effective_number_weights([1, 2], beta=0.5)
    raw = torch.tensor([0.5 / 0.5, 0.5 / 0.75])  # (1 - b) / (1 - b^n)
    assert torch.allclose(weights[1:], raw / raw.mean())
    assert weights[0] == 1.0
    # the reference's row 7: beta 0.999, mean-normalised, clipped to [0.1, 5]
    counts = [1, 5, 50, 5000, 5000, 5000, 5000, 5000, 5000, 5000]
    raw = torch.tensor([(1 - 0.999) / (1 - 0.999**n) for n in counts], dtype=torch.float64)
    expected = (raw / raw.mean()).clamp(0.1, 5.0).float()
    assert torch.allclose(effective_number_weights(counts)[1:], expected)
    assert effective_number_weights(counts)[1].item() == pytest.approx(5.0)  # clipped from above
    with pytest.raises(ValueError, match="beta"):
        effective_number_weights([1], beta=1.0)


def test_weighted_cross_entropy_is_mean_of_weighted_terms():
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    labels = torch.tensor([0, 2])
    weights = torch.tensor([1.0, 3.0, 0.5])
    terms = F.cross_entropy(logits, labels, reduction="none")
    expected = (terms[0] * 1.0 + terms[1] * 0.5) / 2
    assert torch.allclose(weighted_cross_entropy(logits, labels, weights), expected)


def test_sigmoid_focal_loss_is_the_references():
    """One-hot over all C + 1 columns (background included), alpha 0.25, gamma 2, mean over
    N x (C + 1): against torchvision and a hand computation."""
    from torchvision.ops import sigmoid_focal_loss

    logits = torch.tensor([[0.5, -1.0, 2.0], [0.3, 0.2, -0.4]])
    labels = torch.tensor([2, 0])
    loss = SigmoidFocalClassifier(2).loss(logits, labels)
    target = torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
    assert loss.item() == pytest.approx(
        sigmoid_focal_loss(logits, target, 0.25, 2.0, reduction="mean").item()
    )
    p = torch.sigmoid(logits)
    terms = torch.where(
        target == 1, -0.25 * (1 - p) ** 2 * torch.log(p), -0.75 * p**2 * torch.log(1 - p)
    )
    assert loss.item() == pytest.approx(terms.mean().item(), rel=1e-6)


def test_eql_threshold_and_loss():
    """C logits, no background column; a background RoI's target is all zeros."""
    # image frequencies 1/1000 (< lambda), 999/1000 (>= lambda)
    threshold = eql_threshold([1, 999], 1000, lam=1.76e-3)
    assert threshold.tolist() == [1.0, 0.0]
    logits = torch.tensor([[-1.0, 2.0], [0.2, -0.4]])
    labels = torch.tensor([2, 0])  # a foreground RoI of class 2, a background RoI
    loss = equalization_loss(logits, labels, threshold)
    bce = F.binary_cross_entropy_with_logits
    # RoI 0: rare class 1 is a negative of a foreground RoI -> its term is dropped
    roi0 = bce(logits[0, 1], torch.tensor(1.0))
    roi1 = bce(logits[1, 0], torch.tensor(0.0)) + bce(logits[1, 1], torch.tensor(0.0))
    assert loss.item() == pytest.approx(((roi0 + roi1) / 2).item(), rel=1e-6)


def test_repeat_factors_by_hand():
    # 1000 images: class 1 in 1 image (f = 0.001 -> r = 1), class 2 in 1 image with t = 0.004
    images = [[1]] + [[2, 3]] + [[3]] * 998
    factors = repeat_factors(images, t=0.004)
    assert factors[0] == pytest.approx(2.0)  # sqrt(0.004 / 0.001)
    assert factors[1] == pytest.approx(2.0)  # max(r(2) = 2, r(3) = 1)
    assert factors[2] == 1.0
    assert repeat_factors([[], [1]], t=0.9) == [1.0, pytest.approx(math.sqrt(0.9 / 0.5))]


def test_repeated_indices_stochastic_rounding():
    generator = torch.Generator().manual_seed(0)
    counts = Counter()
    for _ in range(2000):
        counts.update(repeated_indices([1.0, 2.0, 1.25], generator))
    assert counts[0] == 2000 and counts[1] == 4000
    assert counts[2] / 2000 == pytest.approx(1.25, abs=0.03)


def test_class_balanced_indices_draw_classes_uniformly():
    images = [[1]] * 98 + [[2]] + [[3]]
    picks = class_balanced_indices(images, 30000, torch.Generator().manual_seed(1))
    shares = Counter(1 if i < 98 else 2 if i == 98 else 3 for i in picks)
    for c in (1, 2, 3):
        assert shares[c] / 30000 == pytest.approx(1 / 3, abs=0.02)


def test_tail_images():
    assert tail_images([[1, 5], [2], [], [5]], {5}) == [0, 3]


def test_tau_normalize_keeps_background_row_and_bias():
    layer = torch.nn.Linear(2, 3)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[2.0, 0.0], [3.0, 4.0], [0.6, 0.8]]))
        layer.bias.fill_(1.0)
    rows = torch.tensor([1, 2])
    half = tau_normalize(layer, 0.5, rows)
    assert torch.equal(half.weight[0], layer.weight[0])  # background row kept
    assert torch.allclose(half.weight[1], torch.tensor([3.0, 4.0]) / 5**0.5)
    assert torch.allclose(half.weight[2], torch.tensor([0.6, 0.8]) / 1.0)
    assert torch.equal(half.bias, layer.bias)  # bias kept
    assert torch.allclose(tau_normalize(layer, 1.0, rows).weight[1:].norm(dim=1), torch.ones(2))
    assert torch.equal(tau_normalize(layer, 0.0, rows).weight, layer.weight)


@pytest.mark.parametrize("kind", ["reweight", "effective_number", "focal", "eql"])
def test_each_classifier_trains_a_detector(kind):
    from bags.builders import small_faster_rcnn
    from bags.classifiers import EqualizationClassifier, WeightedSoftmaxClassifier
    from bags.detector import set_classifier
    from tests.test_detector import NUM_CLASSES, counts, toy_batch

    n = counts()
    classifier = {
        "reweight": lambda: WeightedSoftmaxClassifier(reweight_weights(n)),
        "effective_number": lambda: WeightedSoftmaxClassifier(effective_number_weights(n)),
        "focal": lambda: SigmoidFocalClassifier(NUM_CLASSES),
        "eql": lambda: EqualizationClassifier(eql_threshold(n, 2 * max(n))),
    }[kind]()
    torch.manual_seed(0)
    model = set_classifier(small_faster_rcnn(NUM_CLASSES), classifier)
    images, targets = toy_batch()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.9)
    losses = []
    for _ in range(15):
        loss = model(images, targets)["loss_classifier"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    model.eval()
    with torch.no_grad():
        detections = model(images)
    assert all(len(d["boxes"]) <= 300 for d in detections)
