"""Long-tail methods as named pieces: a classification rule (its loss and scores), which images
an epoch visits, and post-hoc changes to a trained classifier. A method in the config names a
loss and a sampler (with options), or a post-hoc rule.

Adding a method is one function here, registered under a name the config then uses:

    @loss("my_loss")
    def my_loss(stats: TrainingStats, options: dict) -> SoftmaxClassifier: ...

    @posthoc_rule("my_rule")
    def my_rule(model: FasterRCNN, stats: TrainingStats, options: dict, data: PosthocData): ...
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torchvision.models.detection import FasterRCNN

from bags.classifiers import (
    EQLv2Classifier,
    EqualizationClassifier,
    FederatedClassifier,
    GroupSoftmaxClassifier,
    NearestClassMean,
    SeesawClassifier,
    SigmoidFocalClassifier,
    SoftmaxClassifier,
    TauNormSelect,
    WeightedSoftmaxClassifier,
)
from bags.data.dataset import DetectionDataset
from bags.decoupling import class_centres, tau_normalize
from bags.detector import classification_layer, set_classifier
from bags.groups import read_groups_file
from bags.losses import effective_number_weights, eql_threshold, reweight_weights
from bags.method_options import check_options, number_option
from bags.safe_load import one_line
from bags.sampling import class_balanced_indices, repeat_factors, repeated_indices, tail_images
from bags.training_stats import TrainingStats
from bags.values import is_int

# An epoch's images: (seed, epoch) -> image indices, or None for every image once.
EpochImages = Callable[[int, int], list[int]] | None


@dataclass(frozen=True)
class PosthocData:
    """What post-hoc rules may read besides the model: the training images (class centres), and
    held-out training images to choose a setting on, with what evaluating them needs."""

    train: DetectionDataset | None = None
    heldout: DetectionDataset | None = None
    instance_counts: dict[int, int] | None = None
    edges: list[int] | None = None
    device: torch.device | None = None
    # The model's AP on ``heldout`` (NaN where nothing can be scored): the job supplies it.
    heldout_ap: Callable[[FasterRCNN], float] | None = None


Classifier = SoftmaxClassifier
# A post-hoc rule changes the model in place; it may return a log of what it tried.
PostHoc = Callable[[FasterRCNN, TrainingStats, dict, PosthocData], list[dict] | None]
LOSSES: dict[str, Callable[[TrainingStats, dict], Classifier]] = {}
SAMPLERS: dict[str, Callable[[TrainingStats, dict], EpochImages]] = {}
POSTHOC_RULES: dict[str, PostHoc] = {}


def loss(name: str):
    """Register a classification rule: ``(stats, options) -> Classifier``."""

    def register(function):
        LOSSES[name] = function
        return function

    return register


def sampler(name: str):
    """Register an image sampler: ``(stats, options) -> EpochImages``."""

    def register(function):
        SAMPLERS[name] = function
        return function

    return register


def posthoc_rule(name: str):
    """Register a post-hoc rule: ``(model, stats, options, data)`` changes ``model`` in place."""

    def register(function):
        POSTHOC_RULES[name] = function
        return function

    return register


@loss("softmax")
def softmax(stats: TrainingStats, options: dict) -> Classifier:
    check_options(options, [], "softmax")
    return SoftmaxClassifier(stats.num_classes)


@loss("bags")
def balanced_group_softmax(stats: TrainingStats, options: dict) -> Classifier:
    """BAGS with the groups and beta of its groups file (``groups_file``), which ``bags groups``
    makes from the training counts, the bins' edges and beta (``bags.groups.write_groups``)."""
    unknown = sorted(set(options) - {"groups_file"})
    if unknown:
        raise ValueError(
            f"bags: its groups and beta come from its groups file (the config's groups), not "
            f"from 'loss_options' {unknown}"
        )
    if "groups_file" not in options:
        raise ValueError("bags: its groups file is needed (--groups-file)")
    path = Path(options["groups_file"])
    ids = stats.category_ids or list(range(1, stats.num_classes + 1))
    try:
        groups, beta = read_groups_file(path.read_text(), ids)
    except (OSError, ValueError) as error:
        raise ValueError(f"{path}: {one_line(error)}") from error
    return GroupSoftmaxClassifier(groups, beta)


