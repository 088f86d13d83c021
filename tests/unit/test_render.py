"""Renderers: Markdown PR comment, JUnit XML, self-contained HTML, and do_report."""

from __future__ import annotations

import base64
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import numpy as np
import pytest

from edgeopt.cli import do_report
from edgeopt.core.report import Latency, Measurement, Report
from edgeopt.render.html import to_html
from edgeopt.render.junit import to_junit
from edgeopt.render.markdown import md_cell, to_markdown
from edgeopt.render.plots import pareto_front
from edgeopt.verdict.budgets import Budgets
from edgeopt.verdict.gate import check

EVIL = 'net<script>alert("x")</script>&|$x$'


def _m(name, fmt="tflite", precision="fp32", *, runtime="litert", size_kb=100.0, acc=0.9, p50=2.0, role="artifact",
       status="ok", seed=0, target="x86-cpu", error=None):
    ok = status == "ok"
    samples = list(np.random.default_rng(seed).lognormal(np.log(p50), 0.15, 120)) if ok else []
    return Measurement(name, fmt, precision, target, runtime, status=status, error=error, role=role,
                       size_bytes=int(size_kb * 1024) if ok else None, gzip_bytes=int(size_kb * 400) if ok else None,
                       accuracy=acc if ok else None, latency_ms=Latency.from_samples(samples) if ok else None,
                       samples_ms=samples)


def _report(shift=1.0):
    return Report(
        environment={"python": "3.11.7", "cpu": {"model": "Xeon <E5>", "cores": 16}, "libs": ["tflite", "onnx"]},
        results=[_m("model", "keras", runtime="tf", role="source", size_kb=800, acc=0.93, p50=8 * shift, seed=1),
                 _m("model_fp32", size_kb=300, acc=0.93, p50=4 * shift, seed=2),
                 _m("model_int8", precision="int8", size_kb=80, acc=0.91, p50=2 * shift, seed=3),
                 _m(EVIL, "onnx", runtime="onnxruntime", size_kb=310, acc=0.925, p50=3 * shift, seed=4),
                 _m("model_fp16", precision="fp16", status="failed", error="boom <here>")],
        extra={"manifests": [{"schema_version": 1, "artifacts": [
                   {"name": "model_int8", "precision": "int8", "stages": ["prune", "convert"],
                    "info": {"sensitivity": [{"layer": "conv2d_sensitive", "rmse": 0.031, "scale": 0.02}],
                             "sparsity": {"dense_layer_sparsity": 0.8}}}]}],
               "tuning": {"trials": 20, "best_hyperparameters": {"width": 0.5}, "best_score": 0.931}})


def _verdict(report, **kw):
    budgets = Budgets.from_dict({"targets": {"x86-cpu": {"max_size_kb": 200, "max_p90_ms": 50}}})
    return check(report, budgets, **kw)


# --- Markdown -----------------------------------------------------------------------------------------

def test_markdown_verdict_first_then_failures_then_collapsed_table():
    md = to_markdown(_report(), _verdict(_report()))

    assert md.startswith("### ❌ edgeopt gate: FAIL")
    fail_at, details_at = md.index("#### Failing checks"), md.index("<details>")
    assert fail_at < details_at
    assert "model\\_fp32 on x86-cpu (litert): size\\_kb 300.0 KB &gt; max 200.0 KB" in md
    assert "model\\_fp16 on x86-cpu (litert): failed: boom &lt;here&gt;" in md
    assert "**Recommendation** — x86-cpu: ship model\\_int8 with litert" in md
    assert "<summary>All results (5)</summary>" in md


def test_markdown_when_everything_passes():
    rep = _report()
    rep.results = [m for m in rep.results if m.status == "ok"]
    v = check(rep, Budgets.from_dict({"targets": {"x86-cpu": {"max_size_kb": 1000, "artifacts": {
        "format=onnx": {"max_p90_ms": {"limit": 0.1, "level": "warn"}}}}}}))

    md = to_markdown(rep, v)

    assert md.startswith("### ✅ edgeopt gate: PASS — 0 failed, 1 warning")
    assert "#### Failing checks" in md and "- ⚠️ net&lt;script&gt;" in md  # warnings are listed, not failing


def test_junit_names_an_unmatched_budget_by_where_it_is_written():
    v = check(_report(), Budgets.from_dict({"targets": {"rpi4": {"max_size_kb": 1}}}))

    (case,) = ET.fromstring(to_junit(v)).findall(".//testcase")

    assert case.get("name") == "budget targets.rpi4"
    assert "matches no result" in case.find("failure").get("message")


def test_markdown_escapes_names():
    md = to_markdown(_report())

    assert "<script>" not in md
    assert "net&lt;script&gt;" in md and "\\|" in md
    for line in md.splitlines():
        if line.startswith("| net"):
            assert line.count(" | ") == 12  # the pipe in the name did not add a column


def test_md_cell():
    assert md_cell("a|b\nc *d* <e>") == "a\\|b c \\*d\\* &lt;e&gt;"


def test_markdown_lists_regressions_against_a_baseline():
    v = check(_report(1.3), baseline=_report())

    md = to_markdown(_report(1.3), v)

    assert "#### Regressions against the baseline" in md
    assert "| model\\_int8 | x86-cpu | litert | p50\\_ms |" in md


