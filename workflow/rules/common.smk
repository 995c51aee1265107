import json
import os

EXP = f"results/{config['experiment']}"
ENV = "../../envs/bags.yaml"
RES = config["resources"]

TARGETS = {
    "comparison": expand(f"{EXP}/tables/comparison.{{ext}}", ext=["csv", "md", "tex"]),
    "weight_norms": expand(f"{EXP}/figures/weight_norms.{{ext}}", ext=["pdf", "png"]),
    "weight_norms_bags": expand(
        f"{EXP}/figures/weight_norms_bags.{{ext}}", ext=["pdf", "png"]
    ),
    "claims": f"{EXP}/claims.md",
}


def datasets_from(*sources):
    """A wildcard pattern matching the datasets of the given sources (never matches if none)."""
    names = [n for n, d in config["datasets"].items() if d["source"] in sources]
    return "|".join(names) if names else "(?!)"


wildcard_constraints:
    dataset="longtail|balanced",
    method="baseline|bags",
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
