"""Classifier-level methods on cached features: retrain the last layer, fit nearest class means,
or rescale the baseline's layer (tau-norm), then score the cached evaluation images."""

from __future__ import annotations

import json
import math
import tempfile
import time
from pathlib import Path

import torch
from torch import nn
from torchvision.models.detection import FasterRCNN

from bags.classifiers import Classifier
from bags.engine.feature_cache import ScoringFeatures, TrainingFeatures
from bags.engine.infer import image_results
from bags.engine.train import TrainConfig, make_scheduler, training_plan
from bags.evaluation import evaluate
from bags.io import atomic_path
from bags.methods import EpochImages
from bags.posthoc import tau_normalize


def fit_layer(
    layer: nn.Linear,
    classifier: Classifier,
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
            loss = classifier.loss(layer(features), targets)
            if not torch.isfinite(loss):
                raise ValueError(f"the training loss became {loss.item()}; lower the lr")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
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
def class_mean_layer(cache: TrainingFeatures, num_classes: int) -> nn.Linear:
    """Nearest class mean (NCM) as a linear layer: the mean feature mu_c of every class's RoI
    candidates (background as class 0) and logits -||f - mu_c||^2 / T, T the mean squared
    distance of a candidate to its own class mean. ||f||^2 is the same for every class, so the
    logits are (2 mu_c . f - ||mu_c||^2) / T up to a per-RoI constant that softmax ignores."""
    features = torch.cat(cache.features)
    labels = torch.cat(cache.labels)
    keep = labels >= 0
    features, labels = features[keep], labels[keep]
    counts = torch.bincount(labels, minlength=num_classes + 1).to(features.dtype)
    sums = torch.zeros(num_classes + 1, features.shape[1]).index_add_(0, labels, features)
    means = sums / counts.clamp(min=1)[:, None]
    temperature = ((features - means[labels]) ** 2).sum(dim=1).mean().clamp(min=1e-12)
    layer = nn.Linear(features.shape[1], num_classes + 1)
    layer.weight.copy_(2 * means / temperature)
    layer.bias.copy_(-(means**2).sum(dim=1) / temperature)
    layer.bias[counts == 0] = -1e4  # a class without candidates is never predicted
    return layer


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


def choose_tau(
    model: FasterRCNN,
    heldout: ScoringFeatures,
    heldout_json: Path,
    taus: list[float],
    category_of: dict[int, int],
    instance_counts: dict[int, int],
    edges: list[int],
    max_dets: int = 300,
) -> tuple[float, list[dict[str, float]]]:
    """tau-norm's tau: the one whose rescaled last layer has the best AP on the held-out
    training images (never val). Returns it and the AP of every tau tried; ``model``'s layer is
    left as it was."""
    if not isinstance(taus, list) or not taus or not all(_is_tau(tau) for tau in taus):
        raise ValueError(f"tau_norm: 'taus' must be a list of numbers >= 0, got {taus!r}")
    predictor = model.roi_heads.box_predictor
    original = predictor.cls_score
    rows = []
    try:
        for tau in taus:
            predictor.cls_score = tau_normalize(original, tau)
            with tempfile.TemporaryDirectory() as scratch:
                detections = Path(scratch) / "heldout_detections.json"
                write_records(score_cached(model, heldout, category_of), detections)
                metrics = evaluate(heldout_json, detections, instance_counts, edges, max_dets)
            rows.append({"tau": tau, "heldout_AP": metrics["AP"], "heldout_APr": metrics["APr"]})
    finally:
        predictor.cls_score = original
    best = max(rows, key=lambda row: _finite(row["heldout_AP"]))
    return best["tau"], rows


def _finite(value: float | None) -> float:
    return -math.inf if value is None or math.isnan(value) else value


def _is_tau(value: object) -> bool:
    number = isinstance(value, int | float) and not isinstance(value, bool)
    return number and math.isfinite(value) and value >= 0
