"""Plotly figures and the tables behind them (no Streamlit here: the pages only place them)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from maskcls.data.labels import DEFAULT_BOUNDS, NUM_CLASSES, AgeBounds, attribute_names, class_names, short_class_names
from maskcls.data.splits import class_shares, leaked_people, split_by_person, split_random_images


def class_count_table(train: pd.DataFrame, bounds: AgeBounds) -> pd.DataFrame:
    counts = np.bincount(train["label"].to_numpy(), minlength=NUM_CLASSES)
    total = max(int(counts.sum()), 1)
    return pd.DataFrame({"class": range(NUM_CLASSES), "short": short_class_names(bounds), "name": class_names(bounds),
                         "images": counts, "share %": np.round(100 * counts / total, 2)})


def class_axis(bounds: AgeBounds = DEFAULT_BOUNDS) -> dict:
    """An x axis over classes 0..17 that shows their short names (W/F/<30) instead of numbers."""
    return dict(tickmode="array", tickvals=list(range(NUM_CLASSES)), ticktext=short_class_names(bounds),
                tickangle=-60, title="class")


def imbalance_ratio(counts) -> float:
    counts = np.asarray(counts)
    present = counts[counts > 0]
    return float(present.max() / present.min()) if len(present) else float("nan")


def class_count_figure(table: pd.DataFrame) -> go.Figure:
    fig = px.bar(table, x="class", y="images", hover_data=["name", "share %"], text="share %",
                 color="images", color_continuous_scale="Viridis")
    fig.update_traces(texttemplate="%{text:.1f}%", textposition="outside")
    fig.update_layout(xaxis=dict(tickmode="array", tickvals=table["class"].tolist(), ticktext=table["short"].tolist(),
                                 tickangle=-60, title="class"),
                      height=400, margin=dict(t=30, b=10),
                      title=f"Images per class (imbalance ratio {imbalance_ratio(table['images']):.1f}:1)")
    return fig


def attribute_figures(train: pd.DataFrame, bounds: AgeBounds) -> dict[str, go.Figure]:
    """Mask and gender bars (images), and the age histogram of people with the band bounds drawn."""
    names = attribute_names(bounds)
    figs = {}
    for attr in ("mask", "gender"):
        counts = train[attr].value_counts().reindex(range(len(names[attr])), fill_value=0)
        figs[attr] = px.bar(x=list(names[attr]), y=counts.to_numpy(), labels={"x": attr, "y": "images"},
                            title=f"{attr} (images)", height=300)
    people = train.drop_duplicates("folder")
    fig = px.histogram(people, x="age", nbins=int(people["age"].max() - people["age"].min() + 1) if len(people) else 10,
                       title="age (people), with the band bounds", height=300)
    for b in (bounds.lower, bounds.upper):
        fig.add_vline(x=b - 0.5, line_dash="dash", line_color="red", annotation_text=f"{b}")
    figs["age"] = fig
    return figs


def split_comparison(train: pd.DataFrame, val_ratio: float = 0.2, seed: int = 42) -> dict:
    """Per-class train/validation shares under the random image split and the person-level split."""
    out = {}
    for name, is_val in (("random image split", split_random_images(train, val_ratio, seed)),
                         ("person-level stratified split", split_by_person(train, val_ratio, seed))):
        shares = class_shares(train, is_val)
        out[name] = {"shares": shares, "leaked_people": leaked_people(train, is_val),
                     "max_gap": float((shares["train"] - shares["validation"]).abs().max())}
    return out


def split_figure(shares: pd.DataFrame, title: str, bounds: AgeBounds = DEFAULT_BOUNDS) -> go.Figure:
    long = shares.reset_index(names="class").melt(id_vars="class", var_name="side", value_name="share %")
    long["name"] = [class_names(bounds)[c] for c in long["class"]]
    fig = px.bar(long, x="class", y="share %", color="side", barmode="group", title=title, height=340,
                 hover_data=["name"])
    fig.update_layout(xaxis=class_axis(bounds), margin=dict(t=40, b=10))
    return fig


def distribution_figure(shares: pd.DataFrame, bounds: AgeBounds = DEFAULT_BOUNDS) -> go.Figure:
    """Class shares (%) side by side, e.g. training vs predicted (columns of `shares`, one row per class)."""
    long = shares.reset_index(names="class").melt(id_vars="class", var_name="set", value_name="share %")
    long["name"] = [class_names(bounds)[c] for c in long["class"]]
    fig = px.bar(long, x="class", y="share %", color="set", barmode="group", height=340, hover_data=["name"],
                 title="Predicted class distribution vs training")
    fig.update_layout(xaxis=class_axis(bounds), margin=dict(t=40, b=10))
    return fig


def confusion_figure(matrix, labels: list[str], normalise: bool = False, title: str = "",
                     full_names: list[str] | None = None) -> go.Figure:
    """The confusion matrix as square markers, one per (true, predicted) cell, true classes as rows.

    Markers, not a heatmap: Streamlit reports a click on a scatter point (with its customdata = [true,
    predicted]) but not on a heatmap cell. Row-normalised shows recall per cell.
    """
    m = np.asarray(matrix, dtype=float)
    n = len(labels)
    if normalise:
        m = m / np.maximum(m.sum(1, keepdims=True), 1)
    full = full_names or labels
    true, pred = np.divmod(np.arange(n * n), n)
    values = m[true, pred]
    text = [f"{v:.2f}" if normalise else f"{int(v)}" for v in values]
    top = values.max() if values.size and values.max() > 0 else 1.0
    ink = ["white" if v > 0.55 * top else "#1f2a44" for v in values]
    plot_px = 30 * n if n > 6 else 70 * n  # rows' share of the figure height
    fig = go.Figure(go.Scatter(
        x=pred, y=true, mode="markers+text", text=text, textfont=dict(color=ink, size=10 if n > 6 else 14),
        customdata=np.stack([true, pred], 1), hovertext=[f"true {full[t]}<br>predicted {full[p]}" for t, p in
                                                         zip(true, pred)],
        hovertemplate="%{hovertext}<br>%{text}<extra></extra>",
        marker=dict(symbol="square", size=0.92 * plot_px / n, color=values, colorscale="Blues", cmin=0, cmax=top,
                    line=dict(width=0), showscale=True),
        selected=dict(marker=dict(opacity=1.0)), unselected=dict(marker=dict(opacity=0.45))))
    axis = dict(tickmode="array", tickvals=list(range(n)), ticktext=labels, showgrid=False, zeroline=False,
                range=[-0.5, n - 0.5])
    fig.update_layout(title=title, xaxis=dict(axis, title="predicted", tickangle=-60 if n > 6 else 0,
                                              automargin=True),
                      yaxis=dict(axis, title="true", autorange=False, range=[n - 0.5, -0.5], automargin=True),
                      height=plot_px + (170 if n > 6 else 130), margin=dict(t=40, b=10), clickmode="event+select",
                      plot_bgcolor="white")
    return fig


def picked_cell(event) -> tuple[int, int] | None:
    """(true, predicted) of the cell a confusion_figure click selected, from Streamlit's selection event."""
    points = ((event or {}).get("selection") or {}).get("points") or []
    if not points:
        return None
    point = points[0]
    if point.get("x") is not None and point.get("y") is not None:  # numeric axes: x = predicted, y = true
        return int(round(float(point["y"]))), int(round(float(point["x"])))
    data = point.get("customdata")
    values = list(data.values()) if isinstance(data, dict) else list(data or [])
    return (int(values[0]), int(values[1])) if len(values) >= 2 else None


