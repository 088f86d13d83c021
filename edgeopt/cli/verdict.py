"""`edgeopt gate`, `edgeopt report` and `edgeopt demo`: judge a report, render it, write what was asked for."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from edgeopt.cli import SAMPLE_DIR, _console, app, log
from edgeopt.cli.bench import _print_results, do_bench
from edgeopt.cli.compress import _print_manifest, do_compress


def do_gate(report: Path, budgets: Path | None = None, baseline: Path | None = None, junit: Path | None = None,
            markdown: Path | None = None, json_out: Path | None = None, console=None, strict: bool = False) -> int:
    """Load the inputs, judge them, print the verdict, write the files asked for; the exit code (0 or 1)."""
    from edgeopt import atomic
    from edgeopt.errors import UsageError
    from edgeopt.render.junit import to_junit
    from edgeopt.render.markdown import to_markdown
    from edgeopt.render.terminal import verdict_view
    from edgeopt.verdict.gate import check
    from edgeopt.verdict.inputs import load_inputs

    for flag, path in (("--junit", junit), ("--markdown", markdown), ("--json", json_out)):
        if path is not None:
            atomic.check_writable(path, flag)
    rep, limits, old = load_inputs(report, budgets, baseline)
    if limits is None and old is None and not rep.is_ab:
        raise UsageError("nothing to gate against", "pass --budgets budgets.yaml and/or --baseline old_report.json, "
                                                    "or gate an A/B report (`edgeopt bench NEW --against OLD`)")
    verdict = check(rep, limits, old, strict=strict)
    console = console or _console()
    for part in verdict_view(verdict):
        console.print(part)
    md = to_markdown(rep, verdict)
    if junit is not None:
        atomic.write_text(junit, to_junit(verdict))
    if markdown is not None:
        atomic.write_text(markdown, md)
    if json_out is not None:
        atomic.write_json(json_out, verdict.to_dict())
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:  # appended to: earlier steps of the job wrote theirs
        before = Path(summary).read_text(encoding="utf-8") if Path(summary).is_file() else ""
        atomic.write_text(summary, before + ("\n" if before and not before.endswith("\n") else "") + md)
    log.info("gate: %s", verdict.summary())
    return verdict.exit_code


@app.command()
def gate(report: Annotated[Path, typer.Argument(help="report.json from `edgeopt bench`.")],
         budgets: Annotated[Path | None, typer.Option(help="budgets.yaml.")] = None,
         baseline: Annotated[Path | None, typer.Option(help="Baseline report.json to compare against.")] = None,
         junit: Annotated[Path | None, typer.Option(help="Write JUnit XML here.")] = None,
         markdown: Annotated[Path | None, typer.Option(help="Write a PR-comment Markdown here.")] = None,
         json_out: Annotated[Path | None, typer.Option("--json", help="Write the verdict as JSON here.")] = None,
         strict: Annotated[bool, typer.Option(help="Exit 1 when a comparison is inconclusive (noise above its "
                                                   "threshold) too.")] = False,
         ) -> None:
    """Check a report against budgets and/or a baseline (an A/B report: each new artifact against its old twin).
    Exit 0 pass (or inconclusive, unless --strict), 1 violated, 2 bad input."""
    raise typer.Exit(do_gate(report, budgets, baseline, junit=junit, markdown=markdown, json_out=json_out,
                             console=_console(), strict=strict))


def do_report(report: Path, html: Path | None = None, markdown: Path | None = None,
              baseline: Path | None = None, budgets: Path | None = None) -> list[Path]:
    """Write the HTML and/or Markdown report, with the gate's verdict when budgets and/or a baseline are given;
    with no output named, HTML next to the report."""
    from edgeopt import atomic
    from edgeopt.errors import UsageError
    from edgeopt.render.html import to_html
    from edgeopt.render.markdown import to_markdown
    from edgeopt.verdict.gate import check
    from edgeopt.verdict.inputs import load_inputs

    rep, limits, old = load_inputs(report, budgets, baseline)
    if not rep.results:
        raise UsageError(f"report {report} has no results", "run `edgeopt bench` on at least one artifact")
    verdict = check(rep, limits, old) if old is not None or limits is not None or rep.is_ab else None
    if html is None and markdown is None:
        html = Path(report).with_suffix(".html")
    written: list[Path] = []
    if html is not None:
        written.append(atomic.write_text(html, to_html(rep, verdict, old)))
    if markdown is not None:
        written.append(atomic.write_text(markdown, to_markdown(rep, verdict)))
    return written


@app.command()
def report(report: Annotated[Path, typer.Argument(help="report.json from `edgeopt bench`.")],
           html: Annotated[Path | None, typer.Option(help="Write a self-contained HTML report here.")] = None,
           markdown: Annotated[Path | None, typer.Option(help="Write a Markdown table here.")] = None,
           baseline: Annotated[Path | None, typer.Option(help="Baseline report.json to compare against.")] = None,
           budgets: Annotated[Path | None, typer.Option(help="budgets.yaml: show the gate's verdict.")] = None,
           ) -> None:
    """Render a report as HTML and/or Markdown (with the verdict, given --budgets and/or --baseline)."""
    from edgeopt.errors import UsageError

    if html is None and markdown is None:
        raise UsageError("nothing to write", "pass --html FILE and/or --markdown FILE")
    for p in do_report(report, html=html, markdown=markdown, baseline=baseline, budgets=budgets):
        _console().print(f"wrote {p}")


@app.command()
def demo(out: Annotated[Path, typer.Option(help="Output folder.")] = Path("out/demo"),
         min_seconds: Annotated[float | None, typer.Option(help="Minimum timed seconds per launch.")] = None,
         launches: Annotated[int | None, typer.Option(help="Worker launches per artifact.", min=1)] = None,
         ) -> None:
    """Compress the bundled digits teacher, benchmark it on x86-cpu, render and gate the report."""
    model = SAMPLE_DIR / "digits_cnn.keras"
    budgets = SAMPLE_DIR / "budgets.yaml"
    console = _console()
    console.rule("1/4 compress")
    manifest = do_compress(model, "digits", out / "artifacts", None)
    _print_manifest(manifest, out / "artifacts")
    console.rule("2/4 bench on x86-cpu")
    report_path = out / "report.json"
    rep = do_bench([out / "artifacts"], ["x86-cpu"], "digits", report_path, min_seconds=min_seconds, launches=launches)
    _print_results(rep)
    console.rule("3/4 report")
    written = do_report(report_path, html=out / "report.html", markdown=out / "report.md", budgets=budgets)
    console.rule("4/4 gate")
    code = do_gate(report_path, budgets, junit=out / "gate.junit.xml", markdown=out / "gate.md",
                   json_out=out / "verdict.json", console=console)
    console.print(f"\nmanifest: {out / 'artifacts' / 'manifest.json'}\nreport:   {report_path}")
    console.print(f"gate:     {'PASS' if code == 0 else 'FAIL'} against {budgets}")
    console.print(f"HTML report: {written[0]}")
    raise typer.Exit(code)
