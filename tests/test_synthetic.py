import hashlib
import json
from collections import Counter

import pytest

from bags.data.synthetic import SyntheticSpec, generate, tier_counts
from bags.groups import assign_groups

SPEC = SyntheticSpec(
    train_counts=[[3, 2, 9], [3, 10, 99], [2, 100, 200], [1, 1000, 1000]], val_per_class=4, seed=5
)


def digest(root):
    h = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        if path.is_file():
            h.update(path.relative_to(root).as_posix().encode())
            h.update(path.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    generate(SPEC, root)
    return root


def test_tier_counts_are_log_spaced_within_each_tier():
    assert tier_counts([[3, 10, 1000]]) == [1000, 100, 10]
    assert tier_counts([[1, 5, 7]]) == [7]
    with pytest.raises(ValueError, match="tier"):
        tier_counts([[2, 9, 3]])


def test_counts_follow_the_spec_and_span_every_bin(dataset):
    train = json.loads((dataset / "train.json").read_text())
    counted = Counter(a["category_id"] for a in train["annotations"])
    assert sorted(counted.values()) == sorted(tier_counts(SPEC.train_counts))
    groups = assign_groups([counted[c["id"]] for c in train["categories"]])
    assert groups.sizes == [3, 3, 2, 1]


def test_category_records_match_the_annotations(dataset):
    train = json.loads((dataset / "train.json").read_text())
    for category in train["categories"]:
        boxes = [a for a in train["annotations"] if a["category_id"] == category["id"]]
        images = {a["image_id"] for a in boxes}
        assert category["instance_count"] == len(boxes)
        assert category["image_count"] == len(images)
        expected = "r" if len(images) <= 10 else "c" if len(images) <= 100 else "f"
        assert category["frequency"] == expected


def test_val_is_balanced_and_exhaustively_labelled(dataset):
    val = json.loads((dataset / "val.json").read_text())
    counted = Counter(a["category_id"] for a in val["annotations"])
    assert set(counted.values()) == {4}
    all_ids = {c["id"] for c in val["categories"]}
    present = {}
    for a in val["annotations"]:
        present.setdefault(a["image_id"], set()).add(a["category_id"])
    for image in val["images"]:
        assert set(image["neg_category_ids"]) == all_ids - present[image["id"]]
        assert image["not_exhaustive_category_ids"] == []


def test_boxes_lie_inside_images_and_files_exist(dataset):
    train = json.loads((dataset / "train.json").read_text())
    size = {i["id"]: (i["width"], i["height"]) for i in train["images"]}
    for a in train["annotations"]:
        x, y, w, h = a["bbox"]
        width, height = size[a["image_id"]]
        assert w > 0 and h > 0 and x >= 0 and y >= 0 and x + w <= width and y + h <= height
    for image in train["images"]:
        assert (dataset / "images" / image["file_name"]).is_file()


def test_deterministic_from_seed(dataset, tmp_path):
    generate(SPEC, tmp_path / "again")
    assert digest(tmp_path / "again") == digest(dataset)
    other = SyntheticSpec(**{**SPEC.__dict__, "seed": 6})
    generate(other, tmp_path / "other")
    assert digest(tmp_path / "other") != digest(dataset)
