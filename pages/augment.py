"""Augment page: build a spec with sliders, preview many random draws, save it for training."""
import time

import streamlit as st

import ui
from maskcls.augment.spec import (FLAGGED, MODES, TRANSFORMS, AugmentSpec, SpecError, TransformSpec, create_preset,
    list_presets, list_saved_specs, save_spec)
from maskcls.data.imageio import ImageError
from maskcls.data.labels import class_names
from maskcls.augment.preview import load_source, mix_preview, preview_draws
from maskcls.augment.spec import PARTNERS
from maskcls.data.imageio import load_preprocessed
from maskcls.common.settings import default_cache_dir
from maskcls.data.faces import face_crops
from maskcls.data.labels import short_class_names

# slider ranges per parameter: (min, max, step)
RANGES = {"brightness": (0.0, 1.0, 0.05), "contrast": (0.0, 1.0, 0.05), "saturation": (0.0, 1.0, 0.05),
          "hue": (0.0, 0.5, 0.01), "degrees": (0.0, 180.0, 1.0), "scale_min": (0.01, 0.5, 0.01),
          "scale_max": (0.01, 0.9, 0.01)}
NUMBER_INPUTS = ("sigma_min", "sigma_max", "kernel")  # typed values: a bad one gets a message, not a clamp


def spec_to_state(spec: AugmentSpec) -> None:
    """Load a spec into the widgets (used by presets and JSON import, before widgets render)."""
    s = st.session_state
    s["aug_mode"], s["aug_p"] = spec.mode, float(spec.p)
    s["aug_crop_on"] = spec.crop is not None
    if spec.crop:
        s["aug_crop_h"], s["aug_crop_w"] = spec.crop
    chosen = {t.name: t for t in spec.transforms}
    for name, defaults in TRANSFORMS.items():
        t = chosen.get(name)
        s[f"aug_{name}_on"] = t is not None
        s[f"aug_{name}_p"] = float(t.p) if t else 0.5
        for k, v in {**defaults, **(t.params if t else {})}.items():
            s[f"aug_{name}_{k}"] = int(v) if k == "kernel" else float(v)
    s["aug_cutmix_p"], s["aug_vertical"], s["aug_mixup_p"] = spec.mix.cutmix_p, spec.mix.vertical, spec.mix.mixup_p
    s["aug_partner"], s["aug_cut"] = spec.mix.partner, (float(spec.mix.cut_min), float(spec.mix.cut_max))
    s["aug_normalize"] = spec.normalize


def state_to_spec() -> AugmentSpec:
    s = st.session_state
    spec = AugmentSpec(mode=s["aug_mode"], p=s["aug_p"], normalize=s["aug_normalize"],
                       crop=[int(s["aug_crop_h"]), int(s["aug_crop_w"])] if s["aug_crop_on"] else None)
    for name, defaults in TRANSFORMS.items():
        if s[f"aug_{name}_on"]:
            spec.transforms.append(TransformSpec(name, s[f"aug_{name}_p"], {k: s[f"aug_{name}_{k}"] for k in defaults}))
    spec.mix.cutmix_p, spec.mix.vertical, spec.mix.mixup_p = s["aug_cutmix_p"], s["aug_vertical"], s["aug_mixup_p"]
    spec.mix.partner = s.get("aug_partner", "any")
    spec.mix.cut_min, spec.mix.cut_max = s.get("aug_cut", (0.46, 0.54))
    return spec


def apply_preset() -> None:
    spec_to_state(create_preset(st.session_state["aug_preset"]))


def import_json() -> None:
    try:
        spec_to_state(AugmentSpec.from_json(st.session_state["aug_import_text"]))
        st.session_state["aug_import_msg"] = ("success", "Imported.")
    except SpecError as e:
        st.session_state["aug_import_msg"] = ("error", f"Import refused: {e}")


st.title("Augment")
index = ui.current_index()
if index is None:
    st.stop()
st.session_state.setdefault("aug_preset", "strong")
if "aug_mode" not in st.session_state:
    spec_to_state(create_preset("strong"))
    st.session_state.update(aug_crop_h=320, aug_crop_w=256, aug_seed=0, aug_n=8)

