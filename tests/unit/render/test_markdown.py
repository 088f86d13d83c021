"""The PR comment: verdict first, failures, everything collapsed; names escaped."""

from __future__ import annotations

import subprocess
import sys

from edgeopt.render.markdown import md_cell, to_markdown
from edgeopt.verdict.budgets import Budgets
from edgeopt.verdict.gate import check
from tests.unit.render.sample import sample_report, sample_verdict


def test_markdown_verdict_first_then_failures_then_collapsed_table():
    md = to_markdown(sample_report(), sample_verdict(sample_report()))

    assert md.startswith("### ❌ edgeopt gate: FAIL")
    fail_at, details_at = md.index("#### Failing checks"), md.index("<details>")
    assert fail_at < details_at
    assert "model\\_fp32 on x86-cpu (litert): size\\_kb 300.0 KB &gt; max 200.0 KB" in md
    assert "model\\_fp16 on x86-cpu (litert): failed: boom &lt;here&gt;" in md
    assert "**Recommendation** — x86-cpu: ship model\\_int8 with litert" in md
    assert "<summary>All results (5)</summary>" in md


def test_markdown_when_everything_passes():
    rep = sample_report()
    rep.results = [m for m in rep.results if m.status == "ok"]
    v = check(rep, Budgets.from_dict({"targets": {"x86-cpu": {"max_size_kb": 1000, "artifacts": {
        "format=onnx": {"max_p90_ms": {"limit": 0.1, "level": "warn"}}}}}}))

    md = to_markdown(rep, v)

    assert md.startswith("### ✅ edgeopt gate: PASS — 0 failed, 1 warning")
    assert "#### Failing checks" in md and "- ⚠️ net&lt;script&gt;" in md  # warnings are listed, not failing


def test_markdown_escapes_names():
    md = to_markdown(sample_report())

    assert "<script>" not in md
    assert "net&lt;script&gt;" in md and "\\|" in md
    for line in md.splitlines():
        if line.startswith("| net"):
            assert line.count(" | ") == 12  # the pipe in the name did not add a column


def test_md_cell():
    assert md_cell("a|b\nc *d* <e>") == "a\\|b c \\*d\\* &lt;e&gt;"


def test_markdown_lists_regressions_against_a_baseline():
    v = check(sample_report(1.3), baseline=sample_report())

    md = to_markdown(sample_report(1.3), v)

    assert "#### Regressions against the baseline" in md
    assert "| model\\_int8 | x86-cpu | litert | p50\\_ms |" in md


def test_importing_render_does_not_import_matplotlib():
    code = "import sys, edgeopt.render.markdown; sys.exit('matplotlib' in sys.modules or 'tensorflow' in sys.modules)"

    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
