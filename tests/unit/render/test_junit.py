"""JUnit XML: one testcase per check; errors fail, warnings pass with a note, notes skip."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from edgeopt.render.junit import to_junit
from edgeopt.verdict.budgets import Budgets
from edgeopt.verdict.gate import check
from tests.unit.render.sample import EVIL, measurement, sample_report, sample_verdict


def test_junit_names_an_unmatched_budget_by_where_it_is_written():
    v = check(sample_report(), Budgets.from_dict({"targets": {"rpi4": {"max_size_kb": 1}}}))

    (case,) = ET.fromstring(to_junit(v)).findall(".//testcase")

    assert case.get("name") == "budget targets.rpi4"
    assert "matches no result" in case.find("failure").get("message")


def test_junit_one_testcase_per_check_and_parses():
    v = sample_verdict(sample_report())
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
    rep = sample_report()
    rep.results.append(measurement("model_int16", precision="int16x8", status="skipped", error="no runtime"))
    v = check(rep, Budgets.from_dict({"targets": {"x86-cpu": {"level": "warn", "max_size_kb": 200}}}))

    root = ET.fromstring(to_junit(v))

    assert root.get("failures") == "0"
    assert root.find(".//skipped").get("message").endswith("skipped: no runtime")
    assert any(so.text.startswith("WARNING: ") for so in root.iter("system-out"))
