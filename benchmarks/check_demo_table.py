"""Does a run reproduce the README's demo table? Every number to +-0.002 (issue: the same numbers everywhere).

Reads the table under "demo run (16 images)" in README.md and compares each cell (value and CI
bounds of Deletion AUC, Insertion AUC, Score and pointing game, and the verdict against random)
with the run's results/tables/summary.csv. Prints the largest difference per column and exits 1
when any number differs by more than --tolerance or a verdict differs.

    python benchmarks/check_demo_table.py /path/to/run/results/tables/summary.csv

To see another CPU's kernels on this one, run the demo under them first, e.g.
    ATEN_CPU_CAPABILITY=default ONEDNN_MAX_CPU_ISA=SSE41 MKL_ENABLE_INSTRUCTIONS=SSE4_2 snakemake --cores all
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import pandas as pd

README = Path(__file__).resolve().parents[1] / "README.md"
COLUMNS = ("deletion_auc", "insertion_auc", "score", "pointing_game")  # the README table's numeric columns, in order
NUMBER = r"(-?\d+\.\d+)"
CELL = re.compile(rf"{NUMBER} \[{NUMBER}, {NUMBER}\]")


def readme_rows(readme: Path) -> dict[str, tuple[list[float], str]]:
    """{method id: (numbers in COLUMNS order, value/lo/hi each; verdict)} from the README's demo table."""
    lines = readme.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| demo run"))
    rows = {}
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        method_id = re.sub(r" \((chance|ground truth)\)$", "", cells[0])  # a reference row's role
        numbers = [float(x) for cell in cells[1:1 + len(COLUMNS)] for x in CELL.fullmatch(cell).groups()]
        rows[method_id] = (numbers, cells[1 + len(COLUMNS)])
    return rows


def run_numbers(summary: pd.Series) -> list[float]:
    return [float(summary[f"{column}{suffix}"]) for column in COLUMNS for suffix in ("", "_lo", "_hi")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("summary", type=Path, help="results/tables/summary.csv of the run to check")
    parser.add_argument("--readme", type=Path, default=README)
    parser.add_argument("--tolerance", type=float, default=0.002)
    args = parser.parse_args(argv)
    table = pd.read_csv(args.summary).set_index("method_id")
    expected = readme_rows(args.readme)
    missing = sorted(set(expected) - set(table.index))
    if missing:
        print(f"the run has no rows for {', '.join(missing)}", file=sys.stderr)
        return 1
    worst = {column: (0.0, "") for column in COLUMNS}
    verdicts = []
    for method_id, (numbers, verdict) in expected.items():
        ours = run_numbers(table.loc[method_id])
        # the README rounds to 3 decimals: compare the rounded run value, as a reader would
        for index, (readme_value, run_value) in enumerate(zip(numbers, ours)):
            column = COLUMNS[index // 3]
            difference = abs(round(run_value, 3) - readme_value)
            if difference > worst[column][0]:
                worst[column] = (difference, method_id)
        run_verdict = str(table.loc[method_id, "vs_random"])
        if verdict and run_verdict != verdict:  # chance rows have no verdict
            verdicts.append(f"{method_id}: README {verdict!r}, run {run_verdict!r}")
    for column, (difference, method_id) in worst.items():
        print(f"{column:15s} largest |difference| {difference:.4f}" + (f" ({method_id})" if method_id else ""))
    failed = [column for column, (difference, _) in worst.items() if difference > args.tolerance + 1e-9]
    for line in verdicts:
        print(f"verdict differs: {line}")
    ok = not failed and not verdicts
    print(f"{len(expected)} rows, {len(expected) * len(COLUMNS) * 3} numbers: "
          + ("all within" if ok else "NOT all within") + f" +-{args.tolerance:g} of the README")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
