"""LVIS's federated rules, on a hand-made ground truth with hand-computed APs.

LVIS does not annotate every category in every image. A detection of category c in image i
counts only where c is verified there: annotated (a positive) or in the image's
``neg_category_ids`` (a negative: every detection of c is a false positive). Where c is in
``not_exhaustive_category_ids``, detections that match no box of c are ignored. Anywhere else,
detections of c are ignored.

Each category below tests one rule and sits alone in its instance-count bin, so AP1..AP3 are
its AP. Every detection is exactly on a box (IoU 1 at every threshold) or far from all boxes,
so the 101-point AP is simple: a true positive ranked below a false positive, with one box to
find, gives precision 1/2 at every recall, AP 50; ranked alone it gives AP 100.
"""

import json

import pytest

from bags.evaluation import evaluate

NEGATIVE, NOT_EXHAUSTIVE, UNVERIFIED = 1, 2, 3  # category ids
COUNTS = {NEGATIVE: 5, NOT_EXHAUSTIVE: 50, UNVERIFIED: 500}  # bins 1, 2 and 3
BOX, ELSEWHERE = [10, 10, 20, 20], [60, 60, 20, 20]


def image(image_id, negatives=(), not_exhaustive=()):
    return {
        "id": image_id, "width": 100, "height": 100, "file_name": f"{image_id}.png",
        "neg_category_ids": list(negatives), "not_exhaustive_category_ids": list(not_exhaustive),
    }  # fmt: skip


def box(ann_id, image_id, category):
    return {"id": ann_id, "image_id": image_id, "category_id": category, "bbox": BOX, "area": 400}


def detection(image_id, category, bbox, score):
    return {"image_id": image_id, "category_id": category, "bbox": bbox, "score": score}


GROUND_TRUTH = {
    "images": [
        image(1),  # a box of each category
        image(2, negatives=[NEGATIVE]),  # no NEGATIVE here, verified
        image(3, not_exhaustive=[NOT_EXHAUSTIVE]),  # a NOT_EXHAUSTIVE box, others not boxed
        image(4, negatives=[NEGATIVE, NOT_EXHAUSTIVE]),  # UNVERIFIED neither boxed nor negative
    ],
    "annotations": [
        box(1, 1, NEGATIVE),
        box(2, 3, NOT_EXHAUSTIVE),
        box(3, 1, UNVERIFIED),
    ],
    "categories": [
        {"id": NEGATIVE, "name": "negative", "frequency": "r"},
        {"id": NOT_EXHAUSTIVE, "name": "not exhaustive", "frequency": "c"},
        {"id": UNVERIFIED, "name": "unverified", "frequency": "f"},
    ],
}

# Each category: its box found (score 0.5), and one more detection scored above it (0.9).
FOUND = [
    detection(1, NEGATIVE, BOX, 0.5),
    detection(3, NOT_EXHAUSTIVE, BOX, 0.5),
    detection(1, UNVERIFIED, BOX, 0.5),
]
EXTRA = {
    "negative": detection(2, NEGATIVE, BOX, 0.9),  # a false positive: AP 50
    "not exhaustive": detection(3, NOT_EXHAUSTIVE, ELSEWHERE, 0.9),  # ignored: AP 100
    "unverified": detection(4, UNVERIFIED, BOX, 0.9),  # ignored: AP 100
}


def run(tmp_path, detections, ground_truth=GROUND_TRUTH):
    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps(ground_truth))
    results = tmp_path / "results.json"
    results.write_text(json.dumps(detections))
    return evaluate(gt, results, COUNTS, edges=(10, 100, 1000))


def with_image(image_id, **lists):
    """The ground truth with other category lists for one image."""
    changed = json.loads(json.dumps(GROUND_TRUTH))
    changed["images"][image_id - 1] = image(image_id, **lists)
    return changed


def test_found_boxes_alone_score_100(tmp_path):
    metrics = run(tmp_path, FOUND)
    assert [metrics[f"AP{k}"] for k in (1, 2, 3)] == pytest.approx([100, 100, 100])
    assert metrics["AP"] == pytest.approx(100)
    assert metrics["AP4"] is None


def test_detection_on_a_negative_category_is_a_false_positive(tmp_path):
    metrics = run(tmp_path, [*FOUND, EXTRA["negative"]])
    assert metrics["AP1"] == pytest.approx(50)
    assert metrics["APr"] == pytest.approx(50)
    assert metrics["AP"] == pytest.approx((50 + 100 + 100) / 3)
    # Not a negative of image 2: the same detection is ignored.
    unverified = with_image(2)
    assert run(tmp_path, [*FOUND, EXTRA["negative"]], unverified)["AP1"] == pytest.approx(100)


def test_unmatched_detection_on_a_not_exhaustive_category_is_ignored(tmp_path):
    metrics = run(tmp_path, [*FOUND, EXTRA["not exhaustive"]])
    assert metrics["AP2"] == pytest.approx(100)
    assert metrics["APc"] == pytest.approx(100)
    # Exhaustively annotated in image 3: the same detection is a false positive.
    exhaustive = with_image(3)
    assert run(tmp_path, [*FOUND, EXTRA["not exhaustive"]], exhaustive)["AP2"] == pytest.approx(50)


def test_detection_on_an_unverified_category_is_ignored(tmp_path):
    metrics = run(tmp_path, [*FOUND, EXTRA["unverified"]])
    assert metrics["AP3"] == pytest.approx(100)
    assert metrics["APf"] == pytest.approx(100)
    # A negative of image 4: the same detection is a false positive.
    negative = with_image(4, negatives=[NEGATIVE, NOT_EXHAUSTIVE, UNVERIFIED])
    assert run(tmp_path, [*FOUND, EXTRA["unverified"]], negative)["AP3"] == pytest.approx(50)


def test_all_rules_at_once(tmp_path):
    metrics = run(tmp_path, [*FOUND, *EXTRA.values()])
    assert [metrics[f"AP{k}"] for k in (1, 2, 3)] == pytest.approx([50, 100, 100])
    assert metrics["AP"] == pytest.approx(250 / 3)
