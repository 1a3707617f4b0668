"""The results table of ``taskmem-bench run`` and ``report``: one record per finished run, with
the paper's figures and the run's own scoring's headline figures, as a terminal table, markdown,
JSON or CSV."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.table import Table

from taskmem_bench.scoring.base import Scoring, headline

REPORT_FIELDS = (
    "task", "policy", "reader", "n", "acc", "acc_ci_low", "acc_ci_high", "cov", "cov_ci_low",
    "cov_ci_high", "prec", "prec_ci_low", "prec_ci_high", "parse_failures", "failed",
)


def report_record(
    run_dir: Path, summary: dict[str, Any], scoring: Scoring | None = None
) -> dict[str, Any]:
    """The paper's numbers, the dataset's own headline figures (``scoring.variants``), where.
    The figures are ``scoring``'s, the run's own where the caller ran it, else those of the
    registered scoring the summary names (``scoring.base.headline``)."""
    return ({key: summary.get(key) for key in REPORT_FIELDS}
            | headline(summary.get("scoring"), scoring) | {"run_dir": str(run_dir)})


def pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}"


def _with_ci(record: dict[str, Any], key: str) -> str:
    low, high = record.get(f"{key}_ci_low"), record.get(f"{key}_ci_high")
    ci = f" [{pct(low)}, {pct(high)}]" if low is not None and high is not None else ""
    return pct(record[key]) + ci


def _display_rows(records: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    header = ["task", "policy", "reader", "n", "Acc [95% CI]", "parse fail", "failed",
              "Cov [95% CI]", "Prec [95% CI]"]
    extra = [key for key in dict.fromkeys(k for r in records for k in r)
             if key not in REPORT_FIELDS and key != "run_dir"]
    rows = [
        [
            r["task"], r["policy"], r["reader"], str(r["n"]), _with_ci(r, "acc"),
            str(r["parse_failures"]), str(r["failed"]), _with_ci(r, "cov"), _with_ci(r, "prec"),
            *(_figure(r.get(key)) for key in extra),
        ]
        for r in records
    ]
    return header + extra, rows


def _figure(value: float | int | None) -> str:
    """A rate as a percentage, a count as it is; blank where the run's scoring has no such
    figure (runs of several datasets in one table)."""
    if value is None:
        return ""
    return str(value) if isinstance(value, int) else pct(value)


def table(records: list[dict[str, Any]], title: str) -> Table:
    header, rows = _display_rows(records)
    grid = Table(title=title, title_justify="left")
    for column in header:
        grid.add_column(column, justify="left" if column in ("task", "policy", "reader") else "right")
    for row in rows:
        grid.add_row(*row)
    return grid


def markdown(records: list[dict[str, Any]]) -> str:
    header, rows = _display_rows(records)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)
