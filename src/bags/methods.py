"""Long-tail methods as named pieces: a classification rule (its loss and scores) and which
images an epoch visits. A method in the config names one of each, with options.

Adding a method is one function here, registered under a name the config then uses:

    @loss("my_loss")
    def my_loss(stats: TrainingStats, options: dict) -> Classifier: ...
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from bags.classifiers import (
    Classifier,
    EqualizationClassifier,
    FocalClassifier,
    GroupSoftmaxClassifier,
    SoftmaxClassifier,
    WeightedSoftmaxClassifier,
)
from bags.groups import Groups, assign_groups
from bags.losses import class_balanced_weights, eql_threshold, reweight_weights
from bags.sampling import class_balanced_indices, repeat_factors, repeated_indices, tail_images


@dataclass(frozen=True)
class TrainingStats:
    """What the rules need to know about the training set (classes are 1..C, in id order)."""

    instance_counts: list[int]  # per class, as the groups are made from (the counts file)
    image_counts: list[int]  # per class: training images that contain it
    image_classes: list[list[int]]  # per training image: its box labels

    @property
    def num_classes(self) -> int:
        return len(self.instance_counts)

    @classmethod
    def from_images(
        cls, instance_counts: list[int], image_classes: list[list[int]]
    ) -> TrainingStats:
        """Image counts follow from each image's labels."""
        image_counts = [0] * len(instance_counts)
        for classes in image_classes:
            for c in set(classes):
                image_counts[c - 1] += 1
        return cls(instance_counts, image_counts, image_classes)


# An epoch's images: (seed, epoch) -> image indices, or None for every image once.
EpochImages = Callable[[int, int], list[int]] | None

LOSSES: dict[str, Callable[[TrainingStats, dict], Classifier]] = {}
SAMPLERS: dict[str, Callable[[TrainingStats, dict], EpochImages]] = {}


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


def _options(options: dict, allowed: Sequence[str], what: str) -> dict:
    unknown = set(options) - set(allowed)
    if unknown:
        raise ValueError(f"{what}: unknown option(s) {sorted(unknown)}; known: {sorted(allowed)}")
    return options


def _number(
    options: dict,
    key: str,
    default: float,
    what: str,
    low: float = 0.0,
    high: float = math.inf,
    low_allowed: bool = False,
) -> float:
    """Option ``key`` (or ``default``): a finite number above ``low`` (or equal to it, with
    ``low_allowed``) and below ``high``."""
    value = options.get(key, default)
    fits = False
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        fits = (low <= value if low_allowed else low < value) and value < high
    if not fits:
        bounds = f"{'>=' if low_allowed else '>'} {low:g}"
        if high != math.inf:
            bounds += f" and < {high:g}"
        raise ValueError(f"{what}: option {key!r} must be a number {bounds}, got {value!r}")
    return value


@loss("softmax")
def softmax(stats: TrainingStats, options: dict) -> Classifier:
    _options(options, [], "softmax")
    return SoftmaxClassifier(stats.num_classes)


@loss("bags")
def balanced_group_softmax(stats: TrainingStats, options: dict) -> Classifier:
    """BAGS; ``edges`` bin the classes by instance count, ``beta`` is a number or "all"."""
    _options(options, ["edges", "beta"], "bags")
    edges = options.get("edges", [10, 100, 1000])
    if not isinstance(edges, list) or not all(isinstance(e, int) for e in edges):
        raise ValueError(f"bags: option 'edges' must be a list of integers, got {edges!r}")
    groups = assign_groups(stats.instance_counts, edges)
    beta = math.inf if options.get("beta") == "all" else _number(options, "beta", 8, "bags")
    return GroupSoftmaxClassifier(groups, beta)


@loss("reweight")
def reweight(stats: TrainingStats, options: dict) -> Classifier:
    _options(options, ["low", "high"], "reweight")
    low, high = _number(options, "low", 0.1, "reweight"), _number(options, "high", 5.0, "reweight")
    if low > high:
        raise ValueError(f"reweight: option 'low' {low} is above 'high' {high}")
    return WeightedSoftmaxClassifier(reweight_weights(stats.instance_counts, low, high))


@loss("class_balanced")
def class_balanced(stats: TrainingStats, options: dict) -> Classifier:
    _options(options, ["beta"], "class_balanced")
    beta = _number(options, "beta", 0.999, "class_balanced", high=1.0)
    return WeightedSoftmaxClassifier(class_balanced_weights(stats.instance_counts, beta))


