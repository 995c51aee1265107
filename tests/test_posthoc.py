"""The post-hoc rows as the reference computes them, on small worked examples."""

import math

import pytest
import torch
import torch.nn.functional as F

from bags.builders import build_detector
from bags.classifiers import NearestClassMean, RoIFeatures, TauNormSelect, from_meta
from bags.data.dataset import DetectionDataset
from bags.decoupling import class_centres
from bags.detector import box_head_features, set_classifier, to_softmax
from bags.methods import MethodSpec, PosthocData
from bags.training_stats import TrainingStats
from tests.helpers import TINY_ARCH, make_tiny_dataset


def test_nearest_class_mean_scores_by_hand():
    """Background: the baseline's p_bg; class c: (1 - p_bg) softmax_c(cos(f, mu_c))."""
    centres = torch.tensor([[2.0, 0.0], [0.0, 5.0]])  # cosine only sees directions
    ncm = NearestClassMean(centres, "fc")
    logits = torch.tensor([[math.log(1.0), math.log(3.0), 0.0]])  # p_bg = 1 / (1 + 3 + 1)
    feature = torch.tensor([[1.0, 1.0]])
    scores = ncm.scores(logits, RoIFeatures(fc=feature))
    cos = torch.tensor([1 / math.sqrt(2), 1 / math.sqrt(2)])
    classes = (1 - 0.2) * torch.softmax(cos, 0)
    torch.testing.assert_close(scores[0], torch.tensor([0.2, *classes.tolist()]))
    pooled = NearestClassMean(centres, "pooled")
    with pytest.raises(ValueError, match="pooled"):
        pooled.scores(logits, RoIFeatures(fc=feature))


def test_tau_norm_select_by_hand():
    """Per RoI: the baseline's argmax; if foreground, the tau-normed head's argmax, and if that
    class is selected (few instances), the tau-normed head's whole score row."""
    normed = torch.nn.Linear(2, 3, bias=False)
    with torch.no_grad():
        normed.weight.copy_(torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0]]))
    selected = torch.tensor([True, False])  # class 1 is rare, class 2 is not
    rule = TauNormSelect(normed, selected)
    # RoI 0: baseline says background -> baseline row. RoI 1: baseline says class 2, normed
    # says class 1 (rare) -> normed row. RoI 2: baseline says class 1, normed says class 2
    # (not selected) -> baseline row.
    logits = torch.tensor([[5.0, 0.0, 0.0], [0.0, 0.0, 5.0], [0.0, 5.0, 0.0]])
    features = torch.tensor([[1.0, 1.0], [0.0, 3.0], [3.0, 0.0]])  # the fc layer before ReLU
    scores = rule.scores(logits, RoIFeatures(fc=features))
    original = F.softmax(logits, 1)
    normed_scores = F.softmax(features @ normed.weight.T, 1)
    torch.testing.assert_close(scores[0], original[0])
    torch.testing.assert_close(scores[1], normed_scores[1])
    torch.testing.assert_close(scores[2], original[2])


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = make_tiny_dataset(tmp_path_factory.mktemp("posthoc"))
    train = DetectionDataset(root / "train.json", root / "images")
    torch.manual_seed(0)
    return to_softmax(build_detector(TINY_ARCH, train.num_classes)), train


def test_class_centres_are_the_mean_ground_truth_features(tiny):
    model, train = tiny
    centres = class_centres(model, train, "fc", batch_size=3)
    # By hand: each ground-truth box of class 1, one image at a time.
    model.eval()
    rows = []
    with torch.no_grad():
        for index in range(len(train)):
            image, target = train[index]
            images, targets = model.transform([image], [dict(target)])
            features = model.backbone(images.tensors)
            pooled = model.roi_heads.box_roi_pool(
                {"0": features}, [targets[0]["boxes"]], images.image_sizes
            )
            fc, _ = box_head_features(model, pooled)
            rows.append(fc[targets[0]["labels"] == 1])
    torch.testing.assert_close(centres[0], torch.cat(rows).mean(0), rtol=1e-4, atol=1e-5)
    pooled = class_centres(model, train, "pooled", batch_size=3)
    assert pooled.shape[1] == TINY_ARCH["channels"] * 5 * 5


@pytest.mark.parametrize("rule", ["tau_norm", "tau_norm_select", "ncm_fc", "ncm_conv"])
def test_posthoc_rules_survive_the_model_file(tiny, rule):
    model, train = tiny
    counts = [2, 2, 10, 10, 30][: train.num_classes]
    stats = TrainingStats.from_images(counts, [t[1].tolist() for t in train.targets])
    spec = MethodSpec.from_dict({"posthoc": rule})
    changed = to_softmax(build_detector(TINY_ARCH, train.num_classes))
    changed.load_state_dict(model.state_dict())
    spec.apply_posthoc(changed, stats, PosthocData(train=train))
    meta = {"num_classes": train.num_classes, **changed.roi_heads.classifier.meta()}
    rebuilt = to_softmax(build_detector(TINY_ARCH, train.num_classes))
    set_classifier(rebuilt, from_meta(meta))
    rebuilt.load_state_dict(changed.state_dict())
    changed.eval()
    rebuilt.eval()
    image, _ = train[0]
    with torch.no_grad():
        ours, theirs = changed([image]), rebuilt([image])
    for key in ("boxes", "scores", "labels"):
        assert torch.equal(ours[0][key], theirs[0][key])
