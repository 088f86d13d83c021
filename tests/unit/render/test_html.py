"""The HTML report: self-contained, escaped, plots inlined, every section rendered generically."""

from __future__ import annotations

import base64
import re
from html.parser import HTMLParser

import pytest

from edgeopt.core.report import Report
from edgeopt.render.html import to_html
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
    assert heads[-4:] == ["Tuning", "Int8 search", "Manifests", "Environment"]
    assert "dense_1" in page


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
