"""EQLv2, Seesaw and the federated loss against their references' formulas, written here
independently in the references' own layout (background or objectness columns last, labels
0..C-1 for classes and C for background): values, gradients, and the state they keep."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from bags.classifiers import (
    EQLv2Classifier,
    FederatedClassifier,
    SeesawClassifier,
    from_meta,
)
from bags.losses import federated_classes, federated_loss

C = 5  # classes


def to_ours(logits: torch.Tensor, labels: torch.Tensor) -> tuple:
    """The reference's (N, C + 1) logits, classes first and the background or objectness logit
    last, as ours (that logit first); labels 0..C-1 (classes) and C (background) as 1..C, 0."""
    ours = torch.cat([logits[:, C:], logits[:, :C]], dim=1)
    return ours, torch.where(labels == C, 0, labels + 1)


def made(n: int = 12, seed: int = 0, extra: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, C + extra, generator=generator) * 2
    labels = torch.tensor([0, 0, 0, 1, 1, 2, 4, 5, 5, 5, 3, 5])[:n]  # 5 = background
    return logits, labels


# --- EQLv2: tztztztztz/eqlv2, mmdet/models/losses/eqlv2.py ---


class ReferenceEQLv2:
    def __init__(self, gamma=12.0, mu=0.8, alpha=4.0):
        self.gamma, self.mu, self.alpha = gamma, mu, alpha
        self.pos_grad, self.neg_grad = torch.zeros(C), torch.zeros(C)
        self.pos_neg = torch.ones(C) * 100

    def __call__(self, cls_score, label):
        n_i, n_c = cls_score.size()
        target = cls_score.new_zeros(n_i, n_c)
        target[torch.arange(n_i), label] = 1
        map_func = lambda x: 1 / (1 + torch.exp(-self.gamma * (x - self.mu)))  # noqa: E731
        neg_w = torch.cat([map_func(self.pos_neg), cls_score.new_ones(1)])
        pos_w = 1 + self.alpha * (1 - neg_w)
        weight = pos_w.view(1, -1).expand(n_i, n_c) * target + neg_w.view(1, -1).expand(
            n_i, n_c
        ) * (1 - target)
        loss = F.binary_cross_entropy_with_logits(cls_score, target, reduction="none")
        loss = torch.sum(loss * weight) / n_i
        prob = torch.sigmoid(cls_score.detach())
        grad = torch.abs(target * (prob - 1) + (1 - target) * prob)
        self.pos_grad += torch.sum(grad * target * weight, dim=0)[:-1]
        self.neg_grad += torch.sum(grad * (1 - target) * weight, dim=0)[:-1]
        self.pos_neg = self.pos_grad / (self.neg_grad + 1e-10)
        return loss

    def scores(self, cls_score):
        score = torch.sigmoid(cls_score)
        return score[:, :-1] * (1 - score[:, -1:])


def test_eqlv2_matches_its_reference_over_steps():
    reference, ours = ReferenceEQLv2(), EQLv2Classifier(C)
    for step in range(3):  # the first step at weight 1, then the gradient ratios move them
        logits, labels = made(seed=step)
        theirs_in = logits.clone().requires_grad_()
        expected = reference(theirs_in, labels)
        expected.backward()
        ours_in, our_labels = to_ours(logits, labels)
        ours_in.requires_grad_()
        got = ours.loss(ours_in, our_labels)
        got.backward()
        ours.step_done()
        torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-7)
        torch.testing.assert_close(ours_in.grad, to_ours(theirs_in.grad, labels)[0])
        torch.testing.assert_close(ours.pos_neg, reference.pos_neg, rtol=1e-5, atol=1e-8)
    assert not torch.allclose(reference.pos_neg, torch.full((C,), 100.0))  # the weights moved
    torch.testing.assert_close(ours.scores(to_ours(logits, labels)[0])[:, 1:],
                               reference.scores(logits))  # fmt: skip


def test_eqlv2_shares_one_state_within_a_step():
    """Two loss calls of one step (two GPUs of the reference) weigh by the same state (here the
    first, every weight 1), and the step adds both calls' gradients."""
    ours = EQLv2Classifier(C)
    calls = [made(seed=1), made(seed=2)]
    for logits, labels in calls:
        ours.loss(*to_ours(logits, labels))
    assert torch.equal(ours.pos_neg, torch.full((C,), 100.0))  # nothing moves within the step
    ours.step_done()
    pos, neg = torch.zeros(C), torch.zeros(C)
    for logits, labels in calls:
        target = F.one_hot(labels, C + 1).float()
        grad = (torch.sigmoid(logits) - target).abs()  # at weight 1
        pos += (grad * target).sum(0)[:C]
        neg += (grad * (1 - target)).sum(0)[:C]
    torch.testing.assert_close(ours.pos_neg, pos / (neg + 1e-10))