names = class_names(index.bounds)
top = st.columns([2, 3, 1])
cls = top[0].selectbox("Class", range(18), format_func=lambda c: f"{c}: {names[c]}", key="aug_class")
rows = index.train[index.train["label"] == cls]
if rows.empty:
    st.warning("No image of this class in the data.")
    st.stop()
options = rows["path"].tolist()
if st.session_state.get("aug_path") not in options:
    st.session_state["aug_path"] = options[0]
top[1].selectbox("Image", options, key="aug_path", format_func=lambda p: "/".join(p.split("/")[-2:]))
top[2].button("Random image", on_click=lambda: st.session_state.update(aug_path=rows.sample(1)["path"].iloc[0]))

c = st.columns([1, 1, 2, 2])
c[0].selectbox("Preset", list_presets(), key="aug_preset")
c[1].button("Load preset", on_click=apply_preset)
c[2].radio("Mode", MODES, key="aug_mode", horizontal=True,
           help="each: every transform has its own p · all: one coin applies the whole set · preprocess: "
                "deterministic, p = 1, for train, validation and test alike")
c[3].slider("p (mode all: one coin for the whole set)", 0.0, 1.0, key="aug_p", disabled=st.session_state["aug_mode"] != "all")

boxes = {}
with st.expander("Transforms", expanded=True):
    crop_cols = st.columns(4)
    crop_cols[0].checkbox("Center crop", key="aug_crop_on", help="Applied everywhere, before resizing")
    crop_cols[1].number_input("crop height", step=16, key="aug_crop_h", disabled=not st.session_state["aug_crop_on"])
    crop_cols[2].number_input("crop width", step=16, key="aug_crop_w", disabled=not st.session_state["aug_crop_on"])
    crop_cols[3].checkbox("Normalize (ImageNet mean/std)", key="aug_normalize")
    boxes["crop"] = st.container()
    cols = st.columns(4)
    for i, (name, defaults) in enumerate(TRANSFORMS.items()):
        with cols[i % 4]:
            box = st.container(border=True)
            boxes[name] = box
            box.checkbox(name.replace("_", " "), key=f"aug_{name}_on")
            if name in FLAGGED:
                box.caption(f"⚠️ {FLAGGED[name]}")
            on = st.session_state[f"aug_{name}_on"]
            box.slider("p", 0.0, 1.0, step=0.05, key=f"aug_{name}_p",
                       disabled=not on or st.session_state["aug_mode"] != "each")
            for k in defaults:
                if k in NUMBER_INPUTS:
                    box.number_input(k, step=1 if k == "kernel" else 0.1, key=f"aug_{name}_{k}", disabled=not on)
                else:
                    lo, hi, step = RANGES[k]
                    box.slider(k, lo, hi, step=step, key=f"aug_{name}_{k}", disabled=not on)
with st.expander("Batch mixing (training only; its own preview below)"):
    m = st.columns(5)
    m[0].slider("CutMix p", 0.0, 1.0, step=0.05, key="aug_cutmix_p")
    m[1].checkbox("Vertical cut", key="aug_vertical",
                  help="One vertical line: left of it from the image, right of it from the partner (the first-place "
                       "team's cut); off: a box")
    m[2].slider("Cut at (share of the width)", 0.05, 0.95, step=0.01, key="aug_cut",
                disabled=not st.session_state["aug_vertical"])
    m[3].selectbox("Partner", PARTNERS, key="aug_partner", format_func=lambda p: p.replace("_", " "),
                   help="same class: in-class CutMix, the label stays one class")
    m[4].slider("MixUp p", 0.0, 1.0, step=0.05, key="aug_mixup_p")
    boxes["mix"] = st.container()
    show_mix = st.toggle("Preview the mixing on a batch of training images", key="aug_mix_preview")

f = st.columns(2)
face_first = f[0].toggle("Face crop first (as a run with face_crop trains)", key="aug_face",
                         help="MTCNN's box for this photo (cached; borrowed from the person's other photos when none "
                              "is found), grown by the margin set on the Data page, replaces the centre crop")
