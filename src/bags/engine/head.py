"""Classifier-level rows on cached features: retrain the last layer of the frozen baseline, then
score the cached evaluation images."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd
import torch
from torch import nn
from torchvision.models.detection import FasterRCNN

from bags.classifiers import SoftmaxClassifier
from bags.data.counts import read_counts
from bags.detector import classification_layer, set_classifier
from bags.digest import sha256_file
from bags.engine.feature_cache import ScoringFeatures, TrainingFeatures, load_features
from bags.engine.infer import image_results
from bags.engine.model_files import (
    check_classes,
    load_model,
    make_detector,
    save_model,
    write_norms,
)
from bags.engine.plan import training_plan
from bags.engine.settings import TrainConfig, make_scheduler
from bags.io import atomic_path
from bags.loss_scope import chunk_ranges
from bags.methods import EpochImages, MethodSpec
from bags.training_stats import TrainingStats


def fit_layer(
    layer: nn.Linear,
    classifier: SoftmaxClassifier,
    cache: TrainingFeatures,
    sampler,
    config: TrainConfig,
    epoch_images: EpochImages = None,
) -> list[dict[str, float]]:
    """Train ``layer`` as the training loop would with everything before it frozen: the same
    epochs, batches, lr schedule and SGD; each step samples RoIs per image with ``sampler``
    (the detector's ``fg_bg_sampler``). Returns one log row per epoch."""
    if config.hflip:
        raise ValueError("cached features hold unflipped images: set hflip: false")
    if config.group_orientation:
        raise ValueError("cached features keep no image orientations: set group_orientation: false")
    optimizer = torch.optim.SGD(
        layer.parameters(),
        lr=config.scaled_lr(),
        momentum=config.momentum,
        weight_decay=config.weight_decay,
    )
    plan = training_plan(len(cache.features), config, epoch_images)
    scheduler = make_scheduler(optimizer, plan, config)
    rows = []
    for epoch, batches in enumerate(plan):
        torch.manual_seed(hash((config.seed, epoch, 0)))  # as the training loop seeds an epoch
        started, total, images = time.perf_counter(), 0.0, 0
        for batch in batches:
            labels = [cache.labels[i] for i in batch]
            positive, negative = sampler(labels)
            chosen = [torch.where(p | n)[0] for p, n in zip(positive, negative)]
            features = torch.cat([cache.features[i][c] for i, c in zip(batch, chosen)])
            targets = torch.cat([lab[c] for lab, c in zip(labels, chosen)])
            logits = layer(features)
            ranges = chunk_ranges([len(c) for c in chosen], config.loss_images)
            loss = torch.stack([classifier.loss(logits[r], targets[r]) for r in ranges]).mean()
            classifier.step_done()
            if not torch.isfinite(loss):
                raise ValueError(f"the training loss became {loss.item()}; lower the lr")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip is not None:  # as the training loop clips the trained layer
                torch.nn.utils.clip_grad_norm_(layer.parameters(), config.grad_clip)
            optimizer.step()
            scheduler.step()
            total += loss.item() * len(batch)
            images += len(batch)
        seconds = time.perf_counter() - started
        rows.append(
            {
                "epoch": epoch + 1,
                "loss_classifier": total / max(images, 1),
                "lr": optimizer.param_groups[0]["lr"],
                "seconds": seconds,
                "images_per_s": images / max(seconds, 1e-9),
            }
        )
    return rows


@torch.no_grad()
def score_cached(
    model: FasterRCNN, cache: ScoringFeatures, category_of: dict[int, int]
) -> list[dict]:
    """Detections of ``model`` (its last layer and classification rule) on the cached images,
    as LVIS result records."""
    heads = model.roi_heads
    heads.eval()
    layer = heads.box_predictor.cls_score
    records = []
    for i, image_id in enumerate(cache.image_ids):
        logits = layer(cache.features[i].flatten(1))
        boxes, scores, labels = heads.postprocess_detections(
            logits, cache.box_regression[i], [cache.proposals[i]], [cache.image_sizes[i]]
        )
        detections = {"boxes": boxes[0], "scores": scores[0], "labels": labels[0]}
        (detections,) = model.transform.postprocess(
            [detections], [cache.image_sizes[i]], [cache.original_sizes[i]]
        )
        records += image_results(detections, image_id, category_of)
    return records


def write_records(records: list[dict], path: Path | str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(records))


def head_job(
    baseline: Path,
    cache_dir: Path,
    counts: Path,
    method: dict,
    settings: dict,
    out_model: Path,
    out_log: Path,
    out_detections: Path,
    out_norms: Path,
    score_thresh: float,
    detections_per_img: int,
    groups_file: Path | None = None,
) -> None:
    """Train one classifier-level row's last layer on the cached features of ``baseline``,
    save the model, its per-epoch log, its detections on the cached val images and its norms."""
    config = TrainConfig.from_dict(settings)
    spec = MethodSpec.from_dict(method)
    if spec.posthoc is not None:
        raise ValueError("a post-hoc method trains nothing: run it with `bags posthoc`")
    model, meta = load_model(baseline, score_thresh, detections_per_img)
    table = read_counts(counts)
    check_classes(baseline, meta, table["category_id"].tolist(), counts)
    made_from = sha256_file(baseline)  # a cache of another model is refused
    train = load_features(cache_dir / "train.pt", made_from)
    val = load_features(cache_dir / "val.pt", made_from)  # checked before any output
    ids = table["category_id"].tolist()
    stats = TrainingStats.from_images(table["instance_count"].tolist(), train.image_classes, ids)
    classifier = spec.classifier(stats, groups_file)
    torch.manual_seed(config.seed)
    set_classifier(model, classifier, spec.new_layer, score_thresh, detections_per_img)
    sampler = model.roi_heads.fg_bg_sampler
    layer = classification_layer(model)
    rows = fit_layer(layer, classifier, train, sampler, config, spec.epoch_images(stats))
    meta = {k: v for k, v in meta.items() if k not in ("groups", "beta")}
    meta = {**meta, **classifier.meta(), "method": method}
    make_detector(meta)
    save_model(out_model, model, meta)
    with atomic_path(out_log) as tmp:
        pd.DataFrame(rows).to_csv(tmp, index=False)
    write_records(score_cached(model, val, dict(enumerate(ids, start=1))), out_detections)
    write_norms(model, table, out_norms)
