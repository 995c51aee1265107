"""Cached box-head features give what the frozen detector itself computes."""

import pytest
import torch

from bags.builders import build_detector
from bags.classifiers import SoftmaxClassifier
from bags.data.dataset import DetectionDataset
from bags.detector import set_classifier, to_softmax
from bags.engine.feature_cache import (
    load_features,
    save_features,
    scoring_features,
    training_features,
)
from bags.engine.head import fit_layer, score_cached
from bags.engine.infer import image_results
from bags.engine.settings import TrainConfig
from tests.helpers import TINY_ARCH, make_tiny_dataset


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = make_tiny_dataset(tmp_path_factory.mktemp("cache"))
    train = DetectionDataset(root / "train.json", root / "images")
    val = DetectionDataset(root / "val.json", root / "images")
    torch.manual_seed(0)
    model = to_softmax(build_detector(TINY_ARCH, train.num_classes))
    return root, model, train, val


def test_cached_scoring_gives_the_detectors_own_detections(tiny, tmp_path):
    _, model, _, val = tiny
    cache = scoring_features(model, val, batch_size=4)
    save_features(cache, tmp_path / "val.pt")
    cache = load_features(tmp_path / "val.pt")
    ours = score_cached(model, cache, val.category_of)
    model.eval()
    theirs = []
    with torch.no_grad():
        for i in range(len(val)):
            image, target = val[i]
            (detections,) = model([image])
            theirs += image_results(detections, int(target["image_id"]), val.category_of)
    assert len(ours) == len(theirs) > 0
    for a, b in zip(ours, theirs):
        assert (a["image_id"], a["category_id"]) == (b["image_id"], b["category_id"])
        assert a["bbox"] == pytest.approx(b["bbox"], abs=0.02)
        assert a["score"] == pytest.approx(b["score"], abs=1e-5)


def test_training_candidates_hold_every_roi_that_training_samples(tiny):
    _, model, train, _ = tiny
    cache = training_features(model, train, batch_size=4)
    assert len(cache.features) == len(train)
    assert cache.image_classes == [labels.tolist() for _, labels in train.targets]
    # What the training forward pass feeds the classifier (last layer only, rest frozen).
    seen = []
    classifier = SoftmaxClassifier(train.num_classes)
    original = classifier.loss
    classifier.loss = lambda logits, labels: (
        seen.append((logits, labels)) or original(logits, labels)
    )
    set_classifier(model, classifier)
    model.train()
    model.backbone.eval()
    images, targets = zip(*[train[i] for i in range(4)])
    with torch.no_grad():
        model(list(images), list(targets))
    (logits, labels), layer = seen[0], model.roi_heads.box_predictor.cls_score
    candidates = torch.cat([layer(f) for f in cache.features[:4]])
    candidate_labels = torch.cat(cache.labels[:4])
    for row, label in zip(logits, labels):
        same = candidates[candidate_labels == label]
        assert (same - row).abs().amax(dim=1).min() < 1e-4


def test_fitting_the_last_layer_lowers_the_loss(tiny):
    _, model, train, _ = tiny
    model = to_softmax(model)
    cache = training_features(model, train, batch_size=4)
    layer = model.roi_heads.box_predictor.cls_score
    before = {k: v.clone() for k, v in model.state_dict().items()}
    config = TrainConfig.from_dict(dict(epochs=4, batch_size=4, lr=0.05, warmup_iters=0))
    rows = fit_layer(
        layer, SoftmaxClassifier(train.num_classes), cache, model.roi_heads.fg_bg_sampler, config
    )
    assert [row["epoch"] for row in rows] == [1, 2, 3, 4]
    assert rows[-1]["loss_classifier"] < rows[0]["loss_classifier"]
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed == {"roi_heads.box_predictor.cls_score.weight",
                       "roi_heads.box_predictor.cls_score.bias"}  # fmt: skip
    with pytest.raises(ValueError, match="hflip"):
        fit_layer(
            layer,
            SoftmaxClassifier(1),
            cache,
            None,
            TrainConfig.from_dict(dict(epochs=1, hflip=True)),
        )


def test_fitting_the_last_layer_clips_its_gradient(tiny):
    _, model, train, _ = tiny
    model = to_softmax(model)
    cache = training_features(model, train, batch_size=4)
    layer = model.roi_heads.box_predictor.cls_score
    start = torch.cat([p.detach().flatten().clone() for p in layer.parameters()])
    steps = -(-len(cache.features) // 4)

    def moved(grad_clip):
        with torch.no_grad():
            torch.nn.utils.vector_to_parameters(start.clone(), layer.parameters())
        config = TrainConfig.from_dict(dict(
            epochs=1, batch_size=4, lr=0.05, momentum=0.0, weight_decay=0.0, warmup_iters=0,
            schedule="step", grad_clip=grad_clip,
        ))  # fmt: skip
        sampler = model.roi_heads.fg_bg_sampler
        fit_layer(layer, SoftmaxClassifier(train.num_classes), cache, sampler, config)
        return (torch.nn.utils.parameters_to_vector(layer.parameters()) - start).norm().item()

    # Plain SGD moves each step by lr x the gradient, whose norm the clip bounds.
    bound = steps * 0.05 * 1e-3
    assert moved(1e-3) <= bound * (1 + 1e-4)
    assert moved(None) > 10 * bound


def test_a_damaged_cache_file_is_one_clear_error(tmp_path):
    bad = tmp_path / "train.pt"
    bad.write_bytes(b"not a cache")
    with pytest.raises(ValueError, match=r"train\.pt: not a feature cache file"):
        load_features(bad)
