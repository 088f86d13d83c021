"""The HTML report: self-contained, escaped, plots inlined, every section rendered generically."""

from __future__ import annotations

import base64
import re
from html.parser import HTMLParser

import pytest

from edgeopt.core.report import Report
from edgeopt.render.html import to_html
from edgeopt.verdict.gate import check
from tests.unit.render.sample import measurement, sample_report, sample_verdict


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
    rep = sample_report()

    page = to_html(rep, sample_verdict(rep))

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
    page = to_html(sample_report())

    assert "<h2>Manifests</h2>" in page
    assert "conv2d_sensitive" in page and "dense_layer_sparsity" in page
    assert "<h2>Tuning</h2>" in page and "best_score" in page
    assert "<h2>Environment</h2>" in page and "Xeon &lt;E5&gt;" in page


def test_html_renders_any_section_a_stage_adds_in_report_order():
    rep = sample_report()
    rep.extra = {"tuning": {"trials": 3}, "int8_search": {"kept_float": ["dense_1"]}, "manifests": {"m": {}}}

    page = to_html(rep)

    heads = re.findall(r"<h2>([^<]*)</h2>", page)
    assert heads[-3:] == ["Tuning", "Int8 search", "Environment"]  # "manifests" holds nothing: no section
    assert "dense_1" in page


def test_html_sections_hold_content_or_are_absent():
    rep = sample_report()
    rep.extra = {"per_layer": {"sensitivity": {"conv": {}}, "sparsity": []}, "int8": {"a": {"b": {"rmse": 0.5}}}}

    page = to_html(rep)

    assert "Per layer" not in page and "sensitivity" not in page
    assert "<summary>a › b</summary>" in page  # a chain of one-key mappings is one heading, not nested ones


def test_html_marks_regressions_against_a_baseline():
    page = to_html(sample_report(1.3), baseline=sample_report())

    assert "<h2>Against the baseline</h2>" in page
    assert '<tr class="regressed">' in page
    assert '<span class="regressed">p50_ms +' in page


def test_html_with_nothing_to_plot():
    rep = Report(environment={}, results=[measurement("m", status="failed", error="x")])

    page = to_html(rep)

    assert "nothing to plot" in page and "<img" not in page


@pytest.mark.parametrize("name", ["$", "a$b$c", "\\frac", "x^2_$"])
def test_plot_labels_with_tex_characters_render(name):
    rep = Report(environment={}, results=[measurement(name)])

    assert "data:image/png;base64," in to_html(rep)


def test_html_opens_with_the_verdict_per_target_and_what_failed_by_how_much():
    rep = sample_report()

    page = to_html(rep, sample_verdict(rep))

    assert page.index('class="banner fail" id="verdict"') < page.index("<h2>Target x86-cpu</h2>")
    assert "<td>✗</td><td>x86-cpu</td><td>3 failed, 4 passed</td>" in page
    assert "<td>300.0 KB</td><td>200.0 KB</td><td>+100.0 KB (+50%)</td>" in page  # measured, limit, margin
    assert "<summary>4 passed checks</summary>" in page  # the passing ones collapsed
    heads = re.findall(r"<th>([^<]*)</th>", page[page.index('id="results"'):])
    assert {"init", "first", "peak RSS"} <= set(heads)


def test_html_without_a_verdict_says_how_to_get_one():
    assert "pass --budgets" in to_html(sample_report())


def test_html_draws_a_comparison_chart_against_a_baseline():
    page = to_html(sample_report(1.3), check(sample_report(1.3), baseline=sample_report()), sample_report())

    assert 'data-chart="comparison x86-cpu"' in page
    assert 'data-chart="comparison' not in to_html(sample_report())


def test_html_shows_the_sensitivity_scan_as_one_row_per_layer():
    from tests.unit.render.test_markdown import SCAN

    rep = sample_report()
    rep.extra = {"sensitivity": SCAN}
    page = to_html(rep)
    assert "<h2>Sensitivity</h2>" in page
    header = page[page.index("<th>layer</th>"):]
    header = header[: header.index("</tr>")]
    assert all(f"<th>{c}</th>" in header for c in ("params", "top1_drop@0.5", "top1_drop@0.9", "chosen"))
    assert "<td>conv_1</td>" in page and "<td>0.806</td>" in page