@loss("focal")
def focal(stats: TrainingStats, options: dict) -> Classifier:
    _options(options, ["gamma"], "focal")
    gamma = _number(options, "gamma", 2.0, "focal", low_allowed=True)
    return FocalClassifier(stats.num_classes, gamma)


@loss("eql")
def equalization(stats: TrainingStats, options: dict) -> Classifier:
    """EQL; ``lam`` is the frequency threshold (LVIS: 1.76e-3)."""
    _options(options, ["lam"], "eql")
    lam = _number(options, "lam", 1.76e-3, "eql")
    threshold = eql_threshold(stats.image_counts, len(stats.image_classes), lam)
    return EqualizationClassifier(threshold)


@sampler("uniform")
def uniform(stats: TrainingStats, options: dict) -> EpochImages:
    _options(options, [], "uniform sampler")
    return None


def _generator(seed: int, epoch: int) -> torch.Generator:
    # Ints only (the same hash every run); -1 keeps it apart from every process's RoI sampling
    # stream, which the training loop seeds with (seed, epoch, rank).
    return torch.Generator().manual_seed(hash((seed, epoch, -1)))


@sampler("rfs")
def repeat_factor(stats: TrainingStats, options: dict) -> EpochImages:
    """LVIS repeat-factor sampling with threshold ``t``."""
    _options(options, ["t"], "rfs sampler")
    factors = repeat_factors(stats.image_classes, _number(options, "t", 0.001, "rfs sampler"))
    return lambda seed, epoch: repeated_indices(factors, _generator(seed, epoch))


@sampler("class_balanced")
def class_balanced_images(stats: TrainingStats, options: dict) -> EpochImages:
    """Class-balanced sampling (cRT): as many draws per epoch as there are images."""
    _options(options, [], "class_balanced sampler")
    size = len(stats.image_classes)
    return lambda seed, epoch: class_balanced_indices(
        stats.image_classes, size, _generator(seed, epoch)
    )


@sampler("tail")
def tail(stats: TrainingStats, options: dict) -> EpochImages:
    """Only images with a class of fewer than ``below`` training instances."""
    _options(options, ["below"], "tail sampler")
    below = _number(options, "below", 100, "tail sampler")
    classes = {c + 1 for c, n in enumerate(stats.instance_counts) if n < below}
    images = tail_images(stats.image_classes, classes)
    if not images:
        raise ValueError(f"tail sampler: no training image has a class with < {below} instances")
    return lambda seed, epoch: list(images)


@dataclass(frozen=True)
class MethodSpec:
    """One method's rule and sampler, as the config names them."""

    loss: str = "softmax"
    loss_options: dict[str, Any] | None = None
    sampler: str = "uniform"
    sampler_options: dict[str, Any] | None = None
    new_layer: bool = False  # a fresh last layer instead of the starting model's

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
        return spec

    def classifier(self, stats: TrainingStats) -> Classifier:
        return LOSSES[self.loss](stats, dict(self.loss_options or {}))

    def epoch_images(self, stats: TrainingStats) -> EpochImages:
        return SAMPLERS[self.sampler](stats, dict(self.sampler_options or {}))


def scoring_meta(classifier: Classifier) -> dict[str, Any]:
    """What a model file records to score detections as ``classifier`` does."""
    if isinstance(classifier, GroupSoftmaxClassifier):
        beta = "all" if classifier.beta == float("inf") else classifier.beta
        return {"classifier": "bags", "groups": classifier.groups.to_json(), "beta": beta}
    if isinstance(classifier, EqualizationClassifier):
        return {"classifier": "sigmoid"}
    return {"classifier": "softmax"}


def scoring_classifier(meta: dict[str, Any]) -> Classifier:
    """A classifier that scores as the one ``meta`` was trained with (its loss is not kept)."""
    kind = meta["classifier"]
    if kind == "bags":
        beta = meta.get("beta", 8.0)
        beta = float("inf") if beta == "all" else float(beta)
        return GroupSoftmaxClassifier(Groups.from_json(meta["groups"]), beta)
    if kind == "sigmoid":
        return EqualizationClassifier(torch.zeros(meta["num_classes"] + 1))
    if kind == "softmax":
        return SoftmaxClassifier(meta["num_classes"])
    raise ValueError(f"unknown classifier {kind!r}; known: softmax, bags, sigmoid")
