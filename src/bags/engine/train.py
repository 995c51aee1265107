"""The training loop: SGD with warm-up, per-epoch checkpoints, resume, progress and a log CSV."""

from __future__ import annotations

import bisect
import csv
import itertools
import json
import logging
import math
import signal
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader
from torchvision.models.detection import FasterRCNN
from tqdm import tqdm

from bags.builders import build_detector
from bags.classifiers import GroupSoftmaxClassifier
from bags.data.counts import read_counts
from bags.data.dataset import DetectionDataset, collate
from bags.data.download import sha256_file
from bags.detector import classification_layer, fresh_predictor, set_classifier
from bags.engine.checkpoints import (
    OtherRun,
    code_version,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from bags.engine.distributed import Workers, start_workers, stop_workers
from bags.engine.model_files import load_model, make_detector, save_model
from bags.groups import read_groups_file
from bags.io import atomic_path
from bags.methods import EpochImages, MethodSpec, TrainingStats
from bags.roi_heads import TORCHVISION_BOX_BETA
from bags.safe_load import one_line
from bags.values import MAX_SEED, is_int, is_number

log = logging.getLogger(__name__)


AMP_DTYPES = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}
AMP_CHOICES = (*AMP_DTYPES, "auto")
TRAINABLE = ("all", "box_head", "classifier")


def resolve_amp(amp: str, device: torch.device) -> str:
    """``auto``: bf16 where the device runs it faster than fp32, else none. On a CPU that means
    AMX tiles: without them oneDNN's bf16 is slower than fp32 (the small detector's training,
    oneDNN capped: 0.87x with AVX512-BF16, 0.12x with AVX2 only); on a GPU, bf16 support."""
    if amp != "auto":
        return amp
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "none"
    amx = getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)()
    return "bf16" if amx and torch.ops.mkldnn._is_mkldnn_bf16_supported() else "none"


def pick_device(name: str = "auto") -> torch.device:
    """``auto``: the GPU when there is one, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
        if device.type == "cuda":
            torch.empty(0, device=device)  # a GPU that is not there fails here, not mid-run
    except (RuntimeError, AssertionError) as error:
        raise ValueError(f"--device {name!r}: no such device here ({one_line(error)})") from error
    return device


@dataclass(frozen=True)
class TrainConfig:
    epochs: int
    batch_size: int = 16
    lr: float = 0.02
    momentum: float = 0.9
    weight_decay: float = 1e-4
    schedule: str = "cosine"  # "cosine" or "step"
    milestones: tuple[int, ...] = ()  # epochs after which "step" multiplies the lr by 0.1
    warmup_iters: int = 100
    warmup_ratio: float = 1 / 3
    # "all"; "box_head" (its two layers and the predictor); "classifier" (the last layer only)
    trainable: str = "all"
    hflip: bool = False
    amp: str = "none"  # mixed precision: "none", "bf16", "fp16" or "auto" (resolve_amp)
    base_batch_size: int | None = None  # lr is for this batch; scaled linearly to the real one
    workers: int = 0  # data-loading processes
    seed: int = 0
    keep_checkpoints: int = 2
    grad_clip: float | None = None  # largest total gradient norm (the reference: 35); None: off
    # Images per loss call (bags.loss_scope): the reference's images per GPU; None: the batch.
    loss_images: int | None = None
    group_orientation: bool = False  # a batch's images all landscape or all portrait
    rpn_allowed_border: float | None = None  # None: every anchor trains the RPN; 0: inside only
    box_loss_beta: float = TORCHVISION_BOX_BETA  # the box head's smooth L1 beta
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
        try:
            return cls(**settings)
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


def _trainable_parameters(model: FasterRCNN, trainable: str) -> list[torch.nn.Parameter]:
    if trainable == "all":
        return [p for p in model.parameters() if p.requires_grad]
    for p in model.parameters():
        p.requires_grad_(False)
    heads = model.roi_heads
    part = classification_layer(model) if trainable == "classifier" else heads
    for p in part.parameters():
        p.requires_grad_(True)
    return list(part.parameters())


def _set_mode(model: FasterRCNN, trainable: str) -> None:
    model.train()
    if trainable != "all":
        model.backbone.eval()  # frozen: batch-norm statistics stay as trained


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


def make_scheduler(
    optimizer: torch.optim.Optimizer, plan: list[list[list[int]]], config: TrainConfig
) -> torch.optim.lr_scheduler.LambdaLR:
    """The lr schedule of ``lr_factor`` over a training plan's steps."""
    starts = epoch_starts(plan)
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda it: lr_factor(it, starts[-1], bisect.bisect_right(starts, it) - 1, config),
    )


