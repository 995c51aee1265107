"""Figures: the paper's Figure 1, weight-norm comparisons and per-bin AP bars."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from bags.io import atomic_path

X_LABEL = "classes sorted by training instances"
COUNT_LABEL = "training instances (log)"
NORM_LABEL = "weight norm ||w||"
NORM_MEAN_LABEL = "weight norm / mean"
AP_LABEL = "AP (%)"
BAR_COLOR = "0.75"


def plain(text: str) -> str:
    """A method's label as matplotlib shows it verbatim: ``$`` escaped, so that no part of it
    is read as mathtext (a label from a config could otherwise fail to draw)."""
    return str(text).replace("$", "\\$")


def save_figure(fig: Figure, stem: Path | str) -> None:
    """Save `stem`.pdf and `stem`.png (dpi 150), each atomically, then close the figure."""
    stem = Path(stem)
    try:
        for fmt in ("pdf", "png"):
            with atomic_path(stem.with_name(f"{stem.name}.{fmt}")) as tmp:
                fig.savefig(tmp, format=fmt, dpi=150, bbox_inches="tight")
    finally:
        plt.close(fig)


def sort_by_count(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows sorted by instance_count descending (ties by category_id), index reset."""
    return frame.sort_values(
        ["instance_count", "category_id"], ascending=[False, True], kind="stable"
    ).reset_index(drop=True)


def plot_weight_norms(panels: Mapping[str, pd.DataFrame], stem: Path | str) -> None:
    """Paper Figure 1: per panel, instance counts (log bars) and weight norms (right axis)."""
    if not panels:
        raise ValueError("no panels to plot")
    sns.set_theme(style="white")
    fig, axes = plt.subplots(len(panels), 1, figsize=(8, 3 * len(panels)), squeeze=False)
    top = 1.05 * max(float(frame["norm"].max()) for frame in panels.values())
    for ax, (name, frame) in zip(axes[:, 0], panels.items()):
        data = sort_by_count(frame)
        x = np.arange(len(data))
        ax.bar(x, data["instance_count"], width=1.0, color=BAR_COLOR, linewidth=0)
        ax.set_yscale("log")
        ax.set_xlim(-0.5, len(data) - 0.5)
        ax.set_xlabel(X_LABEL)
        ax.set_ylabel(COUNT_LABEL)
        ax.set_title(plain(name))
        right = ax.twinx()
        right.plot(x, data["norm"], color="C3", marker=".", markersize=3, linewidth=0.8)
        right.set_ylim(0, top)  # one norm scale for every panel, so flatness compares
        right.set_ylabel(NORM_LABEL, color="C3")
        right.tick_params(axis="y", colors="C3")
    fig.tight_layout()
    save_figure(fig, stem)


def align_norms(norms: Mapping[str, pd.DataFrame], normalize: bool = True) -> pd.DataFrame:
    """One row per category of the FIRST frame, sorted by its instance_count descending.

    Columns: category_id, name, instance_count (from the first frame), then one column of norms
    per model, matched by category_id (not by row order). With `normalize`, each model's norms are
    divided by their mean, since softmax and BAGS norms can differ in scale.
    """
    if not norms:
        raise ValueError("no norm tables to align")
    first = next(iter(norms.values()))
    out = sort_by_count(first)[["category_id", "name", "instance_count"]]
    for model, frame in norms.items():
        if model in out.columns:
            raise ValueError(f"model name {model!r} clashes with a column name")
        series = frame.set_index("category_id")["norm"]
        if not series.index.is_unique:
            raise ValueError(f"{model}: duplicate category_id in the norm table")
        values = out["category_id"].map(series).astype(float)
        if normalize:
            values = values / series.mean()
        out[model] = values.to_numpy()
    return out


def plot_norms_comparison(
    norms: Mapping[str, pd.DataFrame], stem: Path | str, normalize: bool = True
) -> None:
    """Each model's norms as a line over classes sorted by the first model's instance counts."""
    data = align_norms(norms, normalize=normalize)
    sns.set_theme(style="white")
    fig, ax = plt.subplots(figsize=(8, 3.5))
    x = np.arange(len(data))
    counts_ax = ax.twinx()
    counts_ax.bar(x, data["instance_count"], width=1.0, color=BAR_COLOR, alpha=0.5, linewidth=0)
    counts_ax.set_yscale("log")
    counts_ax.set_ylabel(COUNT_LABEL)
    # Draw the lines above the bars of the twin axis.
    ax.set_zorder(counts_ax.get_zorder() + 1)
    ax.patch.set_visible(False)
    for i, model in enumerate(norms):
        ax.plot(x, data[model], color=f"C{i}", linewidth=0.9, label=plain(model))
    ax.set_xlim(-0.5, len(data) - 0.5)
    ax.set_xlabel(X_LABEL)
    ax.set_ylabel(NORM_MEAN_LABEL if normalize else NORM_LABEL)
    ax.legend(loc="upper right")
    fig.tight_layout()
    save_figure(fig, stem)


