"""LVIS bbox evaluation, plus AP per training-instance-count bin.

Two backends give the same numbers: ``faster`` (faster-coco-eval's LVIS mode, C++ matching and
accumulation) and ``lvis`` (the LVIS API, the reference)."""

from __future__ import annotations

import itertools
import json
import logging
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import lvis
import lvis.eval
import numpy

from bags.bins import bin_index
from bags.data.annotations import check_annotations
from bags.data.lvis_fields import check_lvis_fields
from bags.fixed_ap import fixed_and_pooled_ap
from bags.io import write_text_atomic
from bags.lvis_api import patch_lvis_numpy, quiet_lvis
from bags.schema import DETECTIONS_PER_IMAGE, EDGES
from bags.values import is_int, is_number

log = logging.getLogger(__name__)

LVIS_KEYS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "APr", "APc", "APf")
BACKENDS = ("faster", "lvis")
# faster-coco-eval keeps about 1.1 kB per image and category (a C++ record per area range, a
# Python entry per pair), data or not: it is given this many images x categories at a time
PAIRS_PER_CHUNK = 250_000
_RESULT_KEYS = ("image_id", "category_id", "bbox", "score")


def _is_box(box: Any) -> bool:
    return isinstance(box, list) and len(box) == 4 and all(map(is_number, box))


def _load_json(path: Path, what: str, object_hook: Any = None) -> Any:
    if not path.is_file():
        raise ValueError(f"{what} {path}: no such file")
    try:
        with path.open(encoding="utf-8") as f:
            return json.load(f, object_hook=object_hook)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{what} {path}: not valid JSON ({e})") from e


def _drop_segmentation(record: dict) -> dict:
    """Box evaluation needs no masks: on LVIS val the polygons are most of the memory."""
    record.pop("segmentation", None)
    return record


def _check_gt(gt: Any, path: Path) -> None:
    """The ground truth checked as every reader checks annotations (crowd regions kept: the
    LVIS API scores them as ordinary boxes), plus the fields LVIS evaluation reads."""
    check_annotations(gt, path, keep_crowd=True, image_files=False)
    check_lvis_fields(gt, path)
    for a in gt["annotations"]:
        # both evaluators mark a matched box by its id, and take 0 (or less) for "unmatched"
        if not is_int(a.get("id")) or a["id"] < 1:
            raise ValueError(f"{path}: annotation {a.get('id')!r}: 'id' must be an integer >= 1")


def _check_results(results: Any, gt: dict, path: Path) -> None:
    if not isinstance(results, list):
        raise ValueError(f"results {path}: expected a JSON list, got {type(results).__name__}")
    image_ids = {img["id"] for img in gt["images"]}
    cat_ids = {cat["id"] for cat in gt["categories"]}
    for i, r in enumerate(results):
        if not isinstance(r, dict) or any(k not in r for k in _RESULT_KEYS):
            raise ValueError(f"results {path}: entry {i} is not an object with keys {_RESULT_KEYS}")
        box = r["bbox"]
        if not (_is_box(box) and box[2] >= 0 and box[3] >= 0):
            raise ValueError(
                f"results {path}: entry {i} has bbox {box!r}, not [x, y, w, h] with w, h >= 0"
            )
        if not (is_number(r["score"]) and 0 <= r["score"] <= 1):
            raise ValueError(
                f"results {path}: entry {i} has score {r['score']!r}, not a number in [0, 1]"
            )
        if not is_int(r["category_id"]) or r["category_id"] not in cat_ids:
            raise ValueError(
                f"results {path}: entry {i} has unknown category_id {r['category_id']!r}"
            )
        if not is_int(r["image_id"]) or r["image_id"] not in image_ids:
            raise ValueError(f"results {path}: entry {i} has unknown image_id {r['image_id']!r}")


class MissingCount(ValueError):
    """A category of the ground truth without a training instance count."""


