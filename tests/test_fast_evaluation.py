"""The faster-coco-eval backend gives the LVIS API's numbers (every metric, every bin)."""

import json
import random
from pathlib import Path

import pytest

import bags.evaluation
from bags.evaluation import evaluate

EDGES = (10, 100, 1000)


@pytest.fixture
def val_path(lvis_data: Path) -> Path:
    return lvis_data / "lvis_v0.5_val_100.json"


@pytest.fixture
def val_counts(lvis_data: Path) -> dict[int, int]:
    stats = json.loads((lvis_data / "lvis_v0.5_train_category_stats.json").read_text())
    return {c["id"]: c["instance_count"] for c in stats["categories"]}


def write_json(path: Path, data) -> Path:
    path.write_text(json.dumps(data))
    return path


def both_backends(gt_path: Path, dets: list, counts: dict, folder: Path, **options) -> dict:
    results = write_json(folder / "results.json", dets)
    lvis = evaluate(gt_path, results, counts, backend="lvis", **options)
    faster = evaluate(gt_path, results, counts, backend="faster", **options)
    assert list(faster) == list(lvis)
    for key, value in lvis.items():
        if value is None:
            assert faster[key] is None, key
        else:
            assert faster[key] == pytest.approx(value, rel=0, abs=1e-6), key
    return lvis


def labelled(image: dict, present: set[int]) -> list[int]:
    """The categories the image is labelled for: present, negative and not exhaustive."""
    return sorted(
        present | set(image["neg_category_ids"]) | set(image["not_exhaustive_category_ids"])
    )


def noisy_detections(gt: dict, rng: random.Random, per_image: list[int], scores) -> list[dict]:
    """Jittered ground-truth boxes (some of another category) and random boxes, of the image's
    own, negative, not-exhaustive and random categories."""
    anns_of: dict[int, list[dict]] = {}
    for ann in gt["annotations"]:
        anns_of.setdefault(ann["image_id"], []).append(ann)
    cat_ids = [c["id"] for c in gt["categories"]]
    dets = []
    for image, count in zip(gt["images"], per_image):
        anns = anns_of.get(image["id"], [])
        categories = labelled(image, {a["category_id"] for a in anns}) or cat_ids
        for i in range(count):
            if anns and i % 2 == 0:
                ann = rng.choice(anns)
                x, y, w, h = ann["bbox"]
                box = [x + rng.gauss(0, 0.15) * w, y + rng.gauss(0, 0.15) * h]
                box += [w * rng.uniform(0.7, 1.4), h * rng.uniform(0.7, 1.4)]
                category = ann["category_id"] if rng.random() < 0.8 else rng.choice(categories)
            else:
                x, y = rng.uniform(0, image["width"] - 2), rng.uniform(0, image["height"] - 2)
                box = [
                    x,
                    y,
                    rng.uniform(1, image["width"] - x),
                    rng.uniform(1, image["height"] - y),
                ]
                category = rng.choice(categories if rng.random() < 0.8 else cat_ids)
            dets.append(
                {"image_id": image["id"], "category_id": category, "bbox": box, "score": scores()}
            )
    rng.shuffle(dets)
    return dets


@pytest.mark.parametrize("max_dets", [300, 40])
def test_real_val_images_same_metrics(val_path, val_counts, tmp_path, max_dets):
    gt = json.loads(val_path.read_text())
    rng = random.Random(0)
    per_image = [rng.choice([0, 30, 120, 350]) for _ in gt["images"]]
    dets = noisy_detections(gt, rng, per_image, rng.random)
    metrics = both_backends(val_path, dets, val_counts, tmp_path, detections_per_img=max_dets)
    assert 0 < metrics["AP"] < 100
    assert all(metrics[f"AP{k}"] is not None for k in (1, 2, 3, 4))


