"""The post-hoc rows' job: the trained baseline with its classifier rescaled or replaced."""

from __future__ import annotations

import math
import tempfile
from collections.abc import Sequence
from functools import partial
from pathlib import Path

import pandas as pd
import torch
from torchvision.models.detection import FasterRCNN

from bags.data.counts import read_counts
from bags.data.dataset import DetectionDataset
from bags.engine.device import pick_device
from bags.engine.infer import predict_to_file
from bags.engine.model_files import check_classes, load_model, make_detector, save_model
from bags.evaluation import evaluate
from bags.io import atomic_path
from bags.methods import MethodSpec, PosthocData
from bags.training_stats import TrainingStats


def posthoc_job(
    baseline: Path,
    method: dict,
    counts: Path,
    annotations: Path,
    images: Path,
    out: Path,
    out_log: Path,
    heldout: Path | None = None,
    edges: Sequence[int] | None = None,
    data_options: dict | None = None,
    device: str = "auto",
) -> None:
    """Apply the method's post-hoc rule to ``baseline`` (trained on ``annotations``, whose
    images the rule may read; ``heldout``, a share of them, to choose a setting on, scored with
    AP1..APk by the count ``edges``) and save the result as a model file, and what the rule
    tried as a log."""
    if heldout is not None and not edges:
        raise ValueError("choosing on held-out images needs the count bins' --edges")
    spec = MethodSpec.from_dict(method)
    if spec.posthoc is None:
        raise ValueError("the method names no post-hoc rule")
    options = data_options or {}
    model, meta = load_model(baseline)
    target = pick_device(device)
    model.to(target)
    table = read_counts(counts)
    train = DetectionDataset(annotations, images, **options)
    check_classes(baseline, meta, train.category_ids, annotations)
    check_classes(baseline, meta, table["category_id"].tolist(), counts)
    stats = TrainingStats.from_dataset(train, table)
    held = None if heldout is None else DetectionDataset(heldout, images, **options)
    counted = dict(zip(table["category_id"], table["instance_count"]))
    data = PosthocData(
        train=train,
        heldout=held,
        instance_counts=counted,
        edges=list(edges or []),
        device=target,
        heldout_ap=None if held is None else partial(heldout_ap, held, counted, edges, target),
    )
    with torch.no_grad():
        rows = spec.apply_posthoc(model, stats, data)
    meta = {**meta, **model.roi_heads.classifier.meta(), "method": method}
    chosen = [row for row in rows if row.get("chosen")]
    if chosen:
        meta["posthoc_choice"] = {k: v for k, v in chosen[0].items() if k != "chosen"}
    make_detector(meta)
    save_model(out, model.cpu(), meta)
    with atomic_path(out_log) as tmp:
        pd.DataFrame(rows, columns=list(rows[0]) if rows else ["chosen"]).to_csv(tmp, index=False)


def heldout_ap(
    heldout: DetectionDataset,
    instance_counts: dict[int, int],
    edges: Sequence[int],
    device: torch.device,
    model: FasterRCNN,
) -> float:
    """The model's AP on the held-out images (NaN where nothing can be scored)."""
    with tempfile.TemporaryDirectory() as scratch:
        detections = Path(scratch) / "heldout_detections.json"
        predict_to_file(model, heldout, detections, device=device)
        metrics = evaluate(heldout.annotation_file, detections, instance_counts, edges)
    return math.nan if metrics["AP"] is None else metrics["AP"]