def per_class_f1_figure(per_class: list[dict], names: list[str], ci: list | None = None) -> go.Figure:
    """F1 per class, sorted; with `ci` (per class [low, high]) each bar carries its 95 % interval over people."""
    frame = pd.DataFrame(per_class)
    frame["name"] = [f"{c}: {names[c]}" for c in frame["class"]]
    if ci is not None:  # never a negative bar (an interval that does not hold its own point is drawn at the point)
        frame["minus"] = (frame["f1"] - [ci[c][0] for c in frame["class"]]).clip(lower=0)
        frame["plus"] = ([ci[c][1] for c in frame["class"]] - frame["f1"]).clip(lower=0)
    frame = frame.sort_values("f1")
    fig = px.bar(frame, x="f1", y="name", orientation="h", hover_data=["precision", "recall", "support"],
                 error_x="plus" if ci is not None else None, error_x_minus="minus" if ci is not None else None,
                 title="F1 per class (sorted)" + (", 95 % interval over people" if ci is not None else ""), height=520)
    fig.update_layout(margin=dict(t=40, b=10), xaxis_range=[0, 1], yaxis=dict(automargin=True, title=None))
    return fig


def class_difference_figure(per_class: list[dict], names: list[str], title: str = "") -> go.Figure:
    """Per-class F1 differences (B - A) with their intervals, largest first."""
    frame = pd.DataFrame(per_class)
    frame["name"] = [f"{c}: {names[c]}" for c in frame["class"]]
    lo = frame["interval"].map(lambda v: v[0])
    hi = frame["interval"].map(lambda v: v[1])
    fig = go.Figure(go.Bar(x=frame["difference"], y=frame["name"], orientation="h",
                           error_x=dict(type="data", symmetric=False, array=hi - frame["difference"],
                                        arrayminus=frame["difference"] - lo),
                           marker_color=["#2a9d8f" if d >= 0 else "#e76f51" for d in frame["difference"]]))
    fig.update_layout(title=title or "F1 per class, B - A (95 % interval over people)", height=520,
                      margin=dict(t=40, b=10), yaxis=dict(autorange="reversed", automargin=True))
    return fig


