"""Comparison tables of detection metrics, written as CSV, Markdown and LaTeX (booktabs).

A table may hold `X` and `X_std` column pairs (from `summarize_runs`); Markdown and LaTeX show
each pair as one column "mean ± std", the CSV keeps both raw columns.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import pandas as pd

from bags.io import atomic_path, write_text_atomic

DEFAULT_COLUMNS = ("AP", "APr", "APc", "APf", "AP1", "AP2", "AP3", "AP4")
STD_SUFFIX = "_std"
UNRANKED = ("#", "seeds")  # numeric columns that are never bolded as "best"


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


def summarize_runs(
    runs: Mapping[str, Sequence[Mapping[str, float | None]]],
    columns: Sequence[str] = DEFAULT_COLUMNS,
) -> pd.DataFrame:
    """One row per label (in the given order): `method`, the mean over seeds of each column.

    None/missing values are NaN and ignored. If any label has more than one seed, `<col>_std`
    columns (sample std, ddof=1) follow the means. A `seeds` column (seed count) comes last.
    """
    multi = any(len(seeds) > 1 for seeds in runs.values())
    rows = []
    for label, seeds in runs.items():
        row: dict[str, object] = {"method": label}
        for col in columns:
            values = pd.Series(
                [math.nan if s.get(col) is None else float(s[col]) for s in seeds], dtype=float
            )
            row[col] = values.mean()
            if multi:
                row[col + STD_SUFFIX] = values.std(ddof=1)
        row["seeds"] = len(seeds)
        rows.append(row)
    stds = [col + STD_SUFFIX for col in columns] if multi else []
    return pd.DataFrame(rows, columns=["method", *columns, *stds, "seeds"]).astype({"seeds": int})


def ablation_table(
    runs: Mapping[str, Sequence[Mapping[str, float | None]]],
    settings: Mapping[str, object],
    setting_name: str,
    columns: Sequence[str] = DEFAULT_COLUMNS,
) -> pd.DataFrame:
    """`summarize_runs` with a `setting_name` column (settings[label], shown verbatim) after
    `method`; it has object dtype, so it is never formatted or bolded as a metric."""
    table = summarize_runs(runs, columns)
    values = pd.Series([settings[label] for label in runs], dtype=object)
    table.insert(1, setting_name, values)
    return table


def number_rows(table: pd.DataFrame) -> pd.DataFrame:
    """A copy with a leading integer column `#` = 1..n."""
    out = table.copy()
    out.insert(0, "#", range(1, len(out) + 1))
    return out


def _fmt(value: object) -> str:
    """Integers as is, other numbers with 1 decimal, NaN/None as "-", anything else as str."""
    if value is None:
        return "-"
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return str(int(value))
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return "-" if math.isnan(value) else f"{value:.1f}"
    return str(value)


def _text(value: object) -> str:
    """A non-numeric cell verbatim (numbers in it as given), NaN/None as "-"."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return str(value)


def _numeric_columns(table: pd.DataFrame) -> list[str]:
    return [c for c in table.columns if pd.api.types.is_numeric_dtype(table[c])]


def _layout(table: pd.DataFrame) -> tuple[list[str], set[str], dict[str, str]]:
    """Shown columns, the numeric ones among them, and shown column -> its `_std` column."""
    numeric = set(_numeric_columns(table))
    std = {c: c + STD_SUFFIX for c in table.columns if c in numeric and c + STD_SUFFIX in numeric}
    shown = [c for c in table.columns if c not in set(std.values())]
    return shown, numeric & set(shown), std


