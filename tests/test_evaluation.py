import json
import random
from collections import Counter
from pathlib import Path

import lvis
import lvis.eval
import numpy
import pytest

from bags.evaluation import BACKENDS, LVIS_KEYS, evaluate, write_metrics
from bags.lvis_api import patch_lvis_numpy

EDGES = (10, 100, 1000)
# one more edge far above any LVIS v0.5 training count: bin 5 has no category
EDGES_WITH_EMPTY_BIN = (10, 100, 1000, 10**7)


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    return request.param


@pytest.fixture
def gt_path(lvis_data: Path) -> Path:
    return lvis_data / "lvis_v0.5_val_100.json"


@pytest.fixture
def gt(gt_path: Path) -> dict:
    return json.loads(gt_path.read_text())


@pytest.fixture
def counts(lvis_data: Path) -> dict[int, int]:
    stats = json.loads((lvis_data / "lvis_v0.5_train_category_stats.json").read_text())
    return {c["id"]: c["instance_count"] for c in stats["categories"]}


def write_results(folder: Path, dets: list) -> Path:
    path = folder / "results.json"
    path.write_text(json.dumps(dets))
    return path


def as_dets(anns: list[dict], score: float = 1.0) -> list[dict]:
    return [
        {
            "image_id": a["image_id"],
            "category_id": a["category_id"],
            "bbox": a["bbox"],
            "score": score,
        }
        for a in anns
    ]


def bin_of(count: int, edges) -> int:
    """1-based bin of a training instance count, written independently of the module."""
    return 1 + sum(count >= e for e in edges)


def present_bins(gt: dict, counts: dict[int, int], edges) -> set[int]:
    return {bin_of(counts[a["category_id"]], edges) for a in gt["annotations"]}


def test_ground_truth_as_detections_scores_100(gt_path, gt, counts, tmp_path, backend):
    results = write_results(tmp_path, as_dets(gt["annotations"]))
    metrics = evaluate(gt_path, results, counts, edges=EDGES_WITH_EMPTY_BIN, backend=backend)

    assert set(metrics) == {*LVIS_KEYS, "AP1", "AP2", "AP3", "AP4", "AP5"}
    for key in LVIS_KEYS:
        assert metrics[key] == pytest.approx(100.0), key
    assert present_bins(gt, counts, EDGES_WITH_EMPTY_BIN) == {1, 2, 3, 4}
    for k in (1, 2, 3, 4):
        assert metrics[f"AP{k}"] == pytest.approx(100.0), k
    assert metrics["AP5"] is None
    # evaluation worked without touching the global numpy module
    assert not hasattr(numpy, "float")
    if backend == "lvis":
        assert lvis.eval.np is not numpy and lvis.eval.np.float is float


def test_patch_is_idempotent_and_forwards_to_numpy():
    patch_lvis_numpy()
    view = lvis.eval.np
    patch_lvis_numpy()
    assert lvis.eval.np is view
    assert view.ones is numpy.ones and view.float is float
    assert not hasattr(numpy, "float")


def hand_ap(n_gt: int, n_found: int) -> float:
    """AP of a class whose detections are exactly n_found of its n_gt boxes, all true positives.

    Precision is 1 up to recall n_found / n_gt and nothing is found beyond it, so LVIS's
    101-point interpolated AP is the share of recall thresholds 0, 0.01, ..., 1 reached.
    """
    if n_found == 0:
        return 0.0
    reached = numpy.linspace(0.0, 1.0, 101) <= n_found / n_gt
    return 100 * float(reached.mean())


def reverse_category_ids(gt: dict, counts: dict[int, int]) -> tuple[dict, dict[int, int]]:
    """The same data with category id c renamed 5000 - c: the file lists categories in
    decreasing id order, and an id no longer tells the category's position."""
    gt = json.loads(json.dumps(gt))
    for cat in gt["categories"]:
        cat["id"] = 5000 - cat["id"]
    for ann in gt["annotations"]:
        ann["category_id"] = 5000 - ann["category_id"]
    for img in gt["images"]:
        for key in ("neg_category_ids", "not_exhaustive_category_ids"):
            img[key] = [5000 - c for c in img[key]]
    return gt, {5000 - c: n for c, n in counts.items()}


