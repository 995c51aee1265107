import itertools
import json
import os
import re
from pathlib import Path

import jsonschema
from bags.values import parse_beta
from bags.schema import schema

EXP = f"results/{config['experiment']}"
ENV = "../../envs/bags.yaml"
RES = config["resources"]
CONVERGENCE = config["convergence"]
SEEDS = config["seeds"]
SCHEMA = schema()
TABLES = ["comparison", "ablation_groups", "ablation_beta", "ablation_finetune"]


def config_error(message):
    raise ValueError(f"config: {message}")


def check_edges(edges, where):
    if any(a >= b for a, b in itertools.pairwise(edges)):
        config_error(f"{where}: edges must be strictly increasing, got {edges}")


def settings_of(entry):
    """A row's training settings: its schedule section with its overrides and what it trains."""
    schedule = entry["schedule"]
    if schedule not in config["schedules"]:
        config_error(
            f"no schedule {schedule!r} in `schedules` (known: {sorted(config['schedules'])})"
        )
    settings = {**config["schedules"][schedule], **entry["settings"]}
    try:
        jsonschema.validate(settings, SCHEMA["definitions"]["schedule"])
    except jsonschema.ValidationError as error:
        config_error(
            f"schedule {schedule!r} with the method's settings: {error.message}"
        )
    images = settings.get("loss_images")
    if images and settings.get("batch_size", images) % images:
        config_error(
            f"schedule {schedule!r}: batch_size {settings['batch_size']} is not a multiple "
            f"of loss_images {images}"
        )
    check_milestones(settings, f"schedule {schedule!r} with the method's settings")
    return {**settings, "trainable": entry["train"]}


def check_milestones(settings, where):
    late = [m for m in settings.get("milestones", []) if m > settings["epochs"]]
    if late:
        config_error(
            f"{where}: milestones {late} come after the last epoch ({settings['epochs']})"
        )


def groups_of(entry):
    """The BAGS groups a row uses: the config's, with the row's overrides."""
    return {**config["groups"], **entry.get("groups", {})}


def path_of(entry):
    """How a row is made: `posthoc` (the baseline's classifier changed, then inference), `head`
    (its last layer trained on the baseline's cached features) or `train` (the training loop).
    """
    if entry["train"] == "none":
        return "posthoc"
    if (
        entry["train"] == "classifier"
        and entry["start"] == "baseline"
        and config["feature_cache"]
    ):
        return "head"
    return "train"


METHODS = config["methods"]
# The balanced model of Figure 1 (COCO's role): the balanced set's softmax detector.
BALANCED = {
    "label": "balanced",
    "start": "scratch",
    "train": "all",
    "last_layer": "fresh",
    "schedule": "pretrain",
    "settings": {},
    "loss": "softmax",
    "loss_options": {},
    "sampler": "uniform",
    "sampler_options": {},
}
_labels = [m["label"] for m in METHODS.values()]
for _name, _entry in METHODS.items():
    if _labels.count(_entry["label"]) > 1:
        config_error(f"method labels must be unique: {_entry['label']!r}")
    if _name == "baseline" and _entry["start"] == "baseline":
        config_error("the baseline cannot start from itself")
    if _entry["start"] == "balanced" and "pretrain" not in config["schedules"]:
        if config["datasets"]["balanced"]["source"] != "coco_pretrained":
            config_error(
                "a row starts from the balanced model: add a `pretrain` schedule"
            )
    if _entry["loss"] == "bags":
        check_edges(groups_of(_entry)["edges"], f"method {_name}")
    if path_of(_entry) == "head" and settings_of(_entry).get("group_orientation"):
        config_error(
            f"method {_name}: its last layer trains on cached features, which keep no image "
            "orientations: set group_orientation: false in its schedule, or feature_cache: false"
        )
    if path_of(_entry) != "posthoc":
        settings_of(_entry)
check_edges(config["groups"]["edges"], "groups")
for _name, _schedule in config["schedules"].items():
    check_milestones(_schedule, f"schedules.{_name}")

if "bags" not in METHODS or METHODS["bags"]["loss"] != "bags":
    config_error("the claims and figures need a method `bags` with loss: bags")


def entry_of(dataset, method):
    return BALANCED if dataset == "balanced" else METHODS[method]


