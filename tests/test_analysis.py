import json
import math
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bags.analysis import figures
from bags.analysis.claims import (
    Claim,
    check_claims,
    claims_job,
    coefficient_of_variation,
    headline_claim,
    spearman,
    write_claims,
)
from bags.analysis.figures import (
    align_norms,
    plot_method_norms,
    plot_norms_comparison,
    plot_per_bin_ap,
    plot_weight_norms,
)
from bags.analysis.tables import (
    ablation_table,
    comparison_table,
    number_rows,
    summarize_runs,
    to_latex,
    to_markdown,
    write_table,
)
from bags.io import atomic_path, write_text_atomic

METRICS = {
    "baseline": {"AP": 20.98, "APr": 3.0, "APc": 19.2, "APf": None, "AP1": 0.0},
    "BAGS": {"AP": 25.96, "APr": 17.66, "APc": 25.75, "APf": 29.55, "AP1": 11.04},
}


def norm_frame(counts, norms, ids=None) -> pd.DataFrame:
    ids = list(range(1, len(counts) + 1)) if ids is None else ids
    return pd.DataFrame(
        {
            "category_id": ids,
            "name": [f"c{i}" for i in ids],
            "instance_count": counts,
            "norm": norms,
        }
    )


# --- io ---------------------------------------------------------------------------------------


def test_atomic_path_replaces_on_success_and_cleans_up_on_failure(tmp_path):
    target = tmp_path / "out.txt"
    write_text_atomic(target, "old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]
    write_text_atomic(target, "new")
    assert target.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]
    # Same permissions as a plainly created file (mkstemp would give 0600).
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    assert target.stat().st_mode == plain.stat().st_mode