no_background = f[1].toggle("Remove the background (GrabCut)", key="aug_bg",
                            help="As a run with remove_background trains: what GrabCut calls background turns grey "
                                 "(seeded by the face box when the face crop is on)")
spec = state_to_spec()
try:
    spec.validate()
    box = None
    if face_first:
        boxes, sources = face_crops([st.session_state["aug_path"]], default_cache_dir(index.root),
                                    float(st.session_state.get("data_face_margin", 0.2)))
        box = boxes[0]
        st.caption(f"Face box: {sources[0]} ({box[2] - box[0]}x{box[3] - box[1]} px)")
    t0 = time.perf_counter()
    source = load_source(st.session_state["aug_path"], spec, box, no_background)
    if no_background:
        st.caption(f"Background removal: {1000 * (time.perf_counter() - t0):.0f} ms for this photo (paid once per "
                   f"image, when a run's decoded-image cache is built)")
except SpecError as e:
    boxes.get(e.field.split(".")[0], st).error(str(e))
    st.stop()
except ImageError as e:
    st.error(f"Cannot preview this image: {e}")
    st.stop()

r = st.columns([1, 1, 4])
r[0].number_input("Draws", 1, 32, key="aug_n")
r[1].number_input("Seed", 0, 10**6, key="aug_seed")
r[2].button("Reroll", icon=":material/casino:", on_click=lambda: st.session_state.update(aug_seed=int(st.session_state["aug_seed"]) + 1))
draws, fired, seconds = preview_draws(source, spec, int(st.session_state["aug_n"]), int(st.session_state["aug_seed"]))
st.image([source] + draws, caption=["original"] + [f"draw {i + 1}" for i in range(len(draws))], width=170)
st.caption(f"Rendered {len(draws)} draws in {seconds * 1000:.0f} ms")
if fired:
    st.dataframe({"transform": list(fired), "fired": [f"{v}/{len(draws)}" for v in fired.values()],
                  "expected": [f"{spec.probability(t):.2f}" for t in spec.ordered()]}, hide_index=True)

if show_mix:
    st.subheader("Batch mixing, as it looks when it fires")
    batch = index.train.groupby("label").head(2).groupby("label").filter(lambda g: len(g) == 2).head(8)
    if len(batch) < 2:
        st.info("The data has too few images for a batch preview.")
    else:
        shorts = short_class_names(index.bounds)
        images = [load_preprocessed(p, (256, 192), spec.crop) for p in batch["path"]]
        mixed, weights = mix_preview(images, batch["label"].tolist(), spec, int(st.session_state["aug_seed"]))
        st.image(mixed, width=150, caption=[" + ".join(f"{shorts[c]} {100 * w:.0f}%" for c, w in
                                                       sorted(wt.items(), key=lambda kv: -kv[1])) for wt in weights])
        st.caption("Pairs of images per class, mixed as one batch (CutMix forced on; MixUp when CutMix is off). "
                   "Labels are mixed by area.")

st.subheader("Save, export, import")
s = st.columns([2, 1, 1])
st.session_state.setdefault("aug_name", "my-spec")
s[0].text_input("Spec name", key="aug_name")
replace = s[0].checkbox("Replace a saved spec of this name", key="aug_replace")
if s[1].button("Save for training"):
    try:
        path = save_spec(st.session_state["runs_root"], st.session_state["aug_name"], spec, replace=replace)
        st.session_state["train_augment"] = st.session_state["aug_name"]
        st.success(f"Saved to {path}; it is selected on the Train page.")
    except ValueError as e:
        st.error(str(e))
s[2].download_button("Export JSON", spec.to_json(), file_name="augment.json", mime="application/json")
saved = list_saved_specs(st.session_state["runs_root"])
if saved:
    st.caption("Saved specs: " + ", ".join(saved))
st.text_area("Paste a spec JSON to import", key="aug_import_text", height=100, max_chars=100_000)
st.button("Import", on_click=import_json)
if "aug_import_msg" in st.session_state:
    kind, msg = st.session_state.pop("aug_import_msg")
    getattr(st, kind)(msg)