def training_priority(method):
    """The rank Snakemake's scheduler takes ready jobs by. Every other row starts from a
    dataset's baseline, so the baselines come first; then the longest trainings (the whole
    detector, then the box head), so that the short jobs fill both cores at the end instead of
    one long training running alone. Jobs of other rules rank 0."""
    if method == "baseline":
        return 3
    return {"all": 2, "box_head": 1}.get(METHODS[method]["train"], 0)


def training_threads(dataset):
    """The balanced model trains alone (every other training starts from it or waits for
    the baseline that does), so it may take more threads than the jobs that share the CPU.
    """
    if dataset == "balanced" and config["pretrain_threads"] is not None:
        return config["pretrain_threads"]
    return config["threads"]


def methods_by_path(path):
    return [n for n, m in METHODS.items() if path_of(m) == path]


def methods_in(table):
    return [n for n, m in METHODS.items() if table in m["tables"]]


def pattern(names):
    """A wildcard pattern matching exactly these names (never matches if none)."""
    return "|".join(re.escape(n) for n in names) if names else "(?!)"


def run_file(dataset, name, seed, file):
    return f"{EXP}/runs/{dataset}/{name}/seed{seed}/{file}"


def metrics_of(names):
    return [
        run_file("longtail", n, seed, "metrics.json") for n in names for seed in SEEDS
    ]


def named_metrics(names):
    """`label=path` per row and seed (a repeated label is another seed of that row)."""
    return [
        f"{METHODS[n]['label']}={run_file('longtail', n, seed, 'metrics.json')}"
        for n in names
        for seed in SEEDS
    ]


def table_targets(table):
    return expand(f"{EXP}/tables/{table}.{{ext}}", ext=["csv", "md", "tex"])


def figure_targets(name):
    return expand(f"{EXP}/figures/{name}.{{ext}}", ext=["pdf", "png"])


PAPER_ROWS = [
    n for n, m in METHODS.items() if "row" in m and "comparison" in m["tables"]
]
# Every comparison row that retrains or replaces the baseline's last layer.
RETRAINED = ["baseline"] + [
    n
    for n in methods_in("comparison")
    if n != "baseline" and METHODS[n]["train"] != "all"
]
TARGETS = {
    **{table: table_targets(table) for table in TABLES if methods_in(table)},
    **{figure.name: figure_targets(figure.name) for figure in FIGURE_TABLE},
    "claims": [f"{EXP}/claims.md"],
}


wildcard_constraints:
    dataset="longtail|balanced",
    method=pattern(METHODS),
    seed=r"-?\d+",


def source_settings(dataset):
    entry = config["datasets"][dataset]
    return entry.get(entry["source"], {}) or {}


def datasets_from(*sources):
    """A wildcard pattern matching the datasets of the given sources (never matches if none)."""
    names = [n for n, d in config["datasets"].items() if d["source"] in sources]
    return "|".join(names) if names else "(?!)"


def on_bad(dataset):
    """COCO's own annotations are taken as they come; other sources say so in the config."""
    if config["datasets"][dataset]["source"] == "coco_pretrained":
        return "skip"
    return source_settings(dataset).get("on_bad_annotation", "stop")


def image_paths(dataset):
    """LVIS names images by coco_url (v0.5 file names are COCO 2014 ones); others by file_name."""
    return (
        "coco_url" if config["datasets"][dataset]["source"] == "lvis" else "file_name"
    )


def train_filter(dataset):
    """How a training set is read: `checked` (every image, boxes checked) or `reference`."""
    return source_settings(dataset).get("train_filter", "checked")


def data_options(wildcards):
    return [
        "--on-bad",
        on_bad(wildcards.dataset),
        "--image-paths",
        image_paths(wildcards.dataset),
    ]


def download_path(name):
    url = config["downloads"][name]["url"]
    file = os.path.basename(url.split("?")[0]) or "download"
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", file) or file.startswith("."):
        config_error(
            f"downloads.{name}.url: the file name {file!r} is not a plain name"
        )
    return f"resources/downloads/{name}/{file}"


def job_resources(kind, gpus=0):
    """Memory and runtime of a job (the runtime grows with the attempt on retries), and GPUs."""
    resources = {
        "mem_mb": RES[f"{kind}_mem_mb"],
        "runtime": lambda wildcards, attempt: RES[f"{kind}_runtime"] * attempt,
    }
    if gpus > 0:
        resources["gpu"] = gpus
        resources["cpus_per_gpu"] = RES["cpus_per_gpu"]
        if RES["gpu_model"]:
            resources["gpu_model"] = RES["gpu_model"]
    return resources


