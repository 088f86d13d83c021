"""The CLI's gate and report commands: they load the inputs, print the verdict and write every file asked for."""

from __future__ import annotations

import io
import json
import xml.etree.ElementTree as ET

import pytest
from rich.console import Console

from edgeopt.cli.verdict import do_gate, do_report
from edgeopt.errors import UsageError
from tests.unit.render.sample import sample_report
from tests.unit.verdict.sample import standard_report

# --- gate ---------------------------------------------------------------------------------------------

def _files(tmp_path, budgets_yaml="targets:\n  x86-cpu:\n    max_size_kb: 200\n"):
    rp = standard_report().save(tmp_path / "report.json")
    bp = tmp_path / "budgets.yaml"
    bp.write_text(budgets_yaml)
    return rp, bp


def _console():
    return Console(file=io.StringIO(), width=200, color_system=None)


def test_do_gate_writes_every_output(tmp_path, monkeypatch):
    rp, bp = _files(tmp_path)
    summary = tmp_path / "step_summary.md"
    summary.write_text("previous step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    console = _console()

    code = do_gate(rp, bp, junit=tmp_path / "j.xml", markdown=tmp_path / "g.md", json_out=tmp_path / "v.json",
                   console=console)

    assert code == 1
    out = console.file.getvalue()
    assert "Budget checks" in out and "FAIL" in out and "size_kb" in out and "300.0 KB" in out
    assert "Recommendation — x86-cpu: ship model_int8 with litert" in out
    root = ET.parse(tmp_path / "j.xml").getroot()
    assert root.get("failures") == "2"
    md = (tmp_path / "g.md").read_text()
    assert md.startswith("### ❌ edgeopt gate: FAIL")
    assert json.loads((tmp_path / "v.json").read_text())["exit_code"] == 1
    text = summary.read_text()
    assert text.startswith("previous step\n") and text.endswith(md)


def test_do_gate_passes(tmp_path, monkeypatch):
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    rp, bp = _files(tmp_path, "targets:\n  x86-cpu:\n    max_size_kb: 400\n")

    assert do_gate(rp, bp, console=_console()) == 0


def test_do_gate_with_baseline_only(tmp_path, monkeypatch):
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    rp, _ = _files(tmp_path)
    console = _console()

    assert do_gate(rp, baseline=rp, console=console) == 0
    out = console.file.getvalue()
    assert "Against the baseline" in out and "p-value" in out and "unchanged" in out


def test_do_gate_needs_budgets_or_baseline(tmp_path):
    rp, _ = _files(tmp_path)

    with pytest.raises(UsageError, match="nothing to gate against") as e:
        do_gate(rp)
    assert "--budgets" in e.value.fix and "--baseline" in e.value.fix


def test_do_gate_writes_nothing_on_bad_input(tmp_path):
    rp, _ = _files(tmp_path)
    bad = tmp_path / "bad.yaml"
    bad.write_text("targets:\n  x86-cpu:\n    max_p90: 5\n")

    with pytest.raises(UsageError, match="did you mean 'max_p90_ms'"):
        do_gate(rp, bad, junit=tmp_path / "j.xml")
    assert not (tmp_path / "j.xml").exists()


# --- report -------------------------------------------------------------------------------------------

def test_do_report_writes_html_and_markdown(tmp_path):
    rp = sample_report(1.3).save(tmp_path / "new.json")
    bp = sample_report().save(tmp_path / "old.json")

    written = do_report(rp, html=tmp_path / "r.html", markdown=tmp_path / "r.md", baseline=bp)

    assert written == [tmp_path / "r.html", tmp_path / "r.md"]
    assert "data:image/png;base64," in (tmp_path / "r.html").read_text()
    assert "What changed against the baseline" in (tmp_path / "r.md").read_text()


def test_do_report_with_budgets_shows_the_gate_verdict(tmp_path):
    rp = sample_report().save(tmp_path / "report.json")
    budgets = tmp_path / "b.yaml"
    budgets.write_text("targets:\n  x86-cpu: {max_size_kb: 200}\n")

    do_report(rp, html=tmp_path / "r.html", markdown=tmp_path / "r.md", budgets=budgets)

    assert 'class="banner fail" id="verdict">FAIL' in (tmp_path / "r.html").read_text()
    assert (tmp_path / "r.md").read_text().startswith("### ❌ edgeopt gate: FAIL")


def test_do_report_defaults_to_html_next_to_thesample_report(tmp_path):
    rp = sample_report().save(tmp_path / "report.json")

    assert do_report(rp) == [tmp_path / "report.html"]
