"""Reading what the gate judges: report.json files (the report, its baseline) and budgets.yaml into objects,
or a UsageError naming the file and the fix. These functions read and return; they never write or print.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edgeopt.core.report import SCHEMA_VERSION, Report, load_report, schema_problems
from edgeopt.errors import UsageError
from edgeopt.verdict.budgets import Budgets, load_budgets
from edgeopt.verdict.text import one_line


def load_inputs(report: str | Path, budgets: str | Path | None = None,
                baseline: str | Path | None = None) -> tuple[Report, Budgets | None, Report | None]:
    """The report, then the budgets, then the baseline (the first bad one is the error); None stays None."""
    return (load_input(report, "report"), load_budgets(budgets) if budgets is not None else None,
            load_input(baseline, "baseline") if baseline is not None else None)


def load_input(path: str | Path, what: str) -> Report:
    """load_report, then the report schema: a malformed file is a UsageError here, never a crash later."""
    fix = "re-run `edgeopt bench` to write it again"
    try:
        report, failure = load_report(path), None
    except UsageError as e:
        report, failure = None, UsageError(e.problem if what == "report" else f"{what}: {e.problem}", e.fix)
    except (AttributeError, TypeError, ValueError, KeyError) as e:  # structure load_report does not check
        report, failure = None, UsageError(f"{what} {path} is malformed ({one_line(e)})", fix)
    data = _json_object(Path(path))
    # The schema names the exact place (results[2].latency_ms: ...); the version and JSON errors come first.
    if data is not None and data.get("schema_version") == SCHEMA_VERSION:
        problems = schema_problems(data)
        if problems:
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            raise UsageError(f"{what} {path} does not match the report schema: {problems[0]}{more}", fix)
    if failure is not None:
        raise failure
    assert report is not None
    return report


def _json_object(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