# --- JUnit --------------------------------------------------------------------------------------------

def test_junit_one_testcase_per_check_and_parses():
    v = _verdict(_report())
    v.checks[0].message += " bad\x00char\x1b"

    xml = to_junit(v)

    root = ET.fromstring(xml)
    cases = root.findall(".//testcase")
    assert len(cases) == len(v.checks)
    failures = root.findall(".//failure")
    assert len(failures) == len(v.failures) == int(root.get("failures"))
    assert any(EVIL in c.get("name") for c in cases)
    assert all(f.get("message") for f in failures)
    assert any("size_kb 300.0 KB > max 200.0 KB" in f.get("message") for f in failures)


def test_junit_warnings_pass_and_notes_skip():
    rep = _report()
    rep.results.append(_m("model_int16", precision="int16x8", status="skipped", error="no runtime"))
    v = check(rep, Budgets.from_dict({"targets": {"x86-cpu": {"level": "warn", "max_size_kb": 200}}}))

    root = ET.fromstring(to_junit(v))

    assert root.get("failures") == "0"
    assert root.find(".//skipped").get("message").endswith("skipped: no runtime")
    assert any(so.text.startswith("WARNING: ") for so in root.iter("system-out"))


# --- HTML ---------------------------------------------------------------------------------------------

class _Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[str] = []
        self.imgs: list[dict] = []
        self.meta: list[dict] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag == "img":
            self.imgs.append(dict(attrs))
        if tag == "meta":
            self.meta.append(dict(attrs))


def test_html_is_self_contained_with_plots_and_escaped():
    rep = _report()

    page = to_html(rep, _verdict(rep))

    p = _Tags()
    p.feed(page)
    assert "script" not in p.tags  # the evil name stayed text
    assert "&lt;script&gt;" in page
    assert {"name": "viewport", "content": "width=device-width, initial-scale=1"} in p.meta
    assert len(p.imgs) == 3  # Pareto + latency for the one target, sizes
    for img in p.imgs:
        assert img["src"].startswith("data:image/png;base64,")
        assert base64.b64decode(img["src"].split(",", 1)[1]).startswith(b"\x89PNG")
    assert not re.search(r'(src|href)="https?:', page)  # nothing fetched from outside
    assert "FAIL" in page and "ship model_int8 with litert" in page


def test_html_renders_manifests_tuning_and_environment():
    page = to_html(_report())

    assert "<h2>Manifests</h2>" in page
    assert "conv2d_sensitive" in page and "dense_layer_sparsity" in page
    assert "<h2>Tuning</h2>" in page and "best_score" in page
    assert "<h2>Environment</h2>" in page and "Xeon &lt;E5&gt;" in page


def test_html_renders_any_section_a_stage_adds_in_report_order():
    rep = _report()
    rep.extra = {"tuning": {"trials": 3}, "int8_search": {"kept_float": ["dense_1"]}, "manifests": {"m": {}}}

    page = to_html(rep)

    heads = re.findall(r"<h2>([^<]*)</h2>", page)
    assert heads[-4:] == ["Tuning", "Int8 search", "Manifests", "Environment"]
    assert "dense_1" in page


def test_html_marks_regressions_against_a_baseline():
    page = to_html(_report(1.3), baseline=_report())

    assert "<h2>Against the baseline</h2>" in page
    assert '<tr class="regressed">' in page
    assert '<span class="regressed">p50_ms +' in page


def test_html_with_nothing_to_plot():
    rep = Report(environment={}, results=[_m("m", status="failed", error="x")])

    page = to_html(rep)

    assert "nothing to plot" in page and "<img" not in page


def test_pareto_front():
    pts = [(1.0, 0.80), (2.0, 0.90), (1.5, 0.85), (3.0, 0.88), (2.5, 0.95), (1.0, 0.70)]

    assert pareto_front(pts) == [0, 2, 1, 4]


# --- do_report ---------------------------------------------------------------------------------------

def test_do_report_writes_html_and_markdown(tmp_path):
    rp = _report(1.3).save(tmp_path / "new.json")
    bp = _report().save(tmp_path / "old.json")

    written = do_report(rp, html=tmp_path / "r.html", markdown=tmp_path / "r.md", baseline=bp)

    assert written == [tmp_path / "r.html", tmp_path / "r.md"]
    assert "data:image/png;base64," in (tmp_path / "r.html").read_text()
    assert "Regressions against the baseline" in (tmp_path / "r.md").read_text()


def test_do_report_defaults_to_html_next_to_the_report(tmp_path):
    rp = _report().save(tmp_path / "report.json")

    assert do_report(rp) == [tmp_path / "report.html"]


def test_importing_render_does_not_import_matplotlib():
    code = "import sys, edgeopt.render.markdown; sys.exit('matplotlib' in sys.modules or 'tensorflow' in sys.modules)"

    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


@pytest.mark.parametrize("name", ["$", "a$b$c", "\\frac", "x^2_$"])
def test_plot_labels_with_tex_characters_render(name):
    rep = Report(environment={}, results=[_m(name)])

    assert "data:image/png;base64," in to_html(rep)
