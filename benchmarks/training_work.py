"""The training work of a config's DAG, and the ratio of two configs' work, side by side.

    python benchmarks/training_work.py [--config FILE ...] [--against FILE ...] [--seed K]

By default the default experiment (config.yaml) against the earlier, larger default
(config.yaml configs/large.yaml). Each config's DAG is planned by a Snakemake dry run in a
temporary copy of the workflow; its datasets, counts and groups files are made there (seconds
for a synthetic set). For every planned training of one seed the script prints its image passes
(the images its sampler chooses, epoch after epoch, as the training loop batches them) and the
FLOPs of one training image, measured with ``torch.utils.flop_counter`` on one training step of
that training's model (its architecture, classes, classification layer and trained part) on the
dataset's first images. A classifier-level row on cached features trains its last layer on
the RoIs it samples per image; the cache it reads is one forward pass over the training and val
images, counted as a line of its own. Work = passes x FLOPs per image; the last lines give each
DAG's total and the ratio of the two. FLOPs, not seconds: the figures are the same on any
machine.
"""

from __future__ import annotations

import argparse
import itertools
import json
import shlex
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parents[1]
FLOP_BATCH = 8  # images in the step whose FLOPs are counted


@dataclass
class Training:
    run: str  # dataset/method, as the run folder names it
    passes: int  # training images visited, epoch after epoch
    flops_per_image: float

    @property
    def work(self) -> float:
        return self.passes * self.flops_per_image


def planned_calls(dry_run: str, subcommand: str) -> list[dict[str, str]]:
    """Each planned ``bags <subcommand>`` call's options, ``{"--flag": value}``."""
    calls = []
    for line in dry_run.splitlines():
        if f"bags {subcommand} " in line:
            words = shlex.split(line.split("Shell command:", 1)[-1].split(" 2> ")[0])
            words = words[words.index(subcommand) + 1 :]
            calls.append(dict(itertools.pairwise(words)))
    return calls


def run_name(path: str) -> str:
    """``dataset/method`` of a run file path (``.../runs/longtail/bags/seed0/model.pt``)."""
    return path.split("/runs/")[1].rsplit("/", 2)[0]


def seed_of(path: str) -> int:
    return int(path.rsplit("/seed", 1)[1].split("/")[0])


