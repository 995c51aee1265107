"""The README's results and docs/results.md's tables are the kept run's files, not numbers typed
by hand."""

import shutil
from pathlib import Path

import pytest

from tests.helpers import load_script

ROOT = Path(__file__).resolve().parents[1]
FROM_RUNS = load_script(ROOT / "scripts" / "results_from_runs.py")


def test_the_readme_block_is_the_kept_runs_tables_and_claims():
    readme = (ROOT / "README.md").read_text()
    assert FROM_RUNS.with_block(readme, FROM_RUNS.block()) == readme
    block = FROM_RUNS.block()
    for line in (FROM_RUNS.RUNS / "claims.md").read_text().splitlines():
        if line.startswith("|"):
            assert line in block  # every claim, as measured


def test_a_changed_run_file_changes_the_block(tmp_path):
    runs = tmp_path / "runs"
    shutil.copytree(FROM_RUNS.RUNS / "tables", runs / "tables")
    shutil.copy(FROM_RUNS.RUNS / "claims.md", runs / "claims.md")
    before = FROM_RUNS.block(runs)
    table = runs / "tables" / "comparison.md"
    row = next(line for line in table.read_text().splitlines() if "| BAGS |" in line)
    changed = row.replace("| BAGS | ", "| BAGS | 1.0 ± 0.0 | ", 1).rsplit(" |", 2)[0] + " |"
    table.write_text(table.read_text().replace(row, changed))
    after = FROM_RUNS.block(runs)
    assert after != before
    assert "| 14 | BAGS | 1.0 ± 0.0 |" in after


def test_the_results_page_quotes_the_kept_files_as_they_are():
    results = (ROOT / "docs" / "results.md").read_text()
    assert FROM_RUNS.with_quotes(results) == results
    quoted = FROM_RUNS.QUOTED.findall(results)
    assert "docs/runs/synthetic/tables/comparison.md" in quoted
    for path in quoted:
        for line in (ROOT / path).read_text().splitlines():
            assert line.lstrip("#") in results


def test_a_changed_quoted_file_changes_the_page(tmp_path):
    (tmp_path / "table.md").write_text("# T\n\n| a |\n| --- |\n| 1 |\n")
    page = "text\n<!-- from table.md -->\n### T\n\n| a |\n| --- |\n| 2 |\n<!-- end -->\nmore\n"
    assert FROM_RUNS.with_quotes(page, tmp_path) == page.replace("| 2 |", "| 1 |")
    missing = page.replace("table.md", "gone.md")
    with pytest.raises(SystemExit, match=r"gone\.md"):
        FROM_RUNS.with_quotes(missing, tmp_path)
