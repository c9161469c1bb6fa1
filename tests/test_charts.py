"""Tests of charts."""
import pytest
import json

from conftest import app_test
from maskcls.wrapup import charts
from maskcls.data.labels import class_names, short_class_names


def test_confusion_figure_reports_the_clicked_cell():
    matrix = [[(t * 18 + p) % 7 for p in range(18)] for t in range(18)]
    fig = charts.confusion_figure(matrix, short_class_names(), False, "", class_names())
    trace = fig.data[0]
    assert trace.type == "scatter"  # Streamlit reports clicks on scatter points, not on heatmap cells
    i = 2 * 18 + 1
    assert list(trace.customdata[i]) == [2, 1] and trace.text[i] == str(matrix[2][1])
    assert list(fig.layout.xaxis.ticktext) == short_class_names()
    event = {"selection": {"points": [{"x": 1, "y": 2, "customdata": {"0": 2, "1": 1}, "point_index": i}]}}
    assert charts.picked_cell(event) == (2, 1)
    assert charts.picked_cell({"selection": {"points": []}}) is None


def _figures(at) -> list[dict]:
    return [json.loads(el.proto.spec) for el in at.get("plotly_chart")]


@pytest.mark.slow
def test_data_page_class_axes_show_class_names(studio_demo):
    at = app_test("pages/data.py")
    assert not at.exception
    ticks = [f["layout"]["xaxis"].get("ticktext") for f in _figures(at)]
    class_axes = [t for t in ticks if t and len(t) == 18]
    assert len(class_axes) >= 3 and all(t == short_class_names() for t in class_axes)  # counts + both splits


@pytest.mark.slow
def test_evaluate_page_class_axes_show_class_names(trained_run):
    runs, name, _ = trained_run
    at = app_test("pages/evaluate.py", runs_root=str(runs))
    assert not at.exception
    figs = _figures(at)
    assert figs[0]["layout"]["xaxis"]["ticktext"] == short_class_names()
    assert figs[0]["layout"]["yaxis"]["ticktext"] == short_class_names()
    assert figs[0]["data"][0]["type"] == "scatter"


def test_picked_cell_reads_customdata_when_axes_give_no_numbers():
    assert charts.picked_cell({"selection": {"points": [{"customdata": {"0": 4, "1": 9}}]}}) == (4, 9)
    assert charts.picked_cell({"selection": {"points": [{"customdata": [4, 9]}]}}) == (4, 9)
