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


def test_pareto_front_of_a_lower_is_better_metric():
    pts = [(1.0, 0.30), (2.0, 0.20), (1.5, 0.25), (3.0, 0.22), (2.5, 0.10)]
    assert pareto_front(pts, lower_is_better=True) == [0, 2, 1, 4]


def test_a_regression_report_plots_its_metric_not_accuracy():
    rows = []
    for i, (mae, p50) in enumerate([(0.30, 1.0), (0.20, 2.0), (0.35, 3.0)]):
        m = measurement(f"reg_{i}.tflite", acc=None, p50=p50, seed=i)
        rows.append(m.model_copy(update={"task": "regression", "metric": "mae", "metric_value": mae,
                                         "lower_is_better": True}))
    fig = pareto_figure(rows, "x86-cpu")
    ax = fig.axes[0]
    assert ax.get_ylabel() == "mae (lower is better)" and "mae vs p90" in ax.get_title()
    front = [c for c in ax.collections if c.get_edgecolor().size and c.get_edgecolor()[0][:3].tolist() == [0, 0, 0]]
    # reg_0 (fastest) and reg_1 (lowest MAE) are on the front; reg_2 is slower and worse than both
    assert sorted(round(float(c.get_offsets()[0][1]), 2) for c in front) == [0.20, 0.30]
    assert ax.get_ylim()[0] < 0.20 and ax.get_ylim()[1] > 0.35
