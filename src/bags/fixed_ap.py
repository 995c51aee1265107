"""AP_fixed and AP_pool (Dave et al. 2021, "Evaluating Large-Vocabulary Object Detectors: The
Devil is in the Details"; achalddave/large-vocab-devil), on LVIS-format detections.

Both keep each class's ``per_class`` best-scored detections over the whole evaluation set (10,000
on LVIS) and no per-image cap, so that a detector is not rewarded for how it spreads its 300
detections per image over the classes. Detections are matched per class as LVIS matches them
(the LVIS API's ``evaluate``: its federated rules, ignore flags and IoU thresholds 0.50:0.95).
- AP_fixed: LVIS AP of those detections (the mean over classes with ground truth of each
  class's 101-point interpolated precision, averaged over the IoU thresholds); APr/c/f too.
- AP_pool: one precision-recall curve over every class of a pool (all, r, c or f): the pool's
  detections sorted together by score against the pool's ground truth, so that scores must be
  comparable across classes. A class without ground truth still adds its false positives.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import lvis
import numpy

from bags.lvis_api import patch_lvis_numpy, quiet_lvis

PER_CLASS = 10_000  # the reference's detections per class
POOLS = ("all", "r", "c", "f")


def top_per_class(results: list[dict], per_class: int) -> list[dict]:
    """Each class's ``per_class`` best-scored detections over all images: a stable sort by
    decreasing score (of tied scores, the one earlier in ``results`` is kept), classes in the
    order they first appear. Applied before LVIS drops a detection of a class an image neither
    has nor lists as negative, as the reference applies it."""
    if per_class < 1:
        raise ValueError(f"detections per class must be at least 1, got {per_class}")
    by_class: dict[int, list[dict]] = defaultdict(list)
    for result in results:
        by_class[result["category_id"]].append(result)
    kept = []
    for detections in by_class.values():
        kept += sorted(detections, key=lambda r: r["score"], reverse=True)[:per_class]
    return kept


def interpolated_precision(
    matched: numpy.ndarray, ignored: numpy.ndarray, ground_truth: int, recalls: numpy.ndarray
) -> numpy.ndarray:
    """(R,) precision at each recall threshold of detections in decreasing score order, as LVIS
    interpolates it: precision made non-increasing from the right, taken at the first
    detection whose recall reaches the threshold, 0 past the last recall reached."""
    true = numpy.cumsum(matched & ~ignored).astype(float)
    false = numpy.cumsum(~matched & ~ignored).astype(float)
    recall = true / ground_truth
    precision = true / (true + false + numpy.spacing(1))
    precision = numpy.maximum.accumulate(precision[::-1])[::-1]
    at = numpy.searchsorted(recall, recalls, side="left")
    out = numpy.zeros(len(recalls))
    inside = at < len(precision)
    out[inside] = precision[at[inside]]
    return out


def _pooled_ap(evaluation: Any, classes: list[int]) -> float | None:
    """AP of one curve over ``classes`` (indices into the evaluation's class ids): every
    image's records of those classes, image by image, sorted together by score."""
    params = evaluation.params
    images, areas = len(params.img_ids), len(params.area_rng)
    records = [evaluation.eval_imgs[c * areas * images + i] for i in range(images) for c in classes]
    records = [r for r in records if r is not None]
    if not records:
        return None
    scores = numpy.concatenate([r["dt_scores"] for r in records])
    order = numpy.argsort(-scores, kind="mergesort")
    matched = numpy.concatenate([r["dt_matches"] for r in records], axis=1)[:, order] > 0
    ignored = numpy.concatenate([r["dt_ignore"] for r in records], axis=1)[:, order]
    ground_truth = int(
        numpy.count_nonzero(numpy.concatenate([r["gt_ignore"] for r in records]) == 0)
    )
    if ground_truth == 0:
        return None
    curves = [
        interpolated_precision(m, ig.astype(bool), ground_truth, params.rec_thrs)
        for m, ig in zip(matched, ignored)
    ]
    return float(numpy.mean(curves))


def fixed_and_pooled_ap(
    gt_json: Path, results: list[dict], per_class: int = PER_CLASS
) -> dict[str, float | None]:
    """AP_fixed (with APr/APc/APf_fixed) and AP_pool of each pool, as fractions (None where
    there is nothing to score), of ``results`` on the LVIS-format ground truth ``gt_json``."""
    kept = top_per_class(results, per_class)
    if not kept:  # the LVIS API fails on an empty results list
        return {key: None for key in metric_keys()}
    patch_lvis_numpy()
    with quiet_lvis():
        lvis_gt = lvis.LVIS(str(gt_json))
        evaluation = lvis.LVISEval(lvis_gt, lvis.LVISResults(lvis_gt, kept, max_dets=-1), "bbox")
        evaluation.params.area_rng = evaluation.params.area_rng[:1]  # "all" only
        evaluation.params.area_rng_lbl = evaluation.params.area_rng_lbl[:1]
        evaluation.run()
    out: dict[str, float | None] = {}
    for key in ("AP", "APr", "APc", "APf"):
        value = evaluation.results[key]
        out[f"{key}_fixed"] = None if value == -1 else float(value)
    frequency = {c["id"]: c["frequency"] for c in lvis_gt.dataset["categories"]}
    for pool in POOLS:
        classes = [
            i for i, c in enumerate(evaluation.params.cat_ids) if pool in ("all", frequency[c])
        ]
        out[pool_key(pool)] = _pooled_ap(evaluation, classes)
    return out


def pool_key(pool: str) -> str:
    return "AP_pool" if pool == "all" else f"AP{pool}_pool"


def metric_keys() -> list[str]:
    return [f"{key}_fixed" for key in ("AP", "APr", "APc", "APf")] + [pool_key(p) for p in POOLS]