@loss("reweight")
def reweight(stats: TrainingStats, options: dict) -> Classifier:
    """The reference's re-weight row: w = (1/n) / mean(1/n), clipped to [low, high]."""
    check_options(options, ["low", "high"], "reweight")
    low, high = (
        number_option(options, "low", 0.1, "reweight"),
        number_option(options, "high", 5.0, "reweight"),
    )
    if low > high:
        raise ValueError(f"reweight: option 'low' {low} is above 'high' {high}")
    return WeightedSoftmaxClassifier(reweight_weights(stats.instance_counts, low, high))


@loss("effective_number")
def effectivenumber_option(stats: TrainingStats, options: dict) -> Classifier:
    """The reference's re-weight-cls row: Cui et al.'s weights (``class_beta``), clipped."""
    check_options(options, ["class_beta", "low", "high"], "effective_number")
    beta = number_option(options, "class_beta", 0.999, "effective_number", high=1.0)
    low = number_option(options, "low", 0.1, "effective_number")
    high = number_option(options, "high", 5.0, "effective_number")
    if low > high:
        raise ValueError(f"effective_number: option 'low' {low} is above 'high' {high}")
    return WeightedSoftmaxClassifier(
        effective_number_weights(stats.instance_counts, beta, low, high)
    )


@loss("focal")
def focal(stats: TrainingStats, options: dict) -> Classifier:
    """The reference's focal loss: sigmoid focal loss (``alpha``, ``gamma``), softmax scores."""
    check_options(options, ["alpha", "gamma"], "focal")
    alpha = number_option(options, "alpha", 0.25, "focal", low_allowed=True, high=1.0 + 1e-12)
    gamma = number_option(options, "gamma", 2.0, "focal", low_allowed=True)
    return SigmoidFocalClassifier(stats.num_classes, alpha, gamma)


@loss("eql")
def equalization(stats: TrainingStats, options: dict) -> Classifier:
    """EQL; ``lam`` is the frequency threshold (LVIS: 1.76e-3), ``prior`` the initial score."""
    check_options(options, ["lam", "prior"], "eql")
    lam = number_option(options, "lam", 1.76e-3, "eql")
    prior = number_option(options, "prior", 0.001, "eql", high=1.0)
    threshold = eql_threshold(stats.image_counts, len(stats.image_classes), lam)
    return EqualizationClassifier(threshold, prior)


@loss("eqlv2")
def equalization_v2(stats: TrainingStats, options: dict) -> Classifier:
    """EQLv2 with the reference's gamma 12, mu 0.8 and alpha 4."""
    check_options(options, ["gamma", "mu", "alpha"], "eqlv2")
    gamma = number_option(options, "gamma", 12.0, "eqlv2")
    mu = number_option(options, "mu", 0.8, "eqlv2", low_allowed=True)
    alpha = number_option(options, "alpha", 4.0, "eqlv2", low_allowed=True)
    return EQLv2Classifier(stats.num_classes, gamma, mu, alpha)


@loss("seesaw")
def seesaw(stats: TrainingStats, options: dict) -> Classifier:
    """Seesaw loss with the reference's p 0.8, q 2 and eps 0.01."""
    check_options(options, ["p", "q", "eps"], "seesaw")
    p = number_option(options, "p", 0.8, "seesaw", low_allowed=True)
    q = number_option(options, "q", 2.0, "seesaw", low_allowed=True)
    eps = number_option(options, "eps", 1e-2, "seesaw", high=1.0 + 1e-12)
    return SeesawClassifier(stats.num_classes, p, q, eps)