def snakemake(workdir: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", "2", *args],
        cwd=workdir,
        capture_output=True,
        text=True,
    )
    if done.returncode:
        raise SystemExit(f"snakemake {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def plan_and_data(configs: list[str], workdir: Path) -> str:
    """The dry run of ``configs`` in a copy of the workflow, and the data files it plans."""
    for name in ("Snakefile", "config.yaml"):
        shutil.copy(ROOT / name, workdir / name)
    for name in ("workflow", "configs", "envs"):
        shutil.copytree(ROOT / name, workdir / name)
    for config in configs:  # a config outside the repository travels with it
        target = workdir / Path(config).name
        if not (workdir / config).exists():
            shutil.copy(Path(config).resolve(), target)
    files = [c if (workdir / c).exists() else Path(c).name for c in configs]
    layers = ("--configfile", *files) if files else ()
    dry_run = snakemake(workdir, *layers, "--dry-run", "--printshellcmds")
    made = [call["--out"] for call in planned_calls(dry_run, "count")]
    made += [call["--out"] for call in planned_calls(dry_run, "groups")]
    snakemake(workdir, *layers, "--quiet", "all", "--", *made)
    return dry_run


def step_flops(model, images, targets, trainable: str) -> float:
    """FLOPs of one training step (forward and backward) on the trained part, per image."""
    from bags.engine.train import _set_mode, _trainable_parameters

    params = _trainable_parameters(model, trainable)
    _set_mode(model, trainable)
    with FlopCounterMode(display=False) as counter:
        losses = model(images, targets)
        loss = {
            "classifier": losses["loss_classifier"],
            "box_head": losses["loss_classifier"] + losses["loss_box_reg"],
        }.get(trainable, sum(losses.values()))
        loss.backward()
    for p in params:
        p.grad = None
    return counter.get_total_flops() / len(images)


def training_work(call: dict[str, str], workdir: Path) -> Training:
    """One planned ``bags train``: its image passes and its FLOPs per training image."""
    from bags.data.counts import read_counts
    from bags.data.dataset import DetectionDataset, collate
    from bags.detector import set_classifier
    from bags.engine.plan import training_plan
    from bags.engine.settings import TrainConfig
    from bags.engine.train_job import start_model
    from bags.methods import MethodSpec
    from bags.training_stats import TrainingStats

    config = TrainConfig.from_dict(json.loads(call["--settings"]))
    spec = MethodSpec.from_dict(json.loads(call["--method"]))
    dataset = DetectionDataset(workdir / call["--annotations"], workdir / call["--images"])
    stats = TrainingStats.from_dataset(dataset, read_counts(workdir / call["--counts"]))
    plan = training_plan(len(dataset), config, spec.epoch_images(stats))
    passes = sum(len(batch) for batches in plan for batch in batches)
    model, _ = start_model(None, json.loads(call["--arch"]), dataset.num_classes, 0)
    groups = call.get("--groups-file")
    classifier = spec.classifier(stats, workdir / groups if groups else None)
    set_classifier(model, classifier, True)
    images, targets = collate([dataset[i] for i in range(min(FLOP_BATCH, len(dataset)))])
    flops = step_flops(model, list(images), list(targets), config.trainable)
    return Training(run_name(call["--out-model" if "--out-model" in call else "--out"]), passes,
                    flops)  # fmt: skip


def head_work(call: dict[str, str], workdir: Path, arch: dict, dataset_path: Path) -> Training:
    """One planned ``bags head``: its last layer trained on the RoIs it samples per image."""
    from bags.data.counts import read_counts
    from bags.data.dataset import DetectionDataset
    from bags.detector import classification_layer, set_classifier
    from bags.engine.plan import training_plan
    from bags.engine.settings import TrainConfig
    from bags.engine.train_job import start_model
    from bags.methods import MethodSpec
    from bags.training_stats import TrainingStats

    config = TrainConfig.from_dict(json.loads(call["--settings"]))
    spec = MethodSpec.from_dict(json.loads(call["--method"]))
    dataset = DetectionDataset(dataset_path / "train.json", dataset_path / "images")
    stats = TrainingStats.from_dataset(dataset, read_counts(workdir / call["--counts"]))
    plan = training_plan(len(dataset), config, spec.epoch_images(stats))
    passes = sum(len(batch) for batches in plan for batch in batches)
    model, _ = start_model(None, arch, dataset.num_classes, 0)
    groups = call.get("--groups-file")
    set_classifier(model, spec.classifier(stats, workdir / groups if groups else None), True)
    layer = classification_layer(model)
    rois = model.roi_heads.fg_bg_sampler.batch_size_per_image * FLOP_BATCH
    features = torch.randn(rois, layer.in_features)
    labels = torch.randint(0, dataset.num_classes + 1, (rois,))
    with FlopCounterMode(display=False) as counter:
        model.roi_heads.classifier.loss(layer(features), labels).backward()
    return Training(run_name(call["--out-model"]), passes,
                    counter.get_total_flops() / FLOP_BATCH)  # fmt: skip


def cache_work(call: dict[str, str], workdir: Path, arch: dict) -> Training:
    """The feature cache: one forward pass (no gradients) over the training and val images."""
    from bags.data.dataset import DetectionDataset, collate
    from bags.engine.train_job import start_model

    train = DetectionDataset(workdir / call["--train"], workdir / call["--images"])
    val = DetectionDataset(workdir / call["--val"], workdir / call["--images"])
    model, _ = start_model(None, arch, train.num_classes, 0)
    model.train()
    model.backbone.eval()
    images, targets = collate([train[i] for i in range(min(FLOP_BATCH, len(train)))])
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(list(images), list(targets))
    return Training("longtail/feature cache", len(train) + len(val),
                    counter.get_total_flops() / len(images))  # fmt: skip


def dag_work(configs: list[str], seed: int | None) -> tuple[str, list[Training]]:
    """Every training of one seed of the DAG ``configs`` plan (the first seed by default)."""
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        dry_run = plan_and_data(configs, workdir)
        trains = planned_calls(dry_run, "train")
        seeds = sorted({seed_of(c["--out"]) for c in trains})
        chosen = seeds[0] if seed is None else seed
        if chosen not in seeds:
            raise SystemExit(f"{configs}: no trainings of seed {chosen} (seeds {seeds})")
        rows = [training_work(c, workdir) for c in trains if seed_of(c["--out"]) == chosen]
        arch = json.loads(trains[0]["--arch"])
        for call in planned_calls(dry_run, "cache"):
            if f"/seed{chosen}/" in call["--model-file"]:
                rows.append(cache_work(call, workdir, arch))
                train = Path(call["--train"]).parent
        for call in planned_calls(dry_run, "head"):
            if seed_of(call["--out-model"]) == chosen:
                rows.append(head_work(call, workdir, arch, workdir / train))
        experiment = dry_run.split("/runs/")[0].rsplit("results/", 1)[1]
    return experiment, rows


def print_work(label: str, rows: list[Training]) -> float:
    print(f"\n### {label}\n")
    print("| training | image passes | GFLOP per image | work (GFLOP) |")
    print("| --- | ---: | ---: | ---: |")
    for row in sorted(rows, key=lambda r: -r.work):
        cells = [row.run, f"{row.passes:,}", f"{row.flops_per_image / 1e9:.4f}",
                 f"{row.work / 1e9:,.1f}"]  # fmt: skip
        print("| " + " | ".join(cells) + " |")
    total = sum(row.work for row in rows)
    print(f"| **total** | | | **{total / 1e9:,.1f}** |")
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", nargs="*", default=["config.yaml"],
                        help="config files, layered in order (default: config.yaml)")  # fmt: skip
    parser.add_argument("--against", nargs="*", default=["config.yaml", "configs/large.yaml"],
                        help="the config files to compare with")  # fmt: skip
    parser.add_argument("--seed", type=int, help="the seed whose trainings count (the first)")
    args = parser.parse_args()
    torch.manual_seed(0)
    totals = []
    for configs in (args.config, args.against):
        experiment, rows = dag_work(configs, args.seed)
        totals.append(print_work(f"{experiment} ({' '.join(configs)})", rows))
    print(f"\nwork ratio: {totals[0] / 1e9:,.1f} / {totals[1] / 1e9:,.1f} GFLOP = "
          f"**{totals[0] / totals[1]:.3f}**")  # fmt: skip


if __name__ == "__main__":
    main()