class StopRequest:
    """Turns SIGTERM (what Slurm sends before preemption) into a request to save and stop."""

    def __init__(self) -> None:
        self.requested = False
        self._previous = signal.signal(signal.SIGTERM, self._handle)

    def _handle(self, signum, frame) -> None:
        self.requested = True

    def close(self) -> None:
        signal.signal(signal.SIGTERM, self._previous)


class Stopped(Exception):
    """Training saved a checkpoint and stopped on request; rerunning resumes it."""


def train(
    model: FasterRCNN,
    dataset: DetectionDataset,
    config: TrainConfig,
    meta: dict[str, Any],
    out_model: Path,
    work_dir: Path,
    log_csv: Path,
    device: torch.device | None = None,
    epoch_images: EpochImages = None,
) -> None:
    """Train ``model`` and write ``out_model``; checkpoints in ``work_dir`` make reruns resume.

    Under ``torchrun`` every process trains on its share of each global batch of
    ``config.batch_size`` images; only the main process writes files. SIGTERM saves a
    checkpoint at the next step and raises ``Stopped``. ``epoch_images`` picks each epoch's
    images (a method's sampler); by default every image once.
    """
    workers = start_workers(device or torch.device("cpu"))
    plan = training_plan(len(dataset), config, epoch_images, dataset.landscape)
    apply_loss_settings(model, config)
    data = dataset.digest()
    try:
        _train(model, data, dataset, config, meta, out_model, work_dir, log_csv, workers, plan)
    finally:
        stop_workers(workers)


def apply_loss_settings(model: FasterRCNN, config: TrainConfig) -> None:
    """The settings of how the training losses are computed, on the RPN and the RoI heads."""
    model.rpn.loss_images = config.loss_images
    model.rpn.allowed_border = config.rpn_allowed_border
    model.roi_heads.loss_images = config.loss_images
    model.roi_heads.box_loss_beta = config.box_loss_beta


def _train(model, data, dataset, config, meta, out_model, work_dir, log_csv, workers, plan) -> None:
    share = config.batch_size // workers.world_size
    if config.batch_size % workers.world_size or share % (config.loss_images or 1):
        raise ValueError(
            f"batch_size {config.batch_size} must divide among {workers.world_size} processes"
            f" into shares of whole chunks of loss_images ({config.loss_images})"
        )
    run = _Run(model, config, meta, data, work_dir, workers, plan)
    stop = StopRequest()
    try:
        while run.step < run.starts[-1]:
            epoch = bisect.bisect_right(run.starts, run.step) - 1
            run.epoch(dataset, epoch, stop)
            if workers.any(stop.requested) and run.step < run.starts[-1]:
                raise Stopped(f"stopped on SIGTERM after epoch {epoch + 1}; rerun to resume")
    finally:
        stop.close()
    if workers.is_main:
        _write_log(log_csv, run.rows)
        save_model(out_model, model.cpu(), {**meta, "precision": run.amp})
    workers.barrier()


