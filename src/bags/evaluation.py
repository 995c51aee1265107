"""LVIS bbox evaluation with the LVIS API, plus AP per training-instance-count bin."""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import logging
import math
import types
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import lvis
import lvis.eval
import numpy

from bags.bins import bin_index
from bags.io import write_text_atomic

log = logging.getLogger(__name__)

LVIS_KEYS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "APr", "APc", "APf")
_RESULT_KEYS = ("image_id", "category_id", "bbox", "score")


def patch_lvis_numpy() -> None:
    """Give ``lvis.eval`` its own numpy view that still has ``float`` (removed in numpy 1.24).

    Only ``lvis/eval.py`` uses ``np.float`` in lvis 0.5.3 (``lvis.py`` and ``results.py`` do not
    import numpy). The global numpy module is left untouched. Idempotent.
    """
    if "float" in vars(lvis.eval.np):
        return
    view = types.ModuleType("numpy_for_lvis", "numpy plus the alias `float` for lvis.eval")
    view.__getattr__ = lambda name: getattr(numpy, name)  # PEP 562 fallback
    view.float = float
    lvis.eval.np = view


def _is_number(value: Any) -> bool:
    """A finite int or float (JSON parses NaN and Infinity too)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _is_box(box: Any) -> bool:
    return isinstance(box, list) and len(box) == 4 and all(map(_is_number, box))


def _load_json(path: Path, what: str) -> Any:
    if not path.is_file():
        raise ValueError(f"{what} {path}: no such file")
    try:
        with path.open(encoding="utf-8") as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{what} {path}: not valid JSON ({e})") from e


def _check_gt(gt: Any, path: Path) -> None:
    required = {
        "images": ("id", "neg_category_ids", "not_exhaustive_category_ids"),
        "annotations": ("id", "image_id", "category_id", "bbox", "area"),
        "categories": ("id", "frequency"),
    }
    if not isinstance(gt, dict):
        raise ValueError(f"ground truth {path}: expected a JSON object, got {type(gt).__name__}")
    for field, keys in required.items():
        items = gt.get(field)
        if not isinstance(items, list):
            raise ValueError(f"ground truth {path}: '{field}' is missing or not a list")
        seen = set()
        for i, item in enumerate(items):
            if not isinstance(item, dict) or any(k not in item for k in keys):
                raise ValueError(f"ground truth {path}: {field}[{i}] lacks one of {keys}")
            if not isinstance(item["id"], int) or item["id"] in seen:
                problem = "used before" if isinstance(item["id"], int) else "not an integer"
                raise ValueError(f"ground truth {path}: {field}[{i}] id {item['id']!r}: {problem}")
            seen.add(item["id"])
    if not gt["categories"]:
        raise ValueError(f"ground truth {path}: no categories")
    for a in gt["annotations"]:
        if not (_is_box(a["bbox"]) and _is_number(a["area"])):
            raise ValueError(
                f"ground truth {path}: annotation {a['id']}: bbox {a['bbox']!r} or area "
                f"{a['area']!r} is not finite numbers"
            )


def _check_results(results: Any, gt: dict, path: Path) -> None:
    if not isinstance(results, list):
        raise ValueError(f"results {path}: expected a JSON list, got {type(results).__name__}")
    image_ids = {img["id"] for img in gt["images"]}
    cat_ids = {cat["id"] for cat in gt["categories"]}
    for i, r in enumerate(results):
        if not isinstance(r, dict) or any(k not in r for k in _RESULT_KEYS):
            raise ValueError(f"results {path}: entry {i} is not an object with keys {_RESULT_KEYS}")
        box = r["bbox"]
        if not _is_box(box):
            raise ValueError(f"results {path}: entry {i} has bbox {box!r}, not [x, y, w, h]")
        if not _is_number(r["score"]):
            raise ValueError(
                f"results {path}: entry {i} has score {r['score']!r}, not a finite number"
            )
        if r["category_id"] not in cat_ids:
            raise ValueError(
                f"results {path}: entry {i} has unknown category_id {r['category_id']}"
            )
        if r["image_id"] not in image_ids:
            raise ValueError(f"results {path}: entry {i} has unknown image_id {r['image_id']}")


def _category_bins(
    gt: dict, instance_counts: Mapping[int, int], edges: Sequence[int]
) -> list[list[int]]:
    """Category ids per bin [0, e1), [e1, e2), ..., [e_last, inf) of training instance count."""
    if any(a >= b for a, b in itertools.pairwise(edges)):
        raise ValueError(f"bin edges must be strictly increasing, got {list(edges)}")
    bins: list[list[int]] = [[] for _ in range(len(edges) + 1)]
    for cat in gt["categories"]:
        if cat["id"] not in instance_counts:
            raise ValueError(f"no training instance count for category {cat['id']}")
        bins[bin_index(instance_counts[cat["id"]], edges)].append(cat["id"])
    return bins


def _percent(value: float) -> float | None:
    """LVIS reports -1 for an empty group: that becomes None."""
    return None if value == -1 else float(value) * 100


def _bin_ap(ev: lvis.LVISEval, cat_ids: list[int]) -> float | None:
    """Mean AP of a category subset, exactly as ``LVISEval._summarize`` does for r/c/f."""
    position = {cat_id: i for i, cat_id in enumerate(ev.params.cat_ids)}
    area_idx = ev.params.area_rng_lbl.index("all")
    s = ev.eval["precision"][:, :, [position[c] for c in cat_ids], area_idx]
    valid = s[s > -1]
    return float(numpy.mean(valid)) * 100 if valid.size else None


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


@contextlib.contextmanager
def _quiet_lvis() -> Iterator[None]:
    """Swallow the LVIS API's prints, warnings and (inputs already checked) log warnings."""
    lvis_logger = logging.getLogger("lvis")
    level = lvis_logger.level
    lvis_logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            yield
    finally:
        lvis_logger.setLevel(level)


