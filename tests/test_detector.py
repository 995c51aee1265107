import pytest
import torch

from bags.builders import small_faster_rcnn
from bags.classifiers import GroupSoftmaxClassifier
from bags.detector import classification_layer, set_classifier, to_softmax
from bags.groups import assign_groups
from bags.roi_heads import LongTailRoIHeads
from bags.weight_norms import class_weight_norms

NUM_CLASSES = 40


def toy_batch(seed=0, n=4, size=64):
    generator = torch.Generator().manual_seed(seed)
    images, targets = [], []
    for _ in range(n):
        image = torch.rand(3, size, size, generator=generator) * 0.2
        boxes, labels = [], []
        for k in range(2):
            x, y = 6 + 28 * k, 10 + 20 * k
            label = 1 + (len(boxes) * 7 + len(images) * 3) % NUM_CLASSES
            image[label % 3, y : y + 20, x : x + 20] = 1.0
            boxes.append([x, y, x + 20, y + 20])
            labels.append(label)
        images.append(image)
        targets.append(
            {"boxes": torch.tensor(boxes, dtype=torch.float), "labels": torch.tensor(labels)}
        )
    return images, targets


def counts():
    return [3 + (c * 37) % 2000 for c in range(NUM_CLASSES)]


def test_builder_replaces_only_the_last_layer():
    torch.manual_seed(0)
    model = to_softmax(small_faster_rcnn(NUM_CLASSES))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    groups = assign_groups(counts())
    set_classifier(model, GroupSoftmaxClassifier(groups, 8.0), True)
    assert isinstance(model.roi_heads, LongTailRoIHeads)
    after = model.state_dict()
    layer = classification_layer(model)
    assert layer.weight.shape == (groups.num_logits, layer.in_features)
    assert abs(layer.weight.std().item() - 0.01) < 0.001
    assert layer.bias.abs().sum() == 0
    assert after.keys() == before.keys()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed == {
        "roi_heads.box_predictor.cls_score.weight",
        "roi_heads.box_predictor.cls_score.bias",
    }


def test_builder_rejects_groups_of_another_size():
    model = small_faster_rcnn(NUM_CLASSES)
    with pytest.raises(ValueError, match="40 classes but the classifier 3"):
        set_classifier(model, GroupSoftmaxClassifier(assign_groups([1, 2, 3]), 8.0), True)


def test_bags_detector_trains_and_caps_detections():
    torch.manual_seed(0)
    groups = assign_groups(counts())
    classifier = GroupSoftmaxClassifier(groups, 8.0, torch.Generator().manual_seed(0))
    model = set_classifier(small_faster_rcnn(NUM_CLASSES), classifier, True)
    images, targets = toy_batch()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.9)
    model.train()
    losses = []
    for _ in range(30):
        loss_dict = model(images, targets)
        loss = sum(loss_dict.values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss_dict["loss_classifier"].item())
    assert sum(losses[-5:]) / 5 < 0.7 * sum(losses[:5]) / 5
    model.eval()
    with torch.no_grad():
        detections = model(images)
    assert len(detections) == len(images)
    for det in detections:
        assert len(det["boxes"]) <= 300
        assert det["labels"].min() >= 1 and det["labels"].max() <= NUM_CLASSES
        assert (det["scores"] > 0).all()
    # with more candidates than the cap, the cap is what stops them
    model.roi_heads.score_thresh = -1.0
    model.roi_heads.nms_thresh = 1.0
    with torch.no_grad():
        detections = model(images[:1])
    assert len(detections[0]["boxes"]) == 300


def test_weight_norms_softmax_and_bags():
    model = to_softmax(small_faster_rcnn(NUM_CLASSES))
    layer = classification_layer(model)
    norms = class_weight_norms(layer)
    assert norms.shape == (NUM_CLASSES,)
    assert torch.allclose(norms[4], layer.weight[5].norm())
    groups = assign_groups(counts())
    set_classifier(model, GroupSoftmaxClassifier(groups, 8.0), True)
    layer = classification_layer(model)
    with torch.no_grad():
        layer.weight.copy_(torch.arange(groups.num_logits, dtype=torch.float)[:, None])
    norms = class_weight_norms(layer, groups)
    root = layer.in_features**0.5
    assert torch.allclose(norms, groups.class_logit.float() * root)
    with pytest.raises(ValueError, match="rows"):
        class_weight_norms(torch.nn.Linear(3, 5), groups)