def _category_bins(
    gt: dict, instance_counts: Mapping[int, int], edges: Sequence[int]
) -> list[list[int]]:
    """Category ids per bin [0, e1), [e1, e2), ..., [e_last, inf) of training instance count."""
    if any(a >= b for a, b in itertools.pairwise(edges)):
        raise ValueError(f"bin edges must be strictly increasing, got {list(edges)}")
    bins: list[list[int]] = [[] for _ in range(len(edges) + 1)]
    for cat in gt["categories"]:
        if cat["id"] not in instance_counts:
            raise MissingCount(f"no training instance count for category {cat['id']}")
        bins[bin_index(instance_counts[cat["id"]], edges)].append(cat["id"])
    return bins


def _percent(value: float) -> float | None:
    """LVIS reports -1 for an empty group: that becomes None."""
    return None if value == -1 else float(value) * 100


def _mean_ap(
    precision: numpy.ndarray, iou_idx: list[int], cat_idx: list[int], area_idx: int
) -> float | None:
    """Mean of the defined (> -1) entries of ``precision`` [iou threshold, recall threshold,
    category, area range] over the given thresholds and categories, in percent, as
    ``LVISEval._summarize`` averages; None where nothing is defined (LVIS's -1)."""
    s = precision[iou_idx][:, :, cat_idx][..., area_idx]
    valid = s[s > -1]
    return float(numpy.mean(valid)) * 100 if valid.size else None


def _summary(
    precision: numpy.ndarray,
    cat_ids: Sequence[int],
    bins: list[list[int]],
    frequency: Mapping[int, str] | None = None,
) -> dict[str, float | None]:
    """AP1..APk, and LVIS_KEYS if given each category's ``frequency``, from a precision array
    whose category axis is ``cat_ids``, with the LVIS API's IoU thresholds and area ranges
    (faster-coco-eval has the same)."""
    params = lvis.eval.Params(iou_type="bbox")
    every = list(range(len(params.iou_thrs)))
    position = {cat_id: i for i, cat_id in enumerate(cat_ids)}

    def ap(iou_idx: list[int] = every, cats: Sequence[int] = cat_ids, area: str = "all"):
        cat_idx = [position[c] for c in cats]
        return _mean_ap(precision, iou_idx, cat_idx, params.area_rng_lbl.index(area))

    metrics = {}
    if frequency is not None:
        metrics["AP"] = ap()
        for thr in (50, 75):
            metrics[f"AP{thr}"] = ap(list(numpy.flatnonzero(params.iou_thrs == thr / 100)))
        for area in params.area_rng_lbl[1:]:
            metrics[f"AP{area[0]}"] = ap(area=area)
        for group in params.img_count_lbl:
            metrics[f"AP{group}"] = ap(cats=[c for c in cat_ids if frequency[c] == group])
    for k, bin_cat_ids in enumerate(bins, start=1):
        metrics[f"AP{k}"] = ap(cats=bin_cat_ids)
    return metrics


def _empty_metrics(gt: dict, bins: list[list[int]]) -> dict[str, float | None]:
    """Metrics for no detections: 0.0 where some ground truth counts, else None (as LVIS -1)."""
    params = lvis.eval.Params(iou_type="bbox")
    freq = {cat["id"]: cat["frequency"] for cat in gt["categories"]}
    present = {ann["category_id"] for ann in gt["annotations"]}

    def zero_if(found: bool) -> float | None:
        return 0.0 if found else None

    metrics = {key: zero_if(bool(present)) for key in ("AP", "AP50", "AP75")}
    for label, (lo, hi) in zip(params.area_rng_lbl, params.area_rng):
        if label != "all":
            found = any(lo <= ann["area"] <= hi for ann in gt["annotations"])
            metrics[f"AP{label[0]}"] = zero_if(found)
    for group in params.img_count_lbl:
        metrics[f"AP{group}"] = zero_if(any(freq[c] == group for c in present))
    for k, cat_ids in enumerate(bins, start=1):
        metrics[f"AP{k}"] = zero_if(not present.isdisjoint(cat_ids))
    return metrics