@loss("federated")
def federated(stats: TrainingStats, options: dict) -> Classifier:
    """The federated loss over ``classes`` classes (the reference's 50 of LVIS's 1,203), drawn
    by their training image count to the power ``power`` (0.5)."""
    check_options(options, ["classes", "power"], "federated")
    classes = options.get("classes", 50)
    if not (is_int(classes) and classes >= 1):
        raise ValueError(f"federated: option 'classes' must be an integer >= 1, got {classes!r}")
    power = number_option(options, "power", 0.5, "federated", low_allowed=True)
    weights = torch.tensor(stats.image_counts, dtype=torch.float64) ** power
    return FederatedClassifier(weights.float(), classes)


@sampler("uniform")
def uniform(stats: TrainingStats, options: dict) -> EpochImages:
    check_options(options, [], "uniform sampler")
    return None


def _generator(seed: int, epoch: int) -> torch.Generator:
    # Ints only (the same hash every run); -1 keeps it apart from every process's RoI sampling
    # stream, which the training loop seeds with (seed, epoch, rank).
    return torch.Generator().manual_seed(hash((seed, epoch, -1)))


@sampler("rfs")
def repeat_factor(stats: TrainingStats, options: dict) -> EpochImages:
    """LVIS repeat-factor sampling with threshold ``t``."""
    check_options(options, ["t"], "rfs sampler")
    factors = repeat_factors(stats.image_classes, number_option(options, "t", 0.001, "rfs sampler"))
    return lambda seed, epoch: repeated_indices(factors, _generator(seed, epoch))


@sampler("class_balanced")
def class_balanced_images(stats: TrainingStats, options: dict) -> EpochImages:
    """Class-balanced sampling (cRT): as many draws per epoch as there are images."""
    check_options(options, [], "class_balanced sampler")
    size = len(stats.image_classes)
    return lambda seed, epoch: class_balanced_indices(
        stats.image_classes, size, _generator(seed, epoch)
    )


@sampler("tail")
def tail(stats: TrainingStats, options: dict) -> EpochImages:
    """Only images with a class of fewer than ``below`` training instances."""
    check_options(options, ["below"], "tail sampler")
    below = number_option(options, "below", 100, "tail sampler")
    classes = {c + 1 for c, n in enumerate(stats.instance_counts) if n < below}
    images = tail_images(stats.image_classes, classes)
    if not images:
        raise ValueError(f"tail sampler: no training image has a class with < {below} instances")
    return lambda seed, epoch: list(images)


@posthoc_rule("tau_norm")
def tau_norm(
    model: FasterRCNN, stats: TrainingStats, options: dict, data: PosthocData
) -> list[dict] | None:
    """Row 12: the class rows of the last layer divided by their norm^``tau``; given ``taus``
    instead, the one of them with the best AP on the held-out training images (never val)."""
    check_options(options, ["tau", "taus"], "tau_norm")
    if "taus" not in options:
        tau = number_option(options, "tau", 1.0, "tau_norm", low_allowed=True)
        _set_tau(model, classification_layer(model), tau)
        return None
    taus = options["taus"]
    if not isinstance(taus, list) or not taus:
        raise ValueError(f"tau_norm: 'taus' must be a list of numbers >= 0, got {taus!r}")
    if data.heldout_ap is None:
        raise ValueError("tau_norm: choosing among 'taus' needs held-out training images")
    original, log = classification_layer(model), []
    for tau in taus:
        tau = number_option({"tau": tau}, "tau", 0, "tau_norm: 'taus'", low_allowed=True)
        _set_tau(model, original, tau)
        log.append({"tau": tau, "heldout_AP": data.heldout_ap(model)})
    best = max(
        log, key=lambda row: -math.inf if math.isnan(row["heldout_AP"]) else row["heldout_AP"]
    )
    _set_tau(model, original, best["tau"])
    return [{**row, "chosen": row is best} for row in log]


def _set_tau(model: FasterRCNN, layer: torch.nn.Linear, tau: float) -> None:
    rows = model.roi_heads.classifier.class_rows
    model.roi_heads.box_predictor.cls_score = tau_normalize(layer, tau, rows)


