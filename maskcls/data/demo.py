"""Write a synthetic dataset in the exact competition layout (train/, eval/, plus eval/labels.csv truth)."""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from maskcls.common.fileio import read_json, write_json, write_text
from maskcls.common.jobfolder import ACTIVE, JobFolder
from maskcls.common.settings import cache_home
from maskcls.data.demo_faces import MASK_COLORS, draw_photo, make_person
from maskcls.data.labels import GENDER_KEYS, MASK_FILES, age_band, encode
from maskcls.data.photo import PHONE_JPEG, photolike
from maskcls.data.reference import listing_path, read_lines

# People per (gender, age band) in the real data: male <30, 30-59, >=60, female <30, 30-59, >=60
REAL_STRATA = np.array([549, 410, 83, 732, 817, 109], float)
# People per age 18..60 in the real data (ages within a band follow this shape)
REAL_AGES = np.array([192, 407, 267, 41, 58, 72, 62, 82, 44, 15, 25, 16, 17, 3, 7, 5, 13, 19, 8, 3, 14, 6, 20, 7,
                      13, 18, 13, 27, 14, 10, 39, 31, 80, 63, 78, 64, 82, 100, 123, 106, 158, 85, 192], float)
AGES = np.arange(18, 61)
FILES = list(MASK_FILES)  # mask1..5, incorrect_mask, normal


@dataclass
class PersonSpec:
    """What to draw for one person: identity seed, labels, and the file names to write."""

    key: tuple  # rng seed parts
    gender: int
    age: int
    folder: str | None  # train folder, None for eval
    names: list  # 7 output paths relative to the root, in FILES order


