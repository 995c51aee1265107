"""Reading a pipeline's run outputs for tables, figures and claims: metrics and weight norms."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path

import pandas as pd


def read_norms(path: Path | str) -> pd.DataFrame:
    """A weight-norm CSV: category_id, instance_count and norm per class."""
    table = pd.read_csv(path)
    missing = {"category_id", "instance_count", "norm"} - set(table.columns)
    if missing:
        raise ValueError(f"{path}: weight-norm CSV lacks column(s) {sorted(missing)}")
    return table


def read_metrics(path: Path | str, required: Sequence[str] = ()) -> dict:
    """A metrics JSON file, checked (see ``bags.evaluation.read_metrics``)."""
    from bags.evaluation import read_metrics as read_checked

    return read_checked(path, required)


def read_runs(
    named: Sequence[tuple[str, Path]], required: Sequence[str] = ()
) -> dict[str, list[dict]]:
    """Metrics files by label, in order; a label named again is another seed of that row."""
    runs: dict[str, list[dict]] = {}
    for name, path in named:
        runs.setdefault(name, []).append(read_metrics(path, required))
    return runs


def metric_columns(runs: dict[str, list[dict]]) -> tuple[list[str], list[str]]:
    """The table's metrics and the per-bin ones (AP1..APk, one per count bin of the run), then
    AP_fixed and AP_pool where the runs have them."""
    keys = {key for seeds in runs.values() for values in seeds for key in values}
    bins = list(itertools.takewhile(keys.__contains__, (f"AP{k}" for k in itertools.count(1))))
    fixed = [key for key in ("AP_fixed", "AP_pool") if key in keys]
    return ["AP", "APr", "APc", "APf", *bins, *fixed], bins
