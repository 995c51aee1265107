"""The paper's test of a converged schedule: another full schedule from the trained model (x2)
may add at most ``max_gain`` AP, on a tuning split that is never val.

Per tested run and seed, the AP and APr of the model once and again; per run, the gain's mean
and std over the seeds and whether the mean passes. Written as CSV (one row per run and seed)
and Markdown (both tables).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from bags.io import atomic_path, write_text_atomic

SCORES = ("AP", "APr")


def _score(metrics: Mapping[str, float | None], key: str) -> float:
    value = metrics.get(key)
    return math.nan if value is None else float(value)


def convergence_rows(runs: Sequence[Mapping]) -> pd.DataFrame:
    """One row per entry of ``runs`` (``run``, ``schedule``, ``seed`` and the two metrics dicts
    ``once`` and ``again``): the scores of both and x2's gain."""
    rows = []
    for entry in runs:
        row = {"run": entry["run"], "schedule": entry["schedule"], "seed": int(entry["seed"])}
        for key in SCORES:
            once, again = _score(entry["once"], key), _score(entry["again"], key)
            row.update({key: once, f"{key} x2": again, f"{key} gain": again - once})
        rows.append(row)
    return pd.DataFrame(rows)


def convergence_summary(rows: pd.DataFrame, max_gain: float) -> pd.DataFrame:
    """Per run (in first-seen order): the seeds, x2's mean and std AP gain, and PASS when the
    mean gain is at most ``max_gain``."""
    out = []
    for (run, schedule), group in rows.groupby(["run", "schedule"], sort=False):
        gain = group["AP gain"]
        mean, std = float(gain.mean()), float(gain.std(ddof=1)) if len(gain) > 1 else math.nan
        out.append(
            {
                "run": run,
                "schedule": schedule,
                "seeds": len(group),
                "AP gain": mean,
                "AP gain std": std,
                "APr gain": float(group["APr gain"].mean()),
                "result": "PASS" if mean <= max_gain else "FAIL",
            }
        )
    return pd.DataFrame(out)


def _signed(value: float, std: float = math.nan) -> str:
    if math.isnan(value):
        return "-"
    return f"{value:+.1f}" + ("" if math.isnan(std) else f" ± {std:.1f}")


def _plain(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.1f}"


def convergence_markdown(rows: pd.DataFrame, summary: pd.DataFrame, max_gain: float) -> str:
    lines = [
        f"x2's gain: another full schedule from each trained model, both scored on the tuning "
        f"split (never val); a schedule passes when the mean AP gain is at most {max_gain:g}.",
        "",
        "| run | schedule | seeds | x2 gain in AP | x2 gain in APr | result |",
        "| --- | --- | ---: | ---: | ---: | --- |",
    ]
    for r in summary.itertuples(index=False):
        gain, std, apr = r[3], r[4], r[5]
        lines.append(
            f"| {r.run} | {r.schedule} | {r.seeds} | {_signed(gain, std)} | {_signed(apr)} "
            f"| {r.result} |"
        )
    lines += [
        "",
        "| run | seed | AP | AP x2 | gain | APr | APr x2 | gain |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows.to_dict("records"):
        cells = [r["run"], str(r["seed"])]
        for key in SCORES:
            cells += [_plain(r[key]), _plain(r[f"{key} x2"]), _signed(r[f"{key} gain"])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def convergence_job(spec: dict, out_stem: Path) -> None:
    """``spec``: ``{"max_gain": x, "runs": [{"run", "schedule", "seed", "once", "again"}]}``
    with ``once`` and ``again`` metrics files; writes ``out_stem.csv`` and ``out_stem.md``."""
    try:
        max_gain = float(spec["max_gain"])
        entries = [
            {**entry, "once": _read(entry["once"]), "again": _read(entry["again"])}
            for entry in spec["runs"]
        ]
    except (KeyError, TypeError) as error:
        raise ValueError(f"convergence spec: missing or malformed {error}") from error
    rows = convergence_rows(entries)
    summary = convergence_summary(rows, max_gain)
    with atomic_path(Path(f"{out_stem}.csv")) as tmp:
        rows.to_csv(tmp, index=False)
    write_text_atomic(Path(f"{out_stem}.md"), convergence_markdown(rows, summary, max_gain))


def _read(path: str) -> dict:
    try:
        metrics = json.loads(Path(path).read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not a metrics JSON file ({error})") from error
    if not isinstance(metrics, dict):
        raise ValueError(f"{path}: not a metrics JSON object")
    return metrics
