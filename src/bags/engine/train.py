"""The training loop: SGD with warm-up, per-epoch checkpoints, resume, progress and a log CSV."""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import math
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader
from torchvision.models.detection import FasterRCNN
from tqdm import tqdm

from bags.data.dataset import DetectionDataset, collate
from bags.detector import classification_layer
from bags.engine.model_files import save_model
from bags.io import atomic_path

log = logging.getLogger(__name__)


AMP_DTYPES = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def pick_device(name: str = "auto") -> torch.device:
    """``auto``: the GPU when there is one, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


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
    trainable: str = "all"  # "all" or "classifier" (the last layer only, everything else frozen)
    hflip: bool = False
    amp: str = "none"  # mixed precision on a GPU: "none", "bf16" or "fp16"
    base_batch_size: int | None = None  # lr is for this batch; scaled linearly to the real one
    workers: int = 0  # data-loading processes
    seed: int = 0
    keep_checkpoints: int = 2
    extra: dict[str, Any] = field(default_factory=dict)  # recorded in checkpoints, not used

    def __post_init__(self) -> None:
        if self.schedule not in ("cosine", "step"):
            raise ValueError(f"schedule must be 'cosine' or 'step', got {self.schedule!r}")
        if self.trainable not in ("all", "classifier"):
            raise ValueError(f"trainable must be 'all' or 'classifier', got {self.trainable!r}")
        if self.amp not in AMP_DTYPES:
            raise ValueError(f"amp must be one of {sorted(AMP_DTYPES)}, got {self.amp!r}")

    def scaled_lr(self) -> float:
        """The linear scaling rule: lr x (batch size / base batch size)."""
        if self.base_batch_size is None:
            return self.lr
        return self.lr * self.batch_size / self.base_batch_size


def lr_factor(iteration: int, total: int, per_epoch: int, config: TrainConfig) -> float:
    """Linear warm-up from ``warmup_ratio``, then cosine to zero or steps of 0.1."""
    if iteration < config.warmup_iters:
        alpha = iteration / config.warmup_iters
        warm = config.warmup_ratio + (1 - config.warmup_ratio) * alpha
    else:
        warm = 1.0
    if config.schedule == "cosine":
        return warm * 0.5 * (1 + math.cos(math.pi * iteration / max(total, 1)))
    epoch = iteration // max(per_epoch, 1)
    return warm * 0.1 ** sum(epoch >= m for m in config.milestones)


def _trainable_parameters(model: FasterRCNN, trainable: str) -> list[torch.nn.Parameter]:
    if trainable == "all":
        return [p for p in model.parameters() if p.requires_grad]
    for p in model.parameters():
        p.requires_grad_(False)
    layer = classification_layer(model)
    for p in layer.parameters():
        p.requires_grad_(True)
    return list(layer.parameters())


def _set_mode(model: FasterRCNN, trainable: str) -> None:
    model.train()
    if trainable == "classifier":
        model.backbone.eval()  # frozen: batch-norm statistics stay as trained


def fingerprint(meta: dict[str, Any], config: TrainConfig) -> str:
    text = json.dumps({"meta": meta, "train": asdict(config)}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _latest_checkpoint(work_dir: Path) -> Path | None:
    found = sorted(work_dir.glob("epoch_*.pt"))
    return found[-1] if found else None


def train(
    model: FasterRCNN,
    dataset: DetectionDataset,
    config: TrainConfig,
    meta: dict[str, Any],
    out_model: Path,
    work_dir: Path,
    log_csv: Path,
    device: torch.device | None = None,
) -> None:
    """Train ``model`` and write ``out_model``; checkpoints in ``work_dir`` make reruns resume."""
    device = device or torch.device("cpu")
    model.to(device)
    params = _trainable_parameters(model, config.trainable)
    optimizer = torch.optim.SGD(
        params, lr=config.scaled_lr(), momentum=config.momentum, weight_decay=config.weight_decay
    )
    scaler = torch.amp.GradScaler(device.type, enabled=config.amp == "fp16")
    per_epoch = math.ceil(len(dataset) / config.batch_size)
    total = per_epoch * config.epochs
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda it: lr_factor(it, total, per_epoch, config)
    )
    stamp = fingerprint(meta, config)
    start_epoch, rows = _resume(work_dir, stamp, model, optimizer, scheduler, scaler)
    for epoch in range(start_epoch, config.epochs):
        torch.manual_seed(config.seed * 100_003 + epoch)  # data order, flips, "others" draws
        loader = DataLoader(
            dataset,
            batch_size=config.batch_size,
            shuffle=True,
            collate_fn=collate,
            num_workers=config.workers,
            pin_memory=device.type == "cuda",
        )
        rows.append(_one_epoch(model, loader, optimizer, scheduler, scaler, config, epoch, device))
        log.info(
            "epoch %d/%d: %s",
            epoch + 1,
            config.epochs,
            ", ".join(f"{k} {v:.4g}" for k, v in rows[-1].items() if k != "epoch"),
        )
        _save_checkpoint(work_dir, epoch, stamp, model, optimizer, scheduler, scaler, rows, config)
    _write_log(log_csv, rows)
    save_model(out_model, model.cpu(), meta)


def _one_epoch(
    model, loader, optimizer, scheduler, scaler, config, epoch, device
) -> dict[str, float]:
    _set_mode(model, config.trainable)
    sums: dict[str, float] = defaultdict(float)
    started = time.perf_counter()
    images_seen = 0
    bar = tqdm(loader, desc=f"epoch {epoch + 1}/{config.epochs}", leave=False, mininterval=2)
    dtype = AMP_DTYPES[config.amp]
    for images, targets in bar:
        images = [image.to(device, non_blocking=True) for image in images]
        targets = [{k: v.to(device) for k, v in target.items()} for target in targets]
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            losses = model(images, targets)
        if config.trainable == "classifier":
            loss = losses["loss_classifier"]
        else:
            loss = sum(losses.values())
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss became {loss.item()} in epoch {epoch + 1}")
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        for name, value in losses.items():
            sums[name] += value.item() * len(images)
        sums["loss"] += loss.item() * len(images)
        images_seen += len(images)
        bar.set_postfix(loss=f"{loss.item():.3f}")
    seconds = time.perf_counter() - started
    row = {"epoch": epoch + 1}
    row.update({name: total / max(images_seen, 1) for name, total in sorted(sums.items())})
    row.update(lr=optimizer.param_groups[0]["lr"], seconds=seconds)
    row["images_per_s"] = images_seen / max(seconds, 1e-9)
    return row


def _save_checkpoint(
    work_dir, epoch, stamp, model, optimizer, scheduler, scaler, rows, config
) -> None:
    state = {
        "epoch": epoch,
        "fingerprint": stamp,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict(),
        "rows": rows,
    }
    with atomic_path(work_dir / f"epoch_{epoch + 1:03d}.pt") as tmp:
        torch.save(state, tmp)
    for old in sorted(work_dir.glob("epoch_*.pt"))[: -config.keep_checkpoints]:
        old.unlink()


def _resume(work_dir, stamp, model, optimizer, scheduler, scaler) -> tuple[int, list[dict]]:
    checkpoint = _latest_checkpoint(work_dir)
    if checkpoint is None:
        return 0, []
    try:
        state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    except Exception as error:
        raise ValueError(
            f"{checkpoint}: unreadable checkpoint ({error}); delete it to start over"
        ) from error
    if state.get("fingerprint") != stamp:
        raise ValueError(
            f"{checkpoint}: made with another configuration or model (fingerprint "
            f"{state.get('fingerprint')} != {stamp}); delete {work_dir} to start over"
        )
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    scaler.load_state_dict(state["scaler"])
    log.info("resuming from %s (epoch %d done)", checkpoint, state["epoch"] + 1)
    return state["epoch"] + 1, list(state["rows"])


def _write_log(path: Path, rows: list[dict[str, float]]) -> None:
    columns = list(dict.fromkeys(k for row in rows for k in row))
    with atomic_path(path) as tmp, tmp.open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
