"""The README's results are the kept run's files, not numbers typed by hand."""

import shutil
from pathlib import Path

from tests.helpers import load_script

ROOT = Path(__file__).resolve().parents[1]
README_RESULTS = load_script(ROOT / "scripts" / "readme_results.py")


def test_the_readme_block_is_the_kept_runs_tables_and_claims():
    readme = (ROOT / "README.md").read_text()
    assert README_RESULTS.with_block(readme, README_RESULTS.block()) == readme
    block = README_RESULTS.block()
    for line in (README_RESULTS.RUNS / "claims.md").read_text().splitlines():
        if line.startswith("|"):
            assert line in block  # every claim, as measured


def test_a_changed_run_file_changes_the_block(tmp_path):
    runs = tmp_path / "runs"
    shutil.copytree(README_RESULTS.RUNS / "tables", runs / "tables")
    shutil.copy(README_RESULTS.RUNS / "claims.md", runs / "claims.md")
    before = README_RESULTS.block(runs)
    table = runs / "tables" / "comparison.md"
    row = next(line for line in table.read_text().splitlines() if "| BAGS |" in line)
    changed = row.replace("| BAGS | ", "| BAGS | 1.0 ± 0.0 | ", 1).rsplit(" |", 2)[0] + " |"
    table.write_text(table.read_text().replace(row, changed))
    after = README_RESULTS.block(runs)
    assert after != before
    assert "| 14 | BAGS | 1.0 ± 0.0 |" in after