def sample_people(n: int, rng: np.random.Generator) -> list[tuple[int, int]]:
    """(gender, age) pairs with the real data's gender x age-band shares and age shape."""
    strata = rng.choice(6, size=n, p=REAL_STRATA / REAL_STRATA.sum())
    bands = age_band(AGES)
    out = []
    for s in strata:
        gender, band = int(s // 3), int(s % 3)
        w = np.where(bands == band, REAL_AGES, 0.0)
        out.append((gender, int(rng.choice(AGES, p=w / w.sum()))))
    return out


def _render_person(spec: PersonSpec, root: str, photo: bool = False) -> bool:
    """Draw the person's 7 photos; False when all 7 exist already (a resumed generation skips them).

    Each file is written to a temp name and renamed, so a killed generator never leaves a half image that
    a resume would take for a finished one.
    """
    paths = [os.path.join(root, rel) for rel in spec.names]
    if all(os.path.exists(p) for p in paths):
        return False
    rng = np.random.default_rng(list(spec.key))
    person = make_person(rng, spec.gender, spec.age)
    colors = rng.permutation(len(MASK_COLORS))
    for i, (stem, path) in enumerate(zip(FILES, paths)):
        img = draw_photo(person, MASK_FILES[stem], rng, MASK_COLORS[colors[i % len(colors)]])
        if photo:
            img = photolike(img, rng)
        tmp = f"{path}.part"
        if path.lower().endswith(".png"):
            img.save(tmp, format="PNG", compress_level=1)
        else:
            img.save(tmp, format="JPEG", **(PHONE_JPEG if photo else {"quality": 90}))
        os.replace(tmp, path)
    return True


def _render_chunk(args) -> tuple[int, int]:
    """(people done, people actually drawn) of one chunk."""
    specs, root, photo = args
    drawn = sum(_render_person(spec, root, photo) for spec in specs)
    return len(specs), drawn


def _folder(pid: str, gender: int, age: int) -> str:
    return f"{pid}_{GENDER_KEYS[gender]}_Asian_{age}"


def _eval_id(seed: int, person: int, k: int) -> str:
    return hashlib.sha1(f"maskcls-demo-{seed}-{person}-{k}".encode()).hexdigest() + ".jpg"


def plan_demo(people: int, eval_people: int, seed: int) -> tuple[list[PersonSpec], list[PersonSpec]]:
    rng = np.random.default_rng(seed)
    train = []
    for i, (g, a) in enumerate(sample_people(people, rng)):
        folder = _folder(f"{i + 1:06d}", g, a)
        train.append(PersonSpec((seed, 0, i), g, a, folder, [f"train/images/{folder}/{f}.jpg" for f in FILES]))
    evals = [PersonSpec((seed, 1, i), g, a, None, [f"eval/images/{_eval_id(seed, i, k)}" for k in range(7)])
             for i, (g, a) in enumerate(sample_people(eval_people, rng))]
    return train, evals


def plan_from_listing(listing: str | os.PathLike, eval_ids: str | os.PathLike | None, seed: int
                      ) -> tuple[list[PersonSpec], list[PersonSpec]]:
    """Reproduce the real folder names, ages, genders and file extensions (and eval ids, if given)."""
    from maskcls.data.index import FOLDER_RE
    folders: dict[str, dict[str, str]] = {}
    for line in read_lines(listing):
        parts = line.split("/")
        if len(parts) != 4 or parts[:2] != ["train", "images"]:
            continue
        stem = os.path.splitext(parts[3])[0]
        if stem in MASK_FILES:
            folders.setdefault(parts[2], {})[stem] = line
    train = []
    for i, (folder, files) in enumerate(sorted(folders.items())):
        m = FOLDER_RE.match(folder)
        if m is None or len(files) != 7:
            raise ValueError(f"{listing}: folder {folder!r} does not parse or lacks one of the 7 files")
        g = GENDER_KEYS.index(m["gender"])
        train.append(PersonSpec((seed, 0, i), g, int(m["age"]), folder, [files[f] for f in FILES]))
    evals = []
    if eval_ids:
        ids = read_lines(eval_ids)
        rng = np.random.default_rng(seed)
        order = rng.permutation(len(ids))
        people = sample_people(len(ids) // 7, rng)
        for i, (g, a) in enumerate(people):
            names = [f"eval/images/{ids[j]}" for j in order[i * 7:(i + 1) * 7]]
            evals.append(PersonSpec((seed, 1, i), g, a, None, names))
    return train, evals


def resolve_listing(from_listing, eval_ids) -> tuple[Path, Path | None]:
    """The listing files to reproduce: 'real' is the competition's own (carried in maskcls/data/reference/);
    a listing file's eval ids default to an eval_image_ids.txt beside it."""
    if str(from_listing) == "real":
        return listing_path("train_image_paths.txt"), Path(eval_ids) if eval_ids else listing_path("eval_image_ids.txt")
    if eval_ids is None:
        beside = Path(from_listing).with_name("eval_image_ids.txt")
        eval_ids = beside if beside.exists() else None
    return Path(from_listing), Path(eval_ids) if eval_ids else None


GENERATOR_VERSION = 5  # bump when the drawings change: the studio then generates a fresh demo
DEMO_MARK = ".maskcls-demo.json"  # what the folder's demo is generated with, written before its first image
PROGRESS_FILE = "generation.json"  # done / total people, generator runs, people drawn; written as it goes
LOCK_FILE = ".generate.lock"  # held by the one process generating into the folder
STUDIO_JOB_FILES = {PROGRESS_FILE, LOCK_FILE, "status.json", "log.txt"}  # the studio's generation job


def _plan_text(plan: dict | None) -> str:
    if not plan:
        return "unreadable parameters"
    return ", ".join(f"{k} {v}" for k, v in plan.items())


def claim_folder(root: Path, plan: dict) -> None:
    """Refuse to write a demo over anything but the same demo, then mark the folder with `plan`.

    A demo written into a real dataset would overwrite its train.csv and eval/info.csv and mix drawn people into
    its person folders; resumed with other parameters it would mix two demos. So the folder must be new, empty
    (but for the studio's own job files) or marked with this same plan; a resume then knows what it resumes."""
    if root.exists() and not root.is_dir():
        raise ValueError(f"demo folder {str(root)!r} is a file; expected a new or empty folder")
    mark = root / DEMO_MARK
    if mark.is_file():
        try:
            found = read_json(mark)
        except (OSError, ValueError):
            found = None
        if found != plan:
            raise ValueError(f"{root} holds a demo generated with {_plan_text(found)}; asked for {_plan_text(plan)}. "
                             f"Writing it there would mix the two: choose another folder, or delete this one first")
        return
    def ours(name: str) -> bool:  # the studio's job files, and a mark another generation is writing right now
        return name in STUDIO_JOB_FILES or (name.startswith(f".{DEMO_MARK}.") and name.endswith(".tmp"))
    others = sorted(p.name for p in root.iterdir() if not ours(p.name)) if root.is_dir() else []
    legacy_studio = (root / PROGRESS_FILE).exists()  # the studio's demo from before folders were marked
    if others and not legacy_studio:
        shown = ", ".join(others[:4]) + (", ..." if len(others) > 4 else "")
        raise ValueError(f"{root} is not empty ({shown}) and holds no maskcls demo; expected a new or empty folder. "
                         f"A demo written there would overwrite a dataset's train.csv and eval/info.csv and mix its "
                         f"people in (a demo from an older maskcls is not marked either: generate a new folder)")
    root.mkdir(parents=True, exist_ok=True)
    write_json(mark, plan)


def _plan(people: int, eval_people: int, seed: int, from_listing, eval_ids
          ) -> tuple[list[PersonSpec], list[PersonSpec], dict]:
    """The training and eval people to draw, and what identifies the plan in the folder's mark."""
    if from_listing:
        from_listing, eval_ids = resolve_listing(from_listing, eval_ids)
        train, evals = plan_from_listing(from_listing, eval_ids, seed)
        return train, evals, {"listing": str(Path(from_listing).resolve()),
                              "eval_ids": str(Path(eval_ids).resolve()) if eval_ids else None}
    if people < 1 or eval_people < 0:
        raise ValueError(f"need people >= 1 and eval_people >= 0, got {people} and {eval_people}")
    return (*plan_demo(people, eval_people, seed), {"people": people, "eval_people": eval_people})


def write_demo(out: str | os.PathLike, people: int = 300, eval_people: int = 100, seed: int = 0, *,
               from_listing: str | os.PathLike | None = None, eval_ids: str | os.PathLike | None = None,
               workers: int | None = None, progress=None, photo: bool = False, hold_lock: bool = True) -> dict:
    """Generate the dataset under `out`; returns counts and seconds. `progress(done, total)` is optional.

    `photo` renders photo-like images (texture, sensor noise, phone JPEG settings: maskcls.data.photo). The
    folder's lock is held throughout (`hold_lock`; the studio's generate_demo holds it itself): a second
    generation into the same folder waits for the first, then finds the images written and finishes."""
    train, evals, plan = _plan(people, eval_people, seed, from_listing, eval_ids)
    root = Path(out)
    marks = {"generator": GENERATOR_VERSION, **plan, "seed": seed, "photo": bool(photo)}
    claim_folder(root, marks)  # refused before a lock file is made in someone's dataset
    if not hold_lock:
        return _write(root, train, evals, marks, workers=workers, progress=progress, photo=photo)
    with open(root / LOCK_FILE, "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the kernel lets go if the holder dies
        try:
            return _write(root, train, evals, marks, workers=workers, progress=progress, photo=photo)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _write(root: Path, train, evals, marks: dict, *, workers, progress, photo: bool) -> dict:
    t0 = time.perf_counter()
    claim_folder(root, marks)
    for spec in train:
        (root / "train" / "images" / spec.folder).mkdir(parents=True, exist_ok=True)
    (root / "eval" / "images").mkdir(parents=True, exist_ok=True)
    specs = train + evals
    workers = workers or min(os.cpu_count() or 1, 16)
    chunks = [specs[i:i + 8] for i in range(0, len(specs), 8)]
    done = drawn = 0
    if workers > 1 and len(chunks) > 1:
        with ProcessPoolExecutor(workers) as pool:
            for n, d in pool.map(_render_chunk, [(c, str(root), photo) for c in chunks]):
                done, drawn = done + n, drawn + d
                if progress:
                    progress(done, len(specs))
    else:
        for c in chunks:
            n, d = _render_chunk((c, str(root), photo))
            done, drawn = done + n, drawn + d
            if progress:
                progress(done, len(specs))
    csv = pd.DataFrame([{"id": s.folder.split("_")[0], "gender": GENDER_KEYS[s.gender], "race": "Asian",
                         "age": s.age, "path": s.folder} for s in train])
    write_text(root / "train" / "train.csv", csv.to_csv(index=False))
    rows, truth, person = [], {}, {}
    for i, s in enumerate(evals):
        band = age_band(s.age)
        for stem, rel in zip(FILES, s.names):
            image_id = os.path.basename(rel)
            rows.append(image_id)
            truth[image_id], person[image_id] = encode(MASK_FILES[stem], s.gender, band), i + 1
    if marks.get("eval_ids"):  # a listing's eval ids (given, or found beside it): info.csv keeps their order
        order = read_lines(marks["eval_ids"])
    else:
        order = list(np.random.default_rng(marks["seed"] + 1).permutation(rows)) if rows else []
    write_text(root / "eval" / "info.csv", pd.DataFrame({"ImageID": order, "ans": 0}).to_csv(index=False))
    # the hidden truth holds who is in each photo too: a demo eval score is resampled by person, as validation is
    write_text(root / "eval" / "labels.csv",
               pd.DataFrame({"ImageID": order, "ans": [truth[i] for i in order],
                             "person": [person[i] for i in order]}).to_csv(index=False))
    seconds = time.perf_counter() - t0
    return {"root": str(root), "people": len(train), "images": 7 * len(train), "eval_images": len(rows),
            "drawn_people": drawn, "seconds": round(seconds, 2),
            "images_per_s": round(7 * drawn / max(seconds, 1e-9), 1)}


STUDIO_DEMO = {"people": 600, "eval_people": 100, "seed": 0}  # what the studio generates on first start


def demo_folder(**kwargs) -> Path:
    """Where the studio's demo dataset lives: one folder per generator version and size."""
    p = {**STUDIO_DEMO, **kwargs}
    return cache_home() / f"demo-v{GENERATOR_VERSION}-{p['people']}-{p['eval_people']}-s{p['seed']}"




class DemoGeneration(JobFolder):
    """The studio's first-start demo generation as a detached job in the demo folder itself (status.json, log.txt
    beside train/ and eval/): a page switch, a reload or a second tab neither restarts nor duplicates it."""

    kind = "demo generation"
    worker = "demo"

    def __init__(self, folder: str | os.PathLike):
        self.path = Path(folder)
        self.name = self.path.name

    @classmethod
    def at(cls, path) -> "DemoGeneration":
        return cls(path)

    def work(self) -> None:
        st = self.read_status()
        generate_demo(self.path, people=int(st["people"]), eval_people=int(st["eval_people"]), seed=int(st["seed"]))


def demo_progress(folder: str | os.PathLike) -> dict:
    """What the generator has written so far: {complete, done, total, runs, drawn, running}."""
    folder = Path(folder)
    try:
        state = read_json(folder / PROGRESS_FILE)
    except (FileNotFoundError, json.JSONDecodeError):
        state = {}
    running = _lock_held(folder) or DemoGeneration(folder).state()["state"] in ACTIVE
    return {"done": 0, "total": 0, "runs": 0, "drawn": 0, **state, "complete": (folder / ".complete").exists(),
            "running": running}


def _lock_held(folder: Path) -> bool:
    lock = folder / LOCK_FILE
    if not lock.exists():
        return False
    with open(lock, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(f, fcntl.LOCK_UN)
    return False


def generate_demo(folder: str | os.PathLike, progress=None, **kwargs) -> bool:
    """Generate the demo into `folder` under its lock, resuming from the people already written.

    Returns False at once when another process holds the lock (it is generating); True when the folder is
    complete. Progress goes to generation.json as well as to `progress(done, total)`.
    """
    folder = Path(folder)
    params = {**STUDIO_DEMO, **kwargs}
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / LOCK_FILE, "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        if (folder / ".complete").exists():
            return True
        state = demo_progress(folder)
        runs = state["runs"] + 1
        total = params["people"] + params["eval_people"]
        last = [0.0]

        def tell(done: int, n: int) -> None:
            if progress:
                progress(done, n)
            if time.monotonic() - last[0] > 0.25 or done >= n:
                last[0] = time.monotonic()
                write_text(folder / PROGRESS_FILE, json.dumps({"done": done, "total": n, "runs": runs,
                                                                "drawn": state["drawn"], "pid": os.getpid()}))
        tell(0, total)
        info = write_demo(folder, params["people"], params["eval_people"], params["seed"], progress=tell,
                          hold_lock=False)  # this function holds the folder's lock
        write_text(folder / PROGRESS_FILE, json.dumps({"done": total, "total": total, "runs": runs,
                                                        "drawn": state["drawn"] + info["drawn_people"]}))
        write_text(folder / ".complete", json.dumps(info))
    return True


def start_demo_generation(folder: str | os.PathLike | None = None, **kwargs) -> Path:
    """Start the detached generation of the studio's demo unless one runs or the folder is complete. The page
    that calls this only watches generation.json."""
    params = {**STUDIO_DEMO, **kwargs}
    folder = Path(folder) if folder else demo_folder(**params)
    state = demo_progress(folder)
    if state["complete"] or state["running"]:
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    DemoGeneration(folder).start(people=params["people"], eval_people=params["eval_people"], seed=params["seed"])
    return folder


def ensure_demo(folder: str | os.PathLike | None = None, progress=None, **kwargs) -> Path:
    """The studio's demo dataset, generated once (in this process, or waiting for the process that is)."""
    params = {**STUDIO_DEMO, **kwargs}
    folder = Path(folder) if folder else demo_folder(**params)
    while not generate_demo(folder, progress, **params):
        state = demo_progress(folder)
        if progress and state["total"]:
            progress(state["done"], state["total"])
        time.sleep(0.5)
    return folder
