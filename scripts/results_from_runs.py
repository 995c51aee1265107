"""The README's results block and the tables docs/results.md quotes, written from the files
the DAG made and nothing typed by hand.

The README's block joins the default run's comparison table and claims, kept in
docs/runs/synthetic/ (its README says how they were made), with the paper's box AP on LVIS v0.5
from docs/paper-results.csv (the reference implementation's README); it sits between two marker
lines. In docs/results.md, each ``<!-- from PATH -->`` line is followed by the text of the
repository's file PATH (its headings two levels down), up to the next ``<!-- end -->`` line.

    python scripts/results_from_runs.py            # rewrite both
    python scripts/results_from_runs.py --check    # exit 1 when either differs from the files
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNS = ROOT / "docs" / "runs" / "synthetic"
PAPER = ROOT / "docs" / "paper-results.csv"
BEGIN = "<!-- results: written by scripts/results_from_runs.py from docs/runs/synthetic -->"
END = "<!-- end of results -->"
QUOTED = re.compile(r"^<!-- from (\S+) -->\n.*?^<!-- end -->$", re.MULTILINE | re.DOTALL)
COLUMNS = ["#", "method", "AP", "APr", "APc", "APf", "AP_fixed", "AP_pool"]


def markdown_table(lines: list[str]) -> list[dict[str, str]]:
    rows = [[cell.strip() for cell in line.strip().strip("|").split("|")] for line in lines]
    return [dict(zip(rows[0], cells)) for cells in rows[2:]]


def table_lines(text: str) -> tuple[list[str], list[str]]:
    """A Markdown file's table lines, and its other non-empty lines."""
    lines = [line for line in text.splitlines() if line.strip()]
    return [x for x in lines if x.startswith("|")], [x for x in lines if not x.startswith("|")]


def demoted(lines: list[str], levels: int) -> list[str]:
    """Markdown lines with their headings ``levels`` down, to sit under the page's own."""
    return [("#" * levels + line) if line.startswith("#") else line for line in lines]


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
    out += ["", f"{title} (`claims.md`):", "", *claims, ""]
    for line in demoted(claim_text[1:], 1):  # claims passed, then BAGS's standing by metric
        out += ["", line, ""] if line.startswith("#") else [line]
    out = [line for i, line in enumerate(out) if line or (i and out[i - 1])]  # one blank line
    return "\n".join([BEGIN, *out, END])


def with_block(readme: str, new: str) -> str:
    if readme.count(BEGIN) != 1 or readme.count(END) != 1:
        raise SystemExit(f"README.md needs one line {BEGIN!r} and one line {END!r}")
    start, end = readme.index(BEGIN), readme.index(END) + len(END)
    return readme[:start] + new + readme[end:]


def with_quotes(text: str, root: Path = ROOT) -> str:
    """``text`` with each quoted file's current text between its markers."""

    def quote(match: re.Match) -> str:
        path = root / match[1]
        if not path.is_file():
            raise SystemExit(f"{match[1]}: quoted in the docs but not a file of the repository")
        lines = demoted(path.read_text().strip().splitlines(), 2)
        return "\n".join([f"<!-- from {match[1]} -->", *lines, "<!-- end -->"])

    return QUOTED.sub(quote, text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 if stale")
    args = parser.parse_args()
    readme, results = ROOT / "README.md", ROOT / "docs" / "results.md"
    current = {path: path.read_text() for path in (readme, results)}
    updates = {readme: with_block(current[readme], block()),
               results: with_quotes(current[results])}  # fmt: skip
    stale = [path for path, text in updates.items() if text != current[path]]
    if args.check:
        if stale:
            sys.exit(f"{', '.join(map(str, stale))}: differ from the kept runs' files; "
                     "run python scripts/results_from_runs.py")  # fmt: skip
        return
    for path in stale:
        path.write_text(updates[path])


if __name__ == "__main__":
    main()
