"""The HTML report as a person sees it: rendered by a real headless Chromium (Debian's `chromium`, installed by
.ci/setup-system.sh), its DOM measured in the browser, a screenshot kept in the test's temp folder.

A copy of the page gets a probe script (the report itself has none): it records console errors and failed
loads from the first byte, and on `load` writes what it measured (charts, tables, page width) into the DOM,
which `--dump-dom` hands back.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from tests.conftest import SAMPLE_MODELS

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed "
                                "(.ci/setup-system.sh installs it: apt-get install chromium)")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars"]

PROBE_HEAD = """<script>
window.__errors = [];
window.addEventListener('error', e => window.__errors.push('error: ' + (e.message || (e.target && e.target.src
  ? 'failed to load ' + String(e.target.src).slice(0, 60) : String(e)))), true);
for (const level of ['error', 'warn']) {
  const orig = console[level];
  console[level] = (...a) => { window.__errors.push(level + ': ' + a.join(' ')); orig.apply(console, a); };
}
</script>"""
PROBE_TAIL = """<script>
window.addEventListener('load', () => {
  const vw = document.documentElement.clientWidth;
  const charts = [...document.querySelectorAll('figure.chart')].map(f => {
    const img = f.querySelector('img'); const r = img.getBoundingClientRect();
    return {name: f.dataset.chart, complete: img.complete, natural: [img.naturalWidth, img.naturalHeight],
            shown: [r.width, r.height], right: r.right};
  });
  const tables = [...document.querySelectorAll('table')].map(t => {
    const r = t.getBoundingClientRect();
    let box = t.parentElement, scroller = null;
    while (box && box !== document.body) {
      const ox = getComputedStyle(box).overflowX;
      if (ox === 'auto' || ox === 'scroll') { scroller = box; break; }
      box = box.parentElement;
    }
    const s = scroller && scroller.getBoundingClientRect();
    return {id: (t.closest('[id]') || {}).id || '', width: r.width, right: r.right,
            scroller_right: s ? s.right : null, open: !t.closest('details:not([open])')};
  });
  const out = document.createElement('pre'); out.id = '__probe';
  out.textContent = JSON.stringify({viewport: vw, page_width: document.documentElement.scrollWidth, charts,
    tables, errors: window.__errors, headings: [...document.querySelectorAll('h2')].map(h => h.textContent)});
  document.body.appendChild(out);
});
</script>"""


def _chromium(tmp_path, *args: str) -> subprocess.CompletedProcess:
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"  # a new one per run, never the user's
    return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True, text=True,
                          timeout=120)


def _probe(tmp_path, page, width: int) -> dict:
    html = page.read_text(encoding="utf-8")
    probed = tmp_path / f"probed-{width}.html"
    probed.write_text(html.replace("<head>", "<head>" + PROBE_HEAD, 1).replace("</body>", PROBE_TAIL + "</body>"),
                      encoding="utf-8")
    proc = _chromium(tmp_path, f"--window-size={width},1000", "--virtual-time-budget=10000", "--dump-dom",
                     probed.as_uri())
    found = re.search(r'<pre id="__probe">(.*?)</pre>', proc.stdout, re.S)
    assert found, proc.stderr[-2000:]
    return json.loads(found.group(1).replace("&quot;", '"').replace("&lt;", "<").replace("&gt;", ">")
                      .replace("&amp;", "&"))


@pytest.fixture(scope="module")
def report_page(tmp_path_factory, quick_report):
    """The demo's report as `edgeopt report` writes it: the tiny model's real benchmark, judged against the
    bundled budgets, compared with a baseline: itself without its launch records (a report from before
    launches), so every p50 is compared by its samples whatever the launches' contention on this machine."""
    path, _ = quick_report
    folder = tmp_path_factory.mktemp("browser")
    out, baseline = folder / "report.html", folder / "baseline.json"
    raw = json.loads(path.read_text())
    for result in raw["results"]:
        result.pop("launches", None)
    baseline.write_text(json.dumps(raw))
    proc = subprocess.run([sys.executable, "-m", "edgeopt.cli", "report", str(path), "--html", str(out),
                           "--budgets", str(SAMPLE_MODELS / "budgets.yaml"), "--baseline", str(baseline)],
                          capture_output=True, text=True, timeout=300, env=dict(os.environ, COLUMNS="200"))
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.mark.parametrize("width", [1400, 500])  # a laptop; a phone-sized window (headless Chromium's narrowest)
def test_report_renders_in_chromium(tmp_path, report_page, quick_report, width):
    _, report = quick_report
    targets = {m.target for m in report.results}

    probe = _probe(tmp_path, report_page, width)

    assert probe["errors"] == []
    assert probe["page_width"] <= probe["viewport"]  # the page itself never scrolls sideways
    names = [c["name"] for c in probe["charts"]]
    expected = {f"{kind} {t}" for t in targets for kind in ("pareto", "latency", "comparison")} | {"size"}
    assert set(names) == expected and len(names) == len(expected)
    for c in probe["charts"]:
        assert c["complete"] and min(c["natural"]) > 100, c  # decoded, a real picture
        assert min(c["shown"]) > 50 and c["right"] <= probe["viewport"] + 1, c  # drawn, and within the page
    for t in probe["tables"]:
        if t["open"]:  # a table fits in the viewport, or scrolls inside a container that does
            assert t["right"] <= probe["viewport"] + 1 or (t["scroller_right"] or 1e9) <= probe["viewport"] + 1, t
    assert "results" in {t["id"] for t in probe["tables"]}
    heads = probe["headings"]
    assert heads[:1] == [f"Target {sorted(targets)[0]}"] and "Results" in heads and heads[-1] == "Environment"


def test_report_charts_are_not_blank_and_a_screenshot_is_kept(tmp_path, report_page):
    import matplotlib.image as mpimg

    html = report_page.read_text(encoding="utf-8")
    pngs = re.findall(r'src="data:image/png;base64,([^"]+)"', html)
    assert pngs
    for b64 in pngs:  # every chart holds drawing, not one flat colour
        pixels = mpimg.imread(io.BytesIO(base64.b64decode(b64)), format="png")
        assert float(pixels[..., :3].std()) > 0.05

    shot = tmp_path / "report-1400.png"
    proc = _chromium(tmp_path, "--window-size=1400,4000", f"--screenshot={shot}", report_page.as_uri())

    assert shot.is_file(), proc.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    shown = mpimg.imread(shot)
    assert shown.shape[1] == 1400 and float(shown[..., :3].std()) > 0.05
