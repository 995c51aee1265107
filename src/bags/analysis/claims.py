"""Check the paper's qualitative claims (weight norms, APr gain) on measured numbers."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from bags.io import write_text_atomic

CLAIMED_METRICS = ("AP", "APr")  # what the claims compare; a metrics file must have both


@dataclass(frozen=True)
class Claim:
    statement: str
    measured: str
    passed: bool


def spearman(x: pd.Series, y: pd.Series) -> float:
    """Spearman rho as the Pearson correlation of average ranks.

    pandas' method="spearman" imports scipy, which this project does not depend on.
    """
    x = pd.Series(x, dtype=float).reset_index(drop=True)
    y = pd.Series(y, dtype=float).reset_index(drop=True)
    keep = x.notna() & y.notna()
    return float(x[keep].rank().corr(y[keep].rank()))


def coefficient_of_variation(values: pd.Series) -> float:
    """Population std (ddof=0) over mean."""
    values = pd.Series(values, dtype=float).dropna()
    return float(values.std(ddof=0) / values.mean())


def _rho_with_counts(norms: pd.DataFrame, counts: pd.DataFrame) -> float:
    """Spearman rho of `norms`' norm with `counts`' instance_count, matched by category_id."""
    merged = norms[["category_id", "norm"]].merge(
        counts[["category_id", "instance_count"]], on="category_id", how="inner"
    )
    return spearman(merged["instance_count"], merged["norm"])


def _metric(metrics: Mapping[str, float | None], key: str) -> float:
    value = metrics.get(key)
    return math.nan if value is None else float(value)


def mean_metrics(
    seeds: Sequence[Mapping[str, float | None]], keys: Sequence[str] = CLAIMED_METRICS
) -> dict[str, float]:
    """The metrics ``keys`` averaged over seeds; a seed without one makes its mean NaN."""
    if not seeds:
        raise ValueError("no metrics to average")
    return {key: sum(_metric(m, key) for m in seeds) / len(seeds) for key in keys}


def check_claims(
    lt_norms: pd.DataFrame,
    balanced_norms: pd.DataFrame,
    bags_norms: pd.DataFrame,
    baseline_metrics: Mapping[str, float | None],
    bags_metrics: Mapping[str, float | None],
    min_rho: float = 0.5,
    cv_ratio: float = 2.0,
    min_apr_gain: float = 5.0,
) -> list[Claim]:
    """The four claims; a NaN measurement (e.g. a missing metric) fails its claim."""
    claims = []

    rho_lt = spearman(lt_norms["instance_count"], lt_norms["norm"])
    claims.append(
        Claim(
            "Long-tailed baseline: weight norms rise with training instance count",
            f"rho = {rho_lt:.2f} (>= {min_rho:g})",
            rho_lt >= min_rho,
        )
    )

    cv_lt = coefficient_of_variation(lt_norms["norm"])
    cv_bal = coefficient_of_variation(balanced_norms["norm"])
    claims.append(
        Claim(
            "Balanced model: weight norms are flatter than the long-tailed baseline's",
            f"CV long-tailed = {cv_lt:.3f}, CV balanced = {cv_bal:.3f} "
            f"(need >= {cv_ratio:g} x {cv_bal:.3f} = {cv_ratio * cv_bal:.3f})",
            cv_lt >= cv_ratio * cv_bal and cv_lt > cv_bal,  # 0 >= 2 x 0 is not flatter
        )
    )

    apr_base, apr_bags = _metric(baseline_metrics, "APr"), _metric(bags_metrics, "APr")
    ap_base, ap_bags = _metric(baseline_metrics, "AP"), _metric(bags_metrics, "AP")
    gain = apr_bags - apr_base
    claims.append(
        Claim(
            f"BAGS raises APr by at least {min_apr_gain:g} points without lowering AP",
            f"APr {apr_base:.1f} -> {apr_bags:.1f} ({gain:+.1f}, need >= +{min_apr_gain:g}); "
            f"AP {ap_base:.1f} -> {ap_bags:.1f}",
            gain >= min_apr_gain and ap_bags >= ap_base,
        )
    )

    rho_bags = _rho_with_counts(bags_norms, lt_norms)
    claims.append(
        Claim(
            "BAGS flattens the weight norms: weaker rank correlation with instance count",
            f"rho BAGS = {rho_bags:.2f} (need < baseline rho {rho_lt:.2f})",
            rho_bags < rho_lt,
        )
    )
    return claims


def headline_claim(rows: Mapping[str, list[Mapping[str, float | None]]], bags: str) -> Claim:
    """The paper's headline: BAGS has the highest AP and the highest APr of the paper's rows
    (means over seeds); ties go against BAGS."""
    if bags not in rows or len(rows) < 2:
        raise ValueError(f"the headline claim compares {bags!r} with the paper's other rows")
    means = {label: mean_metrics(seeds) for label, seeds in rows.items()}
    parts, passed = [], True
    for key in ("AP", "APr"):
        best_other = max((v[key], label) for label, v in means.items() if label != bags)
        ours = means[bags][key]
        passed = passed and ours > best_other[0]
        parts.append(
            f"{key}: BAGS {ours:.1f}, best other {best_other[1]} {best_other[0]:.1f} "
            f"({ours - best_other[0]:+.1f})"
        )
    return Claim(
        "BAGS has the highest AP and the highest APr of the paper's methods",
        "; ".join(parts),
        passed,
    )


def claims_markdown(claims: list[Claim], title: str) -> str:
    lines = [f"# {title}", "", "| claim | measured | result |", "| --- | --- | --- |"]
    for claim in claims:
        cells = [claim.statement, claim.measured, "PASS" if claim.passed else "FAIL"]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    passed = sum(claim.passed for claim in claims)
    lines += ["", f"{passed} of {len(claims)} claims pass", ""]
    return "\n".join(lines)


def _ranked(values: Mapping[str, float]) -> list[str]:
    """Labels best first; a NaN (a row without the metric) last."""
    return sorted(values, key=lambda label: -math.inf if math.isnan(values[label])
                  else values[label], reverse=True)  # fmt: skip


def standing(rows: Mapping[str, list[Mapping[str, float | None]]], bags: str) -> str:
    """Where BAGS stands among every row of the comparison table, under LVIS AP (300 detections
    per image) and under AP_fixed and AP_pool (each class's best 10,000, no per-image cap) where
    the runs have them: each row's mean over its seeds, best first (a row without the metric
    last), and BAGS's place on each seed alone when every row has the same seeds."""
    lines = ["## Where BAGS stands among all rows", ""]
    seed_counts = {len(seeds) for seeds in rows.values()}
    per_seed = len(seed_counts) == 1 and min(seed_counts) > 1 and bags in rows
    for key in ("AP", "AP_fixed", "AP_pool"):
        means = {label: mean_metrics(seeds, (key,))[key] for label, seeds in rows.items()}
        if all(math.isnan(v) for v in means.values()):
            continue
        order = _ranked(means)
        place = f"{order.index(bags) + 1} of {len(order)}" if bags in order else "not a row"
        if per_seed:
            places = [
                _ranked({label: _metric(seeds[i], key) for label, seeds in rows.items()})
                .index(bags) + 1
                for i in range(len(rows[bags]))
            ]  # fmt: skip
            place += f" (on each seed alone: {', '.join(map(str, places))})"
        ranked = ", ".join(
            f"{label} {'-' if math.isnan(means[label]) else f'{means[label]:.1f}'}"
            for label in order
        )
        lines.append(f"- Under {key}: BAGS is {place}. {ranked}.")
    return "\n".join(lines) + "\n"