def _top_per_image(results: list[dict], detections_per_img: int) -> list[dict]:
    """Each image's ``detections_per_img`` best-scored detections, as the LVIS API keeps them
    (``LVISResults.limit_dets_per_image``): a stable sort by decreasing score, so of tied
    scores the one earlier in the results is kept; grouped by image in order of appearance."""
    per_image = defaultdict(list)
    for r in results:
        per_image[r["image_id"]].append(r)
    top = []
    for dets in per_image.values():
        if len(dets) > detections_per_img:
            dets = sorted(dets, key=lambda r: r["score"], reverse=True)[:detections_per_img]
        top.extend(dets)
    return top


def _lvis_metrics(
    gt_json: Path, results: list[dict], detections_per_img: int, bins: list[list[int]]
) -> dict[str, float | None]:
    patch_lvis_numpy()
    with quiet_lvis():
        lvis_gt = lvis.LVIS(str(gt_json))
        lvis_dt = lvis.LVISResults(lvis_gt, results, max_dets=detections_per_img)
        ev = lvis.LVISEval(lvis_gt, lvis_dt, iou_type="bbox")
        ev.params.max_dets = detections_per_img
        ev.run()
    metrics = {key: _percent(ev.results[key]) for key in LVIS_KEYS}
    return metrics | _summary(ev.eval["precision"], ev.params.cat_ids, bins)


def _positive_area(area: float) -> bool:
    """The LVIS API leaves out every annotation and detection whose area is not in (0, inf)."""
    return 0 < area < math.inf


