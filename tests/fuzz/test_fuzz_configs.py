"""Generated malformed config files (hypothesis): recipes, budgets, targets, reports and manifests are either
accepted or refused with one UsageError line — never another exception, never unbounded memory or time."""

from __future__ import annotations

import json
import resource
import string

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz.conftest import SIZES, feed

EXAMPLES = {"quick": 25, "full": 90}
STAGE_KEYS = {"prune": ["target_sparsity", "schedule", "structure", "epochs", "frequency"],
              "quantize": ["qat", "preserve_sparsity", "epochs"],
              "cluster": ["number_of_clusters", "centroid_init"],
              "convert": ["tflite", "onnx", "max_accuracy_drop", "int8_io"],
              "distill": ["student", "temperature", "alpha", "epochs"]}

scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True),
                    st.text(string.printable, max_size=20), st.sampled_from(["fp32", "int8", "2:4", "~", "&a", "*a"]))
values = st.recursive(scalars, lambda c: st.lists(c, max_size=4) | st.dictionaries(
    st.text(string.ascii_letters + "_", min_size=1, max_size=12), c, max_size=4), max_leaves=12)


@st.composite
def recipe_docs(draw):
    stage = draw(st.sampled_from(sorted(STAGE_KEYS)))
    cfg = {k: draw(values) for k in draw(st.lists(st.sampled_from(STAGE_KEYS[stage]), max_size=3, unique=True))}
    doc = {"stages": [{stage: cfg}], "train": draw(st.dictionaries(st.sampled_from(
        ["epochs", "batch_size", "precision", "lr_schedule", "bogus"]), values, max_size=2))}
    return draw(st.sampled_from([doc, [doc], draw(values)]))


@st.composite
def budget_docs(draw):
    limits = st.dictionaries(st.sampled_from(["max_size_kb", "max_p90_ms", "min_accuracy", "max_accuracy_drop",
                                              "max_peak_rss_mb", "level", "select", "nope"]), values, max_size=4)
    return {"targets": draw(st.dictionaries(st.sampled_from(["x86-cpu", "*", "rpi4"]), limits, max_size=2)),
            "regression": draw(values)}


@st.composite
def target_docs(draw):
    return draw(st.dictionaries(st.sampled_from(["name", "kind", "device", "arch", "threads", "runtimes",
                                                 "connection", "settings", "estimate_as", "max_memory_mb"]),
                                values, max_size=5))


@st.composite
def hostile_text(draw):
    """Text that attacks the reader rather than the schema: bombs, depth, huge ints, truncation, binary."""
    kind = draw(st.sampled_from(["bomb", "deep", "bigint", "truncated", "binary", "mutated", "self_alias"]))
    if kind == "bomb":
        width, depth = draw(st.integers(4, 12)), draw(st.integers(3, 10))
        lines = [f"a0: &a0 [{', '.join(['lol'] * width)}]"]
        lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * width)}]" for i in range(1, depth)]
        return "\n".join(lines) + f"\ntargets: *a{depth - 1}\nstages: *a{depth - 1}\n"
    if kind == "deep":
        n = draw(st.integers(60, 3000))
        return draw(st.sampled_from(["[" * n + "]" * n, "a:\n" + "".join(" " * i + "- \n" for i in range(n)),
                                     "{a: " * n + "1" + "}" * n]))
    if kind == "bigint":
        return f"targets:\n  x86-cpu:\n    max_size_kb: {'9' * draw(st.integers(4301, 20000))}\n"
    if kind == "truncated":
        quote = draw(st.sampled_from(['"', "'"]))
        return f"stages:\n  - convert: {{tflite: [{quote}fp32{draw(st.text(string.printable, max_size=200))}"
    if kind == "binary":
        return draw(st.binary(min_size=1, max_size=400)).decode("latin-1")
    if kind == "self_alias":
        return "a: &a [*a]\n"
    doc = yaml.safe_dump(draw(budget_docs()))
    pos = draw(st.integers(0, len(doc)))
    return doc[:pos] + draw(st.text(max_size=10)) + doc[pos + draw(st.integers(0, 5)):]


def _file(tmp_path, name, doc) -> object:
    p = tmp_path / name
    if isinstance(doc, str):
        p.write_bytes(doc.encode("utf-8", "surrogatepass") if not doc.isascii() else doc.encode())
    else:
        p.write_text(yaml.safe_dump(doc) if name.endswith(".yaml") else json.dumps(doc, default=str))
    return p


def _readers(tmp_path):
    from edgeopt.bench.targets import load_target
    from edgeopt.core.artifact import load_manifest
    from edgeopt.core.report import load_report
    from edgeopt.recipe import load_recipe
    from edgeopt.verdict.budgets import load_budgets

    def manifest(doc):
        folder = tmp_path / "m"
        folder.mkdir(exist_ok=True)
        _file(folder, "manifest.json", doc)
        return lambda: load_manifest(folder)

    return {"recipe": lambda doc: (lambda: load_recipe(_file(tmp_path, "r.yaml", doc))),
            "budgets": lambda doc: (lambda: load_budgets(_file(tmp_path, "b.yaml", doc))),
            "target": lambda doc: (lambda: load_target(_file(tmp_path, "t.yaml", doc))),
            "report": lambda doc: (lambda: load_report(_file(tmp_path, "r.json", doc))),
            "manifest": manifest}


SETTINGS = dict(deadline=None, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large, HealthCheck.large_base_example])


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("reader, docs", [("recipe", recipe_docs()), ("budgets", budget_docs()),
                                          ("target", target_docs()), ("report", values), ("manifest", values)])
def test_structured_configs(tmp_path, clean, size, reader, docs):
    make = _readers(tmp_path)[reader]

    @settings(max_examples=EXAMPLES[size], **SETTINGS)
    @given(docs)
    def one(doc):
        feed(f"{reader} {str(doc)[:80]}", make(doc))

    one()


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("reader", ["recipe", "budgets", "target", "report", "manifest"])
def test_hostile_text_stays_bounded(tmp_path, clean, size, reader):
    """Alias bombs, 3000-deep nesting, 20000-digit ints: refused, and the process grows by well under 1 GB."""
    make = _readers(tmp_path)[reader]
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    @settings(max_examples=EXAMPLES[size] // 2, **SETTINGS)
    @given(hostile_text())
    def one(text):
        feed(f"{reader} hostile {text[:60]!r}", make(text))

    one()
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 1024, f"reading hostile {reader} files grew the process by {grown_mb:.0f} MB"
