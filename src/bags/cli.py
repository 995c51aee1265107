"""``python -m bags <command>``: one command per pipeline step, every path explicit."""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import sys
from pathlib import Path

log = logging.getLogger("bags")


def _json(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise argparse.ArgumentTypeError(f"not JSON: {error}") from error
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("expected a JSON object")
    return value


def _named(text: str) -> tuple[str, Path]:
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"expected NAME=PATH, got {text!r}")
    return name, Path(path)


def _named_text(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name, value


def cmd_synthesize(args: argparse.Namespace) -> None:
    from bags.data.synthetic import SyntheticSpec, generate

    try:
        spec = SyntheticSpec(**args.spec)
    except TypeError as error:
        raise ValueError(f"synthetic dataset spec: {error}") from error
    generate(spec, args.out)


def cmd_count(args: argparse.Namespace) -> None:
    from bags.data.counts import count_instances
    from bags.io import atomic_path

    table = count_instances(args.annotations, args.on_bad)
    with atomic_path(args.out) as tmp:
        table.to_csv(tmp, index=False)


def cmd_groups(args: argparse.Namespace) -> None:
    from bags.data.counts import read_counts
    from bags.groups import assign_groups
    from bags.io import write_text_atomic

    counts = read_counts(args.counts)
    groups = assign_groups(counts["instance_count"].tolist(), args.edges)
    document = json.loads(groups.to_json())
    document["beta"] = args.beta
    document["category_ids"] = counts["category_id"].tolist()
    write_text_atomic(args.out, json.dumps(document, indent=1))
    log.info(
        "%d classes in groups of %s: %d logits", groups.num_classes, groups.sizes, groups.num_logits
    )


def training_stats(dataset, counts_file: Path | None):
    """The method's view of the training set; instance counts from ``counts_file`` (what the
    groups are made from) when given, else counted from the dataset's boxes."""
    from bags.methods import TrainingStats

    image_classes = [labels.tolist() for _, labels in dataset.targets]
    if counts_file is None:
        instance_counts = [0] * dataset.num_classes
        for classes in image_classes:
            for c in classes:
                instance_counts[c - 1] += 1
    else:
        from bags.data.counts import read_counts

        counts = read_counts(counts_file)
        if counts["category_id"].tolist() != [c["id"] for c in dataset.categories]:
            raise ValueError(
                f"{counts_file}: made for other categories than {dataset.annotation_file}"
            )
        instance_counts = counts["instance_count"].tolist()
    return TrainingStats.from_images(instance_counts, image_classes)


def cmd_train(args: argparse.Namespace) -> None:
    from dataclasses import asdict

    import torch

    from bags.builders import build_detector
    from bags.data.dataset import DetectionDataset
    from bags.data.download import sha256_file
    from bags.detector import set_classifier
    from bags.engine.model_files import load_model, make_detector
    from bags.engine.train import Stopped, TrainConfig, pick_device, train
    from bags.methods import MethodSpec, scoring_meta

    torch.set_num_threads(args.threads)
    config = TrainConfig.from_dict(args.train)
    method = MethodSpec.from_dict(args.method)
    dataset = DetectionDataset(
        args.annotations, args.images, config.hflip, args.on_bad, args.image_paths
    )
    stats = training_stats(dataset, args.counts)
    if args.init is not None:
        model, meta = load_model(args.init)
        if meta["num_classes"] != dataset.num_classes:
            raise ValueError(
                f"{args.init}: has {meta['num_classes']} classes, {args.annotations} has "
                f"{dataset.num_classes}"
            )
        # Checkpoints record which model they went on from: a retrained baseline restarts them.
        meta = {**meta, "init_sha256": sha256_file(args.init)}
    else:
        torch.manual_seed(config.seed)
        model = build_detector(args.arch, dataset.num_classes, args.pretrained)
        meta = {"arch": args.arch, "num_classes": dataset.num_classes}
    classifier = method.classifier(stats)
    torch.manual_seed(config.seed)  # a fresh last layer starts the same way on any path
    model = set_classifier(model, classifier, method.new_layer)
    meta = {**meta, **scoring_meta(classifier), "method": asdict(method)}
    make_detector(meta)  # fail now, not after training, if meta cannot be rebuilt
    device = pick_device(args.device)
    log.info("training on %s, lr %.4g for batch %d", device, config.scaled_lr(), config.batch_size)
    try:
        train(
            model,
            dataset,
            config,
            meta,
            args.out,
            args.work_dir,
            args.epoch_log,
            device,
            method.epoch_images(stats),
        )
    except Stopped as stopped:
        log.warning("%s", stopped)
        raise SystemExit(143) from None  # 128 + SIGTERM, as if the signal had ended it


def cmd_cache(args: argparse.Namespace) -> None:
    import random

    import torch

    from bags.data.annotations import load_annotations
    from bags.data.dataset import DetectionDataset
    from bags.engine.feature_cache import save_features, scoring_features, training_features
    from bags.engine.model_files import load_model
    from bags.io import write_text_atomic

    torch.set_num_threads(args.threads)
    model, _ = load_model(args.model)
    options = {"on_bad": args.on_bad, "image_paths": args.image_paths}
    train = DetectionDataset(args.annotations, args.images, **options)
    save_features(training_features(model, train, args.batch_size), args.out_dir / "train.pt")
    val = DetectionDataset(args.val, args.images, **options)
    save_features(scoring_features(model, val, args.batch_size), args.out_dir / "val.pt")
    # A fixed share of the training images on which post-hoc settings are chosen (never val).
    data = load_annotations(args.annotations, args.on_bad, keep_segmentation=False)
    ids = sorted(image["id"] for image in data["images"])
    count = max(1, round(args.heldout * len(ids)))
    chosen = set(random.Random(args.seed).sample(ids, count))
    data["images"] = [image for image in data["images"] if image["id"] in chosen]
    data["annotations"] = [a for a in data["annotations"] if a["image_id"] in chosen]
    write_text_atomic(args.out_dir / "heldout.json", json.dumps(data))
    heldout = DetectionDataset(args.out_dir / "heldout.json", args.images, **options)
    save_features(scoring_features(model, heldout, args.batch_size), args.out_dir / "heldout.pt")


def cmd_head(args: argparse.Namespace) -> None:
    import pandas as pd
    import torch

    from bags.data.counts import read_counts
    from bags.detector import classification_layer, set_classifier
    from bags.engine.feature_cache import load_features
    from bags.engine.head import (
        choose_tau,
        class_mean_layer,
        fit_layer,
        score_cached,
        write_records,
    )
    from bags.engine.model_files import load_model, make_detector, save_model
    from bags.engine.train import TrainConfig
    from bags.io import atomic_path
    from bags.methods import MethodSpec, TrainingStats, scoring_meta
    from bags.posthoc import tau_normalize

    torch.set_num_threads(args.threads)
    config = TrainConfig.from_dict(args.train)
    method = MethodSpec.from_dict(args.method)
    model, meta = load_model(args.baseline, args.score_thresh, args.max_dets)
    counts = read_counts(args.counts)
    if len(counts) != meta["num_classes"]:
        raise ValueError(
            f"{args.counts}: {len(counts)} classes, the model has {meta['num_classes']}"
        )
    category_of = dict(enumerate(counts["category_id"].tolist(), start=1))
    train = load_features(args.cache_dir / "train.pt")
    rows: list[dict] = []
    kind = args.posthoc.get("kind", "none")
    if kind == "none":
        stats = TrainingStats.from_images(counts["instance_count"].tolist(), train.image_classes)
        classifier = method.classifier(stats)
        torch.manual_seed(config.seed)
        set_classifier(model, classifier, method.new_layer, args.score_thresh, args.max_dets)
        sampler = model.roi_heads.fg_bg_sampler
        rows = fit_layer(
            classification_layer(model), classifier, train, sampler, config,
            method.epoch_images(stats),
        )  # fmt: skip
        meta = {**meta, **scoring_meta(classifier), "method": args.method}
    elif kind == "ncm":
        model.roi_heads.box_predictor.cls_score = class_mean_layer(train, meta["num_classes"])
        meta = {**meta, "classifier": "softmax", "posthoc": args.posthoc}
    elif kind == "tau_norm":
        original = classification_layer(model)
        tau, rows = choose_tau(
            model,
            load_features(args.cache_dir / "heldout.pt"),
            args.cache_dir / "heldout.json",
            args.posthoc.get("taus", [0.0, 0.5, 1.0, 1.5, 2.0]),
            category_of,
            dict(zip(counts["category_id"], counts["instance_count"])),
            args.edges,
            args.max_dets,
        )
        model.roi_heads.box_predictor.cls_score = tau_normalize(original, tau)
        meta = {**meta, "classifier": "softmax", "posthoc": {**args.posthoc, "tau": tau}}
    else:
        raise ValueError(f"unknown post-hoc method {kind!r}; known: none, ncm, tau_norm")
    make_detector(meta)
    save_model(args.out_model, model, meta)
    with atomic_path(args.out_log) as tmp:
        pd.DataFrame(rows, columns=list(rows[0]) if rows else ["epoch"]).to_csv(tmp, index=False)
    val = load_features(args.cache_dir / "val.pt")
    write_records(score_cached(model, val, category_of), args.out_detections)
    _write_norms(model, meta, counts, args.out_norms)


def cmd_infer(args: argparse.Namespace) -> None:
    import torch

    from bags.data.dataset import DetectionDataset
    from bags.engine.infer import predict_to_file
    from bags.engine.model_files import load_model
    from bags.engine.train import pick_device

    torch.set_num_threads(args.threads)
    model, _ = load_model(args.model, args.score_thresh, args.max_dets)
    dataset = DetectionDataset(
        args.annotations, args.images, on_bad=args.on_bad, image_paths=args.image_paths
    )
    device = pick_device(args.device)
    count = predict_to_file(model, dataset, args.out, args.batch_size, device, args.workers)
    log.info("%d detections on %d images", count, len(dataset))


def cmd_evaluate(args: argparse.Namespace) -> None:
    from bags.data.counts import read_counts
    from bags.evaluation import evaluate, write_metrics

    counts = read_counts(args.counts)
    instance_counts = dict(zip(counts["category_id"], counts["instance_count"]))
    metrics = evaluate(
        args.annotations, args.detections, instance_counts, args.edges, args.max_dets, args.backend
    )
    write_metrics(metrics, args.out)


def _write_norms(model, meta: dict, counts, out: Path) -> None:
    from bags.detector import classification_layer
    from bags.groups import Groups
    from bags.io import atomic_path
    from bags.weight_norms import class_weight_norms

    groups = Groups.from_json(meta["groups"]) if meta["classifier"] == "bags" else None
    table = counts[["category_id", "name", "instance_count"]].copy()
    table["norm"] = class_weight_norms(classification_layer(model), groups).numpy()
    with atomic_path(out) as tmp:
        table.to_csv(tmp, index=False)


def cmd_norms(args: argparse.Namespace) -> None:
    from bags.data.counts import read_counts
    from bags.engine.model_files import load_model

    model, meta = load_model(args.model)
    counts = read_counts(args.counts)
    if len(counts) != meta["num_classes"]:
        raise ValueError(
            f"{args.counts}: {len(counts)} classes, the model has {meta['num_classes']}"
        )
    _write_norms(model, meta, counts, args.out)


def cmd_download(args: argparse.Namespace) -> None:
    from bags.data.download import DownloadError, download, sha256_file

    path = download(args.url, args.out, args.size, args.sha256, progress=True)
    if args.sha256_prefix:
        got = sha256_file(path)
        if not got.startswith(args.sha256_prefix):
            path.unlink()
            raise DownloadError(
                f"{args.url}: sha256 {got} does not start with {args.sha256_prefix}"
            )


def cmd_place(args: argparse.Namespace) -> None:
    """One annotation file: linked from an existing folder, or extracted from a zip."""
    import shutil
    import zipfile

    from bags.data.download import link_existing
    from bags.io import atomic_path

    if args.existing_folder:
        link_existing(Path(args.existing_folder) / args.member, args.out)
        return
    try:
        with (
            zipfile.ZipFile(args.archive) as archive,
            archive.open(args.member) as source,
            atomic_path(args.out) as tmp,
            tmp.open("wb") as target,
        ):
            shutil.copyfileobj(source, target, 1 << 20)
    except (zipfile.BadZipFile, KeyError) as error:
        raise ValueError(f"{args.archive}: cannot extract {args.member} ({error})") from error


def cmd_unzip(args: argparse.Namespace) -> None:
    """An image folder from a zip whose members all sit under ``--member-prefix``."""
    import shutil

    from bags.data.download import extract_zip

    staging = args.out.with_name(f".{args.out.name}.unzip")
    if staging.exists():
        shutil.rmtree(staging)
    extract_zip(args.archive, staging)
    inner = staging / args.member_prefix.strip("/")
    if not inner.is_dir():
        shutil.rmtree(staging)
        raise ValueError(f"{args.archive}: no folder {args.member_prefix} inside")
    inner.rename(args.out)
    shutil.rmtree(staging)


def cmd_lvis_fields(args: argparse.Namespace) -> None:
    from bags.data.counts import read_counts
    from bags.data.lvis_fields import add_lvis_fields
    from bags.io import write_text_atomic

    counts = read_counts(args.counts)
    if "image_count" not in counts.columns:
        raise ValueError(f"{args.counts}: counts CSV lacks column 'image_count'")
    image_counts = dict(zip(counts["category_id"], counts["image_count"]))
    write_text_atomic(args.out, json.dumps(add_lvis_fields(args.annotations, image_counts)))


def cmd_link(args: argparse.Namespace) -> None:
    from bags.data.download import link_existing

    link_existing(args.source, args.out)


def cmd_import_coco(args: argparse.Namespace) -> None:
    """torchvision's COCO-trained R50-FPN as a model file for the categories of a COCO JSON."""
    import torch

    from bags.builders import build_detector
    from bags.data.annotations import load_annotations
    from bags.detector import to_softmax
    from bags.engine.model_files import save_model

    data = load_annotations(args.annotations, keep_segmentation=False)
    ids = sorted(c["id"] for c in data["categories"])
    if ids[0] < 1 or ids[-1] > 90:
        raise ValueError(f"{args.annotations}: COCO category ids run 1..90, found {ids[-1]}")
    try:
        state = torch.load(args.weights, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many kinds for a file that is not a checkpoint
        raise ValueError(f"{args.weights}: not a readable checkpoint ({error})") from error
    rows = torch.tensor([0, *ids])  # torchvision's COCO head is indexed by category id
    boxes = (rows[:, None] * 4 + torch.arange(4)).reshape(-1)
    prefix = "roi_heads.box_predictor."
    try:
        for name, index in (("cls_score", rows), ("bbox_pred", boxes)):
            for part in ("weight", "bias"):
                state[f"{prefix}{name}.{part}"] = state[f"{prefix}{name}.{part}"][index]
        model = to_softmax(build_detector(args.arch, len(ids)))
        model.load_state_dict(state)
    except (KeyError, IndexError, RuntimeError) as error:
        raise ValueError(
            f"{args.weights}: not torchvision's COCO Faster R-CNN ({error})"
        ) from error
    meta = {"arch": args.arch, "num_classes": len(ids), "classifier": "softmax"}
    save_model(args.out, model, meta)


def _read_norms(path: Path):
    import pandas as pd

    table = pd.read_csv(path)
    missing = {"category_id", "instance_count", "norm"} - set(table.columns)
    if missing:
        raise ValueError(f"{path}: weight-norm CSV lacks column(s) {sorted(missing)}")
    return table


def _runs(named: list[tuple[str, Path]]) -> dict[str, list[dict]]:
    """Metrics files by label, in order; a label named again is another seed of that row."""
    runs: dict[str, list[dict]] = {}
    for name, path in named:
        runs.setdefault(name, []).append(json.loads(path.read_text()))
    return runs


def _metric_columns(runs: dict[str, list[dict]]) -> tuple[list[str], list[str]]:
    """The table's metrics and the per-bin ones (AP1..APk, one per count bin of the run)."""
    keys = {key for seeds in runs.values() for values in seeds for key in values}
    bins = list(itertools.takewhile(keys.__contains__, (f"AP{k}" for k in itertools.count(1))))
    return ["AP", "APr", "APc", "APf", *bins], bins


def cmd_table(args: argparse.Namespace) -> None:
    from bags.analysis.tables import ablation_table, number_rows, summarize_runs, write_table

    runs = _runs(args.metrics)
    columns, _ = _metric_columns(runs)
    if args.setting_name:
        settings = dict(args.setting)
        missing = set(runs) - set(settings)
        if missing:
            raise ValueError(f"no --setting for {sorted(missing)}")
        table = ablation_table(runs, settings, args.setting_name, columns)
    else:
        table = number_rows(summarize_runs(runs, columns))
    write_table(table, args.out_stem, args.caption)


def cmd_figure(args: argparse.Namespace) -> None:
    from bags.analysis import figures
    from bags.analysis.tables import summarize_runs

    if args.kind == "per_bin_ap":
        runs = _runs(args.metrics)
        columns, bins = _metric_columns(runs)
        figures.plot_per_bin_ap(summarize_runs(runs, columns), bins, args.out_stem)
        return
    frames = {name: _read_norms(path) for name, path in args.norms}
    if args.kind == "weight_norms":
        figures.plot_weight_norms(frames, args.out_stem)
    elif args.kind == "weight_norms_methods":
        figures.plot_method_norms(frames, args.out_stem, args.reference)
    else:
        figures.plot_norms_comparison(frames, args.out_stem)


def cmd_claims(args: argparse.Namespace) -> None:

    from bags.analysis.claims import check_claims, write_claims

    claims = check_claims(
        _read_norms(args.baseline_norms),
        _read_norms(args.balanced_norms),
        _read_norms(args.bags_norms),
        json.loads(args.baseline_metrics.read_text()),
        json.loads(args.bags_metrics.read_text()),
    )
    write_claims(claims, args.out, args.title)


def _data_options(parser: argparse.ArgumentParser, images: bool = True) -> None:
    parser.add_argument(
        "--on-bad",
        choices=["stop", "skip"],
        default="stop",
        help="bad annotations (and missing images): stop with an error, or skip and count them",
    )
    if images:
        parser.add_argument(
            "--image-paths",
            choices=["file_name", "coco_url"],
            default="file_name",
            help="where an image's path comes from (LVIS: coco_url)",
        )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bags", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("synthesize", help="generate the synthetic long-tailed dataset")
    p.add_argument("--spec", type=_json, required=True, help="SyntheticSpec fields as JSON")
    p.add_argument("--out", type=Path, required=True, help="dataset folder")
    p.set_defaults(run=cmd_synthesize)

    p = sub.add_parser("count", help="per-category instance and image counts (CSV)")
    p.add_argument("--annotations", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    _data_options(p, images=False)
    p.set_defaults(run=cmd_count)

    p = sub.add_parser("groups", help="BAGS groups from instance counts (JSON)")
    p.add_argument("--counts", type=Path, required=True)
    p.add_argument("--edges", type=int, nargs="+", default=[10, 100, 1000])
    p.add_argument("--beta", type=lambda s: s if s == "all" else float(s), default=8.0)
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(run=cmd_groups)

    p = sub.add_parser("train", help="train a detector, or fine-tune one (--init)")
    p.add_argument("--annotations", type=Path, required=True)
    p.add_argument("--images", type=Path, required=True)
    p.add_argument("--arch", type=_json, default={"name": "small"})
    p.add_argument("--train", type=_json, required=True, help="TrainConfig fields as JSON")
    p.add_argument("--init", type=Path, help="start from this trained model")
    p.add_argument("--pretrained", type=Path, help="COCO-trained weights of the R50-FPN")
    p.add_argument("--device", default="auto", help="auto (GPU if there is one), cpu, cuda")
    p.add_argument(
        "--method", type=_json, default={}, help="loss, sampler and their options as JSON"
    )
    p.add_argument("--counts", type=Path, help="instance counts (CSV) the method's rule uses")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--epoch-log", type=Path, required=True, help="per-epoch CSV")
    p.add_argument("--work-dir", type=Path, required=True, help="checkpoints, kept on failure")
    p.add_argument("--threads", type=int, default=1)
    _data_options(p)
    p.set_defaults(run=cmd_train)

    p = sub.add_parser("cache", help="a frozen model's box-head features, computed once")
    p.add_argument("--model", type=Path, required=True)
    p.add_argument("--annotations", type=Path, required=True, help="training annotations")
    p.add_argument("--val", type=Path, required=True, help="val annotations")
    p.add_argument("--images", type=Path, required=True)
    p.add_argument("--heldout", type=float, default=0.1, help="share of training images held out")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--out-dir", type=Path, required=True)
    p.add_argument("--threads", type=int, default=1)
    _data_options(p)
    p.set_defaults(run=cmd_cache)

    p = sub.add_parser("head", help="a classifier-level method on cached features")
    p.add_argument("--baseline", type=Path, required=True, help="the model the cache came from")
    p.add_argument("--cache-dir", type=Path, required=True)
    p.add_argument("--counts", type=Path, required=True)
    p.add_argument("--method", type=_json, default={}, help="loss, sampler and options as JSON")
    p.add_argument("--posthoc", type=_json, default={}, help='{"kind": "ncm" | "tau_norm"}')
    p.add_argument("--train", type=_json, default={"epochs": 1}, help="TrainConfig as JSON")
    p.add_argument("--edges", type=int, nargs="*", default=[10, 100, 1000])
    p.add_argument("--score-thresh", type=float, default=0.0)
    p.add_argument("--max-dets", type=int, default=300)
    p.add_argument("--out-model", type=Path, required=True)
    p.add_argument("--out-log", type=Path, required=True)
    p.add_argument("--out-detections", type=Path, required=True)
    p.add_argument("--out-norms", type=Path, required=True)
    p.add_argument("--threads", type=int, default=1)
    p.set_defaults(run=cmd_head)

    p = sub.add_parser("infer", help="detections as an LVIS results JSON")
    p.add_argument("--model", type=Path, required=True)
    p.add_argument("--annotations", type=Path, required=True)
    p.add_argument("--images", type=Path, required=True)
    p.add_argument("--score-thresh", type=float, default=0.0)
    p.add_argument("--max-dets", type=int, default=300)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="auto", help="auto (GPU if there is one), cpu, cuda")
    p.add_argument("--workers", type=int, default=0, help="image-loading processes")
    p.add_argument("--out", type=Path, required=True)
    _data_options(p)
    p.set_defaults(run=cmd_infer)

    p = sub.add_parser("evaluate", help="LVIS metrics with per-group AP (JSON)")
    p.add_argument("--annotations", type=Path, required=True)
    p.add_argument("--detections", type=Path, required=True)
    p.add_argument("--counts", type=Path, required=True, help="training counts CSV")
    p.add_argument("--edges", type=int, nargs="+", default=[10, 100, 1000])
    p.add_argument("--max-dets", type=int, default=300)
    p.add_argument(
        "--backend",
        choices=["faster", "lvis"],
        default="faster",
        help="faster-coco-eval or the LVIS API (the same metrics)",
    )
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(run=cmd_evaluate)

    p = sub.add_parser("norms", help="per-class weight norms of the last layer (CSV)")
    p.add_argument("--model", type=Path, required=True)
    p.add_argument("--counts", type=Path, required=True, help="counts CSV of its training set")
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(run=cmd_norms)

    p = sub.add_parser("download", help="download one file: resumed, retried, checked")
    p.add_argument("--url", required=True)
    p.add_argument("--size", type=int)
    p.add_argument("--sha256")
    p.add_argument("--sha256-prefix")
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(run=cmd_download)

    p = sub.add_parser("place", help="an annotation file from a zip or an existing folder")
    p.add_argument("--member", required=True, help="file name inside the zip or the folder")
    p.add_argument("--archive", type=Path)
    p.add_argument("--existing-folder", default="")
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(run=cmd_place)

    p = sub.add_parser("unzip", help="an image folder from a zip")
    p.add_argument("--archive", type=Path, required=True)
    p.add_argument("--member-prefix", required=True, help="folder inside the zip, e.g. val2017/")
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(run=cmd_unzip)

    p = sub.add_parser("lvis-fields", help="a COCO-format val file with LVIS's fields added")
    p.add_argument("--annotations", type=Path, required=True)
    p.add_argument("--counts", type=Path, required=True, help="training counts CSV")
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(run=cmd_lvis_fields)

    p = sub.add_parser("link", help="link an existing file or folder (no copy)")
    p.add_argument("--source", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(run=cmd_link)

    p = sub.add_parser("import-coco", help="torchvision's COCO-trained R50-FPN as a model file")
    p.add_argument("--weights", type=Path, required=True)
    p.add_argument("--annotations", type=Path, required=True, help="COCO train JSON")
    p.add_argument("--arch", type=_json, default={"name": "r50_fpn"})
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(run=cmd_import_coco)

    p = sub.add_parser("table", help="comparison or ablation table (CSV, Markdown, LaTeX)")
    p.add_argument(
        "--metrics", type=_named, nargs="+", required=True, metavar="NAME=JSON",
        help="a row's metrics; the same NAME again adds a seed (mean and std are shown)",
    )  # fmt: skip
    p.add_argument("--setting-name", help="an ablation table: the column of what varies")
    p.add_argument("--setting", type=_named_text, nargs="*", default=[], metavar="NAME=VALUE")
    p.add_argument("--caption", default="")
    p.add_argument("--out-stem", type=Path, required=True)
    p.set_defaults(run=cmd_table)

    p = sub.add_parser("figure", help="weight-norm and per-bin AP figures (PDF and PNG)")
    p.add_argument(
        "kind", choices=["weight_norms", "weight_norms_bags", "weight_norms_methods", "per_bin_ap"]
    )
    p.add_argument("--norms", type=_named, nargs="*", default=[], metavar="NAME=CSV")
    p.add_argument("--metrics", type=_named, nargs="*", default=[], metavar="NAME=JSON")
    p.add_argument("--reference", help="weight_norms_methods: drawn behind every panel")
    p.add_argument("--out-stem", type=Path, required=True)
    p.set_defaults(run=cmd_figure)

    p = sub.add_parser("claims", help="check the paper's claims on the measured numbers")
    for name in ("baseline-norms", "balanced-norms", "bags-norms"):
        p.add_argument(f"--{name}", type=Path, required=True)
    for name in ("baseline-metrics", "bags-metrics"):
        p.add_argument(f"--{name}", type=Path, required=True)
    p.add_argument("--title", default="Claims of the paper, checked")
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(run=cmd_claims)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        args.run(args)
    except (ValueError, OSError, RuntimeError) as error:
        if args.verbose:
            raise
        print(f"bags {args.command}: error: {error}", file=sys.stderr)
        return 1
    return 0