def _faster_metrics(
    gt: dict, gt_json: Path, results: list[dict], detections_per_img: int, bins: list[list[int]]
) -> dict[str, float | None]:
    """faster-coco-eval's LVIS mode, given the data as the LVIS API sees it.

    faster-coco-eval applies ``maxDets`` per image and category, so each image is first cut to
    its top ``detections_per_img`` as the LVIS API cuts it. The LVIS API ignores ``iscrowd`` (every
    ground-truth box is an ordinary one) and leaves out boxes of area 0: so here too. Categories
    are independent in the precision array, so they are evaluated a chunk at a time: memory
    stays bounded (all at once, LVIS v1 val would take some 25 GB).
    """
    from faster_coco_eval import COCO, COCOeval_faster

    if any(a.get("ignore") for a in gt["annotations"]):
        # faster-coco-eval derives "ignore" from "iscrowd", which also changes the IoU
        raise ValueError(
            f"ground truth {gt_json}: 'ignore' flags are honoured only by backend 'lvis'"
        )
    cat_ids = sorted(cat["id"] for cat in gt["categories"])
    size = max(1, PAIRS_PER_CHUNK // max(1, len(gt["images"])))
    chunk_of = {cat_id: i // size for i, cat_id in enumerate(cat_ids)}
    chunks = range(math.ceil(len(cat_ids) / size))
    gt_parts: list[list[dict]] = [[] for _ in chunks]
    dt_parts: list[list[dict]] = [[] for _ in chunks]
    for a in gt["annotations"]:
        if _positive_area(a["area"]):
            gt_parts[chunk_of[a["category_id"]]].append(a | {"iscrowd": 0})
    # the records are updated in place: on LVIS val, copies would take gigabytes
    for i, r in enumerate(_top_per_image(results, detections_per_img), start=1):
        r["area"], r["id"] = r["bbox"][2] * r["bbox"][3], i
        if _positive_area(r["area"]):
            dt_parts[chunk_of[r["category_id"]]].append(r)

    def dataset(annotations: list[dict]) -> COCO:
        data = {"images": gt["images"], "categories": gt["categories"], "annotations": annotations}
        return COCO(data, print_function=_ignore)

    precision = []
    for k in chunks:
        ev = COCOeval_faster(
            dataset(gt_parts[k]),
            dataset(dt_parts[k]),
            iouType="bbox",
            lvis_style=True,
            print_function=_ignore,
        )
        ev.params.catIds = cat_ids[k * size : (k + 1) * size]
        ev.params.maxDets = [detections_per_img]
        ev.evaluate()
        ev.accumulate()
        precision.append(ev.eval["precision"][..., -1])  # the last (only) maxDets
        del ev
    frequency = {cat["id"]: cat["frequency"] for cat in gt["categories"]}
    return _summary(numpy.concatenate(precision, axis=2), cat_ids, bins, frequency)


def _ignore(*args: Any, **kwargs: Any) -> None:
    """A print function that prints nothing."""


def evaluate(
    gt_json: Path,
    results_json: Path,
    instance_counts: dict[int, int],
    edges: Sequence[int] = EDGES,
    detections_per_img: int = DETECTIONS_PER_IMAGE,
    backend: str = "faster",
    detections_per_class: int | None = None,
) -> dict[str, float | None]:
    """LVIS bbox metrics in percent, plus AP1..AP{len(edges)+1} by training instance count,
    and with ``detections_per_class``, AP_fixed and AP_pool of each class's best that many
    (``bags.fixed_ap``, the LVIS API's matching).

    ``backend`` is ``faster`` (faster-coco-eval) or ``lvis`` (the LVIS API); both give the same
    numbers. A metric with no ground truth to score against (LVIS's -1, or an empty bin) is None.
    Raises ValueError for a missing, non-JSON or malformed ground-truth or results file.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown evaluation backend {backend!r}: expected one of {BACKENDS}")
    if detections_per_img < 1:
        raise ValueError(f"detections_per_img must be at least 1, got {detections_per_img}")
    gt_json, results_json = Path(gt_json), Path(results_json)
    gt = _load_json(gt_json, "ground truth", object_hook=_drop_segmentation)
    _check_gt(gt, gt_json)
    results = _load_json(results_json, "results")
    _check_results(results, gt, results_json)
    bins = _category_bins(gt, instance_counts, edges)

    if not results:  # the LVIS API fails on an empty results list
        metrics = _empty_metrics(gt, bins)
    elif backend == "lvis":
        metrics = _lvis_metrics(gt_json, results, detections_per_img, bins)
    else:
        metrics = _faster_metrics(gt, gt_json, results, detections_per_img, bins)
    if detections_per_class is not None:
        fixed = fixed_and_pooled_ap(gt_json, [dict(r) for r in results], detections_per_class)
        metrics |= {key: None if v is None else 100 * v for key, v in fixed.items()}

    log.info(
        "LVIS bbox eval (%s) of %s (%d detections): %s",
        backend,
        results_json,
        len(results),
        " ".join(f"{k}={'-' if v is None else f'{v:.2f}'}" for k, v in metrics.items()),
    )
    return metrics


def write_metrics(metrics: Mapping[str, Any], path: Path) -> None:
    """Write metrics as JSON, atomically; NaN is refused (undefined values are null)."""
    write_text_atomic(path, json.dumps(dict(metrics), indent=1, allow_nan=False) + "\n")


def evaluate_job(
    annotations: Path,
    detections: Path,
    counts: Path,
    edges: Sequence[int],
    detections_per_img: int,
    backend: str,
    out: Path,
    detections_per_class: int | None = None,
) -> None:
    """``evaluate`` with the training counts CSV (at most ``detections_per_img`` per image;
    AP_fixed and AP_pool of ``detections_per_class``), written as a metrics JSON file."""
    from bags.data.counts import read_counts

    table = read_counts(counts)
    instance_counts = dict(zip(table["category_id"], table["instance_count"]))
    try:
        metrics = evaluate(annotations, detections, instance_counts, edges, detections_per_img,
                           backend, detections_per_class)  # fmt: skip
    except MissingCount as error:
        raise ValueError(f"{counts}: {error} (counts of another training set?)") from error
    write_metrics(metrics, out)


def read_metrics(path: Path | str, required: Sequence[str] = ()) -> dict[str, float | None]:
    """A metrics JSON as ``write_metrics`` writes it (finite numbers or null, by name); the
    ``required`` metrics must be there and not null."""
    path = Path(path)
    metrics = _load_json(path, "metrics")
    if not isinstance(metrics, dict) or not all(
        value is None or is_number(value) for value in metrics.values()
    ):
        raise ValueError(f"metrics {path}: expected a JSON object of finite numbers or null")
    missing = [key for key in required if metrics.get(key) is None]
    if missing:
        raise ValueError(f"metrics {path}: no value for {', '.join(missing)}")
    return metrics