def test_a_killed_writers_temporary_is_removed_by_the_next_write(tmp_path):
    """SIGKILL runs no cleanup: the next write of the same output removes what it left."""
    target = tmp_path / "out.json"
    killed = (
        "import os, signal, sys; from bags.io import atomic_path\n"
        "with atomic_path(sys.argv[1]) as tmp:\n"
        "    tmp.write_text('half')\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    result = subprocess.run([sys.executable, "-c", killed, str(target)], check=False)
    assert result.returncode == -signal.SIGKILL
    left = [p.name for p in tmp_path.iterdir()]
    assert len(left) == 1 and left[0].startswith(".out.json.") and left[0].endswith(".tmp")
    other = tmp_path / ".other.json.0123456789abcdef.tmp"  # another output's: kept
    other.write_text("x")
    write_text_atomic(target, "whole")
    assert sorted(p.name for p in tmp_path.iterdir()) == [other.name, "out.json"]


# --- tables -----------------------------------------------------------------------------------


def test_comparison_table_rows_columns_values_and_nan():
    table = comparison_table(METRICS, columns=("AP", "APr", "APf", "AP4"))
    assert list(table.columns) == ["method", "AP", "APr", "APf", "AP4"]
    assert list(table["method"]) == ["baseline", "BAGS"]
    assert table.loc[1, "APr"] == pytest.approx(17.66)
    assert math.isnan(table.loc[0, "APf"])  # None
    assert table["AP4"].isna().all()  # missing key
    assert table.loc[1, "APf"] == pytest.approx(29.55)


def test_comparison_table_default_columns_keep_method_order():
    table = comparison_table({"b": {"AP": 1.0}, "a": {"AP": 2.0}})
    assert list(table.columns) == ["method", "AP", "APr", "APc", "APf", "AP1", "AP2", "AP3", "AP4"]
    assert list(table["method"]) == ["b", "a"]


def test_markdown_one_decimal_and_dash_for_nan():
    md = to_markdown(comparison_table(METRICS, columns=("AP", "APr", "APf")))
    lines = md.strip().splitlines()
    assert lines[0] == "| method | AP | APr | APf |"
    assert set(lines[1].replace(" ", "")) <= set("|-:")
    assert lines[2] == "| baseline | 21.0 | 3.0 | - |"
    assert lines[3] == "| BAGS | 26.0 | 17.7 | 29.6 |"


def test_latex_booktabs_and_bold_best_per_column_ignoring_nan():
    table = comparison_table(
        {"x_1": {"AP": 20.98, "APr": 9.0, "APf": None}, "y": {"AP": 25.96, "APr": 3.0}},
        columns=("AP", "APr", "APf"),
    )
    tex = to_latex(table, caption="LVIS v0.5")
    for rule in ("\\toprule", "\\midrule", "\\bottomrule"):
        assert tex.count(rule) == 1
    assert "\\caption{LVIS v0.5}" in tex
    assert "x\\_1 & 21.0 & \\textbf{9.0} & - \\\\" in tex  # escaped name; APf all NaN
    assert "y & \\textbf{26.0} & 3.0 & - \\\\" in tex
    assert tex.count("\\textbf") == 2


def test_write_table_writes_three_files(tmp_path):
    table = comparison_table(METRICS)
    write_table(table, tmp_path / "main", caption="Box AP")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["main.csv", "main.md", "main.tex"]
    back = pd.read_csv(tmp_path / "main.csv")
    pd.testing.assert_frame_equal(back, table)
    md = (tmp_path / "main.md").read_text()
    assert "| BAGS | 26.0 | 17.7 |" in md and "Box AP" in md
    assert "\\bottomrule" in (tmp_path / "main.tex").read_text()


# Seeds per method: BAGS AP 26 +- 1 (APr 17, None, 19 -> 18 +- sqrt 2); "wide" has a lower mean
# AP (25.5) but a higher std (3.0) and mean + std, so bold must go by the mean alone.
RUNS = {
    "baseline": [{"AP": 20.0, "APr": 3.0}],
    "BAGS": [{"AP": 25.0, "APr": 17.0}, {"AP": 26.0, "APr": None}, {"AP": 27.0, "APr": 19.0}],
    "wide": [{"AP": 22.5, "APr": 10.0}, {"AP": 25.5, "APr": 10.0}, {"AP": 28.5, "APr": 10.0}],
}


def test_summarize_runs_mean_std_over_seeds_ignoring_none():
    table = summarize_runs(RUNS, ("AP", "APr", "APf"))
    assert list(table.columns) == [
        *("method", "AP", "APr", "APf", "AP_std", "APr_std", "APf_std", "seeds")
    ]
    assert list(table["method"]) == ["baseline", "BAGS", "wide"]
    assert list(table["seeds"]) == [1, 3, 3]
    bags = table.iloc[1]
    assert bags["AP"] == pytest.approx(26.0) and bags["AP_std"] == pytest.approx(1.0)
    assert bags["APr"] == pytest.approx(18.0) and bags["APr_std"] == pytest.approx(math.sqrt(2))
    assert math.isnan(bags["APf"]) and math.isnan(bags["APf_std"])  # all missing
    assert table.loc[2, "AP_std"] == pytest.approx(3.0)
    assert table.loc[0, "AP"] == pytest.approx(20.0) and math.isnan(table.loc[0, "AP_std"])


def test_summarize_single_seed_has_no_std_columns():
    table = summarize_runs({"a": [{"AP": 20.98, "APr": 3.0}], "b": [{"AP": 1.0}]}, ("AP", "APr"))
    assert list(table.columns) == ["method", "AP", "APr", "seeds"]
    assert list(table["seeds"]) == [1, 1]
    lines = to_markdown(table).splitlines()
    assert lines[0] == "| method | AP | APr | seeds |"
    assert lines[2:] == ["| a | 21.0 | 3.0 | 1 |", "| b | 1.0 | - | 1 |"]


def test_markdown_renders_mean_plus_minus_std():
    lines = to_markdown(summarize_runs(RUNS, ("AP", "APr", "APf"))).splitlines()
    assert lines[0] == "| method | AP | APr | APf | seeds |"  # no separate _std columns
    assert lines[1] == "| --- | ---: | ---: | ---: | ---: |"
    assert lines[2:] == [
        "| baseline | 20.0 | 3.0 | - | 1 |",  # std NaN -> mean only
        "| BAGS | 26.0 ± 1.0 | 18.0 ± 1.4 | - | 3 |",
        "| wide | 25.5 ± 3.0 | 10.0 ± 0.0 | - | 3 |",
    ]


def test_latex_renders_pm_and_bolds_best_mean(tmp_path):
    table = summarize_runs(RUNS, ("AP", "APr", "APf"))
    tex = to_latex(table)
    assert "\\begin{tabular}{lrrrr}" in tex
    assert "method & AP & APr & APf & seeds \\\\" in tex
    assert "baseline & 20.0 & 3.0 & - & 1 \\\\" in tex
    assert "BAGS & \\textbf{26.0 $\\pm$ 1.0} & \\textbf{18.0 $\\pm$ 1.4} & - & 3 \\\\" in tex
    assert "wide & 25.5 $\\pm$ 3.0 & 10.0 $\\pm$ 0.0 & - & 3 \\\\" in tex
    assert tex.count("\\textbf") == 2  # seeds is not a metric
    # The CSV keeps the raw mean and std columns at full precision.
    write_table(table, tmp_path / "seeds")
    back = pd.read_csv(tmp_path / "seeds.csv")
    assert list(back.columns) == list(table.columns)
    assert back.loc[1, "APr_std"] == pytest.approx(math.sqrt(2), abs=1e-12)


def test_number_rows_renders_integers_never_bold():
    table = comparison_table(METRICS, columns=("AP",))
    numbered = number_rows(table)
    assert list(table.columns) == ["method", "AP"]  # input unchanged
    assert list(numbered.columns) == ["#", "method", "AP"]
    lines = to_markdown(numbered).splitlines()
    assert lines[0] == "| # | method | AP |"
    assert lines[2:] == ["| 1 | baseline | 21.0 |", "| 2 | BAGS | 26.0 |"]
    tex = to_latex(numbered)
    assert "\\# & method & AP \\\\" in tex
    assert "1 & baseline & 21.0 \\\\" in tex
    assert "2 & BAGS & \\textbf{26.0} \\\\" in tex
    assert tex.count("\\textbf") == 1
    # Integers stay integers without a text column too.
    assert to_markdown(number_rows(table[["AP"]])).splitlines()[2] == "| 1 | 21.0 |"


def test_ablation_table_setting_column_verbatim_and_not_a_metric():
    runs = {name: [{"AP": ap}] for name, ap in [("a", 20.0), ("b", 21.0), ("c", 22.0), ("d", 19)]}
    settings = {"a": "all", "b": 0.5, "c": 8, "d": 0.25}
    table = ablation_table(runs, settings, "groups", ("AP",))
    assert list(table.columns) == ["method", "groups", "AP", "seeds"]
    assert table["groups"].dtype == object
    lines = to_markdown(table).splitlines()
    assert lines[1] == "| --- | --- | ---: | ---: |"
    assert lines[2:] == [
        "| a | all | 20.0 | 1 |",
        "| b | 0.5 | 21.0 | 1 |",
        "| c | 8 | 22.0 | 1 |",
        "| d | 0.25 | 19.0 | 1 |",
    ]
    tex = to_latex(table)
    assert "c & 8 & \\textbf{22.0} & 1 \\\\" in tex
    assert "d & 0.25 & 19.0 & 1 \\\\" in tex
    assert tex.count("\\textbf") == 1


# --- figures ----------------------------------------------------------------------------------


def assert_pdf_png(tmp_path, stem):
    pdf, png = tmp_path / f"{stem}.pdf", tmp_path / f"{stem}.png"
    assert pdf.read_bytes()[:4] == b"%PDF"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([pdf.name, png.name])


def test_plot_weight_norms_writes_pdf_and_png(tmp_path):
    panels = {
        "balanced": norm_frame([50, 60, 55, 40], [1.0, 1.1, 1.0, 0.9]),
        "long-tailed": norm_frame([1, 1000, 30, 5, 200], [0.5, 2.0, 1.2, 0.8, 1.6]),
    }
    plot_weight_norms(panels, tmp_path / "fig1")
    assert_pdf_png(tmp_path, "fig1")


def test_plot_norms_comparison_writes_pdf_and_png(tmp_path):
    base = norm_frame([1, 1000, 30, 5], [0.5, 2.0, 1.2, 0.8])
    bags = norm_frame([1, 1000, 30, 5], [10.0, 11.0, 10.5, 10.2])
    plot_norms_comparison({"baseline": base, "BAGS": bags}, tmp_path / "norms")
    assert_pdf_png(tmp_path, "norms")


def capture_figures(monkeypatch) -> list:
    figs = []
    real = figures.save_figure

    def save(fig, stem):
        figs.append(fig)
        real(fig, stem)

    monkeypatch.setattr(figures, "save_figure", save)
    return figs


def test_plot_per_bin_ap_bars_nan_and_error_bars(tmp_path, monkeypatch):
    figs = capture_figures(monkeypatch)
    runs = {
        "baseline": [{"AP1": None, "AP2": 5.0, "AP3": 10.0}],
        "BAGS": [{"AP1": 4.0, "AP2": 9.0, "AP3": 12.0}, {"AP1": 8.0, "AP2": 11.0, "AP3": 14.0}],
    }
    table = summarize_runs(runs, ("AP1", "AP2", "AP3"))
    plot_per_bin_ap(table, ["AP1", "AP2", "AP3"], tmp_path / "bins")
    assert_pdf_png(tmp_path, "bins")
    (ax,) = figs[0].axes
    heights = sorted(round(p.get_height(), 6) for p in ax.patches)
    assert heights == [5.0, 6.0, 10.0, 10.0, 13.0]  # the NaN bin has no bar
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["baseline", "BAGS"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["AP1", "AP2", "AP3"]
    assert ax.get_ylabel() == "AP (%)"
    errorbars = [c for c in ax.containers if type(c).__name__ == "ErrorbarContainer"]
    assert len(errorbars) == 1  # BAGS only: the single-seed std is NaN
    (segments,) = errorbars[0].lines[2]
    spans = [abs(s[1, 1] - s[0, 1]) for s in segments.get_segments()]
    # +- std: AP1 (4, 8) -> 2 * 2.83; AP2 (9, 11) and AP3 (12, 14) -> 2 * 1.41.
    assert sorted(spans) == pytest.approx([2 * math.sqrt(2)] * 2 + [4 * math.sqrt(2)])


def test_plot_method_norms_panels_and_reference(tmp_path, monkeypatch):
    figs = capture_figures(monkeypatch)
    base = norm_frame([1, 1000, 30], [0.5, 2.0, 1.2])
    norms = {"baseline": base}
    for i in range(4):
        # Same classes, rows shuffled: the reference must be matched by category_id.
        norms[f"m{i}"] = norm_frame([30, 1, 1000], [10.0 + i, 11.0, 12.0], ids=[3, 1, 2])
    plot_method_norms(norms, tmp_path / "grid", reference="baseline")
    assert_pdf_png(tmp_path, "grid")
    axes = figs[0].axes
    assert len(axes) == 8  # 2 x 4 grid
    shown = [ax for ax in axes if ax.axison]
    assert [ax.get_title() for ax in shown] == list(norms)
    assert len(shown[0].lines) == 1  # the reference panel itself
    grey, line = shown[2].lines
    np.testing.assert_allclose(grey.get_ydata(), [2.0, 1.2, 0.5])  # classes 2, 3, 1
    np.testing.assert_allclose(line.get_ydata(), [12.0, 11.0, 11.0])
    with pytest.raises(ValueError, match="reference"):
        plot_method_norms(norms, tmp_path / "bad", reference="softmax")


def test_align_norms_matches_by_category_id_not_row_order():
    base = norm_frame([5, 100, 20], [1.0, 3.0, 2.0], ids=[7, 3, 9])
    # Same categories, rows shuffled, different counts (must be ignored: the first frame sorts).
    bags = norm_frame([0, 0, 0], [30.0, 10.0, 20.0], ids=[3, 7, 9]).iloc[[2, 0, 1]]
    raw = align_norms({"baseline": base, "BAGS": bags}, normalize=False)
    assert list(raw.columns) == ["category_id", "name", "instance_count", "baseline", "BAGS"]
    assert list(raw["category_id"]) == [3, 9, 7]  # by the first frame's count, descending
    assert list(raw["instance_count"]) == [100, 20, 5]
    assert list(raw["baseline"]) == [3.0, 2.0, 1.0]
    assert list(raw["BAGS"]) == [30.0, 20.0, 10.0]

    scaled = align_norms({"baseline": base, "BAGS": bags})
    np.testing.assert_allclose(scaled["baseline"], [1.5, 1.0, 0.5])
    np.testing.assert_allclose(scaled["BAGS"], [1.5, 1.0, 0.5])


def test_align_norms_missing_category_is_nan():
    base = norm_frame([5, 100], [1.0, 3.0], ids=[1, 2])
    other = norm_frame([5], [4.0], ids=[2])
    out = align_norms({"a": base, "b": other}, normalize=False)
    assert out["b"].iloc[0] == 4.0 and math.isnan(out["b"].iloc[1])


# --- claims -----------------------------------------------------------------------------------

COUNTS = [1, 3, 8, 20, 60, 150, 400, 1000, 3000, 9000]
RISING = [float(c) for c in COUNTS]  # norms = counts -> rho 1
SHUFFLED = [60.0, 1.0, 9000.0, 3.0, 400.0, 8.0, 1000.0, 20.0, 150.0, 3000.0]
FLAT = [1.0, 1.1, 0.9, 1.0, 1.05, 0.95, 1.0, 1.1, 0.9, 1.0]
GOOD = ({"AP": 21.0, "APr": 3.0}, {"AP": 26.0, "APr": 17.7})


def test_spearman_and_cv_by_hand():
    assert spearman(pd.Series(COUNTS), pd.Series(RISING)) == pytest.approx(1.0)
    assert spearman(pd.Series([1, 2, 3]), pd.Series([3, 2, 1])) == pytest.approx(-1.0)
    # Ties get average ranks: ranks (1, 2.5, 2.5, 4) vs (1, 2, 3, 4).
    assert spearman(pd.Series([1, 2, 2, 3]), pd.Series([1, 2, 3, 4])) == pytest.approx(
        np.corrcoef([1, 2.5, 2.5, 4], [1, 2, 3, 4])[0, 1]
    )
    rho = spearman(pd.Series(COUNTS), pd.Series(SHUFFLED))
    assert abs(rho) < 0.5
    # CV of [1, 3]: mean 2, population std 1 -> 0.5 (sample std would give 0.707).
    assert coefficient_of_variation(pd.Series([1.0, 3.0])) == pytest.approx(0.5)


def test_all_claims_pass():
    lt = norm_frame(COUNTS, RISING)
    bal = norm_frame([100] * 10, FLAT)
    bags = norm_frame(COUNTS, SHUFFLED).iloc[::-1]  # row order must not matter
    claims = check_claims(lt, bal, bags, *GOOD)
    assert len(claims) == 4
    assert all(isinstance(c, Claim) for c in claims)
    assert [c.passed for c in claims] == [True, True, True, True]
    assert "rho = 1.00 (>= 0.5)" in claims[0].measured


def test_each_claim_fails():
    # 1 and 4: baseline norms unrelated to counts; BAGS norms rise with them.
    lt = norm_frame(COUNTS, SHUFFLED)
    # 2: balanced norms as spread as the baseline's (same CV).
    bal = norm_frame([100] * 10, [2 * v for v in SHUFFLED])
    bags = norm_frame(COUNTS, RISING)
    claims = check_claims(lt, bal, bags, {"AP": 21.0, "APr": 3.0}, {"AP": 26.0, "APr": 7.9})
    assert [c.passed for c in claims] == [False, False, False, False]


def test_claim_thresholds_and_ap_condition():
    lt = norm_frame(COUNTS, RISING)
    cv_lt = coefficient_of_variation(pd.Series(RISING))
    # Balanced CV exactly cv_lt / 2 passes at cv_ratio 2 (>=), fails at 2.01.
    bal_norms = [1 + (v - np.mean(RISING)) / np.mean(RISING) / 2 for v in RISING]
    assert coefficient_of_variation(pd.Series(bal_norms)) == pytest.approx(cv_lt / 2)
    bal = norm_frame([100] * 10, bal_norms)
    bags = norm_frame(COUNTS, FLAT)
    assert check_claims(lt, bal, bags, *GOOD, cv_ratio=1.99)[1].passed
    assert not check_claims(lt, bal, bags, *GOOD, cv_ratio=2.01)[1].passed
    # APr gain enough but AP drops -> claim 3 fails; missing APr -> fails.
    assert not check_claims(lt, bal, bags, {"AP": 21.0, "APr": 3.0}, {"AP": 20.9, "APr": 20.0})[
        2
    ].passed
    assert not check_claims(lt, bal, bags, {"AP": 21.0, "APr": None}, {"AP": 26.0, "APr": 20.0})[
        2
    ].passed
    # rho just below min_rho fails claim 1.
    assert not check_claims(lt, bal, bags, *GOOD, min_rho=1.01)[0].passed
    # Flat norms everywhere: 0 >= 2 x 0, and nothing is flatter than anything.
    flat = norm_frame(COUNTS, [1.0] * 10)
    assert not check_claims(flat, flat, bags, *GOOD)[1].passed


def test_headline_claim_compares_means_over_seeds_and_ties_go_against_bags():
    rows = {
        "baseline": [{"AP": 20.0, "APr": 5.0}],
        "BAGS": [{"AP": 30.0, "APr": 20.0}, {"AP": 20.0, "APr": 10.0}],  # means 25, 15
        "RFS": [{"AP": 26.0, "APr": 14.0}],
    }
    claim = headline_claim(rows, "BAGS")  # BAGS' seed 0 alone would lead both metrics
    assert not claim.passed
    assert claim.measured == (
        "AP: BAGS 25.0, best other RFS 26.0 (-1.0); APr: BAGS 15.0, best other RFS 14.0 (+1.0)"
    )
    rows["RFS"] = [{"AP": 24.0, "APr": 15.0}]
    assert not headline_claim(rows, "BAGS").passed  # APr tied
    rows["RFS"] = [{"AP": 24.0, "APr": 14.9}]
    assert headline_claim(rows, "BAGS").passed
    with pytest.raises(ValueError, match="compares 'BAGS'"):
        headline_claim({"BAGS": rows["BAGS"]}, "BAGS")


def test_claims_job_reads_the_apr_gain_on_the_mean_of_the_seeds(tmp_path):
    """Seed 0 alone gains +6 APr; over both seeds the gain is +3.5, short of the claimed 5."""
    norms = tmp_path / "norms.csv"
    norm_frame(COUNTS, RISING).to_csv(norms, index=False)
    paths = {}
    for name, seeds in {"base": [(20, 10), (22, 14)], "bags": [(24, 16), (24, 15)]}.items():
        for seed, (ap, apr) in enumerate(seeds):
            paths.setdefault(name, []).append(tmp_path / f"{name}{seed}.json")
            paths[name][-1].write_text(json.dumps({"AP": ap, "APr": apr}))
    rows = [("baseline", p) for p in paths["base"]] + [("BAGS", p) for p in paths["bags"]]
    out = tmp_path / "claims.md"
    claims_job(norms, norms, norms, paths["base"], paths["bags"], rows, "BAGS", out, "t")
    apr_claim = next(line for line in out.read_text().splitlines() if "raises APr" in line)
    assert "APr 12.0 -> 15.5 (+3.5, need >= +5); AP 21.0 -> 24.0 | FAIL |" in apr_claim
    claims_job(norms, norms, norms, paths["base"][:1], paths["bags"][:1], rows, "BAGS", out, "t")
    assert "APr 10.0 -> 16.0 (+6.0, need >= +5)" in out.read_text()


def test_write_claims_markdown(tmp_path):
    claims = [Claim("a rises", "rho = 0.91 (>= 0.5)", True), Claim("b | c", "x", False)]
    path = tmp_path / "claims.md"
    write_claims(claims, path, title="Claims on LVIS v0.5")
    lines = path.read_text().splitlines()
    assert lines[0] == "# Claims on LVIS v0.5"
    assert "| a rises | rho = 0.91 (>= 0.5) | PASS |" in lines
    assert "| b \\| c | x | FAIL |" in lines
    assert lines[-1] == "1 of 2 claims pass"
    assert [p.name for p in tmp_path.iterdir()] == ["claims.md"]


def test_differences_script_takes_each_seed_against_the_same_seed(tmp_path):
    """scripts/differences.py: A minus B seed by seed, then mean ± sample std."""
    for method, values in {"a": [(80, 60), (84, 70)], "b": [(79, 55), (82, 66), (1, 1)]}.items():
        for seed, (ap, apr) in enumerate(values):
            run = tmp_path / "runs" / "longtail" / method / f"seed{seed}"
            run.mkdir(parents=True)
            (run / "metrics.json").write_text(json.dumps({"AP": ap, "APr": apr}))
    script = Path(__file__).parents[1] / "scripts" / "differences.py"

    def differences(*args: str) -> subprocess.CompletedProcess:
        command = [sys.executable, str(script), str(tmp_path), "a", "b", *args]
        return subprocess.run(command, capture_output=True, text=True)

    # Seeds 0 and 1 only (b's seed 2 has no partner): AP +1, +2; APr +5, +4.
    assert "| a minus b | 2 | +1.5 ± 0.7 | +4.5 ± 0.7 |" in differences().stdout
    assert "| a minus b | 2 | +4.5 ± 0.7 |" in differences("--metrics", "APr").stdout
    missing = differences("--metrics", "AP_fixed")
    assert missing.returncode != 0 and "'AP_fixed'" in missing.stderr


def test_spread_script_gives_each_tables_median_and_largest_std(tmp_path):
    """scripts/spread.py: per metric, the median and largest std over a table's rows."""
    paths = []
    for name, stds in {"new": [0.2, 0.4, 1.0], "old": [0.5, 0.5, 2.0]}.items():
        rows = [
            {"method": f"m{i}", **{m: 50.0 for m in ("AP", "APr", "APc", "APf")},
             **{f"{m}_std": std * (k + 1) for k, m in enumerate(("AP", "APr", "APc", "APf"))},
             "seeds": 3}
            for i, std in enumerate(stds)
        ]  # fmt: skip
        paths.append(tmp_path / f"{name}.csv")
        pd.DataFrame(rows).to_csv(paths[-1], index=False)
    script = Path(__file__).parents[1] / "scripts" / "spread.py"
    done = subprocess.run(
        [sys.executable, str(script), *map(str, paths)], capture_output=True, text=True, check=True
    )
    assert "| AP | median 0.4, largest 1.0 | median 0.5, largest 2.0 |" in done.stdout
    assert "| APr | median 0.8, largest 2.0 | median 1.0, largest 4.0 |" in done.stdout
    one_seed = tmp_path / "one.csv"
    pd.DataFrame([{"method": "m", "AP": 1.0, "seeds": 1}]).to_csv(one_seed, index=False)
    failed = subprocess.run(
        [sys.executable, str(script), str(one_seed)], capture_output=True, text=True
    )
    assert failed.returncode != 0 and "one.csv" in failed.stderr


def test_error_kinds_script_splits_a_classes_ap_by_false_positive(tmp_path):
    """scripts/error_kinds.py: AP at an IoU threshold, and its gain per kind of false positive."""
    gt = {
        "categories": [{"id": 1, "frequency": "r"}, {"id": 2, "frequency": "f"}],
        "images": [
            {"id": 1, "neg_category_ids": []},
            {"id": 2, "neg_category_ids": [2]},
            {"id": 3, "neg_category_ids": [2]},  # class 1 is not evaluated here
        ],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10]},
            {"id": 2, "image_id": 1, "category_id": 2, "bbox": [20, 20, 10, 10]},
            {"id": 3, "image_id": 2, "category_id": 1, "bbox": [0, 0, 10, 10]},
        ],
    }
    detections = [
        {"image_id": 3, "category_id": 1, "bbox": [0, 0, 10, 10], "score": 0.95},  # ignored
        {"image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10], "score": 0.9},  # true
        {"image_id": 1, "category_id": 1, "bbox": [20, 20, 10, 10], "score": 0.8},  # on class 2
        {"image_id": 2, "category_id": 1, "bbox": [5, 0, 10, 10], "score": 0.7},  # IoU 1/3
        {"image_id": 2, "category_id": 1, "bbox": [0, 0, 10, 10], "score": 0.6},  # true
        {"image_id": 2, "category_id": 1, "bbox": [40, 40, 5, 5], "score": 0.5},  # background
    ]
    (tmp_path / "val.json").write_text(json.dumps(gt))
    run = tmp_path / "runs" / "longtail" / "bags" / "seed0"
    run.mkdir(parents=True)
    (run / "detections.json").write_text(json.dumps(detections))
    script = Path(__file__).parents[1] / "scripts" / "error_kinds.py"

    def table(*options):
        done = subprocess.run(
            [sys.executable, str(script), str(tmp_path / "val.json"), str(run / "detections.json"),
             *options],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        return {line.split("|")[1].strip(): line.split("|")[2].strip() for line in
                done.stdout.splitlines()[2:]}  # fmt: skip

    # Kinds by falling score: true, class 2's object, poor localisation, true, background.
    # 101 recall points: 51 at recall <= 1/2 with precision 1, 50 above it with precision 1/2
    # (2/4, the interpolation's best after the second hit): AP 76/101. Without either false
    # positive above the second hit, the 50 points take 2/3: (51 + 100/3)/101.
    at_half = table()
    assert at_half["AP"] == f"{100 * 76 / 101:.1f}"
    gain = f"{100 * ((51 + 100 / 3) / 101 - 76 / 101):+.1f}"
    assert at_half["+ without another class's object: f"] == gain
    assert at_half["+ without poor localisation"] == gain
    assert at_half["+ without background"] == "+0.0"  # ranked below the last true positive
    # At IoU 0.3 the shifted box is the second hit: precision 1, 1/2, 2/3 -> AP (51 + 100/3)/101.
    assert table("--iou", "0.3")["AP"] == f"{100 * (51 + 100 / 3) / 101:.1f}"


def test_standing_ranks_bags_among_every_row_under_each_metric():
    from bags.analysis.claims import standing

    rows = {
        "baseline": [{"AP": 20.0, "AP_fixed": 22.0}, {"AP": 26.0, "AP_fixed": 24.0}],
        "BAGS": [{"AP": 25.0, "AP_fixed": 21.0}, {"AP": 25.0, "AP_fixed": 21.0}],
        "RFS": [{"AP": 24.0, "AP_fixed": None}, {"AP": 24.0, "AP_fixed": None}],
    }
    text = standing(rows, "BAGS")
    # First on the means; second on seed 1 alone, where the baseline's 26 leads.
    assert "- Under AP: BAGS is 1 of 3 (on each seed alone: 1, 2). " in text
    assert "BAGS 25.0, RFS 24.0, baseline 23.0." in text
    assert "- Under AP_fixed: BAGS is 2 of 3 (on each seed alone: 2, 2). " in text
    assert "baseline 23.0, BAGS 21.0, RFS -." in text
    assert "AP_pool" not in text  # no run has it
    one_seed = standing({label: seeds[:1] for label, seeds in rows.items()}, "BAGS")
    assert "- Under AP: BAGS is 1 of 3. BAGS 25.0, RFS 24.0, baseline 20.0." in one_seed
