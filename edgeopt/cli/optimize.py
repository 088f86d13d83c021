"""`edgeopt optimize`: the budget-driven search. A live table of candidates while it runs; front.json, front.md and
report.html in --out; exit 0 when best/ was written, 1 when no candidate meets every budget (the closest ones
and what each misses are shown), 2 bad input, 130 interrupted (rerun the same command to resume)."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Annotated

import typer

from edgeopt.cli import _console, app, log

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*$")


def parse_duration(text: str | None) -> float | None:
    """'30m', '1.5h', '90s' or '90' (seconds) → seconds."""
    if text is None:
        return None
    m = _DURATION.match(text.lower())
    if not m or float(m[1]) <= 0:
        from edgeopt.errors import UsageError

        raise UsageError(f"--time-budget {text!r} is not a duration", "write e.g. --time-budget 30m, 2h or 900s")
    return float(m[1]) * {"": 1, "s": 1, "m": 60, "h": 3600}[m[2]]


class LiveTable:
    """The candidates as they finish: a rich table redrawn on a terminal, one log line each elsewhere."""

    def __init__(self) -> None:
        self.console = _console(stderr=True)
        self.rows: dict[int, list[str]] = {}
        self.live = None
        self.started = time.monotonic()

    def __enter__(self) -> LiveTable:
        if self.console.is_terminal:
            from rich.live import Live

            self.live = Live(self._table(), console=self.console, refresh_per_second=2, transient=False)
            self.live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self.live is not None:
            self.live.__exit__(*exc)

    def _table(self):
        return candidate_table(f"edgeopt optimize — candidates ({time.monotonic() - self.started:,.0f} s)",
                               [self.rows[n] for n in sorted(self.rows)[-30:]])

    def __call__(self, kind: str, rec: dict) -> None:
        from edgeopt.render.optimize import candidate_row

        if kind == "start":
            row = [str(rec["trial"]), rec["label"], "…", "…", "…", "running", "-"]
        else:
            row = candidate_row({**rec, "state": "pruned" if kind == "pruned" else "complete"})
            if kind == "pruned":
                row[5] = f"pruned: {str(rec.get('pruned', ''))[:60]}"
        self.rows[rec["trial"]] = row
        if self.live is not None:
            self.live.update(self._table())
        elif kind != "start":
            log.info("candidate %s", " | ".join(row))
        else:
            log.info("trial %s: %s", rec["trial"], rec["label"])


def write_outputs(doc: dict, out: Path) -> None:
    from edgeopt.atomic import write_json, write_text
    from edgeopt.render.optimize import to_html, to_markdown

    write_json(out / "front.json", doc)
    write_text(out / "front.md", to_markdown(doc))
    write_text(out / "report.html", to_html(doc))


def candidate_table(title: str, rows: list[list[str]]):
    """A rich table of candidates (render.optimize.candidate_row rows): the live one and the final front."""
    from rich.table import Table

    from edgeopt.render.optimize import FRONT_HEADERS, NUMERIC_FRONT_COLUMNS

    t = Table(title=title)
    for col in FRONT_HEADERS:
        t.add_column(col, justify="right" if col in NUMERIC_FRONT_COLUMNS else "left")
    for row in rows:
        t.add_row(*row)
    return t


def print_front(doc: dict) -> None:
    from edgeopt.render.optimize import candidate_row, front_rows, verdict_lines

    t = candidate_table(f"Pareto front on {doc['target']} (validation accuracy, p90, size)",
                        [candidate_row(r) for r in front_rows(doc)])
    console = _console()
    console.print(t)
    for line in verdict_lines(doc):
        console.print(line, highlight=False, markup=False, soft_wrap=True)


@app.command()
def optimize(model: Annotated[Path, typer.Argument(help="tf_keras .keras/.h5 file or SavedModel folder.")],
             data: Annotated[str, typer.Option(help="digits, shapes, a .npz or an image folder.")],
             target: Annotated[str, typer.Option(help="Target name or .yaml (see `edgeopt targets`).")],
             budgets: Annotated[Path, typer.Option(help="budgets.yaml with limits for the target.")],
             out: Annotated[Path, typer.Option(help="Output folder (front.json, report.html, best/, the study).")],
             trials: Annotated[int | None, typer.Option(help="Trials in the whole study (all workers; default 20, "
                                                            "or unbounded with --time-budget).", min=1)] = None,
             time_budget: Annotated[str | None, typer.Option(help="Stop starting trials after this long: 30m, "
                                                                  "2h, 900s.")] = None,
             recipe: Annotated[Path | None, typer.Option(help="Recipe YAML: train defaults, max_stage_drop, and the "
                                                             "search space in its optimize: section.")] = None,
             storage: Annotated[str | None, typer.Option(help="Study storage URL (default: sqlite in --out); "
                                                              "postgresql://user@host:port/db for workers.")] = None,
             study: Annotated[str, typer.Option(help="Study name (the same on every worker).")] = "edgeopt",
             worker: Annotated[bool, typer.Option("--worker", help="Only run trials of the shared study; a final "
                                                  "run without --worker writes the front and best/.")] = False,
             ) -> None:
    """Search compressions of MODEL for --target under --budgets; write the Pareto front and best/ to --out."""
    from edgeopt.optimize import search

    seconds = parse_duration(time_budget)
    p = search.prepare(model, data, target, budgets, out, recipe=recipe, storage=storage, study=study)
    st = search.open_problem_study(p, worker)
    with LiveTable() as live:
        ran = search.search(p, st, trials, seconds, live)
    if worker:
        _console().print(f"worker: ran {ran} trial(s) of study '{study}'")
        return
    doc = search.finish(p, st)
    write_outputs(doc, out)
    print_front(doc)
    _console().print(f"front: {out / 'front.json'}, report: {out / 'report.html'}")
    if doc["best"] is None:
        raise typer.Exit(1)