def _cells(table: pd.DataFrame, pm: str, escape: Callable[[str], str]) -> list[list[str]]:
    """Formatted cells of the shown columns; a mean with a std becomes "mean `pm` std"."""
    shown, numeric, std = _layout(table)
    columns = []
    for col in shown:
        values = table[col].tolist()
        if col not in numeric:
            columns.append([escape(_text(v)) for v in values])
            continue
        texts = [_fmt(v) for v in values]
        if col in std:
            for i, s in enumerate(table[std[col]].tolist()):
                if not (pd.isna(values[i]) or pd.isna(s)):
                    texts[i] += f" {pm} {s:.1f}"
        columns.append(texts)
    return [list(row) for row in zip(*columns)] if columns else []


def to_markdown(table: pd.DataFrame) -> str:
    """GitHub Markdown table; numbers with 1 decimal (integers as is), NaN as "-"."""
    shown, numeric, _ = _layout(table)
    header = "| " + " | ".join(str(c) for c in shown) + " |"
    rule = "| " + " | ".join("---:" if c in numeric else "---" for c in shown) + " |"
    lines = [header, rule]
    for cells in _cells(table, "±", lambda text: text.replace("|", "\\|")):
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


_TEX_SPECIAL = {c: "\\" + c for c in "&%$#_{}"} | {
    "\\": "\\textbackslash{}",
    "^": "\\textasciicircum{}",
    "~": "\\textasciitilde{}",
}


def _tex_escape(text: str) -> str:
    return "".join(_TEX_SPECIAL.get(char, char) for char in text)


def to_latex(table: pd.DataFrame, caption: str = "") -> str:
    """LaTeX booktabs tabular; 1 decimal, NaN as "-", the best (max) mean per column in bold."""
    shown, numeric, _ = _layout(table)
    ranked = [c for c in shown if c in numeric and c not in UNRANKED]
    best = {c: table[c].max(skipna=True) for c in ranked}
    spec = "".join("r" if c in numeric else "l" for c in shown)
    lines = []
    if caption:
        lines += ["\\begin{table}[t]", "\\centering", f"\\caption{{{_tex_escape(caption)}}}"]
    lines += [
        f"\\begin{{tabular}}{{{spec}}}",
        "\\toprule",
        " & ".join(_tex_escape(str(c)) for c in shown) + " \\\\",
        "\\midrule",
    ]
    for i, cells in enumerate(_cells(table, "$\\pm$", _tex_escape)):
        for j, col in enumerate(shown):
            value = table[col].iloc[i]
            if col in best and not pd.isna(value) and value == best[col]:
                cells[j] = f"\\textbf{{{cells[j]}}}"
        lines.append(" & ".join(cells) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}"]
    if caption:
        lines.append("\\end{table}")
    return "\n".join(lines) + "\n"


def write_table(table: pd.DataFrame, stem: Path | str, caption: str = "") -> None:
    """Write `stem`.csv (all raw columns), `stem`.md and `stem`.tex, each atomically."""
    stem = Path(stem)
    with atomic_path(stem.with_name(stem.name + ".csv")) as tmp:
        table.to_csv(tmp, index=False)
    markdown = to_markdown(table)
    if caption:
        markdown = f"{caption}\n\n{markdown}"
    write_text_atomic(stem.with_name(stem.name + ".md"), markdown)
    write_text_atomic(stem.with_name(stem.name + ".tex"), to_latex(table, caption))


def table_job(
    metrics: Sequence[tuple[str, Path]],
    out_stem: Path,
    caption: str = "",
    setting_name: str | None = None,
    settings: Sequence[tuple[str, str]] = (),
) -> None:
    """A comparison table (rows numbered) or, with ``setting_name``, an ablation table, from
    ``label=metrics.json`` pairs; a label named again is another seed of its row."""
    from bags.analysis.runs import metric_columns, read_runs

    runs = read_runs(metrics)
    columns, _ = metric_columns(runs)
    if setting_name:
        values = dict(settings)
        missing = set(runs) - set(values)
        if missing:
            raise ValueError(f"no setting given for {sorted(missing)}")
        table = ablation_table(runs, values, setting_name, columns)
    else:
        table = number_rows(summarize_runs(runs, columns))
    write_table(table, out_stem, caption)
