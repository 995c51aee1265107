"""AP_fixed and AP_pool (Dave et al. 2021) against large-vocab-devil's own numbers on made
detections: its ``scripts/evaluate_ap_fixed.py`` and ``evaluate_ap_pooled.py`` (``LVISPooledEval``,
bbox, 10,000 and 2 detections per class), run on this ground truth and these detections."""

import json

import pytest

from bags.fixed_ap import fixed_and_pooled_ap, interpolated_precision, top_per_class

# Three 100x100 images, classes 1 (f), 2 (c), 3 and 4 (r; 4 has no ground truth, but image 2
# lists it as negative). Image 1: a duplicate, a detection of a class it lists as negative, a
# detection of a class it neither has nor lists (dropped). Image 2: class 1 not exhaustively
# annotated (its unmatched detection ignored). Image 3: duplicates, false positives.
GROUND_TRUTH = {
    "images": [
        {
            "id": 1,
            "height": 100,
            "width": 100,
            "neg_category_ids": [2],
            "not_exhaustive_category_ids": [],
        },
        {
            "id": 2,
            "height": 100,
            "width": 100,
            "neg_category_ids": [4],
            "not_exhaustive_category_ids": [1],
        },
        {
            "id": 3,
            "height": 100,
            "width": 100,
            "neg_category_ids": [1],
            "not_exhaustive_category_ids": [],
        },
    ],
    "annotations": [
        {"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 20, 20], "area": 400},
        {"id": 2, "image_id": 1, "category_id": 1, "bbox": [50, 50, 30, 30], "area": 900},
        {"id": 3, "image_id": 1, "category_id": 3, "bbox": [10, 60, 10, 10], "area": 100},
        {"id": 4, "image_id": 2, "category_id": 1, "bbox": [5, 5, 40, 40], "area": 1600},
        {"id": 5, "image_id": 2, "category_id": 2, "bbox": [60, 0, 20, 20], "area": 400},
        {"id": 6, "image_id": 3, "category_id": 2, "bbox": [0, 0, 50, 50], "area": 2500},
        {"id": 7, "image_id": 3, "category_id": 3, "bbox": [70, 70, 8, 8], "area": 64},
    ],
    "categories": [
        {"id": 1, "name": "a", "frequency": "f"},
        {"id": 2, "name": "b", "frequency": "c"},
        {"id": 3, "name": "c", "frequency": "r"},
        {"id": 4, "name": "d", "frequency": "r"},
    ],
}
DETECTIONS = [
    {"image_id": 1, "category_id": 1, "bbox": [0, 0, 20, 20], "score": 0.9},
    {"image_id": 1, "category_id": 1, "bbox": [1, 1, 20, 20], "score": 0.8},
    {"image_id": 1, "category_id": 1, "bbox": [50, 50, 25, 25], "score": 0.3},
    {"image_id": 1, "category_id": 2, "bbox": [0, 0, 10, 10], "score": 0.7},
    {"image_id": 1, "category_id": 3, "bbox": [10, 60, 10, 10], "score": 0.05},
    {"image_id": 1, "category_id": 4, "bbox": [0, 0, 10, 10], "score": 0.95},
    {"image_id": 2, "category_id": 1, "bbox": [5, 5, 40, 40], "score": 0.6},
    {"image_id": 2, "category_id": 1, "bbox": [60, 60, 20, 20], "score": 0.85},
    {"image_id": 2, "category_id": 2, "bbox": [60, 0, 20, 18], "score": 0.6},
    {"image_id": 2, "category_id": 4, "bbox": [0, 0, 30, 30], "score": 0.5},
    {"image_id": 2, "category_id": 3, "bbox": [0, 0, 30, 30], "score": 0.99},
    {"image_id": 3, "category_id": 2, "bbox": [0, 0, 40, 50], "score": 0.6},
    {"image_id": 3, "category_id": 2, "bbox": [0, 0, 50, 50], "score": 0.2},
    {"image_id": 3, "category_id": 1, "bbox": [0, 0, 50, 50], "score": 0.4},
    {"image_id": 3, "category_id": 3, "bbox": [70, 70, 8, 6], "score": 0.1},
    {"image_id": 3, "category_id": 3, "bbox": [0, 0, 5, 5], "score": 0.15},
]

# Computed by the reference's code (lvis 0.5.3's LVISEval, large-vocab-devil's LVISPooledEval)
REFERENCE = {
    10_000: {"AP_fixed": 0.560622, "APr_fixed": 0.467327, "APc_fixed": 0.57929,
             "APf_fixed": 0.635248, "AP_pool": 0.542339, "APr_pool": 0.350495,
             "APc_pool": 0.57929, "APf_pool": 0.635248},
    2: {"AP_fixed": 0.187954, "APr_fixed": 0.0, "APc_fixed": 0.227228, "APf_fixed": 0.336634,
        "AP_pool": 0.231683, "APr_pool": 0.0, "APc_pool": 0.227228, "APf_pool": 0.336634},
}  # fmt: skip


@pytest.mark.parametrize("per_class", [10_000, 2])
def test_fixed_and_pooled_ap_equal_the_references(tmp_path, per_class):
    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps(GROUND_TRUTH))
    got = fixed_and_pooled_ap(gt, [dict(d) for d in DETECTIONS], per_class)
    assert got == pytest.approx(REFERENCE[per_class], abs=1e-6, rel=0)
    # A class without ground truth is out of APr_fixed and in APr_pool (its false positive).
    assert got["APr_pool"] < got["APr_fixed"] or per_class == 2


def test_the_cap_keeps_each_class_best_and_ties_in_order():
    results = [{"category_id": 1, "score": s, "n": i} for i, s in enumerate([0.1, 0.5, 0.5, 0.9])]
    results.append({"category_id": 2, "score": 0.3, "n": 9})
    kept = top_per_class(results, 2)
    assert [r["n"] for r in kept] == [3, 1, 9]  # 0.9, then the earlier of the tied 0.5s
    with pytest.raises(ValueError, match="at least 1"):
        top_per_class(results, 0)


def test_interpolated_precision_by_hand():
    import numpy

    matched = numpy.array([True, False, True, False])
    ignored = numpy.array([False, False, False, True])
    recalls = numpy.linspace(0, 1, 5)  # 0, .25, .5, .75, 1
    # ground truth 2: recall .5, .5, 1, 1; precision 1, .5, .667, .667 -> 1, .667, .667, .667
    got = interpolated_precision(matched, ignored, 2, recalls)
    assert got.tolist() == pytest.approx([1, 1, 1, 2 / 3, 2 / 3])
    assert interpolated_precision(matched, ignored, 4, recalls)[-1] == 0  # recall 1 never reached


def test_evaluate_adds_them_in_percent_to_lvis_ap(tmp_path):
    from bags.evaluation import evaluate

    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps(GROUND_TRUTH))
    detections = tmp_path / "detections.json"
    detections.write_text(json.dumps(DETECTIONS))
    counts = {1: 500, 2: 50, 3: 5, 4: 1}
    plain = evaluate(gt, detections, counts, backend="lvis")
    assert "AP_fixed" not in plain
    both = evaluate(gt, detections, counts, backend="lvis", detections_per_class=2)
    assert both["AP"] == plain["AP"]
    assert both["AP_fixed"] == pytest.approx(100 * REFERENCE[2]["AP_fixed"], abs=1e-4)
    assert both["APr_pool"] == 0.0