def lvis_annotation_input(wildcards):
    settings = source_settings(wildcards.dataset)
    if settings.get("annotations"):
        return []
    return download_path(f"lvis_{settings['version']}_{wildcards.split}")


def lvis_images_input(wildcards):
    if source_settings(wildcards.dataset).get("images"):
        return []
    return ["resources/coco/train2017", "resources/coco/val2017"]


def launcher():
    """One training process per GPU (torchrun) when a job has several GPUs, else one process."""
    gpus = RES["gpu"]
    if gpus > 1:
        return f"torchrun --standalone --nproc_per_node={gpus} -m bags"
    return "python -m bags"


def start_model(wildcards):
    """The model a row starts from (none from scratch)."""
    start = entry_of(wildcards.dataset, wildcards.method)["start"]
    if start == "scratch":
        return []
    dataset = {"balanced": "balanced", "baseline": "longtail"}[start]
    return run_file(dataset, "baseline", wildcards.seed, "model.pt")


def groups_file(wildcards):
    """BAGS rows read their groups from the groups rule's file."""
    if entry_of(wildcards.dataset, wildcards.method)["loss"] == "bags":
        return f"{EXP}/groups/{wildcards.method}.json"
    return []


def heldout_input(wildcards):
    """A post-hoc row that chooses a setting chooses it on held-out training images."""
    if "taus" in METHODS[wildcards.method].get("posthoc_options", {}):
        return f"{EXP}/data/longtail/heldout.json"
    return []


def method_spec(entry):
    """What `bags train`, `head` and `posthoc` take as --method."""
    keys = ["loss", "loss_options", "sampler", "sampler_options", "last_layer"]
    spec = {k: entry[k] for k in keys}
    if "posthoc" in entry:
        spec.update(posthoc=entry["posthoc"], posthoc_options=entry["posthoc_options"])
    return spec


def as_json(value):
    return json.dumps(value, sort_keys=True)


FINETUNED = {"classifier": "classifier", "box_head": "box head", "all": "everything"}


def ablation_setting(table, name):
    """What an ablation varies, as its table shows it, and a key that orders the rows."""
    entry = METHODS[name]
    groups = groups_of(entry)
    if table == "ablation_groups":
        split = ", ".join(str(e) for e in groups["edges"]) or "none"
        return f"{len(groups['edges']) + 1} (split at {split})", len(groups["edges"])
    if table == "ablation_beta":
        return str(groups["beta"]), parse_beta(groups["beta"])
    return FINETUNED[entry["train"]], list(FINETUNED).index(entry["train"])


SETTING_NAMES = {
    "ablation_groups": "groups",
    "ablation_beta": "beta",
    "ablation_finetune": "fine-tuned",
}


def table_rows(table):
    names = methods_in(table)
    if table in SETTING_NAMES:
        names = sorted(names, key=lambda n: ablation_setting(table, n)[1])
    return names


def table_options(table):
    if table not in SETTING_NAMES:
        return []
    settings = [
        f"{METHODS[n]['label']}={ablation_setting(table, n)[0]}"
        for n in table_rows(table)
    ]
    return ["--setting-name", SETTING_NAMES[table], "--settings", *settings]


def pretraining_input(wildcards):
    """A pretraining set takes its classes from the long-tailed set's training file."""
    if source_settings(wildcards.dataset).get("classes_from"):
        return f"{EXP}/data/longtail/train.json"
    return []


def synthetic_spec(dataset):
    settings = {
        k: v
        for k, v in source_settings(dataset).items()
        if k not in ("classes_from", "min_instances")
    }
    return as_json(settings)


def figure_runs(selection):
    """`label=file` inputs of a figure: the runs a figure-table row selects."""
    first = SEEDS[0]
    norms = lambda dataset, name: run_file(dataset, name, first, "weight_norms.csv")
    selections = {
        "balanced_and_baseline": {
            "balanced": norms("balanced", "baseline"),
            "long-tailed": norms("longtail", "baseline"),
        },
        "baseline_and_bags": {
            METHODS["baseline"]["label"]: norms("longtail", "baseline"),
            METHODS["bags"]["label"]: norms("longtail", "bags"),
        },
        "retrained": {METHODS[n]["label"]: norms("longtail", n) for n in RETRAINED},
    }
    if selection == "comparison":
        return named_metrics(methods_in("comparison"))
    return [f"{label}={path}" for label, path in selections[selection].items()]