@pytest.mark.parametrize("reverse_ids", [False, True])
def test_dropped_detections_match_hand_computed_ap(
    gt_path, gt, counts, tmp_path, reverse_ids, backend
):
    if reverse_ids:
        gt, counts = reverse_category_ids(gt, counts)
        gt_path = tmp_path / "gt_reversed_ids.json"
        gt_path.write_text(json.dumps(gt))
    kept = [a for a in gt["annotations"] if a["id"] % 3 != 0]
    assert 0 < len(kept) < len(gt["annotations"])
    metrics = evaluate(gt_path, write_results(tmp_path, as_dets(kept)), counts, backend=backend)

    n_gt = Counter(a["category_id"] for a in gt["annotations"])
    n_found = Counter(a["category_id"] for a in kept)
    per_cat = {c: hand_ap(n, n_found[c]) for c, n in n_gt.items()}
    freq = {c["id"]: c["frequency"] for c in gt["categories"]}

    def mean(cats):
        return sum(per_cat[c] for c in cats) / len(cats)

    assert 0 < metrics["AP"] < 100
    assert metrics["AP"] == pytest.approx(mean(list(per_cat)))
    assert metrics["APr"] == pytest.approx(mean([c for c in per_cat if freq[c] == "r"]))
    assert metrics["APc"] == pytest.approx(mean([c for c in per_cat if freq[c] == "c"]))
    assert metrics["APf"] == pytest.approx(mean([c for c in per_cat if freq[c] == "f"]))
    for k in (1, 2, 3, 4):
        cats = [c for c in per_cat if bin_of(counts[c], EDGES) == k]
        assert cats, k
        assert metrics[f"AP{k}"] == pytest.approx(mean(cats)), k
    # the bins do not all agree, so a mix-up of categories would show
    assert len({round(metrics[f"AP{k}"], 6) for k in (1, 2, 3, 4)}) > 1


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_noisy_detections_bins_match_lvis_run_on_each_bin_alone(
    gt_path, gt, counts, tmp_path, backend
):
    rng = random.Random(0)
    dets = []
    for a in gt["annotations"]:
        x, y, w, h = a["bbox"]
        shift = rng.choice([0.0, 0.1, 0.3, 0.6]) * w  # IoU from 1 down to 0.25
        det = {"image_id": a["image_id"], "category_id": a["category_id"], "score": rng.random()}
        dets.append({**det, "bbox": [x + shift, y, w, h]})
        if rng.random() < 0.3:  # a duplicate: a false positive
            dets.append({**det, "bbox": [x, y, w, h], "score": rng.random()})
    metrics = evaluate(gt_path, write_results(tmp_path, dets), counts, backend=backend)
    assert 0 < metrics["AP"] < 100

    lvis_gt = lvis.LVIS(str(gt_path))
    lvis_dt = lvis.LVISResults(lvis_gt, dets)
    for k in (1, 2, 3, 4):
        # LVIS's own summary over only this bin's categories
        ev = lvis.LVISEval(lvis_gt, lvis_dt, iou_type="bbox")
        ev.params.cat_ids = sorted(
            c["id"] for c in gt["categories"] if bin_of(counts[c["id"]], EDGES) == k
        )
        ev.run()
        assert metrics[f"AP{k}"] == pytest.approx(100 * ev.results["AP"]), k


def test_max_dets_limits_detections_per_image(gt_path, gt, counts, tmp_path, backend):
    results = write_results(tmp_path, as_dets(gt["annotations"]))
    metrics = evaluate(gt_path, results, counts, detections_per_img=1, backend=backend)
    assert 0 < metrics["AP"] < 100


def test_empty_results_give_zeros(gt_path, gt, counts, tmp_path, backend):
    results = write_results(tmp_path, [])
    metrics = evaluate(gt_path, results, counts, edges=EDGES_WITH_EMPTY_BIN, backend=backend)
    expected = dict.fromkeys(LVIS_KEYS, 0.0) | dict.fromkeys(["AP1", "AP2", "AP3", "AP4"], 0.0)
    assert metrics == expected | {"AP5": None}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such file"),
        ("{not json", "not valid JSON"),
        ('{"image_id": 1}', "expected a JSON list"),
        ("[[1, 2, 3]]", "entry 0 is not an object"),
        ('[{"image_id": IMG, "category_id": 1, "bbox": [0, 0, 1, 1]}]', "entry 0 is not"),
        ('[{"image_id": IMG, "category_id": 1, "bbox": [0, 0, 1], "score": 1}]', "bbox"),
        ('[{"image_id": IMG, "category_id": 1, "bbox": [0, 0, 1, 1], "score": "x"}]', "score"),
        ('[{"image_id": IMG, "category_id": 99999, "bbox": [0, 0, 1, 1], "score": 1}]', "category"),
        ('[{"image_id": -5, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 1}]', "image_id"),
    ],
)
def test_bad_results_file_raises(gt_path, gt, counts, tmp_path, content, message):
    path = tmp_path / "bad_results.json"
    if content is not None:
        path.write_text(content.replace("IMG", str(gt["images"][0]["id"])))
    with pytest.raises(ValueError, match=message) as info:
        evaluate(gt_path, path, counts)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such file"),
        ("[]", "expected a JSON object"),
        ('{"images": [], "annotations": []}', "categories"),
    ],
)
def test_bad_ground_truth_file_raises(counts, tmp_path, content, message):
    path = tmp_path / "bad_gt.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ValueError, match=message) as info:
        evaluate(path, write_results(tmp_path, []), counts)
    assert str(path) in str(info.value)


def test_missing_instance_count_raises(gt_path, gt, counts, tmp_path):
    del counts[gt["categories"][0]["id"]]
    with pytest.raises(ValueError, match="instance count"):
        evaluate(gt_path, write_results(tmp_path, []), counts)


def test_write_metrics_is_atomic_json(tmp_path):
    path = tmp_path / "out" / "metrics.json"
    write_metrics({"AP": 1.5}, path)
    write_metrics({"AP": 12.5, "AP4": None}, path)
    assert json.loads(path.read_text()) == {"AP": 12.5, "AP4": None}
    assert [p.name for p in path.parent.iterdir()] == ["metrics.json"]
    with pytest.raises(ValueError):
        write_metrics({"AP": float("nan")}, path)
    assert json.loads(path.read_text()) == {"AP": 12.5, "AP4": None}
    assert [p.name for p in path.parent.iterdir()] == ["metrics.json"]


def test_count_equal_to_an_edge_goes_to_the_upper_bin(gt_path, gt, counts, tmp_path):
    present = {counts[a["category_id"]] for a in gt["annotations"]}
    c = min(n for n in present if n > 1 and n + 1 not in present)
    # bins [0, c), [c, c + 1), [c + 1, inf): only classes with exactly c instances in bin 2
    metrics = evaluate(gt_path, write_results(tmp_path, []), counts, edges=(c, c + 1))
    assert metrics["AP2"] == 0.0
    metrics = evaluate(gt_path, write_results(tmp_path, []), counts, edges=(c + 1, c + 2))
    assert metrics["AP2"] is None
