"""The PR comment: verdict first, failures, everything collapsed; names escaped."""

from __future__ import annotations

import subprocess
import sys

from edgeopt.render.format import RESULT_HEADERS
from edgeopt.render.markdown import GITHUB_COMMENT_LIMIT, md_cell, to_markdown
from edgeopt.verdict.budgets import Budgets
from edgeopt.verdict.gate import check
from tests.unit.render.sample import measurement, sample_report, sample_verdict


def test_markdown_verdict_first_then_failures_then_table_then_details():
    md = to_markdown(sample_report(), sample_verdict(sample_report()))

    assert md.startswith("### ❌ edgeopt gate: FAIL")
    at = [md.index(s) for s in ("| ❌ | x86-cpu | 3 failed, 4 passed | ship model\\_int8 with litert",
                                "#### Failing checks", "#### Results (5)", "<details>")]
    assert at == sorted(at)
    # each failing check with its measured value, its limit and the margin between them
    assert "| ❌ | x86-cpu | model\\_fp32 | litert | size\\_kb | 300.0 KB | 200.0 KB | +100.0 KB (+50%) |" in md
    assert "| ❌ | x86-cpu | model\\_fp16 | litert | status | failed | ok | — |" in md
    assert "model\\_fp16 on x86-cpu (litert): failed: boom &lt;here&gt;" in md  # the message, in the details
    assert "<summary>All checks (7)</summary>" in md


def test_markdown_when_everything_passes():
    rep = sample_report()
    rep.results = [m for m in rep.results if m.status == "ok"]
    v = check(rep, Budgets.from_dict({"targets": {"x86-cpu": {"max_size_kb": 1000, "artifacts": {
        "format=onnx": {"max_p90_ms": {"limit": 0.1, "level": "warn"}}}}}}))

    md = to_markdown(rep, v)

    assert md.startswith("### ✅ edgeopt gate: PASS — 0 failed, 1 warning")
    assert "| ✅ | x86-cpu | 1 warned, 3 passed |" in md
    # warnings are listed as failing checks are (they do not fail the gate): 3.59 ms against 100 µs
    assert "#### Warnings" in md and "#### Failing checks" not in md
    assert "| ⚠️ | x86-cpu | net&lt;script&gt;" in md and "| 3.59 ms | 100 µs | +3.49 ms (+3487%) |" in md


def test_markdown_escapes_names():
    md = to_markdown(sample_report())

    assert "<script>" not in md
    assert "net&lt;script&gt;" in md and "\\|" in md
    rows = [line for line in md.splitlines() if line.startswith("| net")]
    assert rows and all(line.count(" | ") == len(RESULT_HEADERS) - 1 for line in rows)  # the pipe added no column


def test_markdown_fits_a_github_comment():
    rep = sample_report()
    rep.results = [measurement(f"model_{i:04d}_with_a_long_name", size_kb=300, seed=i) for i in range(1500)]
    v = sample_verdict(rep)
    full = to_markdown(rep, v, limit=10**9)
    assert len(full) > GITHUB_COMMENT_LIMIT

    md = to_markdown(rep, v)

    assert len(md) <= GITHUB_COMMENT_LIMIT
    assert md.startswith("### ❌ edgeopt gate: FAIL") and "#### Failing checks" in md  # the verdict survives
    assert "Truncated to fit GitHub's comment limit" in md.splitlines()[-1]
    assert md.count("<details>") == md.count("</details>")


def test_markdown_shows_what_changed_against_a_baseline():
    v = check(sample_report(1.3), baseline=sample_report())

    md = to_markdown(sample_report(1.3), v)

    assert "#### What changed against the baseline" in md
    assert "| model\\_int8 | x86-cpu | litert | p50\\_ms |" in md
    assert "| regression\\_p50\\_ms | +30.0% | +10.0% | +20.0 pp |" in md


def test_md_cell():
    assert md_cell("a|b\nc *d* <e>") == "a\\|b c \\*d\\* &lt;e&gt;"


def test_importing_render_does_not_import_matplotlib():
    code = "import sys, edgeopt.render.markdown; sys.exit('matplotlib' in sys.modules or 'tensorflow' in sys.modules)"

    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


SCAN = {"out": {"allocation": "sensitivity", "target": 0.8, "unit": "weights", "samples": 180, "split": "val",
                "shares": [0.5, 0.9], "layers": [
                    {"layer": "conv_1", "params": 72, "top1_drop@0.5": 0.0, "top1_drop@0.9": 0.25,
                     "loss_increase@0.5": 0.01, "loss_increase@0.9": 0.9, "chosen": 0.41},
                    {"layer": "dense", "params": 5120, "top1_drop@0.5": 0.0, "top1_drop@0.9": 0.011,
                     "loss_increase@0.5": 0.0, "loss_increase@0.9": 0.05, "chosen": 0.806}]}}


def test_markdown_shows_the_sensitivity_scan_as_a_table():
    rep = sample_report()
    rep.extra = {"sensitivity": SCAN}
    md = to_markdown(rep)
    assert "<summary>Sensitivity scan of out: weights pruned to 0.8 overall, sensitivity allocation (180 val rows)" in md
    assert "| layer | params | top-1 drop @0.5 | top-1 drop @0.9 | chosen |" in md
    assert "| conv\\_1 | 72 | +0.0 pt | +25.0 pt | 0.41 |" in md and "| dense | 5120 | +0.0 pt | +1.1 pt | 0.806 |" in md
    assert md.index("#### Results") < md.index("Sensitivity scan")
    rep.extra = {"sensitivity": {"out": "not a scan"}}
    assert "Sensitivity scan" not in to_markdown(rep)