class _Run:
    """One training's state: the model, its optimizer, schedule and loss scaler, the step, the
    epoch log, and the running sums of the epoch under way; resumed from the last checkpoint.
    ``data``: the training set's digest (``DetectionDataset.digest``)."""

    def __init__(self, model, config: TrainConfig, meta, data, work_dir, workers: Workers, plan):
        self.model, self.config, self.work_dir = model, config, work_dir
        self.workers, self.plan, self.device = workers, plan, workers.device
        model.to(self.device)
        params = _trainable_parameters(model, config.trainable)
        self.optimizer = torch.optim.SGD(
            params,
            lr=config.scaled_lr(),
            momentum=config.momentum,
            weight_decay=config.weight_decay,
        )
        self.amp = resolve_amp(config.amp, self.device)
        log.info("mixed precision: %s", self.amp)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp == "fp16")
        self.starts = epoch_starts(plan)
        self.scheduler = make_scheduler(self.optimizer, plan, config)
        # What a resumed run must share with the checkpoint (not how data is loaded or kept);
        # the precision as resolved, so a run resumes only at the precision it began with.
        kept = ("workers", "keep_checkpoints")
        numerics = {k: v for k, v in asdict(config).items() if k not in kept}
        numerics["amp"] = self.amp
        self.settings = {
            "meta": meta,  # the model, its classifier and start model's digest
            "train": numerics,
            "world_size": workers.world_size,
            "data": data,
        }
        self.version = code_version()
        self.step, self.rows, self.partial = 0, [], None
        self._resume()
        self.net = model
        if workers.world_size > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)

    def _resume(self) -> None:
        checkpoint = latest_checkpoint(self.work_dir)
        if checkpoint is None:
            return
        expected = json.loads(json.dumps(self.settings, default=str))
        try:
            state = load_checkpoint(checkpoint, expected, self.version)
        except OtherRun as other:
            other_data = "data" in other.changed
            if not (other.finished or other_data):
                raise  # an interrupted run of another config: the user decides
            # The run that made it had ended (Snakemake reruns a finished job whose settings
            # or inputs changed), or trained on other data, which nothing may resume: this
            # one starts over.
            self.workers.barrier()
            if self.workers.is_main:
                for old in self.work_dir.glob("step_*.pt"):
                    old.unlink()
            self.workers.barrier()
            why = "trained on other data, discarded" if other_data else "by a run that had finished"
            log.warning("%s: %s, %s; starting over", other.path, other.reason, why)
            return
        try:
            self._take(state)
        except (KeyError, IndexError, TypeError, ValueError, RuntimeError, AttributeError) as error:
            # made by this code with these settings, yet not what it saves: a damaged file
            raise ValueError(
                f"{checkpoint}: its state does not fit this run ({one_line(error)}); "
                f"delete {self.work_dir} to start over"
            ) from error
        log.info("resuming from %s (step %d of %d)", checkpoint, self.step, self.starts[-1])

    def _take(self, state: dict) -> None:
        """The model, optimizer, schedule, scaler, step, log and partial sums of ``state``."""
        step, rows, partials = state["step"], state["rows"], state["partials"]
        if not (isinstance(rows, list) and all(isinstance(row, dict) for row in rows)):
            raise ValueError("'rows' is not a list of log rows")
        world = self.workers.world_size
        if partials is not None and not (isinstance(partials, list) and len(partials) == world):
            raise ValueError("'partials' has no entry for each process")
        partial = partials[self.workers.rank] if partials else None
        if partial is not None and not _is_partial(partial):
            raise ValueError("'partials' are not running sums of an epoch")
        # saved at the end of epoch len(rows), or within the epoch after it
        done, starts = len(rows), self.starts
        if not is_int(step):
            fits = False
        elif partial is None:
            fits = done < len(starts) and step == starts[done]
        else:
            fits = done + 1 < len(starts) and starts[done] < step < starts[done + 1]
        if not fits:
            raise ValueError(f"step {step!r} does not follow {done} logged epoch(s)")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.step, self.rows, self.partial = step, rows, partial

    def _save(self) -> None:
        _save(self.work_dir, self.step, self.settings, self.version, self.model, self.optimizer,
              self.scheduler, self.scaler, self.rows, self.partial, self.config,
              self.workers)  # fmt: skip

    def _loader(self, dataset, epoch: int, first: int):
        """This process's share of the epoch's batches from step ``first`` of the epoch."""
        share = self.config.batch_size // self.workers.world_size
        rank = self.workers.rank
        mine = [batch[rank * share : (rank + 1) * share] for batch in self.plan[epoch]]
        loader = DataLoader(
            dataset,
            batch_sampler=mine[first:],
            collate_fn=collate,
            num_workers=self.config.workers,
            pin_memory=self.device.type == "cuda",
            generator=torch.Generator(),  # keeps the loader off the global RNG
        )
        return tqdm(
            loader,
            desc=f"epoch {epoch + 1}/{self.config.epochs}",
            initial=first,
            total=len(self.plan[epoch]),
            leave=False,
            mininterval=2,
            disable=not self.workers.is_main,
        )

    def epoch(self, dataset, epoch: int, stop: StopRequest) -> None:
        """Train the rest of ``epoch``; on SIGTERM, save mid-epoch and raise ``Stopped``."""
        config, device, first = self.config, self.device, self.step - self.starts[epoch]
        if self.partial is None:
            torch.manual_seed(hash((config.seed, epoch, self.workers.rank)))
            self.partial = {"sums": {}, "images": 0, "seconds": 0.0}
        else:
            _restore_rng(self.partial, device)
        partial = self.partial
        dataset.set_epoch(config.seed, epoch)  # the flips of an epoch, whoever loads it
        bar = self._loader(dataset, epoch, first)
        _set_mode(self.model, config.trainable)
        started = time.perf_counter()
        for images, targets in bar:
            losses = _step(self.net, images, targets, self.optimizer, self.scheduler,
                           self.scaler, config, self.amp, device)  # fmt: skip
            self.step += 1
            for name, value in losses.items():
                partial["sums"][name] = partial["sums"].get(name, 0.0) + value * len(images)
            partial["images"] += len(images)
            bar.set_postfix(loss=f"{losses['loss']:.3f}")
            if self.workers.any(stop.requested) and self.step < self.starts[epoch + 1]:
                partial["seconds"] += time.perf_counter() - started
                _keep_rng(partial, device)
                self._save()
                raise Stopped(f"stopped on SIGTERM at step {self.step}; rerun to resume")
        partial["seconds"] += time.perf_counter() - started
        self.rows.append(_epoch_row(epoch, partial, self.optimizer, self.workers))
        summary = ", ".join(f"{k} {v:.4g}" for k, v in self.rows[-1].items() if k != "epoch")
        log.info("epoch %d/%d: %s", epoch + 1, config.epochs, summary)
        self.partial = None
        self._save()


