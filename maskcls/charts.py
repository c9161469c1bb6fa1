"""Plotly figures and the tables behind them (no Streamlit here: the pages only place them)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from .labels import NUM_CLASSES, AgeBounds, attribute_names, class_names
from .splits import class_shares, leaked_people, split_by_person, split_random_images


def class_count_table(train: pd.DataFrame, bounds: AgeBounds) -> pd.DataFrame:
    counts = np.bincount(train["label"].to_numpy(), minlength=NUM_CLASSES)
    total = max(int(counts.sum()), 1)
    return pd.DataFrame({"class": range(NUM_CLASSES), "name": class_names(bounds), "images": counts,
                         "share %": np.round(100 * counts / total, 2)})


def imbalance_ratio(counts) -> float:
    counts = np.asarray(counts)
    present = counts[counts > 0]
    return float(present.max() / present.min()) if len(present) else float("nan")


def class_count_figure(table: pd.DataFrame) -> go.Figure:
    fig = px.bar(table, x="class", y="images", hover_data=["name", "share %"], text="share %",
                 color="images", color_continuous_scale="Viridis")
    fig.update_traces(texttemplate="%{text:.1f}%", textposition="outside")
    fig.update_layout(xaxis=dict(tickmode="linear"), height=380, margin=dict(t=30, b=10),
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


def split_figure(shares: pd.DataFrame, title: str) -> go.Figure:
    long = shares.reset_index(names="class").melt(id_vars="class", var_name="side", value_name="share %")
    fig = px.bar(long, x="class", y="share %", color="side", barmode="group", title=title, height=320)
    fig.update_layout(xaxis=dict(tickmode="linear"), margin=dict(t=40, b=10))
    return fig


def confusion_figure(matrix, labels: list[str], normalise: bool = False, title: str = "") -> go.Figure:
    """Heatmap with true classes as rows; row-normalised shows recall per cell."""
    m = np.asarray(matrix, dtype=float)
    if normalise:
        m = m / np.maximum(m.sum(1, keepdims=True), 1)
    text = np.vectorize(lambda v: f"{v:.2f}" if normalise else f"{int(v)}")(m)
    fig = go.Figure(go.Heatmap(z=m, x=labels, y=labels, text=text, texttemplate="%{text}", colorscale="Blues",
                               hovertemplate="true %{y}<br>predicted %{x}<br>%{text}<extra></extra>"))
    fig.update_layout(title=title, xaxis_title="predicted", yaxis_title="true", yaxis_autorange="reversed",
                      height=max(300, 30 * len(labels) + 120), margin=dict(t=40, b=10))
    return fig


def per_class_f1_figure(per_class: list[dict], names: list[str]) -> go.Figure:
    frame = pd.DataFrame(per_class)
    frame["name"] = [f"{c}: {names[c]}" for c in frame["class"]]
    frame = frame.sort_values("f1")
    fig = px.bar(frame, x="f1", y="name", orientation="h", hover_data=["precision", "recall", "support"],
                 title="F1 per class (sorted)", height=520)
    fig.update_layout(margin=dict(t=40, b=10), xaxis_range=[0, 1])
    return fig
