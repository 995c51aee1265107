"""``python -m bags <command>``: one command per pipeline step, every path explicit.

Each command parses its arguments and calls one function of the package; the pipeline passes
every option it relies on, so those are required here (their defaults live in the config
schema, ``src/bags/config.schema.yaml``).
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
from pathlib import Path

from bags.arguments import (
    OneLineParser,
    beta,
    positive_int,
    probability,
    seed,
    share,
    whole,
)

log = logging.getLogger("bags")


def _json(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise argparse.ArgumentTypeError(f"not JSON: {error}") from error
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("expected a JSON object")
    return value


def _named(text: str) -> tuple[str, str]:
    name, sep, value = text.rpartition("=")
    if not sep or not name or not value:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name, value


def _named_path(text: str) -> tuple[str, Path]:
    name, value = _named(text)
    return name, Path(value)


PATH = {"type": Path, "required": True}
OPTIONAL_PATH = {"type": Path, "default": None}
JSON = {"type": _json, "required": True}
COUNT = {"type": whole(1, 100_000), "required": True}  # detections, instances per class
BATCH = {"type": whole(1, 4096), "required": True}
WORKERS = {"type": whole(0, 256), "required": True}
DATA = {
    "--on-bad": {"choices": ["stop", "skip"], "required": True},
    "--image-paths": {"choices": ["file_name", "coco_url"], "required": True},
}
SCORING = {
    "--score-thresh": {"type": probability, "required": True},
    "--detections-per-img": COUNT,
}

# command: (what it does, "module:function", {option: argparse keywords}); the function gets the
# options as keyword arguments (dashes become underscores).
COMMANDS: dict[str, tuple[str, str, dict[str, dict]]] = {
    "synthesize": (
        "generate a synthetic long-tailed set, or its pretraining set",
        "bags.data.synthetic:synthesize",
        {
            "--spec": JSON,
            "--out": PATH,
            "--classes-from": OPTIONAL_PATH,
            "--min-instances": {"type": positive_int, "default": 10},
        },
    ),
    "count": (
        "per-category instance and image counts (CSV)",
        "bags.data.counts:write_counts",
        {"--annotations": PATH, "--out": PATH, "--on-bad": DATA["--on-bad"]},
    ),
    "groups": (
        "BAGS groups from instance counts (JSON)",
        "bags.groups:write_groups",
        {
            "--counts-file": PATH,
            "--edges": {"type": positive_int, "nargs": "*", "required": True},
            "--beta": {"type": beta, "required": True},
            "--out": PATH,
        },
    ),
    "heldout": (
        "a share of the training images, for choosing post-hoc settings",
        "bags.data.heldout:heldout_split",
        {
            "--annotations": PATH,
            "--share": {"type": share, "required": True},
            "--seed": {"type": seed, "required": True},
            "--out": PATH,
            "--on-bad": DATA["--on-bad"],
        },
    ),
    "tuning-split": (
        "a synthetic set's tuning split: new instances of every class, never val",
        "bags.data.synthetic:tuning_split",
        {
            "--data": PATH,
            "--out": PATH,
            "--per-class": COUNT,
            "--seed": {"type": seed, "required": True},
        },
    ),
    "train": (
        "train one row's detector from where it starts",
        "bags.engine.train_job:train_job",
        {
            "--annotations": PATH,
            "--images": PATH,
            "--counts": PATH,
            "--arch": JSON,
            "--settings": JSON,
            "--method": JSON,
            "--start": OPTIONAL_PATH,
            "--groups-file": OPTIONAL_PATH,
            "--out": PATH,
            "--epoch-log": PATH,
            "--work-dir": PATH,
            "--device": {"default": "auto", "help": "auto (GPU if there is one), cpu, cuda"},
            "--train-filter": {"choices": ["checked", "reference"], "required": True},
            **DATA,
        },
    ),
    "cache": (
        "a frozen model's box-head features, computed once",
        "bags.engine.feature_cache:cache_job",
        {
            "--model-file": PATH,
            "--train": PATH,
            "--val": PATH,
            "--images": PATH,
            "--out-dir": PATH,
            "--batch-size": BATCH,
            **DATA,
        },
    ),
    "head": (
        "a classifier-level row on cached features",
        "bags.engine.head:head_job",
        {
            "--baseline": PATH,
            "--cache-dir": PATH,
            "--counts": PATH,
            "--method": JSON,
            "--settings": JSON,
            "--groups-file": OPTIONAL_PATH,
            "--out-model": PATH,
            "--out-log": PATH,
            "--out-detections": PATH,
            "--out-norms": PATH,
            **SCORING,
        },
    ),
    "posthoc": (
        "a post-hoc row: the baseline's classifier rescaled or replaced",
        "bags.engine.posthoc:posthoc_job",
        {
            "--baseline": PATH,
            "--method": JSON,
            "--counts": PATH,
            "--annotations": PATH,
            "--images": PATH,
            "--heldout": OPTIONAL_PATH,
            "--edges": {"type": positive_int, "nargs": "+", "default": None},
            "--out": PATH,
            "--out-log": PATH,
            "--device": {"default": "auto", "help": "auto (GPU if there is one), cpu, cuda"},
            **DATA,
        },
    ),
    "infer": (
        "detections as an LVIS results JSON",
        "bags.engine.infer:infer_job",
        {
            "--model-file": PATH,
            "--annotations": PATH,
            "--images": PATH,
            "--out": PATH,
            "--batch-size": BATCH,
            "--workers": WORKERS,
            "--device": {"default": "auto"},
            **SCORING,
            **DATA,
        },
    ),
    "evaluate": (
        "LVIS metrics with per-group AP (JSON)",
        "bags.evaluation:evaluate_job",
        {
            "--annotations": PATH,
            "--detections": PATH,
            "--counts": PATH,
            "--edges": {"type": positive_int, "nargs": "+", "required": True},
            "--detections-per-img": COUNT,
            "--detections-per-class": {
                "type": whole(1, 100_000),
                "default": None,
                "help": "AP_fixed and AP_pool of each class's best this many (10,000 on LVIS)",
            },
            "--backend": {
                "choices": ["faster", "lvis"],
                "required": True,
                "help": "faster-coco-eval, or the LVIS API (the reference; the same numbers)",
            },
            "--out": PATH,
        },
    ),
    "norms": (
        "per-class weight norms of the last layer (CSV)",
        "bags.engine.model_files:norms_job",
        {"--model-file": PATH, "--counts": PATH, "--out": PATH},
    ),
    "download": (
        "download one file: resumed, retried, checked",
        "bags.data.download:download_job",
        {
            "--url": {"required": True},
            "--out": PATH,
            "--size": {"type": positive_int, "default": None},
            "--sha256": {"default": None},
            "--sha256-prefix": {"default": None},
        },
    ),
    "place": (
        "an annotation file from a zip or an existing folder",
        "bags.data.download:place",
        {
            "--member": {"required": True},
            "--out": PATH,
            "--archive": OPTIONAL_PATH,
            "--existing-folder": OPTIONAL_PATH,
        },
    ),
    "unzip": (
        "an image folder from a zip",
        "bags.data.download:unzip_folder",
        {"--archive": PATH, "--member-prefix": {"required": True}, "--out": PATH},
    ),
    "lvis-fields": (
        "a COCO-format val file with LVIS's fields added",
        "bags.data.lvis_fields:lvis_fields_job",
        {"--annotations": PATH, "--counts": PATH, "--out": PATH},
    ),
    "link": (
        "link an existing file or folder (no copy)",
        "bags.data.download:link_job",
        {"--source": PATH, "--out": PATH},
    ),
    "import-coco": (
        "torchvision's COCO-trained R50-FPN as a model file",
        "bags.engine.coco:import_coco",
        {"--weights": PATH, "--annotations": PATH, "--arch": JSON, "--out": PATH},
    ),
    "table": (
        "comparison or ablation table (CSV, Markdown, LaTeX)",
        "bags.analysis.tables:table_job",
        {
            "--metrics": {"type": _named_path, "nargs": "+", "required": True},
            "--setting-name": {"default": None},
            "--settings": {"type": _named, "nargs": "*", "default": []},
            "--caption": {"required": True},
            "--out-stem": PATH,
        },
    ),
    "figure": (
        "a figure of the figure table (PDF and PNG)",
        "bags.analysis.figures:figure_job",
        {
            "--kind": {"required": True, "help": "a name in bags.analysis.figure_table"},
            "--inputs": {"type": _named_path, "nargs": "+", "required": True},
            "--out-stem": PATH,
        },
    ),
    "convergence": (
        "the test of converged schedules: x2's gain on the tuning split (CSV, Markdown)",
        "bags.analysis.convergence:convergence_job",
        {"--spec": JSON, "--out-stem": PATH},
    ),
    "claims": (
        "check the paper's claims on the measured numbers",
        "bags.analysis.claims:claims_job",
        {
            "--baseline-norms": PATH,
            "--balanced-norms": PATH,
            "--bags-norms": PATH,
            "--baseline-metrics": {**PATH, "nargs": "+"},  # one file per seed
            "--bags-metrics": {**PATH, "nargs": "+"},
            "--rows": {"type": _named_path, "nargs": "+", "required": True},
            "--all-rows": {"type": _named_path, "nargs": "+", "default": ()},
            "--bags-label": {"required": True},
            "--title": {"required": True},
            "--out": PATH,
        },
    ),
}
THREADED = {"train", "cache", "head", "posthoc", "infer"}
DATA_OPTIONS = ("on_bad", "image_paths", "train_filter")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="bags", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="tracebacks and debug logs")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (help_text, _, options) in COMMANDS.items():
        command = sub.add_parser(name, help=help_text)
        for option, keywords in options.items():
            command.add_argument(option, **keywords)
        if name in THREADED:
            command.add_argument("--threads", type=whole(1, 1024), required=True)
    return parser


def _paths(value) -> list[Path]:
    """The paths in an option's value: a path, NAME=path pairs, or lists of them."""
    if isinstance(value, Path):
        return [value]
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], Path):
        return [value[1]]
    if isinstance(value, list):
        return [path for item in value for path in _paths(item)]
    return []


