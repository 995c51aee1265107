"""Which training images an epoch visits: repeat-factor, class-balanced and tail-image sampling."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch


def repeat_factors(image_classes: Sequence[Sequence[int]], t: float = 0.001) -> list[float]:
    """LVIS repeat-factor sampling: r(c) = max(1, sqrt(t / f(c))), f(c) the fraction of images
    containing c; an image repeats r(I) = max over its classes (1 for an image without boxes)."""
    num_images = len(image_classes)
    if num_images == 0:
        raise ValueError("repeat_factors needs at least one image")
    images_with: dict[int, int] = {}
    for classes in image_classes:
        for c in set(classes):
            images_with[c] = images_with.get(c, 0) + 1
    per_class = {c: max(1.0, math.sqrt(t / (k / num_images))) for c, k in images_with.items()}
    return [max((per_class[c] for c in set(classes)), default=1.0) for classes in image_classes]


def repeated_indices(factors: Sequence[float], generator: torch.Generator) -> list[int]:
    """One epoch's images: image i floor(r_i) times, plus once more with probability frac(r_i)."""
    r = torch.as_tensor(factors, dtype=torch.float64)
    extra = torch.rand(len(r), generator=generator, dtype=torch.float64) < (r - r.floor())
    copies = (r.floor() + extra).long().tolist()
    return [i for i, k in enumerate(copies) for _ in range(k)]


def class_balanced_indices(
    image_classes: Sequence[Sequence[int]], size: int, generator: torch.Generator
) -> list[int]:
    """``size`` images, each drawn by picking a class uniformly, then an image containing it."""
    holders: dict[int, list[int]] = {}
    for i, classes in enumerate(image_classes):
        for c in set(classes):
            holders.setdefault(c, []).append(i)
    if not holders:
        raise ValueError("class-balanced sampling needs images with boxes")
    classes = sorted(holders)
    picks = torch.randint(len(classes), (size,), generator=generator).tolist()
    draws = torch.rand(size, generator=generator).tolist()
    chosen = []
    for k, u in zip(picks, draws):
        images = holders[classes[k]]
        chosen.append(images[min(int(u * len(images)), len(images) - 1)])
    return chosen


def tail_images(image_classes: Sequence[Sequence[int]], tail: set[int]) -> list[int]:
    """Indices of the images that contain at least one tail class."""
    return [i for i, classes in enumerate(image_classes) if tail & set(classes)]
