import json
import logging

import pytest

from bags.data.annotations import AnnotationError, image_path, load_annotations
from bags.data.counts import count_instances
from bags.data.dataset import DetectionDataset
from tests.helpers import make_tiny_dataset


def write(tmp_path, document):
    path = tmp_path / "ann.json"
    path.write_text(json.dumps(document))
    return path


BASE = {
    "images": [{"id": 1, "width": 64, "height": 64, "file_name": "a.png"}],
    "annotations": [{"id": 7, "image_id": 1, "category_id": 3, "bbox": [1, 2, 10, 10]}],
    "categories": [{"id": 3, "name": "three"}],
}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"annotations": [{"id": 7, "image_id": 1, "category_id": 3, "bbox": [1, 2, 0, 5]}]},
            "annotation 7: bbox width and height must be > 0",
        ),
        (
            {"annotations": [{"id": 7, "image_id": 1, "category_id": 9, "bbox": [1, 2, 3, 5]}]},
            "annotation 7: unknown category_id 9",
        ),
        (
            {"annotations": [{"id": 7, "image_id": 2, "category_id": 3, "bbox": [1, 2, 3, 5]}]},
            "annotation 7: unknown image_id 2",
        ),
        (
            {"annotations": [{"id": 7, "image_id": 1, "category_id": 3, "bbox": [1, 2]}]},
            r"annotation 7: 'bbox' must be \[x, y, width, height\]",
        ),
        (
            {"images": [{"id": 1, "width": 0, "height": 64, "file_name": "a.png"}]},
            "image 1: 'width' must be a positive integer",
        ),
        ({"categories": "x"}, "missing or non-list field 'categories'"),
    ],
)
def test_malformed_annotations_name_file_record_and_field(tmp_path, change, message):
    path = write(tmp_path, {**BASE, **change})
    with pytest.raises(AnnotationError, match=message) as caught:
        load_annotations(path)
    assert str(path) in str(caught.value)


def test_not_json(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text("{not json")
    with pytest.raises(AnnotationError, match="not valid JSON"):
        load_annotations(path)


def test_image_path_from_file_name_or_coco_url():
    assert image_path({"file_name": "x/y.jpg"}) == "x/y.jpg"
    url = "http://images.cocodataset.org/train2017/000000391895.jpg"
    assert image_path({"coco_url": url}) == "train2017/000000391895.jpg"


def test_counts_stated_where_present_counted_elsewhere(tmp_path, caplog):
    document = json.loads(json.dumps(BASE))
    document["categories"][0]["instance_count"] = 5  # stated; its image_count is not
    with caplog.at_level(logging.WARNING):
        table = count_instances(write(tmp_path, document))
    assert table.to_dict("records") == [
        {"category_id": 3, "name": "three", "frequency": "", "instance_count": 5, "image_count": 1}
    ]
    assert "instance_count 5 (counted 1)" in caplog.text


def test_a_bad_stated_count_is_refused(tmp_path):
    document = json.loads(json.dumps(BASE))
    document["categories"][0]["instance_count"] = -1
    path = write(tmp_path, document)
    with pytest.raises(ValueError, match=f"{path}: category 3 has instance_count -1"):
        count_instances(path)


def test_dataset_targets_and_missing_image(tmp_path):
    root = make_tiny_dataset(tmp_path / "tiny")
    dataset = DetectionDataset(root / "train.json", root / "images")
    image, target = dataset[0]
    assert image.shape == (3, 64, 64) and image.min() >= 0 and image.max() <= 1
    boxes = target["boxes"]
    assert (boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 3] > boxes[:, 1]).all()
    assert target["labels"].min() >= 1 and target["labels"].max() <= dataset.num_classes
    first = json.loads((root / "train.json").read_text())["images"][0]
    (root / "images" / first["file_name"]).unlink()
    with pytest.raises(FileNotFoundError, match="missing image"):
        DetectionDataset(root / "train.json", root / "images")


def test_bad_boxes_skipped_with_a_count_per_reason(tmp_path, caplog):
    document = json.loads(json.dumps(BASE))
    good = document["annotations"][0]
    document["annotations"] += [
        {**good, "id": 8, "bbox": [1, 2, -3, 4]},
        {**good, "id": 9, "bbox": [60, 2, 10, 10]},  # 70 > 64 + 1
        {**good, "id": 10, "bbox": [62, 2, 3, 10]},  # within the 1-pixel tolerance
        {**good, "id": 11, "category_id": 99},
    ]
    path = write(tmp_path, document)
    with pytest.raises(AnnotationError, match="annotation 8: bbox width and height must be > 0"):
        load_annotations(path)
    with caplog.at_level(logging.WARNING):
        data = load_annotations(path, on_bad="skip")
    assert [a["id"] for a in data["annotations"]] == [7, 10]
    assert "skipped 3 bad annotation(s)" in caplog.text
    assert "1 outside the image" in caplog.text and "1 unknown category_id" in caplog.text
    document["annotations"] = [document["annotations"][2]]
    with pytest.raises(AnnotationError, match=r"annotation 9: bbox .* outside its 64x64 image"):
        load_annotations(write(tmp_path, document))


def test_missing_images_skipped_with_a_count(tmp_path, caplog):
    root = make_tiny_dataset(tmp_path / "tiny")
    images = json.loads((root / "train.json").read_text())["images"]
    (root / "images" / images[0]["file_name"]).unlink()
    with caplog.at_level(logging.WARNING):
        dataset = DetectionDataset(root / "train.json", root / "images", on_bad="skip")
    assert len(dataset) == len(images) - 1
    assert "skipped 1 missing image(s)" in caplog.text


def test_crowd_annotations_are_left_out(tmp_path):
    document = json.loads(json.dumps(BASE))
    document["annotations"].append({**document["annotations"][0], "id": 8, "iscrowd": 1})
    data = load_annotations(write(tmp_path, document))
    assert [a["id"] for a in data["annotations"]] == [7]