def _step(
    net, images, targets, optimizer, scheduler, scaler, config, amp, device
) -> dict[str, float]:
    images = [image.to(device, non_blocking=True) for image in images]
    targets = [{k: v.to(device) for k, v in target.items()} for target in targets]
    dtype = AMP_DTYPES[amp]
    with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
        losses = net(images, targets)
    # Only the losses that have a trainable parameter behind them.
    if config.trainable == "classifier":
        loss = losses["loss_classifier"]
    elif config.trainable == "box_head":
        loss = losses["loss_classifier"] + losses["loss_box_reg"]
    else:
        loss = sum(losses.values())
    if not torch.isfinite(loss):
        raise ValueError(f"the training loss became {loss.item()}; lower the lr or check the data")
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    if config.grad_clip is not None:
        scaler.unscale_(optimizer)  # clip the true gradients, as mmdetection's optimizer hook does
        params = [p for group in optimizer.param_groups for p in group["params"]]
        torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
    scaler.step(optimizer)
    scaler.update()
    scheduler.step()
    values = {name: value.item() for name, value in losses.items()}
    values["loss"] = loss.item()
    return values


def _keep_rng(partial: dict, device: torch.device) -> None:
    """This process's random state (RoI and "others" sampling draw from it) into ``partial``."""
    partial["rng"] = torch.get_rng_state()
    if device.type == "cuda":
        partial["cuda_rng"] = torch.cuda.get_rng_state(device)


def _is_partial(partial: Any) -> bool:
    """Whether a checkpoint's ``partial`` is what ``_keep_rng`` and the step loop keep."""
    return (
        isinstance(partial, dict)
        and isinstance(partial.get("sums"), dict)
        and all(is_number(value) for value in partial["sums"].values())
        and is_int(partial.get("images"))
        and is_number(partial.get("seconds"))
        and isinstance(partial.get("rng"), torch.Tensor)
        and partial["rng"].dtype == torch.uint8
    )


def _restore_rng(partial: dict, device: torch.device) -> None:
    torch.set_rng_state(partial["rng"])
    if device.type == "cuda" and "cuda_rng" in partial:
        torch.cuda.set_rng_state(partial["cuda_rng"], device)


