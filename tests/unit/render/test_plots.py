"""Charts for the HTML report."""

from __future__ import annotations

from edgeopt.render.plots import latency_scale, pareto_figure, pareto_front
from tests.unit.render.sample import measurement


def test_pareto_front():
    pts = [(1.0, 0.80), (2.0, 0.90), (1.5, 0.85), (3.0, 0.88), (2.5, 0.95), (1.0, 0.70)]

    assert pareto_front(pts) == [0, 2, 1, 4]


def _boxes(fig):
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    ax = fig.axes[0]
    return [t.get_window_extent(renderer) for t in ax.texts], ax


def test_pareto_labels_do_not_overlap_and_accuracy_stops_at_one():
    # eight artifacts crowded into the same corner, as the demo's TFLite variants are
    rows = [measurement(f"digits_cnn_variant_{i}.tflite", acc=0.988 + 0.0002 * (i % 3), p50=0.003 + 0.0001 * i,
                        seed=i) for i in range(8)]
    rows.append(measurement("digits_cnn_source.keras", "keras", runtime="tf", role="source", acc=0.99, p50=0.3))

    boxes, ax = _boxes(pareto_figure(rows, "x86-cpu"))

    assert len(boxes) == 9
    overlaps = [(i, j) for i in range(len(boxes)) for j in range(i + 1, len(boxes))
                if boxes[i].overlaps(boxes[j])]
    assert overlaps == []
    assert ax.get_ylim()[1] <= 1.0
    assert ax.get_xscale() == "log" and "µs" in ax.get_xlabel()
    legend = [t.get_text() for t in ax.figure.legends[0].get_texts()]
    assert "on the Pareto front" in legend and "source model" in legend


def test_latency_axis_in_the_unit_of_the_values():
    assert latency_scale([0.004, 0.005, 0.3]) == ("µs", 1e3)
    assert latency_scale([40.0, 2500.0, 3000.0]) == ("s", 1e-3)
    assert latency_scale([]) == ("ms", 1.0)
