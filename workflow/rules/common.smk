import json
import os

EXP = f"results/{config['experiment']}"
ENV = "../../envs/bags.yaml"

TARGETS = {
    "comparison": expand(f"{EXP}/tables/comparison.{{ext}}", ext=["csv", "md", "tex"]),
    "weight_norms": expand(f"{EXP}/figures/weight_norms.{{ext}}", ext=["pdf", "png"]),
    "weight_norms_bags": expand(
        f"{EXP}/figures/weight_norms_bags.{{ext}}", ext=["pdf", "png"]
    ),
    "claims": f"{EXP}/claims.md",
}


wildcard_constraints:
    dataset="longtail|balanced",
    method="baseline|bags",


def as_json(value):
    """A config section as a single-quoted JSON shell argument."""
    return f"'{json.dumps(value)}'"


def dataset_file(dataset, name):
    return f"{EXP}/data/{dataset}/{name}"


def run_dir(dataset, method):
    return f"{EXP}/runs/{dataset}/{method}"