def generated_set(rng: random.Random) -> tuple[dict, dict[int, int]]:
    """24 images, 12 categories in all four bins and all three frequencies. Images 20-23 have
    no ground truth (two of them with negative categories); boxes of every area range."""
    categories = [{"id": c, "frequency": "rcf"[c % 3]} for c in range(1, 13)]
    counts = {c: (5, 50, 500, 5000)[c % 4] for c in range(1, 13)}
    images, annotations = [], []
    for image_id in range(24):
        present = set() if image_id >= 20 else set(rng.sample(range(1, 13), rng.randint(1, 4)))
        for category in sorted(present):
            for _ in range(rng.randint(1, 6)):
                w, h = rng.choice([(8, 12), (30, 50), (150, 120)])
                x, y = rng.uniform(0, 300 - w), rng.uniform(0, 300 - h)
                annotations.append(
                    {
                        "id": len(annotations) + 1,
                        "image_id": image_id,
                        "category_id": category,
                        "bbox": [x, y, w, h],
                        "area": w * h * rng.uniform(0.5, 1.0),  # a mask's area, below its box's
                    }
                )
        absent = sorted(set(range(1, 13)) - present)
        images.append(
            {
                "id": image_id,
                "width": 300,
                "height": 300,
                "neg_category_ids": [] if image_id >= 22 else rng.sample(absent, 3),
                "not_exhaustive_category_ids": sorted(
                    rng.sample(sorted(present), len(present) // 2)
                ),
            }
        )
    return {"images": images, "annotations": annotations, "categories": categories}, counts


@pytest.mark.parametrize("max_dets", [300, 25])
@pytest.mark.parametrize("seed", [0, 1])
def test_generated_corner_cases_same_metrics(tmp_path, monkeypatch, max_dets, seed):
    rng = random.Random(seed)
    gt, counts = generated_set(rng)
    gt_path = write_json(tmp_path / "gt.json", gt)
    # 0: no detections; up to 420: more than 300 per image; scores tie (one decimal)
    per_image = [rng.choice([0, 15, 60, 420]) for _ in gt["images"]]
    per_image[:4] = [0, 420, 420, 60]
    per_image[20:] = [0, 40, 40, 40]
    dets = noisy_detections(gt, rng, per_image, lambda: rng.randint(1, 9) / 10)
    for det in dets[::7]:  # area 0: they count towards max_dets, then the LVIS API drops them
        det["bbox"][3] = 0

    cut_ties = 0  # images cut to max_dets inside a group of tied scores
    for image_id, count in enumerate(per_image):
        scores = sorted((d["score"] for d in dets if d["image_id"] == image_id), reverse=True)
        cut_ties += count > max_dets and scores[max_dets - 1] == scores[max_dets]
    assert cut_ties >= 2
    not_exhaustive = {(i["id"], c) for i in gt["images"] for c in i["not_exhaustive_category_ids"]}
    negative = {(i["id"], c) for i in gt["images"] for c in i["neg_category_ids"]}
    assert any((d["image_id"], d["category_id"]) in not_exhaustive for d in dets)
    assert any((d["image_id"], d["category_id"]) in negative for d in dets if d["image_id"] >= 20)

    # one category at a time, so that the chunks' precision arrays are put together too
    monkeypatch.setattr(bags.evaluation, "PAIRS_PER_CHUNK", 1)
    metrics = both_backends(gt_path, dets, counts, tmp_path, detections_per_img=max_dets)
    assert 0 < metrics["AP"] < 100
    assert all(metrics[key] is not None for key in ("APs", "APm", "APl", "APr", "APc", "APf"))


@pytest.mark.parametrize("case", ["crowd", "zero_area_truth", "zero_area_detection"])
def test_what_the_lvis_api_ignores_is_ignored(val_path, val_counts, tmp_path, case):
    """The LVIS API knows no crowds and leaves out boxes of area 0; faster-coco-eval as
    such does not."""
    gt = json.loads(val_path.read_text())
    rng = random.Random(2)
    dets = noisy_detections(gt, rng, [rng.choice([20, 80]) for _ in gt["images"]], rng.random)
    for ann in gt["annotations"][::4]:
        if case == "crowd":
            ann["iscrowd"] = 1
        elif case == "zero_area_truth":
            ann["area"] = 0
    for det in dets[::4]:
        if case == "zero_area_detection":
            det["bbox"][2] = 0
    gt_path = write_json(tmp_path / "gt.json", gt)
    metrics = both_backends(gt_path, dets, val_counts, tmp_path)
    assert 0 < metrics["AP"] < 100


def test_ignore_flag_needs_the_lvis_backend(val_path, val_counts, tmp_path):
    gt = json.loads(val_path.read_text())
    gt["annotations"][0]["ignore"] = 1
    gt_path = write_json(tmp_path / "gt.json", gt)
    ann = gt["annotations"][0]
    det = {"image_id": ann["image_id"], "category_id": ann["category_id"], "bbox": ann["bbox"]}
    results = write_json(tmp_path / "results.json", [det | {"score": 0.5}])
    assert evaluate(gt_path, results, val_counts, backend="lvis")["AP"] is not None
    with pytest.raises(ValueError, match=r"'ignore'.*lvis"):
        evaluate(gt_path, results, val_counts, backend="faster")


@pytest.mark.parametrize("ann_id", [0, -3, 2.0, True])
def test_annotation_ids_must_be_positive_integers(val_path, val_counts, tmp_path, ann_id):
    """Both evaluators mark a match by the ground truth's id and take 0 for no match."""
    gt = json.loads(val_path.read_text())
    gt["annotations"][5]["id"] = ann_id
    gt_path = write_json(tmp_path / "gt.json", gt)
    results = write_json(tmp_path / "results.json", [])
    with pytest.raises(ValueError, match=r"gt.json: annotation .*: 'id' must be an integer"):
        evaluate(gt_path, results, val_counts)


@pytest.mark.parametrize(("option", "value"), [("backend", "coco"), ("detections_per_img", 0)])
def test_bad_options_raise(val_path, val_counts, tmp_path, option, value):
    results = write_json(tmp_path / "results.json", [])
    with pytest.raises(ValueError, match=option):
        evaluate(val_path, results, val_counts, **{option: value})