def waterfall_figure(steps: list[dict], base: float | None, title: str = "") -> go.Figure:
    """Each step's gain as a floating bar from the level before it, with its interval as an error bar; a bar is a
    point a click selects (customdata = the step's index)."""
    level = base or 0.0
    xs, bases, gains, lo, hi, colours = [], [], [], [], [], []
    for s in steps:
        if "gain" not in s:
            continue
        xs.append(s["step"])
        bases.append(level)
        gains.append(s["gain"])
        interval = s.get("interval") or [s["gain"], s["gain"]]  # cannot judge: no error bar drawn
        lo.append(s["gain"] - interval[0])
        hi.append(interval[1] - s["gain"])
        colours.append({"pays": "#2a9d8f", "hurts": "#e76f51"}.get(s["verdict"], "#a8a8a8"))
        level += s["gain"]
    fig = go.Figure(go.Bar(x=xs, y=gains, base=bases, marker_color=colours,
                           customdata=[[i, g] for i, g in enumerate(gains)],
                           hovertemplate="%{x}: gain %{customdata[1]:+.4f}<extra></extra>",
                           error_y=dict(type="data", symmetric=False, array=hi, arrayminus=lo)))
    fig.update_layout(title=title or "Gain of each step (macro F1, 95 % interval over people)", height=420,
                      margin=dict(t=40, b=10), yaxis_title="macro F1", clickmode="event+select")
    return fig


def leaderboard_figure(rows: list[dict]) -> go.Figure:
    """Each scored submission's validation macro F1 (with its 95 % interval) against its public score, and the
    expected private score with its range; the dashed line is where validation and public agree."""
    shown = [r for r in rows if r.get("public") is not None and r.get("val_ci")]
    fig = go.Figure()
    if shown:
        x = [r["public"] for r in shown]
        fig.add_trace(go.Scatter(x=x, y=[r["val_f1"] for r in shown], mode="markers+text", name="validation F1",
                                 text=[r["name"] for r in shown], textposition="top center",
                                 error_y=dict(type="data", symmetric=False,
                                              array=[r["val_ci"][1] - r["val_f1"] for r in shown],
                                              arrayminus=[r["val_f1"] - r["val_ci"][0] for r in shown])))
        priv = [r for r in shown if r.get("private")]
        fig.add_trace(go.Scatter(x=[r["public"] for r in priv], y=[r["private"]["expected"] for r in priv],
                                 mode="markers", marker_symbol="diamond", name="expected private (95 % range)",
                                 error_y=dict(type="data", symmetric=False,
                                              array=[r["private"]["range"][1] - r["private"]["expected"] for r in priv],
                                              arrayminus=[r["private"]["expected"] - r["private"]["range"][0]
                                                          for r in priv])))
        lo, hi = min(x + [r["val_ci"][0] for r in shown]), max(x + [r["val_ci"][1] for r in shown])
        fig.add_trace(go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", line=dict(dash="dash", color="#999"),
                                 name="validation = public", hoverinfo="skip"))
    fig.update_layout(title="Validation macro F1 (95 % interval) against the public score", height=420,
                      xaxis_title="public score", yaxis_title="macro F1", margin=dict(t=40, b=10))
    return fig
