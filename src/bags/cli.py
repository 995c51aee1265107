"""``python -m bags <command>``: one command per pipeline step, every path explicit."""

from __future__ import annotations

import argparse
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

    table = count_instances(args.annotations)
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


def read_groups(path: Path) -> tuple:
    from bags.groups import Groups

    text = Path(path).read_text()
    beta = json.loads(text).get("beta", 8.0)
    return Groups.from_json(text), float("inf") if beta == "all" else float(beta)


def cmd_train(args: argparse.Namespace) -> None:
    import torch

    from bags.builders import build_detector
    from bags.data.dataset import DetectionDataset
    from bags.detector import to_softmax
    from bags.engine.model_files import load_model, make_detector
    from bags.engine.train import TrainConfig, train

    torch.set_num_threads(args.threads)
    config = TrainConfig(**args.train)
    dataset = DetectionDataset(args.annotations, args.images, hflip=config.hflip)
    if args.init is not None:
        model, meta = load_model(args.init)
        if meta["num_classes"] != dataset.num_classes:
            raise ValueError(
                f"{args.init}: has {meta['num_classes']} classes, {args.annotations} has "
                f"{dataset.num_classes}"
            )
    else:
        torch.manual_seed(config.seed)
        model = to_softmax(build_detector(args.arch, dataset.num_classes))
        meta = {"arch": args.arch, "num_classes": dataset.num_classes, "classifier": "softmax"}
    if args.groups is not None:
        from bags.detector import to_group_softmax

        groups, beta = read_groups(args.groups)
        torch.manual_seed(config.seed)
        model = to_group_softmax(model, groups, beta)
        meta = {**meta, "classifier": "bags", "groups": groups.to_json(), "beta": beta}
        make_detector(meta)  # fail now, not after training, if meta cannot be rebuilt
    train(model, dataset, config, meta, args.out, args.work_dir, args.log)


def cmd_infer(args: argparse.Namespace) -> None:
    import torch

    from bags.data.dataset import DetectionDataset
    from bags.engine.infer import predict
    from bags.engine.model_files import load_model
    from bags.io import write_text_atomic

    torch.set_num_threads(args.threads)
    model, _ = load_model(args.model, args.score_thresh, args.max_dets)
    dataset = DetectionDataset(args.annotations, args.images)
    results = predict(model, dataset, args.batch_size)
    write_text_atomic(args.out, json.dumps(results))
    log.info("%d detections on %d images", len(results), len(dataset))


def cmd_evaluate(args: argparse.Namespace) -> None:
    from bags.data.counts import read_counts
    from bags.evaluation import evaluate, write_metrics

    counts = read_counts(args.counts)
    instance_counts = dict(zip(counts["category_id"], counts["instance_count"]))
    metrics = evaluate(
        args.annotations, args.detections, instance_counts, args.edges, args.max_dets
    )
    write_metrics(metrics, args.out)


def cmd_norms(args: argparse.Namespace) -> None:
    from bags.data.counts import read_counts
    from bags.detector import classification_layer
    from bags.engine.model_files import load_model
    from bags.groups import Groups
    from bags.io import atomic_path
    from bags.weight_norms import class_weight_norms

    model, meta = load_model(args.model)
    groups = Groups.from_json(meta["groups"]) if meta["classifier"] == "bags" else None
    counts = read_counts(args.counts)
    if len(counts) != meta["num_classes"]:
        raise ValueError(
            f"{args.counts}: {len(counts)} classes, the model has {meta['num_classes']}"
        )
    table = counts[["category_id", "name", "instance_count"]].copy()
    table["norm"] = class_weight_norms(classification_layer(model), groups).numpy()
    with atomic_path(args.out) as tmp:
        table.to_csv(tmp, index=False)


def _load_metrics(named: list[tuple[str, Path]]) -> dict[str, dict]:
    return {name: json.loads(path.read_text()) for name, path in named}


def cmd_table(args: argparse.Namespace) -> None:
    from bags.analysis.tables import comparison_table, write_table

    write_table(comparison_table(_load_metrics(args.metrics)), args.out_stem, args.caption)


def cmd_figure(args: argparse.Namespace) -> None:
    import pandas as pd

    from bags.analysis import figures

    frames = {name: pd.read_csv(path) for name, path in args.norms}
    if args.kind == "weight_norms":
        figures.plot_weight_norms(frames, args.out_stem)
    else:
        figures.plot_norms_comparison(frames, args.out_stem)


def cmd_claims(args: argparse.Namespace) -> None:
    import pandas as pd

    from bags.analysis.claims import check_claims, write_claims

    claims = check_claims(
        pd.read_csv(args.baseline_norms),
        pd.read_csv(args.balanced_norms),
        pd.read_csv(args.bags_norms),
        json.loads(args.baseline_metrics.read_text()),
        json.loads(args.bags_metrics.read_text()),
    )
    write_claims(claims, args.out, args.title)


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
    p.add_argument("--groups", type=Path, help="make the detector BAGS with these groups")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--log", type=Path, required=True, help="per-epoch CSV")
    p.add_argument("--work-dir", type=Path, required=True, help="checkpoints, kept on failure")
    p.add_argument("--threads", type=int, default=1)
    p.set_defaults(run=cmd_train)

    p = sub.add_parser("infer", help="detections as an LVIS results JSON")
    p.add_argument("--model", type=Path, required=True)
    p.add_argument("--annotations", type=Path, required=True)
    p.add_argument("--images", type=Path, required=True)
    p.add_argument("--score-thresh", type=float, default=0.0)
    p.add_argument("--max-dets", type=int, default=300)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(run=cmd_infer)

    p = sub.add_parser("evaluate", help="LVIS metrics with per-group AP (JSON)")
    p.add_argument("--annotations", type=Path, required=True)
    p.add_argument("--detections", type=Path, required=True)
    p.add_argument("--counts", type=Path, required=True, help="training counts CSV")
    p.add_argument("--edges", type=int, nargs="+", default=[10, 100, 1000])
    p.add_argument("--max-dets", type=int, default=300)
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(run=cmd_evaluate)

    p = sub.add_parser("norms", help="per-class weight norms of the last layer (CSV)")
    p.add_argument("--model", type=Path, required=True)
    p.add_argument("--counts", type=Path, required=True, help="counts CSV of its training set")
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(run=cmd_norms)

    p = sub.add_parser("table", help="comparison table (CSV, Markdown, LaTeX)")
    p.add_argument("--metrics", type=_named, nargs="+", required=True, metavar="NAME=JSON")
    p.add_argument("--caption", default="")
    p.add_argument("--out-stem", type=Path, required=True)
    p.set_defaults(run=cmd_table)

    p = sub.add_parser("figure", help="weight-norm figures (PDF and PNG)")
    p.add_argument("kind", choices=["weight_norms", "weight_norms_bags"])
    p.add_argument("--norms", type=_named, nargs="+", required=True, metavar="NAME=CSV")
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
    except (ValueError, FileNotFoundError, OSError) as error:
        print(f"bags {args.command}: error: {error}", file=sys.stderr)
        return 1
    return 0
