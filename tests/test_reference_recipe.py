"""The reference's LVIS training recipe, setting by setting: each GPU's losses over its own 2
images, batches of one orientation, RPN anchors inside the image, the box loss's beta, the COCO
start's batch norm, a training set read as mmdetection v1 reads it, and groups from the counts
the annotation file states."""

from __future__ import annotations

import json
import logging
import math

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import bags.batched
from bags.batched import anchors_inside
from bags.builders import FrozenStatisticsBatchNorm2d, r50_fpn_faster_rcnn, small_faster_rcnn
from bags.classifiers import GroupSoftmaxClassifier
from bags.data.counts import count_instances
from bags.data.dataset import DetectionDataset
from bags.detector import set_classifier
from bags.engine.plan import epoch_batches, training_plan
from bags.engine.settings import TrainConfig
from bags.engine.train import apply_loss_settings
from bags.group_softmax import group_softmax_loss
from bags.groups import assign_groups, write_groups
from bags.loss_scope import chunk_ranges
from bags.roi_heads import box_regression_loss

# Class 1 is rare (group 1: under 10 instances); the others fill groups 2 to 4.
COUNTS = [3, 40, 60, 500, 2000]
GROUPS = assign_groups(COUNTS, [10, 100, 1000])
ROIS = 16  # RoIs sampled per image
# Four images, two boxes each; only image 0 shows the rare class, so only the first 2-image
# chunk has RoIs of group 1.
LABELS = [[1, 4], [2, 5], [3, 4], [5, 2]]


class RecordingBags(GroupSoftmaxClassifier):
    """BAGS that keeps what each loss call saw."""

    def __init__(self, beta: float, generator: torch.Generator | None = None) -> None:
        super().__init__(GROUPS, beta, generator)
        self.calls: list[tuple[torch.Tensor, torch.Tensor]] = []

    def loss(self, logits, labels):
        self.calls.append((logits.detach().clone(), labels.clone()))
        return super().loss(logits, labels)


def batch() -> tuple[list[torch.Tensor], list[dict[str, torch.Tensor]]]:
    generator = torch.Generator().manual_seed(0)
    images, targets = [], []
    for k, labels in enumerate(LABELS):
        image = torch.rand(3, 64, 64, generator=generator) * 0.2
        boxes = [[4, 4, 20 + 10 * k, 20 + 10 * k], [50 - 12 * k, 44, 62, 60]]
        for (x1, y1, x2, y2), label in zip(boxes, labels):
            image[label % 3, y1:y2, x1:x2] = 1.0
        images.append(image)
        targets.append(
            {"boxes": torch.tensor(boxes, dtype=torch.float), "labels": torch.tensor(labels)}
        )
    return images, targets


def detector(classifier: GroupSoftmaxClassifier):
    torch.manual_seed(0)
    model = small_faster_rcnn(len(COUNTS), channels=8, layers=2, representation=32,
                              rois_per_image=ROIS)  # fmt: skip
    return set_classifier(model, classifier, new_layer=True).train()


def losses_of(model, loss_images, box_loss_beta=1 / 9, allowed_border=None):
    config = TrainConfig.from_dict(
        dict(
            epochs=1,
            batch_size=4,
            loss_images=loss_images,
            box_loss_beta=box_loss_beta,
            rpn_allowed_border=allowed_border,
        )
    )
    apply_loss_settings(model, config)
    torch.manual_seed(1)  # the same proposals and RoI samples on every call
    return model(*batch())


def reference_gpu_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """One GPU's BAGS loss with beta "all", written from the paper's definition: per group, the
    softmax cross-entropy averaged over the RoIs that count (every RoI in group 0; in a group
    with a foreground RoI, every RoI, the others' target being "others"), summed over groups."""
    total = logits.new_zeros(())
    start = 0
    for g, width in enumerate(GROUPS.widths):
        columns = logits[:, start : start + width]
        start += width
        if g == 0:
            targets = (labels > 0).long()
        else:
            members = [c for c in range(1, len(COUNTS) + 1) if GROUPS.class_group[c] == g]
            targets = torch.tensor(
                [members.index(y) + 1 if y in members else 0 for y in labels.tolist()]
            )
            if not (targets > 0).any():
                continue  # no RoI of the group on this GPU: it adds nothing
        total = total + F.cross_entropy(columns, targets)
    return total


