import json
import os
import re

EXP = f"results/{config['experiment']}"
ENV = "../../envs/bags.yaml"
RES = config["resources"]

SEEDS = config["seeds"]
METHODS = {
    name: {
        "tables": ["comparison"],
        "init": "scratch",
        "loss": "softmax",
        "loss_options": {},
        "sampler": "uniform",
        "sampler_options": {},
        "new_layer": False,
        **entry,
    }
    for name, entry in config["methods"].items()
    if name not in config["skip"]
}
_unknown = set(config["skip"]) - set(config["methods"])
if _unknown:
    raise ValueError(f"config: skip names no method {sorted(_unknown)}")
_labels = [m["label"] for m in METHODS.values()]
for _label in _labels:
    if _labels.count(_label) > 1 or set(_label) & set("='"):
        raise ValueError(
            f"config: method labels must be unique, without = or ': {_label!r}"
        )
if "baseline" not in METHODS:
    raise ValueError(
        "config: the baseline cannot be skipped; every other method builds on it"
    )
TABLES = ["comparison", "ablation_groups", "ablation_beta", "ablation_finetune"]


def settings_of(name):
    """A method's training settings: its schedule section with its overrides."""
    entry = METHODS[name]
    schedule = entry.get(
        "schedule", "bags" if entry["init"] == "baseline" else "baseline"
    )
    return {**config[schedule], **entry.get("settings", {})}


def spec_of(name):
    """What `bags train` and `bags head` take as --method (BAGS gets the config's groups)."""
    entry = METHODS[name]
    options = dict(entry["loss_options"])
    if entry["loss"] == "bags":
        options = {"edges": config["groups"]["edges"], "beta": config["groups"]["beta"]}
        options.update(entry["loss_options"])
    keys = ("loss", "sampler", "sampler_options", "new_layer")
    return {"loss_options": options, **{k: entry[k] for k in keys}}


def is_cached(name):
    """Classifier-level methods run on the frozen baseline's cached features."""
    entry = METHODS[name]
    level = "posthoc" in entry or settings_of(name).get("trainable") == "classifier"
    return entry["init"] == "baseline" and level and config["feature_cache"]


for _name, _entry in METHODS.items():
    if "posthoc" in _entry and not is_cached(_name):
        raise ValueError(
            f"config: method {_name!r} is post-hoc; it needs init: baseline and feature_cache"
        )


def methods_in(table):
    return [n for n, m in METHODS.items() if table in m["tables"]]


def pattern(names):
    """A wildcard pattern matching exactly these names (never matches if none)."""
    return "|".join(re.escape(n) for n in names) if names else "(?!)"


CACHED = [n for n in METHODS if is_cached(n)]
TRAINED = [n for n in METHODS if n not in CACHED]


def run_file(dataset, name, seed, file):
    return f"{EXP}/runs/{dataset}/{name}/seed{seed}/{file}"


def metrics_of(names):
    return {
        name: [run_file("longtail", name, seed, "metrics.json") for seed in SEEDS]
        for name in names
    }


def named_metrics(names):
    """`label=path` per row and seed (a repeated label is another seed of that row)."""
    return " ".join(
        f"'{METHODS[name]['label']}={path}'"
        for name, paths in metrics_of(names).items()
        for path in paths
    )


def table_targets(table):
    return expand(f"{EXP}/tables/{table}.{{ext}}", ext=["csv", "md", "tex"])


TARGETS = {
    **{table: table_targets(table) for table in TABLES if methods_in(table)},
    "per_bin_ap": expand(f"{EXP}/figures/per_bin_ap.{{ext}}", ext=["pdf", "png"]),
    "weight_norms_methods": expand(
        f"{EXP}/figures/weight_norms_methods.{{ext}}", ext=["pdf", "png"]
    ),
    "weight_norms": expand(f"{EXP}/figures/weight_norms.{{ext}}", ext=["pdf", "png"]),
}
if "bags" in METHODS:  # the BAGS figure and the claims compare BAGS with the baseline
    TARGETS["weight_norms_bags"] = expand(
        f"{EXP}/figures/weight_norms_bags.{{ext}}", ext=["pdf", "png"]
    )
    TARGETS["claims"] = [f"{EXP}/claims.md"]


def datasets_from(*sources):
    """A wildcard pattern matching the datasets of the given sources (never matches if none)."""
    names = [n for n, d in config["datasets"].items() if d["source"] in sources]
    return "|".join(names) if names else "(?!)"


wildcard_constraints:
    dataset="longtail|balanced",
    method=pattern(METHODS),
    seed=r"-?\d+",
    name="[A-Za-z0-9_.-]+",


def as_json(value):
    """A config section as a single-quoted JSON shell argument."""
    return f"'{json.dumps(value)}'"


def source_settings(dataset):
    entry = config["datasets"][dataset]
    return entry.get(entry["source"], {}) or {}


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


def dataset_options(wildcards):
    d = wildcards.dataset
    return f"--on-bad {on_bad(d)} --image-paths {image_paths(d)}"


def download_path(name):
    url = config["downloads"][name]["url"]
    return f"resources/downloads/{name}/{os.path.basename(url)}"


def pretrained_weights(wildcards):
    if config["model"].get("pretrained") == "coco":
        return download_path("r50_fpn_coco")
    return []


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


def init_model(wildcards):
    """The baseline a method goes on from (none when it trains from scratch)."""
    if METHODS[wildcards.method]["init"] == "baseline":
        return run_file(wildcards.dataset, "baseline", wildcards.seed, "model.pt")
    return []


FINETUNED = {"classifier": "classifier", "box_head": "box head", "all": "everything"}


def ablation_setting(table, name):
    """What an ablation varies, as its table shows it, and a key that orders the rows."""
    if table == "ablation_groups":
        edges = spec_of(name)["loss_options"]["edges"]
        split = ", ".join(str(e) for e in edges) or "none"
        return f"{len(edges) + 1} (split at {split})", len(edges)
    if table == "ablation_beta":
        beta = spec_of(name)["loss_options"]["beta"]
        return str(beta), float("inf") if beta == "all" else float(beta)
    trainable = settings_of(name).get("trainable", "all")
    return FINETUNED[trainable], list(FINETUNED).index(trainable)


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
        return ""
    settings = " ".join(
        f"'{METHODS[n]['label']}={ablation_setting(table, n)[0]}'"
        for n in table_rows(table)
    )
    return f"--setting-name '{SETTING_NAMES[table]}' --setting {settings}"


# Every comparison method that retrains or replaces the baseline's last layer.
RETRAINED = ["baseline"] + [
    n
    for n in methods_in("comparison")
    if n in CACHED or settings_of(n).get("trainable") != "all"
]