# --- Seesaw: mmdetection, mmdet/models/losses/seesaw_loss.py, avg_factor = all RoIs ---


def reference_seesaw(cls_score, labels, cum_samples, p=0.8, q=2.0, eps=1e-2):
    num_classes = C
    cum_samples = cum_samples.clone()
    for u_l in labels.unique():
        cum_samples[u_l] += (labels == u_l.item()).sum()
    avg_factor = len(labels)
    pos_inds = labels < num_classes
    obj_labels = (labels == num_classes).long()
    classes, objectness = cls_score[..., :-2], cls_score[..., -2:]
    score, lab = classes[pos_inds], labels[pos_inds]
    onehot = F.one_hot(lab, num_classes)
    weights = score.new_ones(onehot.size())
    if p > 0:
        counts = cum_samples[:num_classes]
        ratio = counts[None, :].clamp(min=1) / counts[:, None].clamp(min=1)
        index = (ratio < 1.0).float()
        weights = weights * (ratio.pow(p) * index + (1 - index))[lab.long(), :]
    if q > 0:
        scores = F.softmax(score.detach(), dim=1)
        self_scores = scores[torch.arange(0, len(scores)), lab.long()]
        matrix = scores / self_scores[:, None].clamp(min=eps)
        index = (matrix > 1.0).float()
        weights = weights * (matrix.pow(q) * index + (1 - index))
    score = score + (weights.log() * (1 - onehot))
    loss_classes = F.cross_entropy(score, lab, reduction="none").sum() / avg_factor
    loss_objectness = F.cross_entropy(objectness, obj_labels, reduction="none").sum() / avg_factor
    return loss_classes + loss_objectness, cum_samples


def seesaw_to_ours(logits, labels):
    """Seesaw's (classes, fg, bg) columns as ours (bg, fg, classes)."""
    ours = torch.cat([logits[:, C + 1 : C + 2], logits[:, C : C + 1], logits[:, :C]], dim=1)
    return ours, torch.where(labels == C, 0, labels + 1)


@pytest.mark.parametrize(("p", "q"), [(0.8, 2.0), (0.8, 0.0), (0.0, 2.0)])
def test_seesaw_matches_its_reference_over_steps(p, q):
    """Each factor alone and both: removing the mitigation or the compensation changes the
    value (the earlier counts make class 1 rarer than class 0, and RoIs score others above
    their own class)."""
    ours = SeesawClassifier(C, p, q)
    counts = torch.zeros(C + 1)
    for step in range(3):
        logits, labels = made(seed=10 + step, extra=2)
        theirs_in = logits.clone().requires_grad_()
        expected, counts = reference_seesaw(theirs_in, labels, counts, p, q)
        expected.backward()
        ours_in, our_labels = seesaw_to_ours(logits, labels)
        ours_in.requires_grad_()
        got = ours.loss(ours_in, our_labels)
        got.backward()
        torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-7)
        torch.testing.assert_close(ours_in.grad, seesaw_to_ours(theirs_in.grad, labels)[0])
    plain, _ = reference_seesaw(logits, labels, counts, 0.0, 0.0)
    assert not torch.isclose(got, plain)  # the factors act on these inputs
    torch.testing.assert_close(ours.samples, torch.cat([counts[C:], counts[:C]]))


def test_seesaw_scores_and_layer():
    classifier = SeesawClassifier(C)
    logits, labels = made(extra=2)
    ours, _ = seesaw_to_ours(logits, labels)
    scores = classifier.scores(ours)
    objectness = F.softmax(logits[:, C:], dim=1)
    torch.testing.assert_close(scores[:, 1:], F.softmax(logits[:, :C], dim=1) * objectness[:, :1])
    torch.testing.assert_close(scores[:, 0], objectness[:, 1])
    layer = classifier.init_layer(torch.nn.Linear(8, C + 2))
    x = torch.randn(3, 8)
    weight = layer.weight / (layer.weight.norm(dim=1, keepdim=True) + 1e-6)
    expected = 20 * (x / (x.norm(dim=1, keepdim=True) + 1e-6)) @ weight.T + layer.bias
    torch.testing.assert_close(layer(x), expected)


# --- The federated loss: detectron2, modeling/roi_heads/fast_rcnn.py ---