def write_claims(claims: list[Claim], path: Path | str, title: str, extra: str = "") -> None:
    write_text_atomic(path, claims_markdown(claims, title) + ("\n" + extra if extra else ""))


def claims_job(
    baseline_norms: Path,
    balanced_norms: Path,
    bags_norms: Path,
    baseline_metrics: Sequence[Path],
    bags_metrics: Sequence[Path],
    rows: Sequence[tuple[str, Path]],
    bags_label: str,
    out: Path,
    title: str,
    all_rows: Sequence[tuple[str, Path]] = (),
) -> None:
    """The claims of the paper checked on the run files, as a Markdown file. The APr claim reads
    the mean of the baseline's and BAGS' seeds; ``rows`` are the paper's comparison rows
    (``label=metrics.json``, a label again for another seed), ``all_rows`` every row of the
    comparison table, ranked under AP and AP_fixed."""
    from bags.analysis.runs import read_metrics, read_norms, read_runs

    claims = check_claims(
        read_norms(baseline_norms),
        read_norms(balanced_norms),
        read_norms(bags_norms),
        mean_metrics([read_metrics(path, CLAIMED_METRICS) for path in baseline_metrics]),
        mean_metrics([read_metrics(path, CLAIMED_METRICS) for path in bags_metrics]),
    )
    claims.append(headline_claim(read_runs(rows, CLAIMED_METRICS), bags_label))
    extra = standing(read_runs(all_rows), bags_label) if all_rows else ""
    write_claims(claims, out, title, extra)
