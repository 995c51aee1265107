"""The method registry: names to rules and samplers, and what a model file keeps of them."""

import math

import pytest
import torch

from bags.classifiers import (
    EQLv2Classifier,
    EqualizationClassifier,
    FederatedClassifier,
    GroupSoftmaxClassifier,
    SeesawClassifier,
    SigmoidFocalClassifier,
    SoftmaxClassifier,
    WeightedSoftmaxClassifier,
    from_meta,
)
from bags.engine.plan import training_plan
from bags.engine.settings import TrainConfig
from bags.groups import groups_document
from bags.methods import LOSSES, MethodSpec, loss
from bags.training_stats import TrainingStats

# Classes 1..3 with 2, 20 and 200 instances; five images.
STATS = TrainingStats(
    instance_counts=[2, 20, 200],
    image_counts=[1, 2, 5],
    image_classes=[[3], [3, 2], [3, 1], [3, 2], [3]],
)


@pytest.mark.parametrize(
    "name, kind",
    [
        ("softmax", SoftmaxClassifier),
        ("bags", GroupSoftmaxClassifier),
        ("reweight", WeightedSoftmaxClassifier),
        ("effective_number", WeightedSoftmaxClassifier),
        ("focal", SigmoidFocalClassifier),
        ("eql", EqualizationClassifier),
        ("eqlv2", EQLv2Classifier),
        ("seesaw", SeesawClassifier),
        ("federated", FederatedClassifier),
    ],
)
def test_each_registered_loss_builds_its_rule(name, kind, tmp_path):
    groups = groups_file(tmp_path, [10, 100], 8) if name == "bags" else None
    classifier = MethodSpec.from_dict({"loss": name}).classifier(STATS, groups)
    assert isinstance(classifier, kind)
    logits = torch.randn(6, classifier.num_logits)
    labels = torch.tensor([0, 1, 2, 3, 0, 3])
    assert torch.isfinite(classifier.loss(logits, labels))
    assert classifier.scores(logits).shape == (6, 4)


def groups_file(folder, edges, beta):
    """The groups file ``bags groups`` writes for STATS's counts."""
    path = folder / f"groups_{len(edges)}_{beta}.json"
    path.write_text(groups_document([1, 2, 3], STATS.instance_counts, edges, beta))
    return path


def test_bags_takes_the_groups_and_beta_of_its_groups_file(tmp_path):
    spec = MethodSpec.from_dict({"loss": "bags"})
    classifier = spec.classifier(STATS, groups_file(tmp_path, [100], "all"))
    assert classifier.groups.sizes == [2, 1]  # [1, 100) holds classes 1 and 2; [100, inf) class 3
    assert classifier.beta == math.inf
    assert spec.classifier(STATS, groups_file(tmp_path, [], 0.5)).groups.sizes == [3]
    assert spec.classifier(STATS, groups_file(tmp_path, [], 0.5)).beta == 0.5
    with pytest.raises(ValueError, match="groups file is needed"):
        spec.classifier(STATS)
    other = tmp_path / "other.json"
    other.write_text(groups_document([1, 2, 4], STATS.instance_counts, [100], 8))
    with pytest.raises(ValueError, match=r"other\.json: the groups file was made for other"):
        spec.classifier(STATS, other)


def test_reweight_uses_the_instance_counts():
    classifier = MethodSpec.from_dict({"loss": "reweight"}).classifier(STATS)
    # 1/n over mean(1/n) = (0.5, 0.05, 0.005) / 0.185, clipped to [0.1, 5].
    expected = [1.0, 0.5 / 0.185, 0.05 / 0.185, 0.1]
    assert classifier.weights.tolist() == pytest.approx(expected, rel=1e-5)


def test_samplers_pick_each_epochs_images():
    rfs = MethodSpec.from_dict({"sampler": "rfs", "sampler_options": {"t": 0.8}})
    images = rfs.epoch_images(STATS)
    # f(1) = 1/5 -> r = 2; f(2) = 2/5 -> r = sqrt(2); f(3) = 1 -> r = 1.
    epoch = images(0, 0)
    assert epoch.count(2) == 2 and epoch.count(0) == 1 and epoch.count(4) == 1
    assert epoch.count(1) in (1, 2) and epoch.count(3) in (1, 2)
    assert images(0, 0) == epoch  # fixed by (seed, epoch)
    tail = MethodSpec.from_dict({"sampler": "tail", "sampler_options": {"below": 100}})
    assert tail.epoch_images(STATS)(0, 0) == [1, 2, 3]
    balanced = MethodSpec.from_dict({"sampler": "class_balanced"}).epoch_images(STATS)(0, 1)
    assert len(balanced) == 5
    assert MethodSpec.from_dict({}).epoch_images(STATS) is None


def test_training_plan_covers_the_sampled_images():
    tail = MethodSpec.from_dict({"sampler": "tail", "sampler_options": {"below": 100}})
    config = TrainConfig.from_dict(dict(epochs=2, batch_size=2))
    plan = training_plan(5, config, tail.epoch_images(STATS))
    for batches in plan:
        flat = [i for batch in batches for i in batch]
        assert len(flat) == 4 and set(flat) == {1, 2, 3}  # 3 images, last batch filled up
    assert [len(b) for b in training_plan(5, config)] == [3, 3]


def test_unknown_names_and_options_are_clear_errors():
    with pytest.raises(ValueError, match="unknown loss 'nope'"):
        MethodSpec.from_dict({"loss": "nope"})
    with pytest.raises(ValueError, match="unknown sampler"):
        MethodSpec.from_dict({"sampler": "nope"})
    with pytest.raises(ValueError, match="method settings"):
        MethodSpec.from_dict({"lost": "bags"})
    with pytest.raises(ValueError, match="focal: unknown option"):
        MethodSpec.from_dict({"loss": "focal", "loss_options": {"gama": 2}}).classifier(STATS)
    with pytest.raises(ValueError, match="no training image"):
        MethodSpec.from_dict({"sampler": "tail", "sampler_options": {"below": 1}}).epoch_images(
            STATS
        )


def test_scoring_survives_the_model_file(tmp_path):
    for name in ("softmax", "bags", "eql", "focal", "eqlv2", "seesaw", "federated"):
        groups = groups_file(tmp_path, [10, 100], 8) if name == "bags" else None
        classifier = MethodSpec.from_dict({"loss": name}).classifier(STATS, groups)
        meta = {"num_classes": 3, **classifier.meta()}
        rebuilt = from_meta(meta)
        logits = torch.randn(4, classifier.num_logits)
        torch.testing.assert_close(rebuilt.scores(logits), classifier.scores(logits))


def test_a_new_loss_is_one_registered_function():
    @loss("halved")
    def halved(stats, options):
        class Halved(SoftmaxClassifier):
            def loss(self, logits, labels):
                return super().loss(logits, labels) / 2

        return Halved(stats.num_classes)

    try:
        classifier = MethodSpec.from_dict({"loss": "halved"}).classifier(STATS)
        logits, labels = torch.randn(3, 4), torch.tensor([0, 1, 2])
        plain = SoftmaxClassifier(3).loss(logits, labels)
        assert classifier.loss(logits, labels) == pytest.approx(plain.item() / 2)
    finally:
        del LOSSES["halved"]