def reference_federated(pred_class_logits, gt_classes, fed_loss_classes):
    n = pred_class_logits.shape[0]
    k = pred_class_logits.shape[1] - 1
    target = pred_class_logits.new_zeros(n, k + 1)
    target[range(len(gt_classes)), gt_classes] = 1
    target = target[:, :k]
    cls_loss = F.binary_cross_entropy_with_logits(
        pred_class_logits[:, :-1], target, reduction="none"
    )
    mask = fed_loss_classes.new_zeros(k + 1)
    mask[fed_loss_classes] = 1
    weight = mask[:k].view(1, k).expand(n, k).float()
    return torch.sum(cls_loss * weight) / n


def test_federated_loss_matches_its_reference():
    logits, labels = made()
    for theirs_chosen in (torch.tensor([0, 1, 5]), torch.tensor([0, 1, 2, 3, 4, 5])):
        theirs_in = logits.clone().requires_grad_()
        expected = reference_federated(theirs_in, labels, theirs_chosen)
        expected.backward()
        ours_in, our_labels = to_ours(logits, labels)
        ours_in.requires_grad_()
        chosen = torch.zeros(C, dtype=torch.bool)
        chosen[theirs_chosen[theirs_chosen < C]] = True
        got = federated_loss(ours_in, our_labels, chosen)
        got.backward()
        torch.testing.assert_close(got, expected)
        torch.testing.assert_close(ours_in.grad, to_ours(theirs_in.grad, labels)[0])
        assert ours_in.grad[:, 0].abs().sum() == 0  # the background logit never trains


def test_federated_classes_are_the_labels_and_draws_by_weight():
    weights = torch.tensor([1.0, 4.0, 9.0, 16.0, 0.0])  # class 5 never drawn
    labels = torch.tensor([0, 0, 2])  # background and class 2: two places of three
    seen = torch.zeros(C)
    generator = torch.Generator().manual_seed(0)
    for _ in range(4000):
        chosen = federated_classes(labels, weights, 3, generator)
        assert chosen[1] and chosen.sum() == 2  # class 2, and one drawn
        seen += chosen.float()
    drawn = seen.clone()
    drawn[1] = 0
    assert drawn[4] == 0
    share = drawn / drawn.sum()
    expected = torch.tensor([1.0, 0, 9.0, 16.0, 0]) / 26
    torch.testing.assert_close(share, expected, atol=0.03, rtol=0)
    every = federated_classes(torch.tensor([1, 2, 3, 4, 5]), weights, 3, generator)
    assert every.all()  # more labels than places: all of them, no draw
    classifier = FederatedClassifier(weights, count=3)
    ours_logits, _ = to_ours(*made())
    torch.testing.assert_close(
        classifier.scores(ours_logits)[:, 1:], torch.sigmoid(ours_logits[:, 1:])
    )


@pytest.mark.parametrize(
    "classifier",
    [EQLv2Classifier(C), SeesawClassifier(C), FederatedClassifier(torch.arange(1.0, C + 1))],
    ids=["eqlv2", "seesaw", "federated"],
)
def test_a_trained_detector_scores_the_same_from_its_model_file(classifier, tmp_path):
    """A training step moves the rule's state; the model file keeps the layer's kind (Seesaw's
    normalised one) and that state, and the rebuilt detector detects as the trained one."""
    from bags.builders import build_detector
    from bags.detector import classification_layer, set_classifier
    from bags.engine.model_files import load_model, save_model
    from tests.helpers import TINY_ARCH

    torch.manual_seed(0)
    model = set_classifier(build_detector(TINY_ARCH, C), classifier, True)
    images = [torch.rand(3, 64, 64)]
    targets = [{"boxes": torch.tensor([[4.0, 4.0, 30.0, 30.0]]), "labels": torch.tensor([2])}]
    model.train()
    sum(model(images, targets).values()).backward()
    before = {k: v.clone() for k, v in model.roi_heads.classifier.state_dict().items()}
    default = from_meta({"num_classes": C, **classifier.meta()}).state_dict()
    assert any(not torch.equal(default[k], v) for k, v in before.items())  # state to keep
    save_model(tmp_path / "m.pt", model, {"arch": TINY_ARCH, "num_classes": C,
                                          **classifier.meta()})  # fmt: skip
    loaded, _ = load_model(tmp_path / "m.pt")
    assert type(classification_layer(loaded)) is type(classification_layer(model))
    for name, value in loaded.roi_heads.classifier.state_dict().items():
        torch.testing.assert_close(value, before[name])
    model.eval(), loaded.eval()
    with torch.no_grad():
        ours, theirs = model(images)[0], loaded(images)[0]
    torch.testing.assert_close(ours["scores"], theirs["scores"])
    assert len(ours["scores"]) > 0