def plot_per_bin_runs(runs: Mapping[str, Sequence[Mapping]], stem: Path | str) -> None:
    """Grouped bars: one group per count bin (AP1..APk), one bar per method (mean over its
    seeds; error bars: std where there are several)."""
    from bags.analysis.runs import metric_columns
    from bags.analysis.tables import summarize_runs

    columns, bins = metric_columns(dict(runs))
    plot_per_bin_ap(summarize_runs(runs, columns), bins, stem)


def plot_per_bin_ap(table: pd.DataFrame, bins: Sequence[str], stem: Path | str) -> None:
    """Grouped bars: one group per bin (e.g. AP1..AP4), one bar per row of `table`.

    `method` gives the legend labels, the `bin` columns the heights (NaN: no bar) and
    `<bin>_std` columns, where present, the error bars.
    """
    if table.empty or not bins:
        raise ValueError("no methods or bins to plot")
    sns.set_theme(style="whitegrid")
    n = len(table)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.25 * n * len(bins) + 1.5), 4))
    colors = sns.color_palette("tab20" if n > 10 else "tab10", n)
    width = 0.8 / n
    x = np.arange(len(bins))
    for i, (_, row) in enumerate(table.iterrows()):
        heights = np.array([row[b] for b in bins], dtype=float)
        stds = np.array([row.get(f"{b}_std", np.nan) for b in bins], dtype=float)
        pos = x - 0.4 + (i + 0.5) * width
        shown = ~np.isnan(heights)
        label = str(row["method"])
        ax.bar(pos[shown], heights[shown], width=width, color=colors[i], label=plain(label))
        err = shown & ~np.isnan(stds)
        if err.any():
            ax.errorbar(pos[err], heights[err], yerr=stds[err], fmt="none", ecolor="0.2", capsize=2)
    ax.set_xticks(x, list(bins))
    ax.set_xlim(-0.5, len(bins) - 0.5)
    ax.set_ylabel(AP_LABEL)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), ncol=math.ceil(n / 16), frameon=False)
    fig.tight_layout()
    save_figure(fig, stem)


def plot_method_norms(
    norms: Mapping[str, pd.DataFrame], stem: Path | str, reference: str | None = None
) -> None:
    """One panel per method (grid of up to 4 columns): its weight norms over classes sorted by
    its instance counts. The `reference` frame's norms (by default the first), matched by
    category_id, are drawn in light grey behind every other panel's line."""
    reference = next(iter(norms), None) if reference is None else reference
    if not norms:
        raise ValueError("no norm tables to plot")
    if reference is not None and reference not in norms:
        raise ValueError(f"reference {reference!r} is not one of the norm tables")
    sns.set_theme(style="white")
    ncols = min(4, len(norms))
    nrows = math.ceil(len(norms) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.2 * ncols, 2.4 * nrows), squeeze=False)
    ref = None if reference is None else norms[reference].set_index("category_id")["norm"]
    for ax, (name, frame) in zip(axes.flat, norms.items()):
        data = sort_by_count(frame)
        x = np.arange(len(data))
        if ref is not None and name != reference:
            ref_norms = data["category_id"].map(ref).astype(float)
            ax.plot(x, ref_norms, color="0.8", linewidth=0.8, label=plain(reference))
        ax.plot(x, data["norm"], color="C3", linewidth=0.9, label=plain(name))
        ax.set_xlim(-0.5, len(data) - 0.5)
        ax.set_title(plain(name))
    for ax in axes.flat[len(norms) :]:
        ax.axis("off")
    fig.supxlabel(X_LABEL)
    fig.supylabel(NORM_LABEL)
    fig.tight_layout()
    save_figure(fig, stem)


def figure_job(kind: str, out_stem: Path, inputs: Sequence[tuple[str, Path]]) -> None:
    """The figure ``kind`` of the figure table from ``label=file`` pairs (weight-norm CSVs, or
    metrics JSONs with a label again for another seed)."""
    from bags.analysis.figure_table import BY_NAME
    from bags.analysis.runs import read_norms, read_runs

    if kind not in BY_NAME:
        raise ValueError(f"unknown figure {kind!r}; known: {sorted(BY_NAME)}")
    spec = BY_NAME[kind]
    if spec.reads == "norms":
        data = {label: read_norms(path) for label, path in inputs}
    else:
        data = read_runs(inputs)
    globals()[spec.plot](data, out_stem)
