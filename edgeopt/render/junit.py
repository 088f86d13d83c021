"""The verdict as JUnit XML, for a CI's test view: one testcase per check."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edgeopt.verdict.gate import Verdict

_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _xml_text(value: Any) -> str:
    return _XML_INVALID.sub("?", str(value))


def to_junit(verdict: Verdict, suite: str = "edgeopt.gate") -> str:
    """One testcase per check. Errors are failures; warnings pass with a note in system-out; notes skip."""
    import xml.etree.ElementTree as ET

    counts = {o: len(verdict.by_outcome(o)) for o in ("fail", "note", "inconclusive")}
    strict = verdict.strict and counts["inconclusive"]  # --strict: an inconclusive check fails the gate
    attrs = {"name": suite, "tests": str(len(verdict.checks)),
             "failures": str(counts["fail"] + (counts["inconclusive"] if strict else 0)), "errors": "0",
             "skipped": str(counts["note"] + (0 if strict else counts["inconclusive"]))}
    root = ET.Element("testsuites", attrs)
    ts = ET.SubElement(root, "testsuite", attrs)
    for c in verdict.checks:
        if c.metric == "budget":  # a budget that matched nothing: name it by where it is written
            name = f"budget {c.source}"
        else:
            name = f"{c.artifact} [{c.runtime}] {c.metric}" if c.runtime else f"{c.artifact} {c.metric}"
        tc = ET.SubElement(ts, "testcase", {"classname": _xml_text(f"{suite}.{c.target}"), "name": _xml_text(name)})
        msg = _xml_text(c.message)
        if c.outcome == "fail" or (c.outcome == "inconclusive" and strict):
            failure = ET.SubElement(tc, "failure", {"message": msg, "type": c.metric})
            failure.text = msg
        elif c.outcome == "inconclusive":
            ET.SubElement(tc, "skipped", {"message": f"INCONCLUSIVE: {msg}"})
        elif c.outcome == "note":
            ET.SubElement(tc, "skipped", {"message": msg})
        elif c.outcome == "warn":
            ET.SubElement(tc, "system-out").text = f"WARNING: {msg}"
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"

