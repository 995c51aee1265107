"""One training's settings (``TrainConfig``) and its learning-rate schedule."""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field
from typing import Any

import torch

from bags.engine.device import AMP_CHOICES
from bags.engine.plan import epoch_starts
from bags.schema import defaults
from bags.values import MAX_SEED, is_int, is_number

TRAINABLE = ("all", "box_head", "classifier")


@dataclass(frozen=True)
class TrainConfig:
    """One training's settings. The schedule's fields and their meaning are the config
    schema's (``definitions.schedule``); ``from_dict`` takes its defaults from there. The rule
    adds ``trainable`` (its method's ``train``) and ``seed``."""

    epochs: int
    batch_size: int
    lr: float
    momentum: float
    weight_decay: float
    schedule: str  # "cosine" or "step"
    milestones: tuple[int, ...]  # epochs after which "step" multiplies the lr by 0.1
    warmup_iters: int
    warmup_ratio: float
    hflip: bool
    amp: str  # mixed precision: "none", "bf16", "fp16" or "auto" (bags.engine.device)
    base_batch_size: int | None  # lr is for this batch; scaled linearly to the real one
    workers: int  # data-loading processes
    keep_checkpoints: int
    grad_clip: float | None  # largest total gradient norm; None: off
    loss_images: int | None  # images per loss call (bags.loss_scope); None: the batch
    group_orientation: bool  # a batch's images all landscape or all portrait
    rpn_allowed_border: float | None  # None: every anchor trains the RPN; 0: inside only
    box_loss_beta: float  # the box head's smooth L1 beta
    # "all"; "box_head" (its two layers and the predictor); "classifier" (the last layer only)
    trainable: str = "all"
    seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)  # recorded in checkpoints, not used

    def __post_init__(self) -> None:
        if self.schedule not in ("cosine", "step"):
            raise ValueError(f"schedule must be 'cosine' or 'step', got {self.schedule!r}")
        if self.trainable not in TRAINABLE:
            raise ValueError(f"trainable must be one of {TRAINABLE}, got {self.trainable!r}")
        if not isinstance(self.amp, str) or self.amp not in AMP_CHOICES:
            raise ValueError(f"amp must be one of {sorted(AMP_CHOICES)}, got {self.amp!r}")
        _check_settings(self)

    @classmethod
    def from_dict(cls, settings: dict[str, Any]) -> TrainConfig:
        """The settings given, the schema's schedule defaults for the rest."""
        try:
            return cls(**{**defaults("schedule", definition=True), **settings})
        except TypeError as error:
            raise ValueError(f"training settings: {error}") from error

    def scaled_lr(self) -> float:
        """The linear scaling rule: lr x (batch size / base batch size)."""
        if self.base_batch_size is None:
            return self.lr
        return self.lr * self.batch_size / self.base_batch_size


# Integer settings and their least value; real ones and their range (lr also > 0).
_INTEGERS = {"epochs": 1, "batch_size": 1, "warmup_iters": 0, "workers": 0, "keep_checkpoints": 1}
_REALS = {
    "lr": (0, math.inf),
    "momentum": (0, 1),
    "weight_decay": (0, math.inf),
    "warmup_ratio": (0, 1),
}


def _check_settings(config: TrainConfig) -> None:
    """One clear error for a setting of the wrong kind or out of range."""

    def fail(key: str, expected: str) -> ValueError:
        return ValueError(
            f"training setting {key!r} must be {expected}, got {getattr(config, key)!r}"
        )

    for key, least in _INTEGERS.items():
        value = getattr(config, key)
        if not is_int(value) or value < least:
            raise fail(key, f"an integer >= {least}")
    for key, (low, high) in _REALS.items():
        value = getattr(config, key)
        if not (is_number(value) and low <= value <= high) or (key == "lr" and value == 0):
            raise fail(key, f"a number in [{low}, {high}]" + (", not 0" if key == "lr" else ""))
    if not (is_int(config.seed) and 0 <= config.seed <= MAX_SEED):
        raise fail("seed", f"an integer from 0 to {MAX_SEED}")
    if config.base_batch_size is not None and not (
        is_int(config.base_batch_size) and config.base_batch_size >= 1
    ):
        raise fail("base_batch_size", "an integer >= 1")
    if not isinstance(config.milestones, list | tuple) or not all(
        is_int(m) and 1 <= m <= config.epochs for m in config.milestones
    ):
        raise fail("milestones", f"a list of epochs from 1 to {config.epochs}")
    if config.grad_clip is not None and not (is_number(config.grad_clip) and config.grad_clip > 0):
        raise fail("grad_clip", "a number > 0, or null")
    for key in ("hflip", "group_orientation"):
        if not isinstance(getattr(config, key), bool):
            raise fail(key, "true or false")
    if config.loss_images is not None and not (
        is_int(config.loss_images) and config.loss_images >= 1
    ):
        raise fail("loss_images", "an integer >= 1, or null")
    if config.batch_size % (config.loss_images or 1):
        raise fail("batch_size", f"a multiple of loss_images ({config.loss_images})")
    border = config.rpn_allowed_border
    if border is not None and not (is_number(border) and border >= 0):
        raise fail("rpn_allowed_border", "a number >= 0, or null")
    beta = config.box_loss_beta
    if not (is_number(beta) and beta > 0):
        raise fail("box_loss_beta", "a number > 0")
    if not isinstance(config.extra, dict):
        raise fail("extra", "an object")


def lr_factor(iteration: int, total: int, epoch: int, config: TrainConfig) -> float:
    """Linear warm-up from ``warmup_ratio``, then cosine to zero or steps of 0.1 (``epoch``:
    the 0-based epoch that ``iteration`` falls in)."""
    if iteration < config.warmup_iters:
        alpha = iteration / config.warmup_iters
        warm = config.warmup_ratio + (1 - config.warmup_ratio) * alpha
    else:
        warm = 1.0
    if config.schedule == "cosine":
        return warm * 0.5 * (1 + math.cos(math.pi * iteration / max(total, 1)))
    return warm * 0.1 ** sum(epoch >= m for m in config.milestones)


def make_scheduler(
    optimizer: torch.optim.Optimizer, plan: list[list[list[int]]], config: TrainConfig
) -> torch.optim.lr_scheduler.LambdaLR:
    """The lr schedule of ``lr_factor`` over a training plan's steps."""
    starts = epoch_starts(plan)
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda it: lr_factor(it, starts[-1], bisect.bisect_right(starts, it) - 1, config),
    )
