"""The training loop: SGD with warm-up, per-epoch checkpoints, resume, progress and a log CSV."""

from __future__ import annotations

import bisect
import csv
import json
import logging
import signal
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader
from torchvision.models.detection import FasterRCNN
from tqdm import tqdm

from bags.data.dataset import DetectionDataset, collate
from bags.detector import classification_layer
from bags.engine.checkpoints import (
    OtherRun,
    code_version,
    is_partial,
    keep_rng,
    latest_checkpoint,
    load_checkpoint,
    restore_rng,
    save_checkpoint,
)
from bags.engine.device import AMP_DTYPES, resolve_amp
from bags.engine.distributed import Workers, start_workers, stop_workers
from bags.engine.model_files import save_model
from bags.engine.plan import epoch_starts, training_plan
from bags.engine.settings import TrainConfig, make_scheduler
from bags.io import atomic_path
from bags.methods import EpochImages
from bags.safe_load import one_line
from bags.values import is_int

log = logging.getLogger(__name__)


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
        if partial is not None and not is_partial(partial):
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
            restore_rng(self.partial, device)
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
                keep_rng(partial, device)
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
