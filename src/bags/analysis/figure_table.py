"""Every figure of the pipeline: its name, what it reads, its plotting function and caption.

The workflow makes one rule, target and report entry per row, and ``bags figure`` draws a row by
name. This module imports nothing beyond the standard library: Snakemake reads it while it
builds the DAG. Adding a figure is one plotting function in ``bags.analysis.figures`` (taking
``{label: data}`` and an output stem) and one row here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FigureSpec:
    name: str
    plot: str  # a function of bags.analysis.figures: (inputs by label, stem) -> None
    reads: str  # "norms" (weight-norm CSVs) or "metrics" (metrics JSONs, a label per seed)
    runs: str  # which runs: a selection the workflow defines (workflow/rules/figures.smk)
    caption: str


FIGURES = (
    FigureSpec(
        "weight_norms",
        "plot_weight_norms",
        "norms",
        "balanced_and_baseline",
        "The paper's Figure 1: per class, sorted by training instance count, the instance count "
        "(bars, log scale) and the L2 norm of the class's row in the last classification layer "
        "(line), for the balanced model (COCO's role) and for the long-tailed baseline.",
    ),
    FigureSpec(
        "weight_norms_bags",
        "plot_norms_comparison",
        "norms",
        "baseline_and_bags",
        "Weight norms of the last classification layer of the long-tailed softmax baseline and "
        "of BAGS (class rows only), each divided by its mean, classes sorted by training "
        "instance count.",
    ),
    FigureSpec(
        "weight_norms_methods",
        "plot_method_norms",
        "norms",
        "retrained",
        "Per-class weight norms of the last classification layer for every method that "
        "retrains or replaces it, classes sorted by training instance count; the baseline's "
        "norms in grey behind.",
    ),
    FigureSpec(
        "per_bin_ap",
        "plot_per_bin_runs",
        "metrics",
        "comparison",
        "AP per training-instance-count bin (AP1 = the rarest classes) for every method of the "
        "comparison table, mean over seeds (error bars: std when there are several).",
    ),
)
BY_NAME = {figure.name: figure for figure in FIGURES}
