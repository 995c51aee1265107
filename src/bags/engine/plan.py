"""A training's plan: every epoch's global batches, fixed by the seed."""

from __future__ import annotations

import itertools
import math
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from bags.engine.settings import TrainConfig
    from bags.methods import EpochImages


def epoch_batches(
    images: int | list[int],
    batch_size: int,
    seed: int,
    epoch: int,
    landscape: list[bool] | None = None,
) -> list[list[int]]:
    """The global batches of one epoch over ``images`` (a count, or the indices a sampler
    chose): a permutation fixed by (seed, epoch), the last batch filled up from the start so
    that every batch splits evenly among processes.

    ``landscape`` (per dataset index) groups the batches by orientation, as mmdetection's
    ``GroupSampler`` does: landscape and portrait images are permuted apart, each kind filled up
    to whole batches from its own start, and the batches put in a random order."""
    indices = list(range(images)) if isinstance(images, int) else images
    if not indices:
        raise ValueError("an epoch without images: the sampler chose none")
    generator = torch.Generator().manual_seed(hash((seed, epoch)))
    if landscape is None:
        return _batches(indices, batch_size, generator)
    kinds = [[i for i in indices if landscape[i] == kind] for kind in (False, True)]
    batches = [b for kind in kinds if kind for b in _batches(kind, batch_size, generator)]
    return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]


def _batches(indices: list[int], batch_size: int, generator: torch.Generator) -> list[list[int]]:
    size = len(indices)
    order = [indices[i] for i in torch.randperm(size, generator=generator).tolist()]
    filled = math.ceil(size / batch_size) * batch_size
    padded = (order * math.ceil(filled / size))[:filled]
    return [padded[i : i + batch_size] for i in range(0, filled, batch_size)]


def training_plan(
    size: int,
    config: TrainConfig,
    epoch_images: EpochImages = None,
    landscape: list[bool] | None = None,
) -> list[list[list[int]]]:
    """Every epoch's global batches; ``epoch_images`` (a method's sampler) picks the images;
    with ``config.group_orientation``, ``landscape`` (per image) groups them by orientation."""
    if config.group_orientation and landscape is None:
        raise ValueError("group_orientation needs each image's orientation")
    return [
        epoch_batches(
            size if epoch_images is None else epoch_images(config.seed, epoch),
            config.batch_size,
            config.seed,
            epoch,
            landscape if config.group_orientation else None,
        )
        for epoch in range(config.epochs)
    ]


def epoch_starts(plan: list[list[list[int]]]) -> list[int]:
    """The first step of every epoch, then the total number of steps."""
    return [0, *itertools.accumulate(len(batches) for batches in plan)]