def again_file(dataset, name, seed, file):
    """A file of the model trained once more from a run's model (the convergence test)."""
    return f"{EXP}/convergence/{dataset}/{name}/seed{seed}/again/{file}"


def tuning_file(dataset, name, seed, which, file):
    """A file of a tested model (`once` or `again`) scored on its dataset's tuning split."""
    return f"{EXP}/convergence/{dataset}/{name}/seed{seed}/{which}/{file}"


def trains_again(entry, name):
    """Whether a row is another full schedule of row `name` from its model, as x2 is of the
    baseline: then the convergence test takes that row's model instead of training one more.
    """
    keys = ["train", "loss", "loss_options", "sampler", "sampler_options", "schedule"]
    first = METHODS[name]
    return (
        entry["start"] == name
        and entry["last_layer"] == "loaded"
        and all(entry[k] == first[k] for k in keys)
        and entry["settings"] == first["settings"]
    )


def again_model(dataset, name, seed):
    """The model trained once more from run `dataset/name`: a row that is exactly that (x2),
    else the convergence test's own."""
    if dataset == "longtail" and name == "baseline":
        for other, entry in METHODS.items():
            if trains_again(entry, name):
                return run_file(dataset, other, seed, "model.pt")
    return again_file(dataset, name, seed, "model.pt")


def tested_model(wildcards):
    if wildcards.which == "once":
        return run_file(wildcards.dataset, wildcards.method, wildcards.seed, "model.pt")
    return again_model(wildcards.dataset, wildcards.method, wildcards.seed)


def convergence_entries():
    """Per tested run and seed: its label, schedule and the metrics files of both models."""
    entries = []
    for run in CONVERGENCE["runs"]:
        dataset, name = run.split("/")
        if dataset == "longtail" and (
            name not in METHODS or path_of(METHODS[name]) != "train"
        ):
            config_error(f"convergence.runs: {run!r} is not a trained row of `methods`")
        entry = entry_of(dataset, name)
        schedule = entry["schedule"]
        label = "balanced model" if dataset == "balanced" else entry["label"]
        for seed in SEEDS:
            entries.append(
                {
                    "run": label,
                    "schedule": f"{schedule}, {config['schedules'][schedule]['epochs']} epochs",
                    "seed": seed,
                    **{
                        which: tuning_file(dataset, name, seed, which, "metrics.json")
                        for which in ("once", "again")
                    },
                }
            )
    return entries


# A user's files and folders, read where they are: each must exist before any job runs.
EXISTING = {"train": "file", "val": "file", "images": "folder", "annotations": "folder"}


def check_ordered(where, settings, *pairs):
    """Each (low, high) pair of settings given in order: low <= high."""
    for low, high in pairs:
        if low in settings and high in settings and settings[low] > settings[high]:
            config_error(
                f"{where}: {low} ({settings[low]}) must not exceed {high} ({settings[high]})"
            )


for _dataset in config["datasets"]:
    _spec = source_settings(_dataset)
    _where = f"datasets.{_dataset}.{config['datasets'][_dataset]['source']}"
    check_ordered(
        _where,
        _spec,
        ("min_size", "max_size"),
        ("max_size", "image_size"),
        ("min_objects", "max_objects"),
        ("rare_styles", "styles"),
    )
    for _tier in _spec.get("train_counts", []):
        if _tier[1] > _tier[2]:
            config_error(f"{_where}: train_counts tier {_tier}: fewest exceeds most")
    for _key, _kind in EXISTING.items():
        _given = _spec.get(_key)
        if _given and not (os.path.isfile if _kind == "file" else os.path.isdir)(
            _given
        ):
            config_error(f"{_where}.{_key}: no {_kind} {_given!r} (from {os.getcwd()})")
check_ordered("model", config["model"], ("min_size", "max_size"))
for _name, _entry in METHODS.items():
    check_ordered(
        f"method {_name}: loss_options", _entry["loss_options"], ("low", "high")
    )


def per_class_option():
    """`bags evaluate`'s AP_fixed and AP_pool option (an integer the schema checked), or none."""
    count = config["evaluation"]["detections_per_class"]
    return [] if count is None else ["--detections-per-class", str(count)]


def kept_per_img():
    """How many detections per image inference writes: LVIS AP's, or more for AP_fixed."""
    inference = config["inference"]
    return max(inference["detections_per_img"], inference["kept_per_img"] or 0)
