"""Data page: the 18-class imbalance, each attribute, leak-free vs leaky splits, samples, skipped files."""
import numpy as np
import pandas as pd
import streamlit as st

import ui
from maskcls.wrapup import charts
from maskcls.data.corrections import corrections_summary
from maskcls.data.splits import borderline_table
from maskcls.data.labels import class_names
from maskcls.common.devices import has_gpu
from maskcls.common.settings import default_cache_dir
from maskcls.data.faces import (FACES_FILE, SOURCES, boxed_thumbnail, coverage_warning, ensure_detections,
                                face_crops, rates, unsearched)

@st.cache_data(max_entries=4, show_spinner=False)
def face_boxes(paths: tuple, cache_dir: str, margin: float, stamp: float):
    """The crops of every image under the rule validation and the eval set follow, once per box file and
    margin (a rerun reads no image header again)."""
    return face_crops(list(paths), cache_dir, margin)


st.title("Data")
ui.demo_banner()
index = ui.current_index()
if index is None:
    st.stop()
train, bounds = index.train, index.bounds
corrected = index.train.attrs.get("corrections")
if corrected:
    text = corrections_summary(corrected)
    (st.warning if corrected["unmatched"] else st.info)(ui.markdown_escape(text))

table = charts.class_count_table(train, bounds)
st.plotly_chart(charts.class_count_figure(table), width="stretch")
with st.expander("Class counts as a table"):
    st.dataframe(table, hide_index=True, width="stretch")

st.subheader("Attributes")
cols = st.columns(3)
for col, fig in zip(cols, charts.attribute_figures(train, bounds).values()):
    col.plotly_chart(fig, width="stretch")

st.subheader("Train vs validation: image-level random split vs person-level split")
c1, c2 = st.columns(2)
ratio = c1.slider("Validation share", 0.1, 0.4, 0.2, 0.05, key="data_val_ratio")
seed = c2.number_input("Split seed", value=42, step=1, key="data_split_seed")
comparison = charts.split_comparison(train, ratio, int(seed))
cols = st.columns(2)
for col, (name, r) in zip(cols, comparison.items()):
    col.plotly_chart(charts.split_figure(r["shares"], name, bounds), width="stretch")
    col.metric("People with photos on both sides", r["leaked_people"],
               help="Each such person's face is in training and validation: validation scores are inflated")
    col.caption(f"Largest per-class share gap: {r['max_gap']:.2f} points")

st.subheader("Borderline ages")
window = st.number_input("Years below each age bound to leave out of training", 0, 10, 0, step=1,
                         key="data_borderline", help="The winning team trained without ages 27-29 and 57-59 (3 "
                         "years below 30 and 60); validation keeps everyone. Set it on the Train page too.")
if window:
    drop = borderline_table(train, bounds, int(window))
    st.caption(f"{int(drop['dropped'].sum()):,} of {len(train):,} training images would be left out "
               f"(ages {bounds.lower - window}-{bounds.lower - 1} and {bounds.upper - window}-{bounds.upper - 1}).")
    st.dataframe(drop, hide_index=True, width="stretch", key="data_borderline_table")

st.subheader("Face crop")
face_cache = default_cache_dir(index.root)
paths = train["path"].tolist()
eval_paths = index.eval["path"].tolist() if index.eval is not None else []
missing = unsearched(paths + eval_paths, face_cache)
margin = st.slider("Margin around the face box (share of its size, each side)", 0.0, 0.6, 0.2, 0.05,
                   key="data_face_margin")
if missing:
    st.caption(f"{missing:,} of {len(paths) + len(eval_paths):,} training and eval images have not been searched for "
               f"a face yet. MTCNN looks once per image (tens of milliseconds each on a CPU), then the boxes are cached "
               f"with the decoded images.")
    if st.button("Find faces", key="data_faces", icon=":material/face:"):
        bar = st.progress(0.0, text="finding faces…")
        ensure_detections(paths + eval_paths, face_cache, "cuda" if has_gpu() else "cpu",
                          progress=lambda d, n: bar.progress(d / max(n, 1), text=f"finding faces {d:,}/{n:,}"))
        st.rerun()
else:
    stamp = (face_cache / FACES_FILE).stat().st_mtime
    boxes, sources = face_boxes(tuple(paths), str(face_cache), margin, stamp)
    sets = {"training": rates(sources)}
    if eval_paths:
        eval_boxes, eval_sources = face_boxes(tuple(eval_paths), str(face_cache), margin, stamp)
        sets["eval"] = rates(eval_sources)
    st.dataframe(pd.DataFrame([{"set": k, "images": v["images"], **{f"{s} %": v[f"{s}_%"] for s in SOURCES}}
                               for k, v in sets.items()]), hide_index=True, key="data_face_coverage",
                 column_config={f"{s} %": st.column_config.NumberColumn(format="%.1f %%") for s in SOURCES})
    warning = coverage_warning(sets["training"], sets.get("eval"))
    if warning:
        st.warning(f"The {warning}. Compare the crop on validation and on the eval set before trusting it "
                   f"(`maskcls faces ROOT --eval`).")
    rng = np.random.default_rng(0)
    shown = [i for s in ("detected", "borrowed", "fallback")
             for i in rng.permutation([j for j, x in enumerate(sources) if x == s])[:4]]
    st.image([boxed_thumbnail(paths[i], boxes[i], sources[i]) for i in shown],
             caption=[f"{sources[i]} · {train['folder'].iloc[i]}" for i in shown], width=120)
    st.caption("Green: detected · red: no face found, the whole frame is used (the rule validation and the eval set "
               "follow: eval photos have no person to borrow a box from). A run with `face_crop` on (Train page) "
               "trains, evaluates and predicts on these crops.")

st.subheader("Sample images per class")
names = class_names(bounds)
cls = st.selectbox("Class", range(18), format_func=lambda c: f"{c}: {names[c]}", key="data_class")
rows = train[train["label"] == cls]
if rows.empty:
    st.write("No images of this class.")
else:
    picks = rows.sample(min(12, len(rows)), random_state=0)
    st.image(picks["path"].tolist(), caption=picks["folder"].tolist(), width=120)

st.subheader("Skipped and problem files")
if index.problems.empty:
    st.success("Nothing was skipped: every file was usable.")
else:
    st.dataframe(index.problems, hide_index=True, width="stretch")