def test_the_chunked_bags_loss_is_the_mean_of_the_reference_gpus_losses():
    whole = RecordingBags(math.inf)
    unchunked = losses_of(detector(whole), None)
    ((logits, labels),) = whole.calls
    assert len(labels) == 4 * ROIS  # every image gives ROIS RoIs, in image order
    chunked_classifier = RecordingBags(math.inf)
    chunked = losses_of(detector(chunked_classifier), 2)
    assert [len(y) for _, y in chunked_classifier.calls] == [2 * ROIS, 2 * ROIS]
    gpus = [reference_gpu_loss(logits[r], labels[r]) for r in (slice(0, 32), slice(32, 64))]
    torch.testing.assert_close(chunked["loss_classifier"], torch.stack(gpus).mean())
    torch.testing.assert_close(unchunked["loss_classifier"], reference_gpu_loss(logits, labels))
    # The rare group is in the first chunk only: the two scopes weight it differently.
    assert (labels[32:] == 1).sum() == 0 and (labels[:32] == 1).sum() > 0
    assert abs(chunked["loss_classifier"] - unchunked["loss_classifier"]) > 1e-3
    # Equal RoI counts per chunk: the box loss's normaliser is the same in either scope.
    torch.testing.assert_close(chunked["loss_box_reg"], unchunked["loss_box_reg"])


def test_the_chunked_loss_equals_separate_two_image_calls_with_others_sampling():
    classifier = RecordingBags(8.0, torch.Generator().manual_seed(5))
    chunked = losses_of(detector(classifier), 2)
    logits = torch.cat([x for x, _ in classifier.calls])
    labels = torch.cat([y for _, y in classifier.calls])
    generator = torch.Generator().manual_seed(5)  # the same "others" draws, call by call
    separate = [
        group_softmax_loss(logits[r], labels[r], GROUPS, 8.0, generator)
        for r in (slice(0, 32), slice(32, 64))
    ]
    torch.testing.assert_close(chunked["loss_classifier"], torch.stack(separate).mean())


def test_the_rpn_losses_are_the_mean_of_separate_two_image_calls():
    """Every labelled anchor sampled, so that images differ in their sampled counts: the
    chunked RPN losses are those of two separate 2-image batches, averaged."""
    model = detector(RecordingBags(math.inf))
    model.rpn.fg_bg_sampler.batch_size_per_image = 10**6
    torch.nn.init.normal_(model.rpn.head.cls_logits.weight, std=1.0)  # scores away from 0.5
    model.backbone.eval()  # batch norm on its running statistics: features whatever the batch
    names = ("loss_objectness", "loss_rpn_box_reg")
    chunked = losses_of(model, 2)
    whole = losses_of(model, None)
    images, targets = batch()
    torch.manual_seed(1)
    halves = [model(images[r], targets[r]) for r in (slice(0, 2), slice(2, 4))]
    for name in names:
        separate = (halves[0][name] + halves[1][name]) / 2
        torch.testing.assert_close(chunked[name], separate, rtol=0, atol=1e-6)
        assert abs(chunked[name] - whole[name]) > 1e-5  # float rounding: under 1e-7


def test_chunk_ranges_split_rows_by_whole_images():
    assert chunk_ranges([3, 1, 2, 5], None) == [slice(0, 11)]
    assert chunk_ranges([3, 1, 2, 5], 2) == [slice(0, 4), slice(4, 11)]
    with pytest.raises(ValueError, match="3 images does not split into chunks of loss_images=2"):
        chunk_ranges([1, 1, 1], 2)


def test_a_batch_that_does_not_split_into_chunks_is_refused():
    with pytest.raises(ValueError, match="'batch_size' must be a multiple of loss_images"):
        TrainConfig.from_dict(dict(epochs=1, batch_size=6, loss_images=4))