def refuse_output_over_input(options: dict) -> None:
    """No command writes over one of its own inputs (``--out`` given as ``--annotations``, an
    input under ``--out-dir``, or one of the files ``--out-stem`` writes)."""
    outputs = {
        k: v for k, v in options.items() if k.startswith("out") or k in ("epoch_log", "work_dir")
    }
    inputs = {k: v for k, v in options.items() if k not in outputs}
    for out_key, out_value in outputs.items():
        for out in _paths(out_value):
            for in_key, in_value in inputs.items():
                if any(_writes_over(out_key, out, path) for path in _paths(in_value)):
                    raise ValueError(
                        f"--{out_key.replace('_', '-')} {out} would write over its input --"
                        f"{in_key.replace('_', '-')}: refused"
                    )


def _writes_over(key: str, out: Path, path: Path) -> bool:
    out, path = out.resolve(), path.resolve()
    if key.endswith("stem"):  # <stem>.csv, <stem>.md, ...
        return path.parent == out.parent and path.name.startswith(f"{out.name}.")
    if key.endswith("dir"):
        return path == out or out in path.parents
    return path == out


def run(args: argparse.Namespace) -> None:
    """Call the command's function with its options."""
    options = {k: v for k, v in vars(args).items() if k not in ("command", "verbose")}
    refuse_output_over_input(options)
    threads = options.pop("threads", None)
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    data = {k: options.pop(k) for k in DATA_OPTIONS if k in options}
    if args.command in ("count", "heldout"):
        options.update(data)
    elif data:
        options["data_options"] = data
    module, function = COMMANDS[args.command][1].split(":")
    getattr(importlib.import_module(module), function)(**options)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        run(args)
    except (ValueError, OSError, RuntimeError) as error:
        if args.verbose:
            raise
        from bags.safe_load import one_line

        print(f"bags {args.command}: error: {one_line(error)}", file=sys.stderr)
        return 1
    return 0
