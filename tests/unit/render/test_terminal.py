"""The terminal view: renderables in print order; the view itself prints nothing."""

from __future__ import annotations

import io

from rich.console import Console
from rich.table import Table

from edgeopt.render.terminal import verdict_view
from edgeopt.verdict.gate import check
from tests.unit.render.sample import sample_report, sample_verdict


def _text(parts) -> str:
    console = Console(file=io.StringIO(), width=240, color_system=None)
    for part in parts:
        console.print(part)
    return console.file.getvalue()


def test_budget_checks_then_failures_then_recommendation_then_summary(capsys):
    rep = sample_report()
    v = sample_verdict(rep)

    parts = verdict_view(v)

    assert capsys.readouterr() == ("", "")
    assert isinstance(parts[0], Table) and parts[0].title == "Budget checks"
    lines = _text(parts).splitlines()
    assert lines[-1] == v.summary()
    assert lines[-2].startswith("Recommendation — x86-cpu: ship model_int8 with litert")
    assert any(line.startswith("FAIL: model_fp32 on x86-cpu (litert): size_kb 300.0 KB > max 200.0 KB")
               for line in lines)


def test_baseline_only_shows_the_comparison_table():
    v = check(sample_report(1.3), baseline=sample_report())

    parts = verdict_view(v)

    assert [p.title for p in parts if isinstance(p, Table)] == ["Against the baseline"]
    text = _text(parts)
    assert "p-value" in text and "regressed" in text and "source model: a reference, not gated" in text