def test_box_loss_beta_is_the_reference_smooth_l1():
    deltas = torch.tensor([[0.0] * 4 + [0.3, -2.0, 0.9, 1.5], [0.0] * 8])  # 2 RoIs, 2 columns
    labels = torch.tensor([1, 0])
    targets = torch.tensor([[0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    x = torch.tensor([0.3, -2.0, 0.9, 1.5])
    expected = torch.where(x.abs() < 1, 0.5 * x**2, x.abs() - 0.5).sum() / 2  # beta 1, 2 RoIs
    torch.testing.assert_close(box_regression_loss(deltas, labels, targets, 1.0), expected)


def test_the_box_head_trains_with_the_beta_set():
    torchvision = losses_of(detector(RecordingBags(math.inf)), None, box_loss_beta=1 / 9)
    reference = losses_of(detector(RecordingBags(math.inf)), None, box_loss_beta=1.0)
    torch.testing.assert_close(torchvision["loss_classifier"], reference["loss_classifier"])
    assert reference["loss_box_reg"] < torchvision["loss_box_reg"] - 1e-4


def test_anchors_inside_follow_mmdetection_flags():
    anchors = torch.tensor(
        [[[0.0, 0.0, 9.9, 9.9], [0.0, 0.0, 10.0, 10.0], [-0.5, 2.0, 5.0, 5.0], [30, 30, 40, 40]]]
    ).expand(2, -1, -1)
    # Image 0 is 10 x 10; image 1 is 50 x 40 (height, width) in a padded batch.
    inside = anchors_inside(anchors, [(10, 10), (50, 40)], 0)
    assert inside.tolist() == [[True, False, False, False], [True, True, False, False]]
    assert anchors_inside(anchors, [(10, 10), (50, 40)], 1)[0].tolist() == [True, True, True, False]


def test_rpn_anchors_outside_the_image_are_neither_positive_nor_negative(monkeypatch):
    seen = []
    sample = bags.batched.sample_fg_bg

    def recording(labels, *args):
        seen.append(labels.clone())
        return sample(labels, *args)

    monkeypatch.setattr(bags.batched, "sample_fg_bg", recording)
    model = detector(RecordingBags(math.inf))
    anchors = torch.stack(model.rpn.anchor_generator(
        model.transform(batch()[0])[0], [torch.zeros(4, 8, 16, 16)]))  # fmt: skip
    inside = anchors_inside(anchors, [(64, 64)] * 4, 0)
    assert 0 < inside.sum() < inside.numel()
    losses_of(model, None, allowed_border=None)
    every = seen[0]  # the RPN's draw; the RoI heads' comes after it
    seen.clear()
    assert (every[~inside] == 0).any()  # torchvision: outside anchors serve as negatives
    losses_of(model, None, allowed_border=0)
    reference = seen[0]
    assert (reference[~inside] == -1).all()
    assert (reference[inside] == 1).any() and (reference[inside] == 0).any()


def test_orientation_grouped_batches_never_mix_and_cover_every_image():
    landscape = [i % 3 == 0 for i in range(23)]
    grouped = epoch_batches(23, 4, seed=1, epoch=0, landscape=landscape)
    assert all(len({landscape[i] for i in b}) == 1 for b in grouped)
    assert all(len(b) == 4 for b in grouped)
    assert {i for b in grouped for i in b} == set(range(23))
    assert grouped == epoch_batches(23, 4, seed=1, epoch=0, landscape=landscape)
    assert grouped != epoch_batches(23, 4, seed=1, epoch=1, landscape=landscape)
    mixed = epoch_batches(23, 4, seed=1, epoch=0)
    assert any(len({landscape[i] for i in b}) == 2 for b in mixed)
    # A sampler's choice (repeats included) is grouped the same way.
    chosen = [0, 0, 0, 1, 2, 3, 3, 4]
    assert all(
        len({landscape[i] for i in b}) == 1 for b in epoch_batches(chosen, 2, 0, 0, landscape)
    )


def test_the_plan_groups_orientations_only_when_asked():
    landscape = [True, False] * 5
    grouped = TrainConfig.from_dict(dict(epochs=2, batch_size=2, group_orientation=True))
    for batches in training_plan(10, grouped, landscape=landscape):
        assert all(landscape[a] == landscape[b] for a, b in batches)
    with pytest.raises(ValueError, match="needs each image's orientation"):
        training_plan(10, grouped)
    plain = TrainConfig.from_dict(dict(epochs=2, batch_size=2))
    assert training_plan(10, plain, landscape=landscape) == training_plan(10, plain)


def test_the_coco_start_freezes_statistics_with_eps_0_and_trains_scale_and_shift():
    torch.manual_seed(0)
    model = r50_fpn_faster_rcnn(3, min_size=64, max_size=64, rois_per_image=8,
                                rpn_proposals=(50, 20))  # fmt: skip
    body = model.backbone.body
    norms = [m for m in body.modules() if isinstance(m, FrozenStatisticsBatchNorm2d)]
    assert len(norms) == 53 and all(m.eps == 0 for m in norms)
    frozen = [body.bn1, *[m for m in body.layer1.modules() if m in norms]]
    assert all(not m.weight.requires_grad and not m.bias.requires_grad for m in frozen)
    trained = [m for m in norms if m not in frozen]
    assert trained and all(m.weight.requires_grad and m.bias.requires_grad for m in trained)
    norm = body.layer3[0].bn2
    before = {k: v.clone() for k, v in norm.state_dict().items()}
    model.train()
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    images, targets = batch()
    targets = [{"boxes": t["boxes"], "labels": t["labels"].clamp(max=3)} for t in targets]
    sum(model(images[:2], targets[:2]).values()).backward()
    optimizer.step()
    assert not torch.equal(norm.weight, before["weight"])
    assert not torch.equal(norm.bias, before["bias"])
    assert torch.equal(norm.running_mean, before["running_mean"])
    assert torch.equal(norm.running_var, before["running_var"])
    x = torch.randn(1, norm.weight.numel(), 2, 2)
    expected = (x - norm.running_mean[:, None, None]) / norm.running_var[:, None, None].sqrt()
    expected = expected * norm.weight[:, None, None] + norm.bias[:, None, None]
    torch.testing.assert_close(norm(x), expected)


def _image(root, name, width, height):
    Image.new("RGB", (width, height), (90, 90, 90)).save(root / name)
    return {"id": len(list(root.iterdir())), "file_name": name, "width": width, "height": height}


def _reference_file(tmp_path):
    root = tmp_path / "images"
    root.mkdir()
    images = [
        _image(root, "wide.png", 100, 80),  # a box reaching outside, and a tiny box
        _image(root, "zero_area.png", 60, 90),  # its only box has area 0
        _image(root, "small.png", 20, 100),  # a side under 32 pixels
        _image(root, "empty.png", 50, 40),  # no box at all
        _image(root, "tall.png", 40, 50),  # one plain box
        _image(root, "away.png", 64, 64),  # its only box lies wholly outside it
    ]
    ids = [image["id"] for image in images]
    boxes = [
        (ids[0], [90, 10, 20, 20]),
        (ids[0], [5, 5, 0.5, 10]),
        (ids[1], [1, 1, 10, 10]),
        (ids[2], [2, 2, 10, 10]),
        (ids[4], [3, 4, 10, 12]),
        (ids[5], [70, 10, 5, 5]),
    ]
    annotations = [
        {"id": k + 1, "image_id": i, "category_id": 1, "bbox": box,
         "area": 0 if i == ids[1] else box[2] * box[3]}
        for k, (i, box) in enumerate(boxes)
    ]  # fmt: skip
    document = {"images": images, "annotations": annotations,
                "categories": [{"id": 1, "name": "thing"}]}  # fmt: skip
    path = tmp_path / "train.json"
    path.write_text(json.dumps(document))
    return path, root, ids


def test_the_reference_reading_of_a_training_set(tmp_path, caplog):
    path, root, ids = _reference_file(tmp_path)
    with caplog.at_level(logging.INFO):
        dataset = DetectionDataset(path, root, train_filter="reference")
    assert dataset.image_ids == [ids[0], ids[4]]
    assert dataset.landscape == [True, False]
    assert dataset.targets[0][0].tolist() == [[90.0, 10.0, 100.0, 30.0]]  # clipped at x = 100
    assert dataset.targets[1][0].tolist() == [[3.0, 4.0, 13.0, 16.0]]
    assert "2 box(es) under 1 pixel and 1 wholly outside" in caplog.text
    assert "4 image(s) without boxes or under 32 pixels dropped" in caplog.text
    with pytest.raises(ValueError, match=r"annotation 1: bbox .* lies outside its 100x80 image"):
        DetectionDataset(path, root)  # checked: a box outside its image is an error
    checked = DetectionDataset(path, root, on_bad="skip")
    assert len(checked) == 6  # every image, those without boxes too


@pytest.mark.parametrize("version", ["v0.5", "v1"])
def test_groups_come_from_the_stated_counts_of_real_lvis_categories(
    tmp_path, caplog, lvis_data, version
):
    """On the real category statistics: a file whose boxes realise every stated count under
    100 gives counted = stated counts for those; the frequent categories, with one box each,
    keep their stated counts too; the groups are the real LVIS groups."""
    stats = json.loads((lvis_data / f"lvis_{version}_train_category_stats.json").read_text())
    categories = stats["categories"]
    annotations = []
    for category in categories:
        boxes = category["instance_count"] if category["instance_count"] < 100 else 1
        for _ in range(boxes):
            annotations.append({"id": len(annotations) + 1, "image_id": 1,
                                "category_id": category["id"], "bbox": [1, 1, 4, 4]})  # fmt: skip
    image = {"id": 1, "file_name": "a.jpg", "width": 10, "height": 10}
    path = tmp_path / "train.json"
    path.write_text(json.dumps({"images": [image], "annotations": annotations,
                                "categories": categories}))  # fmt: skip
    with caplog.at_level(logging.WARNING):
        table = count_instances(path)
    ordered = sorted(categories, key=lambda c: c["id"])
    stated = [c["instance_count"] for c in ordered]
    assert table["instance_count"].tolist() == stated
    assert table["image_count"].tolist() == [c["image_count"] for c in ordered]
    assert "using the stated counts" in caplog.text
    # Counted from the boxes alone, the categories under 100 instances agree with the stats.
    unstated = [{k: v for k, v in c.items() if not k.endswith("_count")} for c in categories]
    path.write_text(json.dumps({"images": [image], "annotations": annotations,
                                "categories": unstated}))  # fmt: skip
    counted = count_instances(path)["instance_count"].tolist()
    assert counted == [n if n < 100 else 1 for n in stated]
    table.to_csv(tmp_path / "counts.csv", index=False)
    groups = write_groups(tmp_path / "counts.csv", [10, 100, 1000], 8, tmp_path / "groups.json")
    assert groups.num_logits == {"v0.5": 1236, "v1": 1209}[version]
    assert groups.sizes == assign_groups(stated, [10, 100, 1000]).sizes