def evaluate(
    gt_json: Path,
    results_json: Path,
    instance_counts: dict[int, int],
    edges: Sequence[int] = (10, 100, 1000),
    max_dets: int = 300,
) -> dict[str, float | None]:
    """LVIS bbox metrics in percent, plus AP1..AP{len(edges)+1} by training instance count.

    A metric with no ground truth to score against (LVIS's -1, or an empty bin) is None.
    Raises ValueError for a missing, non-JSON or malformed ground-truth or results file.
    """
    gt_json, results_json = Path(gt_json), Path(results_json)
    gt = _load_json(gt_json, "ground truth")
    _check_gt(gt, gt_json)
    results = _load_json(results_json, "results")
    _check_results(results, gt, results_json)
    bins = _category_bins(gt, instance_counts, edges)

    if not results:  # the LVIS API fails on an empty results list
        metrics = _empty_metrics(gt, bins)
    else:
        patch_lvis_numpy()
        with _quiet_lvis():
            lvis_gt = lvis.LVIS(str(gt_json))
            lvis_dt = lvis.LVISResults(lvis_gt, results, max_dets=max_dets)
            ev = lvis.LVISEval(lvis_gt, lvis_dt, iou_type="bbox")
            ev.params.max_dets = max_dets
            ev.run()
        metrics = {key: _percent(ev.results[key]) for key in LVIS_KEYS}
        for k, cat_ids in enumerate(bins, start=1):
            metrics[f"AP{k}"] = _bin_ap(ev, cat_ids)

    log.info(
        "LVIS bbox eval of %s (%d detections): %s",
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
    out: Path,
) -> None:
    """``evaluate`` with the training counts CSV (at most ``detections_per_img`` per image),
    written as a metrics JSON file."""
    from bags.data.counts import read_counts

    table = read_counts(counts)
    instance_counts = dict(zip(table["category_id"], table["instance_count"]))
    metrics = evaluate(annotations, detections, instance_counts, edges, detections_per_img)
    write_metrics(metrics, out)


def read_metrics(path: Path | str, required: Sequence[str] = ()) -> dict[str, float | None]:
    """A metrics JSON as ``write_metrics`` writes it (finite numbers or null, by name); the
    ``required`` metrics must be there and not null."""
    path = Path(path)
    metrics = _load_json(path, "metrics")
    if not isinstance(metrics, dict) or not all(
        value is None or _is_number(value) for value in metrics.values()
    ):
        raise ValueError(f"metrics {path}: expected a JSON object of finite numbers or null")
    missing = [key for key in required if metrics.get(key) is None]
    if missing:
        raise ValueError(f"metrics {path}: no value for {', '.join(missing)}")
    return metrics
