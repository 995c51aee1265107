"""The README's results block, written from the files the DAG made and nothing typed by hand.

The default run's comparison table and claims are read from the run kept in
docs/runs/synthetic/ (its README says how it was made), the paper's box AP on LVIS v0.5 from
docs/paper-results.csv (the reference implementation's README). The block sits between two
marker lines in README.md.

    python scripts/readme_results.py            # rewrite the block
    python scripts/readme_results.py --check    # exit 1 when the README differs from the files
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNS = ROOT / "docs" / "runs" / "synthetic"
PAPER = ROOT / "docs" / "paper-results.csv"
BEGIN = "<!-- results: written by scripts/readme_results.py from docs/runs/synthetic -->"
END = "<!-- end of results -->"
COLUMNS = ["#", "method", "AP", "APr", "APc", "APf"]


def markdown_table(lines: list[str]) -> list[dict[str, str]]:
    rows = [[cell.strip() for cell in line.strip().strip("|").split("|")] for line in lines]
    return [dict(zip(rows[0], cells)) for cells in rows[2:]]


def table_lines(text: str) -> tuple[list[str], list[str]]:
    """A Markdown file's table lines, and its other non-empty lines."""
    lines = [line for line in text.splitlines() if line.strip()]
    return [x for x in lines if x.startswith("|")], [x for x in lines if not x.startswith("|")]


def block(runs: Path = RUNS, paper: Path = PAPER) -> str:
    table, caption = table_lines((runs / "tables" / "comparison.md").read_text())
    with paper.open() as file:
        paper_ap = {row["method"]: row["AP"] for row in csv.DictReader(file)}
    header = [*COLUMNS, "paper AP (LVIS v0.5)"]
    out = [" ".join(caption), "", "| " + " | ".join(header) + " |",
           "| ---: | --- | " + " | ".join("---:" for _ in header[2:]) + " |"]  # fmt: skip
    for row in markdown_table(table):
        cells = [row[c] for c in COLUMNS] + [paper_ap.get(row["method"], "not in the paper")]
        out.append("| " + " | ".join(cells) + " |")
    claims, claim_text = table_lines((runs / "claims.md").read_text())
    title = claim_text[0].lstrip("# ")
    out += ["", f"{title} (`claims.md`):", "", *claims, "", *claim_text[1:]]
    return "\n".join([BEGIN, *out, END])


def with_block(readme: str, new: str) -> str:
    if readme.count(BEGIN) != 1 or readme.count(END) != 1:
        raise SystemExit(f"README.md needs one line {BEGIN!r} and one line {END!r}")
    start, end = readme.index(BEGIN), readme.index(END) + len(END)
    return readme[:start] + new + readme[end:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 if stale")
    parser.add_argument("--readme", type=Path, default=ROOT / "README.md")
    args = parser.parse_args()
    readme = args.readme.read_text()
    updated = with_block(readme, block())
    if args.check:
        if updated != readme:
            sys.exit(f"{args.readme}: its results differ from docs/runs/synthetic; "
                     "run python scripts/readme_results.py")  # fmt: skip
        return
    args.readme.write_text(updated)


if __name__ == "__main__":
    main()