def _epoch_row(epoch, partial, optimizer, workers: Workers) -> dict[str, float]:
    names = sorted(partial["sums"])
    totals = workers.sum([partial["sums"][n] for n in names] + [partial["images"]])
    images = max(totals[-1], 1)
    row: dict[str, float] = {"epoch": epoch + 1}
    row.update({name: total / images for name, total in zip(names, totals)})
    row.update(lr=optimizer.param_groups[0]["lr"], seconds=partial["seconds"])
    row["images_per_s"] = totals[-1] / max(partial["seconds"], 1e-9)
    return row


def _save(
    work_dir,
    step,
    settings,
    version,
    model,
    optimizer,
    scheduler,
    scaler,
    rows,
    partial,
    config,
    workers: Workers,
) -> None:
    partials = None if partial is None else workers.gather(partial)
    if workers.is_main:
        state = {
            "step": step,
            "settings": json.loads(json.dumps(settings, default=str)),
            "code_version": version,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict(),
            "rows": rows,
            "partials": partials,  # per process, for a mid-epoch stop
        }
        save_checkpoint(work_dir, step, state, config.keep_checkpoints)
    workers.barrier()


def _write_log(path: Path, rows: list[dict[str, float]]) -> None:
    columns = list(dict.fromkeys(k for row in rows for k in row))
    with atomic_path(path) as tmp, tmp.open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def start_model(
    start: Path | None, arch: dict, num_classes: int, seed: int
) -> tuple[FasterRCNN, dict[str, Any]]:
    """Where a row starts: the architecture's initial weights (no ``start``), or a trained
    model; one trained on other classes gets a fresh box predictor, as the reference's start
    from COCO does."""
    torch.manual_seed(seed)
    if start is None:
        return build_detector(arch, num_classes), {"arch": arch, "num_classes": num_classes}
    model, meta = load_model(start)
    if meta["num_classes"] != num_classes:
        fresh_predictor(model, num_classes)
    # Checkpoints record which model they went on from: a retrained start restarts them.
    return model, {"arch": meta["arch"], "num_classes": num_classes, "start": sha256_file(start)}


def method_classifier(spec: MethodSpec, stats: TrainingStats, groups_file: Path | None):
    """The method's classification rule; BAGS takes its groups and beta from the groups file."""
    if spec.loss != "bags":
        return spec.classifier(stats)
    if spec.loss_options:
        raise ValueError("BAGS takes its groups and beta from its groups file: no 'loss_options'")
    if groups_file is None:
        raise ValueError("a BAGS method needs its groups file (--groups-file)")
    ids = stats.category_ids or list(range(1, stats.num_classes + 1))
    try:
        groups, beta = read_groups_file(Path(groups_file).read_text(), ids)
    except ValueError as error:
        raise ValueError(f"{groups_file}: {error}") from error
    return GroupSoftmaxClassifier(groups, beta)


def train_job(
    annotations: Path,
    images: Path,
    counts: Path,
    arch: dict,
    settings: dict,
    method: dict,
    out: Path,
    epoch_log: Path,
    work_dir: Path,
    start: Path | None = None,
    groups_file: Path | None = None,
    data_options: dict | None = None,
    device: str = "auto",
) -> None:
    """Train one row's model from where it starts; rerunning resumes from ``work_dir``."""
    config = TrainConfig.from_dict(settings)
    spec = MethodSpec.from_dict(method)
    dataset = DetectionDataset(annotations, images, config.hflip, **(data_options or {}))
    stats = TrainingStats.from_dataset(dataset, read_counts(counts))
    model, meta = start_model(start, arch, dataset.num_classes, config.seed)
    classifier = method_classifier(spec, stats, groups_file)
    torch.manual_seed(config.seed)  # a fresh last layer starts the same way on any path
    model = set_classifier(model, classifier, spec.new_layer)
    meta = {**meta, **classifier.meta(), "method": asdict(spec)}
    meta["category_ids"] = dataset.category_ids  # what its classes 1..C are
    make_detector(meta)  # fail now, not after training, if meta cannot be rebuilt
    target = pick_device(device)
    log.info("training on %s, lr %.4g for batch %d", target, config.scaled_lr(), config.batch_size)
    try:
        train(
            model, dataset, config, meta, out, work_dir, epoch_log, target, spec.epoch_images(stats)
        )
    except Stopped as stopped:
        log.warning("%s", stopped)
        raise SystemExit(143) from None  # 128 + SIGTERM, as if the signal had ended it