@posthoc_rule("tau_norm_select")
def tau_norm_select(
    model: FasterRCNN, stats: TrainingStats, options: dict, data: PosthocData
) -> None:
    """Row 13: tau-norm's scores for RoIs it assigns to a class with < ``below`` instances."""
    check_options(options, ["tau", "below"], "tau_norm_select")
    rows = model.roi_heads.classifier.class_rows
    normed = tau_normalize(classification_layer(model), float(options.get("tau", 1.0)), rows)
    selected = torch.tensor(stats.instance_counts) < options.get("below", 100)
    set_classifier(model, TauNormSelect(normed, selected), **_scoring(model))


def _nearest_class_mean(source: str):
    def rule(model: FasterRCNN, stats: TrainingStats, options: dict, data: PosthocData) -> None:
        check_options(options, [], f"ncm_{source}")
        if data.train is None:
            raise ValueError("nearest class mean needs the training images")
        centres = class_centres(model, data.train, source, device=data.device).to(
            classification_layer(model).weight.device
        )
        set_classifier(model, NearestClassMean(centres, source), **_scoring(model))

    rule.__doc__ = f"NCM on the {source} features of the training boxes (rows 10 and 11)."
    return rule


posthoc_rule("ncm_fc")(_nearest_class_mean("fc"))
posthoc_rule("ncm_conv")(_nearest_class_mean("pooled"))


def _scoring(model: FasterRCNN) -> dict[str, Any]:
    heads = model.roi_heads
    return {"score_thresh": heads.score_thresh, "detections_per_img": heads.detections_per_img}


@dataclass(frozen=True)
class MethodSpec:
    """One method's rule and sampler, or its post-hoc rule, as the config names them."""

    loss: str = "softmax"
    loss_options: dict[str, Any] | None = None
    sampler: str = "uniform"
    sampler_options: dict[str, Any] | None = None
    last_layer: str = "loaded"  # or "fresh": a new last layer instead of the starting model's
    posthoc: str | None = None
    posthoc_options: dict[str, Any] | None = None

    @classmethod
    def from_dict(cls, document: dict) -> MethodSpec:
        try:
            spec = cls(**document)
        except TypeError as error:
            raise ValueError(f"method settings: {error}") from error
        for key, kind in (("loss", str), ("sampler", str), ("new_layer", bool)):
            if not isinstance(getattr(spec, key), kind):
                raise ValueError(f"method settings: {key!r} must be a {kind.__name__}")
        for key in ("loss_options", "sampler_options"):
            if not isinstance(getattr(spec, key), dict | None):
                raise ValueError(f"method settings: {key!r} must be an object of options")
        if spec.loss not in LOSSES:
            raise ValueError(f"unknown loss {spec.loss!r}; known: {sorted(LOSSES)}")
        if spec.sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {spec.sampler!r}; known: {sorted(SAMPLERS)}")
        if spec.posthoc is not None and spec.posthoc not in POSTHOC_RULES:
            raise ValueError(
                f"unknown post-hoc rule {spec.posthoc!r}; known: {sorted(POSTHOC_RULES)}"
            )
        if spec.last_layer not in ("fresh", "loaded"):
            raise ValueError(f"last_layer must be 'fresh' or 'loaded', got {spec.last_layer!r}")
        return spec

    @property
    def new_layer(self) -> bool:
        return self.last_layer == "fresh"

    def classifier(self, stats: TrainingStats, groups_file: Path | None = None) -> Classifier:
        """The loss's classification rule; ``groups_file``: BAGS's groups (``bags groups``)."""
        options = dict(self.loss_options or {})
        if groups_file is not None:
            options["groups_file"] = groups_file
        return LOSSES[self.loss](stats, options)

    def epoch_images(self, stats: TrainingStats) -> EpochImages:
        return SAMPLERS[self.sampler](stats, dict(self.sampler_options or {}))

    def apply_posthoc(
        self, model: FasterRCNN, stats: TrainingStats, data: PosthocData
    ) -> list[dict]:
        """Apply the post-hoc rule to ``model``; what it tried, if it chose among settings."""
        if self.posthoc is None:
            raise ValueError("this method has no post-hoc rule")
        return (
            POSTHOC_RULES[self.posthoc](model, stats, dict(self.posthoc_options or {}), data) or []
        )
