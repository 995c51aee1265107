"""The config schema (``config.schema.yaml`` beside this module): every setting's range and
default, stated once for the pipeline (Snakemake validates the config with it) and the library
(which reads its defaults here)."""

from __future__ import annotations

import copy
from functools import cache
from pathlib import Path
from typing import Any

import yaml

SCHEMA_FILE = Path(__file__).with_name("config.schema.yaml")


@cache
def schema() -> dict[str, Any]:
    return yaml.safe_load(SCHEMA_FILE.read_text())


def defaults(name: str, definition: bool = False) -> dict[str, Any]:
    """The defaults of a top-level section (``defaults("inference")``) or of a definition
    (``defaults("schedule", definition=True)``)."""
    node = schema()["definitions" if definition else "properties"][name]
    # copies: a caller's list (a schedule's milestones) must not be the cached schema's
    return {k: copy.deepcopy(v["default"]) for k, v in node["properties"].items() if "default" in v}


DETECTIONS_PER_IMAGE: int = defaults("inference")["detections_per_img"]
GROUPS = defaults("groups")
EDGES: tuple[int, ...] = tuple(GROUPS["edges"])  # instance-count bins of the groups and APk
BETA: float = GROUPS["beta"]  # BAGS's "others" ratio
