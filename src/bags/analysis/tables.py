"""Comparison tables of detection metrics, written as CSV, Markdown and LaTeX (booktabs)."""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from bags.io import atomic_path, write_text_atomic

DEFAULT_COLUMNS = ("AP", "APr", "APc", "APf", "AP1", "AP2", "AP3", "AP4")


def comparison_table(
    metrics: Mapping[str, Mapping[str, float | None]],
    columns: Sequence[str] = DEFAULT_COLUMNS,
) -> pd.DataFrame:
    """One row per method (in the given order): `method`, then `columns`; missing/None -> NaN."""
    rows = []
    for method, values in metrics.items():
        row: dict[str, object] = {"method": method}
        for col in columns:
            value = values.get(col)
            row[col] = math.nan if value is None else float(value)
        rows.append(row)
    return pd.DataFrame(rows, columns=["method", *columns])


def _fmt(value: object) -> str:
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return "-" if math.isnan(value) else f"{value:.1f}"
    return "-" if value is None else str(value).replace("|", "\\|")


def _numeric_columns(table: pd.DataFrame) -> list[str]:
    return [c for c in table.columns if pd.api.types.is_numeric_dtype(table[c])]


def to_markdown(table: pd.DataFrame) -> str:
    """GitHub Markdown table; numbers with 1 decimal, NaN as "-"."""
    numeric = set(_numeric_columns(table))
    header = "| " + " | ".join(str(c) for c in table.columns) + " |"
    rule = "| " + " | ".join("---:" if c in numeric else "---" for c in table.columns) + " |"
    lines = [header, rule]
    for row in table.itertuples(index=False):
        lines.append("| " + " | ".join(_fmt(v) for v in row) + " |")
    return "\n".join(lines) + "\n"


_TEX_SPECIAL = {c: "\\" + c for c in "&%$#_{}"} | {"\\": "\\textbackslash{}"}


def _tex_escape(text: str) -> str:
    return "".join(_TEX_SPECIAL.get(char, char) for char in text)


def to_latex(table: pd.DataFrame, caption: str = "") -> str:
    """LaTeX booktabs tabular; 1 decimal, NaN as "-", the best (max) value per column in bold."""
    numeric = _numeric_columns(table)
    best = {c: table[c].max(skipna=True) for c in numeric}
    spec = "".join("r" if c in numeric else "l" for c in table.columns)
    lines = []
    if caption:
        lines += ["\\begin{table}[t]", "\\centering", f"\\caption{{{_tex_escape(caption)}}}"]
    lines += [
        f"\\begin{{tabular}}{{{spec}}}",
        "\\toprule",
        " & ".join(_tex_escape(str(c)) for c in table.columns) + " \\\\",
        "\\midrule",
    ]
    for _, row in table.iterrows():
        cells = []
        for col in table.columns:
            value = row[col]
            text = _fmt(value) if col in numeric else _tex_escape(_fmt(value))
            if col in numeric and not pd.isna(value) and value == best[col]:
                text = f"\\textbf{{{text}}}"
            cells.append(text)
        lines.append(" & ".join(cells) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}"]
    if caption:
        lines.append("\\end{table}")
    return "\n".join(lines) + "\n"


def write_table(table: pd.DataFrame, stem: Path | str, caption: str = "") -> None:
    """Write `stem`.csv, `stem`.md and `stem`.tex, each atomically."""
    stem = Path(stem)
    with atomic_path(stem.with_name(stem.name + ".csv")) as tmp:
        table.to_csv(tmp, index=False)
    markdown = to_markdown(table)
    if caption:
        markdown = f"{caption}\n\n{markdown}"
    write_text_atomic(stem.with_name(stem.name + ".md"), markdown)
    write_text_atomic(stem.with_name(stem.name + ".tex"), to_latex(table, caption))
