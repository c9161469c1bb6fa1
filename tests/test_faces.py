"""The face crop (issue 16, step 1): MTCNN finds a real face in cluttered frames, boxes are cached, and the crop
travels from training to evaluation, prediction and Grad-CAM."""
import json

import numpy as np
import pytest
from PIL import Image, ImageDraw

from conftest import REPO
from maskcls.data.faces import BoxRule, detect_boxes, face_crops, grow, load_detections

ASTRONAUT = REPO / "tests" / "astronaut.jpg"  # NASA portrait of Eileen Collins (public domain), via scikit-image


def cluttered_frames(folder, n: int = 20, seed: int = 0):
    """The portrait pasted at random places and scales into 384x512 frames over random clutter; returns
    (paths, the pasted face's centre in each frame)."""
    rng = np.random.default_rng(seed)
    portrait = Image.open(ASTRONAUT).convert("RGB")
    ref = detect_boxes([str(ASTRONAUT)])[0]
    assert not np.isnan(ref).any(), "the clean portrait's face must be found"
    cx, cy = (ref[0] + ref[2]) / 2 / portrait.width, (ref[1] + ref[3]) / 2 / portrait.height
    paths, centres = [], []
    for i in range(n):
        frame = Image.fromarray(rng.integers(0, 256, (512, 384, 3), dtype=np.uint8)).resize((384, 512))
        draw = ImageDraw.Draw(frame)
        for _ in range(25):  # clutter: boxes and lines of random colours
            x, y = rng.integers(0, 384), rng.integers(0, 512)
            draw.rectangle([x, y, x + rng.integers(10, 120), y + rng.integers(10, 120)],
                           fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
            draw.line([tuple(rng.integers(0, 384, 2)), tuple(rng.integers(0, 512, 2))], width=3,
                      fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
        side = int(rng.integers(170, 300))
        x, y = int(rng.integers(0, 384 - side + 1)), int(rng.integers(0, 512 - side + 1))
        frame.paste(portrait.resize((side, side)), (x, y))
        path = folder / f"frame{i:02d}.jpg"
        frame.save(path, quality=92)
        paths.append(str(path))
        centres.append((x + cx * side, y + cy * side))
    return paths, centres


def test_the_detector_finds_a_real_face_in_cluttered_frames(tmp_path):
    paths, centres = cluttered_frames(tmp_path)
    boxes = detect_boxes(paths)
    found = ~np.isnan(boxes).any(1)
    assert found.mean() >= 0.9, f"found {found.sum()} of {len(paths)}"
    for box, (x, y), ok in zip(boxes, centres, found):
        if ok:
            assert box[0] <= x <= box[2] and box[1] <= y <= box[3], (box, x, y)


@pytest.mark.slow
def test_the_demo_faces_are_found_at_varied_framing(tmp_path):
    """The demo's drawn people (issue 16): MTCNN finds most faces, masked ones included, every found box holds
    the drawn face's centre, and the framing varies from person to person as in phone photos."""
    from maskcls.data.demo import FILES
    from maskcls.data.demo_faces import MASK_COLORS, draw_photo_and_face, make_person
    from maskcls.data.labels import MASK_FILES
    paths, faces, masks = [], [], []
    for i in range(12):
        rng = np.random.default_rng([3, i])
        person = make_person(rng, i % 2, 20 + 4 * i)
        for stem in FILES:
            img, face = draw_photo_and_face(person, MASK_FILES[stem], rng, MASK_COLORS[i % len(MASK_COLORS)])
            paths.append(str(tmp_path / f"p{i}-{stem}.jpg"))
            img.save(paths[-1], quality=90)
            faces.append(face)
            masks.append(MASK_FILES[stem])
    boxes = detect_boxes(paths)
    found, masks, faces = ~np.isnan(boxes).any(1), np.array(masks), np.array(faces)
    assert found.mean() >= 0.6, f"found {found.sum()} of {len(paths)}"
    assert found[masks == 0].mean() >= 0.5, f"masked faces found: {found[masks == 0].sum()} of {(masks == 0).sum()}"
    assert found[masks == 2].mean() >= 0.9
    for box, (x, y, _, _), ok in zip(boxes, faces, found):
        if ok:
            assert box[0] <= x <= box[2] and box[1] <= y <= box[3], (box, x, y)
    widths, centres_x = faces[::7, 2], faces[::7, 0]
    assert widths.max() / widths.min() >= 1.25 and np.ptp(centres_x) >= 60, (widths, centres_x)


def test_boxes_are_cached_borrowed_within_a_person_and_grown_within_the_image(tmp_path):
    person = tmp_path / "000001_female_Asian_45"
    person.mkdir()
    paths, _ = cluttered_frames(person, n=3, seed=1)
    blank = person / "mask5.jpg"
    Image.new("RGB", (384, 512), (128, 128, 128)).save(blank)  # no face: borrows the person's box
    alone = tmp_path / "eval.jpg"
    Image.new("RGB", (384, 512), (90, 90, 90)).save(alone)  # no face, no person: centre fallback
    every = paths + [str(blank), str(alone)]
    boxes, sources = face_crops(every, tmp_path / "cache", margin=0.2, rule=BoxRule(borrow=True, fallback="centre"))
    assert sources[:3] == ["detected"] * 3 and sources[3:] == ["borrowed", "fallback"]
    assert (boxes[:, 0] >= 0).all() and (boxes[:, 2] <= 384).all() and (boxes[:, 3] <= 512).all()
    assert len(load_detections(tmp_path / "cache")) == 5
    assert all(load_detections(tmp_path / "cache")[p].looked_twice for p in every[3:])  # misses get a second look
    held_out, why = face_crops(every, tmp_path / "cache", margin=0.2)  # the rule the eval set can follow
    assert why == ["detected"] * 3 + ["fallback"] * 2 and held_out[3:].tolist() == [[0, 0, 384, 512]] * 2
    assert (held_out[:3] == boxes[:3]).all()
    assert grow([10, 10, 20, 20], 1.0, 25, 25).tolist() == [0, 0, 25, 25]


def test_the_same_photos_through_a_linked_folder_keep_their_boxes(tmp_path, monkeypatch):
    """A data root reached through a symlink (a mounted volume, a shared folder) reuses the stored boxes, borrowing
    included, instead of paying MTCNN again (20 minutes for 7,000 photos on this CPU)."""
    from maskcls.data import faces
    real = tmp_path / "data" / "000001_female_Asian_45"
    real.mkdir(parents=True)
    paths, _ = cluttered_frames(real, n=2, seed=2)
    Image.new("RGB", (384, 512), (128, 128, 128)).save(real / "mask5.jpg")  # no face: borrows the person's box
    every = paths + [str(real / "mask5.jpg")]
    rule = BoxRule(borrow=True)
    boxes, sources = face_crops(every, tmp_path / "cache", rule=rule)
    assert sources == ["detected", "detected", "borrowed"]
    (tmp_path / "linked").symlink_to(tmp_path / "data", target_is_directory=True)
    linked = [p.replace(str(tmp_path / "data"), str(tmp_path / "linked")) for p in every]

    def no_detector(*args, **kwargs):
        raise AssertionError("MTCNN ran again for photos it had already looked at")
    monkeypatch.setattr(faces, "detect_boxes", no_detector)
    assert faces.unsearched(linked, tmp_path / "cache") == 0
    again, why = face_crops(linked, tmp_path / "cache", rule=rule)
    assert why == sources and (again == boxes).all()
    assert faces.unsearched(linked + [str(tmp_path / "linked" / "new.jpg")], tmp_path / "cache") == 1


@pytest.mark.slow
def test_faces_cli_reports_training_and_eval_coverage_apart(demo_root, tmp_path, capsys):
    from maskcls.cli import main
    import pandas as pd
    args = ["faces", str(demo_root), "--eval", "--json", "--cache-dir", str(tmp_path / "c"), "--quiet"]
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out)
    for name in ("training", "validation", "eval"):
        c = out[name]
        assert c["images"] == c["detected"] + c["borrowed"] + c["fallback"] > 0
        assert abs(c["detected_%"] + c["borrowed_%"] + c["fallback_%"] - 100) < 0.5
    assert out["eval"]["borrowed"] == 0 and out["validation"]["borrowed"] == 0  # they cannot borrow
    assert "warning" in out
    table = pd.read_csv(out["csv"])
    assert list(table.columns) == ["path", "set", "x0", "y0", "x1", "y1", "source"]
    assert len(table) == out["training"]["images"] + out["eval"]["images"]
    assert main(args) == 0  # a second call reads the cache (its time is a budget in `maskcls bench budgets`)
    assert json.loads(capsys.readouterr().out)["eval"] == out["eval"]
    assert main(["faces", str(demo_root), "--margin", "3"]) == 2
    assert "--margin must be between 0 and 1" in capsys.readouterr().err


def test_validation_and_eval_photos_follow_one_box_rule(tmp_path):
    """A layout where validation photos could borrow a box and eval photos cannot: both are cut alike."""
    from maskcls.train.config import RunConfig
    person = tmp_path / "train" / "images" / "000001_female_Asian_45"
    person.mkdir(parents=True)
    found, _ = cluttered_frames(person, n=2, seed=5)
    blank = Image.new("RGB", (384, 512), (128, 128, 128))
    blank.save(person / "mask5.jpg")  # no face: a training rule with borrowing would lend it the person's box
    (tmp_path / "eval" / "images").mkdir(parents=True)
    blank.save(tmp_path / "eval" / "images" / "e1.jpg")  # the same photo as an eval image: nobody to borrow from
    cfg = RunConfig(data_root=str(tmp_path), face_crop=True, face_borrow=True, cache_dir=str(tmp_path / "c"))
    recipe = cfg.preprocess()
    validation = [*found, str(person / "mask5.jpg")]
    val_boxes, val_cover = recipe.boxes(validation, "held_out")
    eval_boxes, eval_cover = recipe.boxes([str(tmp_path / "eval" / "images" / "e1.jpg")], "held_out")
    train_boxes, train_cover = recipe.boxes(validation, "train")
    assert train_cover["borrowed"] == 1 and val_cover["borrowed"] == 0  # training may borrow, validation never
    assert val_boxes[-1].tolist() == eval_boxes[0].tolist() == [0, 0, 384, 512]  # one rule: the whole frame
    assert (recipe.pixels(str(person / "mask5.jpg")) == recipe.pixels(str(tmp_path / "eval" / "images" / "e1.jpg"))
            ).all()


@pytest.mark.slow
def test_the_crop_travels_from_training_to_evaluate_predict_and_grad_cam(demo_root, tmp_path):
    import torch

    from maskcls.common.settings import default_cache_dir
    from maskcls.data.cache import build_cache
    from maskcls.infer.ensemble import predict_submission
    from maskcls.infer.evaluation import validation_predictions
    from maskcls.infer.members import EvalInputs, Member
    from maskcls.models.cam import explain_image
    from maskcls.data.splits import prepare_split
    from maskcls.train.driver import train_run
    from maskcls.common.runfolder import RunFolder
    from maskcls.common.checkpoints import load_checkpoint
    from maskcls.infer.members import build_model
    from conftest import tiny
    cfg = tiny(demo_root, tmp_path, face_crop=True, face_margin=0.25)
    runs = tmp_path / "runs"
    assert train_run(cfg, runs, "crop")["state"] == "completed"
    log = RunFolder(runs, "crop").log_tail(50)
    assert "face crop (training): " in log and "face crop (validation): " in log
    train_rows, val_rows, _ = prepare_split(cfg.split_spec())
    trained, _ = cfg.preprocess().cache([(list(train_rows["path"]), "train"), (list(val_rows["path"]), "held_out")])
    assert not trained.built  # the very cache training's passes read
    val_pixels = np.asarray(trained.array[len(train_rows):])
    plain = build_cache(list(val_rows["path"]), tuple(cfg.image_size), tmp_path / "plain", None)
    assert not np.array_equal(val_pixels, np.asarray(plain.array))  # the crop changes what the model sees
    # evaluate and predict: the eval-time inputs of the validation images are training's pixels
    inputs = EvalInputs(list(val_rows["path"]), torch.device("cpu"), default_cache_dir(cfg))
    assert np.array_equal(inputs.loader(cfg).data.numpy(), val_pixels)
    frame = validation_predictions(runs, "crop", "last.pt")  # predicted anew through those inputs
    assert frame.attrs["source"].startswith("predicted now") and len(frame) == len(val_rows)
    # Grad-CAM's input is the same pixels
    ckpt = load_checkpoint(RunFolder(runs, "crop").best_path)
    views, _ = explain_image(build_model(ckpt, cfg), cfg, val_rows["path"].iloc[0], [(0, "x")])
    assert np.array_equal(views[0], val_pixels[0])
    # the eval set is predicted through the crop too (its boxes land in the same cache)
    out = predict_submission(demo_root, runs, [Member("crop")], "soft", tmp_path / "sub.csv", device="cpu",
                             cache_dir=default_cache_dir(cfg))
    assert out["rows"] > 0
    eval_paths = set(__import__("maskcls").index_data(demo_root).eval["path"])
    assert eval_paths <= set(load_detections(default_cache_dir(cfg)))


@pytest.mark.slow
def test_the_pages_show_the_face_crop(demo_root, tmp_path):
    from conftest import app_test
    from maskcls.common.settings import default_cache_dir
    from maskcls.data.index import index_data
    at = app_test("pages/data.py", data_root=str(demo_root))
    index = index_data(demo_root)
    paths = index.train["path"].tolist() + index.eval["path"].tolist()
    if len(load_detections(default_cache_dir(demo_root))) < len(paths):  # not searched yet: the button does it
        at.button(key="data_faces").click().run()
        at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    table = next(d.value for d in at.dataframe if "fallback %" in d.value.columns).set_index("set")
    assert table.loc["training", "images"] == len(index.train) and table.loc["eval", "images"] == len(index.eval)
    assert (table[["detected %", "borrowed %", "fallback %"]].sum(axis=1) - 100).abs().max() < 0.5
    assert any("Green: detected" in c.value for c in at.caption)
    at = app_test("pages/augment.py", data_root=str(demo_root))
    at.toggle(key="aug_face").set_value(True).run()
    assert not at.exception and not at.error
    assert any(c.value.startswith("Face box:") for c in at.caption)
    at = app_test("pages/train.py", data_root=str(demo_root), runs_root=str(tmp_path / "runs"))
    assert at.checkbox(key="train_face").value is False


def test_background_removal_greys_the_clutter_keeps_the_face_and_is_cached_like_the_crop(tmp_path, demo_root):
    from maskcls.data.background import GREY, remove_background
    from maskcls.data.cache import build_cache
    from maskcls.data.imageio import load_preprocessed
    paths, centres = cluttered_frames(tmp_path, n=3, seed=2)
    box = detect_boxes(paths[:1])[0]
    rgb = np.asarray(Image.open(paths[0]).convert("RGB"))
    out = remove_background(rgb, box)
    x, y = (int(v) for v in centres[0])
    assert (out[y, x] == rgb[y, x]).all()  # the face stays
    grey = (out == GREY).all(2)
    assert grey.mean() > 0.2 and not grey[int(box[1]):int(box[3]), int(box[0]):int(box[2])].mean() > 0.5
    assert remove_background(np.full((64, 48, 3), 7, np.uint8)).shape == (64, 48, 3)  # nothing to separate: as is
    # the decoded-image cache keys on it and holds exactly what the loader makes
    sample = paths[:2]
    plain = build_cache(sample, (64, 48), tmp_path / "c", None)
    cut = build_cache(sample, (64, 48), tmp_path / "c", None, background=True)
    assert plain.key != cut.key
    assert np.array_equal(np.asarray(cut.array[1]), load_preprocessed(sample[1], (64, 48), None, None, True))
    from conftest import app_test
    at = app_test("pages/augment.py", data_root=str(demo_root))
    at.toggle(key="aug_bg").set_value(True).run()
    assert not at.exception and any(c.value.startswith("Background removal:") for c in at.caption)


def test_a_damaged_box_cache_is_rebuilt_not_a_traceback(tmp_path):
    from maskcls.data.faces import FACES_FILE
    paths, _ = cluttered_frames(tmp_path, n=2, seed=3)
    cache = tmp_path / "cache"
    boxes, _ = face_crops(paths, cache)
    f = cache / FACES_FILE
    whole = f.read_bytes()
    f.write_bytes(whole[: len(whole) // 2])  # truncated
    with pytest.warns(UserWarning, match="face-box cache .* is damaged"):
        again, _ = face_crops(paths, cache)
    assert (again == boxes).all() and len(load_detections(cache)) == 2  # found again and stored whole
    with np.load(f) as z:
        planted = {k: z[k] for k in z.files}
    planted["boxes"][0] = np.inf
    with open(f, "wb") as fh:
        np.savez(fh, **planted)
    with pytest.warns(UserWarning, match="1 box\\(es\\) that are not numbers"):
        again, _ = face_crops(paths, cache)
    assert (again == boxes).all() and np.isfinite(load_detections(cache)[paths[0]].first).all()
