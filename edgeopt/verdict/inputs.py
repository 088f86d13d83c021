"""Reading what the gate judges: report.json files (the report, its baseline) and budgets.yaml into objects,
or a UsageError naming the file and the fix. These functions read and return; they never write or print.
"""

from __future__ import annotations

from pathlib import Path

from edgeopt.core.report import Report, load_report
from edgeopt.errors import UsageError
from edgeopt.verdict.budgets import Budgets, load_budgets


def load_inputs(report: str | Path, budgets: str | Path | None = None,
                baseline: str | Path | None = None) -> tuple[Report, Budgets | None, Report | None]:
    """The report, then the budgets, then the baseline (the first bad one is the error); None stays None."""
    return (load_input(report, "report"), load_budgets(budgets) if budgets is not None else None,
            load_input(baseline, "baseline") if baseline is not None else None)


def load_input(path: str | Path, what: str) -> Report:
    """load_report, its problem prefixed with what was read ("baseline: ..."): a malformed file is a UsageError."""
    try:
        return load_report(path)
    except UsageError as e:
        raise UsageError(e.problem if what == "report" else f"{what}: {e.problem}", e.fix) from None
