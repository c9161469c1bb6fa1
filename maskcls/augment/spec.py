"""The augmentation spec: one JSON-serialisable description that builds the per-image and batched pipelines.

Stages, in order: center crop (deterministic, everywhere) -> resize to the training size -> the random
transforms (training only, as `mode` says) -> normalize. CutMix / MixUp act on whole batches.
Modes: `each` (every transform has its own p), `all` (one coin with probability `p` applies the whole
set), `preprocess` (every transform with p = 1, deterministically, for train, validation and test alike).
"""
from __future__ import annotations

import copy
import functools
import json
from dataclasses import asdict, dataclass, field

from maskcls.common.fileio import json_kind, loads

MODES = ("each", "all", "preprocess")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# name -> default parameters; the order here is the order they are applied in
TRANSFORMS: dict[str, dict] = {
    "grayscale": {},
    "color_jitter": {"brightness": 0.3, "contrast": 0.3, "saturation": 0.3, "hue": 0.05},
    "gaussian_blur": {"kernel": 9, "sigma_min": 0.1, "sigma_max": 2.0},
    "hflip": {},
    "vflip": {},
    "rotation": {"degrees": 15.0},
    "random_erasing": {"scale_min": 0.02, "scale_max": 0.15},
}
FLAGGED = {"vflip": "faces upside down are not what the test set has",
           "rotation": "large rotations turn faces in ways the test set does not"}
RANDOM_ONLY = ("color_jitter", "hflip", "vflip", "rotation", "random_erasing")  # no deterministic form


def _check_shapes(d: dict) -> None:
    """Each key holds the kind of JSON value it must, before any of it is used."""
    want = {"mode": (str,), "p": (int, float), "crop": (list, type(None)), "transforms": (list, type(None)),
            "normalize": (bool,), "mean": (list,), "std": (list,), "mix": (dict, type(None))}
    names = {str: "a string", int: "a number", float: "a number", list: "an array", dict: "an object",
             bool: "true or false", type(None): "null"}
    for key, kinds in want.items():
        if key in d and (not isinstance(d[key], kinds) or (isinstance(d[key], bool) and bool not in kinds)):
            expected = " or ".join(dict.fromkeys(names[k] for k in kinds))
            raise SpecError(key, f"expected {expected}, found a JSON {json_kind(d[key])} ({d[key]!r})")
    for key in ("mean", "std"):
        if key in d and any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in d[key]):
            raise SpecError(key, f"expected 3 numbers, found {d[key]!r}")
    if isinstance(d.get("crop"), list) and any(isinstance(v, bool) or not isinstance(v, int) for v in d["crop"]):
        raise SpecError("crop", f"expected [height, width] in whole pixels, found {d['crop']!r}")


class SpecError(ValueError):
    """A bad spec value; `field` names the control it belongs to (e.g. 'gaussian_blur.sigma_min')."""

    def __init__(self, field_name: str, message: str):
        super().__init__(f"{field_name}: {message}")
        self.field = field_name


@dataclass
class TransformSpec:
    name: str
    p: float = 0.5  # probability in `each` mode; ignored in `all` and `preprocess`
    params: dict = field(default_factory=dict)


PARTNERS = ("any", "same_class")


@dataclass
class BatchMix:
    """CutMix / MixUp over a training batch.

    `vertical`: the first-place team's cut: one vertical line drawn between `cut_min` and `cut_max` of the width,
    the left part from the image, the right part from its partner (a face's two halves); otherwise a box whose
    area follows Beta(alpha, alpha). `partner`: "any" image of the batch, or one of the "same_class" (in-class
    CutMix: new faces of a rare class without blurring the label).
    """

    cutmix_p: float = 0.0
    cutmix_alpha: float = 1.0
    vertical: bool = False
    cut_min: float = 0.46
    cut_max: float = 0.54
    partner: str = "any"
    mixup_p: float = 0.0
    mixup_alpha: float = 0.4


@dataclass
class AugmentSpec:
    mode: str = "each"
    p: float = 0.5  # the one coin of `all` mode
    crop: list | None = None  # center crop [height, width] in source pixels, e.g. [320, 256]
    transforms: list[TransformSpec] = field(default_factory=list)
    normalize: bool = True
    mean: tuple = IMAGENET_MEAN
    std: tuple = IMAGENET_STD
    mix: BatchMix = field(default_factory=BatchMix)

    # -- serialisation -------------------------------------------------------------------------
    def to_dict(self) -> dict:
        d = asdict(self)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, d: dict) -> "AugmentSpec":
        if not isinstance(d, dict):
            raise SpecError("spec", f"expected a JSON object, got {type(d).__name__}")
        known = {"mode", "p", "crop", "transforms", "normalize", "mean", "std", "mix"}
        unknown = sorted(set(d) - known)
        if unknown:
            raise SpecError(unknown[0], f"unknown key; valid keys: {sorted(known)}")
        d = copy.deepcopy(d)
        _check_shapes(d)
        mix = d.pop("mix", {}) or {}
        transforms = d.pop("transforms", []) or []  # their shapes were checked by _check_shapes
        bad = sorted(set(mix) - set(BatchMix.__dataclass_fields__))
        if bad:
            raise SpecError(f"mix.{bad[0]}", f"unknown key; valid: {sorted(BatchMix.__dataclass_fields__)}")
        items = []
        for i, t in enumerate(transforms):
            if not isinstance(t, dict) or "name" not in t:
                raise SpecError(f"transforms[{i}]", "each transform needs a 'name'")
            extra = sorted(set(t) - {"name", "p", "params"})
            if extra:
                raise SpecError(f"transforms[{i}].{extra[0]}", "unknown key; valid: name, p, params")
            params = t.get("params", {}) or {}
            if not isinstance(params, dict):
                raise SpecError(f"transforms[{i}].params", f"expected an object of parameters, found "
                                                           f"{json_kind(params)}")
            items.append(TransformSpec(t["name"], t.get("p", 0.5), dict(params)))
        spec = cls(transforms=items, mix=BatchMix(**mix), **d)
        spec.mean, spec.std = tuple(spec.mean), tuple(spec.std)
        return spec.validate()

    @classmethod
    def from_json(cls, text: str) -> "AugmentSpec":
        try:
            d = loads(text)
        except json.JSONDecodeError as e:
            raise SpecError("json", f"not valid JSON ({e.msg} at line {e.lineno}, column {e.colno})") from None
        return cls.from_dict(d)

    # -- validation ----------------------------------------------------------------------------
    def validate(self, source_size: tuple[int, int] | None = None) -> "AugmentSpec":
        """Check every value; `source_size` (h, w) also checks the crop fits. Returns self."""
        if self.mode not in MODES:
            raise SpecError("mode", f"must be one of {MODES}, got {self.mode!r}")
        _prob("p", self.p)
        if self.crop is not None:
            if len(self.crop) != 2 or any(not isinstance(v, int) or v <= 0 for v in self.crop):
                raise SpecError("crop", f"must be [height, width] in positive pixels, got {self.crop}")
            if source_size and (self.crop[0] > source_size[0] or self.crop[1] > source_size[1]):
                raise SpecError("crop", f"{self.crop[0]}x{self.crop[1]} (HxW) is larger than the image "
                                        f"{source_size[0]}x{source_size[1]}")
        seen = set()
        for t in self.transforms:
            if t.name not in TRANSFORMS:
                raise SpecError(t.name, f"unknown transform; valid: {list(TRANSFORMS)}")
            if t.name in seen:
                raise SpecError(t.name, "listed twice")
            seen.add(t.name)
            _prob(f"{t.name}.p", t.p)
            extra = sorted(set(t.params) - set(TRANSFORMS[t.name]))
            if extra:
                raise SpecError(f"{t.name}.{extra[0]}", f"unknown parameter; valid: {list(TRANSFORMS[t.name])}")
            _check_params(t.name, self.params(t))
            if self.mode == "preprocess" and t.name in RANDOM_ONLY:
                raise SpecError(t.name, "is random by nature and cannot be part of a deterministic preprocess spec")
        m = self.mix
        _prob("mix.cutmix_p", m.cutmix_p)
        _prob("mix.mixup_p", m.mixup_p)
        if m.cutmix_p + m.mixup_p > 1:
            raise SpecError("mix.mixup_p", f"cutmix_p + mixup_p must be at most 1, got {m.cutmix_p + m.mixup_p}")
        if m.partner not in PARTNERS:
            raise SpecError("mix.partner", f"must be one of {', '.join(PARTNERS)}, got {m.partner!r}")
        for name in ("cut_min", "cut_max"):
            v = getattr(m, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v < 1:
                raise SpecError(f"mix.{name}", f"must be a fraction of the width between 0 and 1, got {v!r}")
        if m.cut_min > m.cut_max:
            raise SpecError("mix.cut_max", f"must be at least cut_min ({m.cut_min}), got {m.cut_max}")
        for name in ("cutmix_alpha", "mixup_alpha"):
            if getattr(m, name) <= 0:
                raise SpecError(f"mix.{name}", f"must be > 0, got {getattr(m, name)}")
        if len(self.mean) != 3 or len(self.std) != 3 or any(s <= 0 for s in self.std):
            raise SpecError("std", "mean and std need 3 values each, std > 0")
        return self

    @staticmethod
    def params(t: TransformSpec) -> dict:
        """The transform's parameters with defaults filled in."""
        return {**TRANSFORMS[t.name], **t.params}

    def ordered(self) -> list[TransformSpec]:
        """The transforms in application order."""
        order = list(TRANSFORMS)
        return sorted(self.transforms, key=lambda t: order.index(t.name))

    def probability(self, t: TransformSpec) -> float:
        """Chance that transform `t` fires on one image."""
        return {"each": t.p, "all": self.p, "preprocess": 1.0}[self.mode]


def _prob(name: str, v) -> None:
    if not isinstance(v, (int, float)) or not 0.0 <= float(v) <= 1.0:
        raise SpecError(name, f"probability must be in [0, 1], got {v!r}")


def _check_params(name: str, prm: dict) -> None:
    num = lambda k: isinstance(prm[k], (int, float)) and not isinstance(prm[k], bool)  # noqa: E731
    for k in prm:
        if not num(k):
            raise SpecError(f"{name}.{k}", f"must be a number, got {prm[k]!r}")
    if name == "color_jitter":
        for k in ("brightness", "contrast", "saturation"):
            if prm[k] < 0:
                raise SpecError(f"{name}.{k}", f"must be >= 0, got {prm[k]}")
        if not 0 <= prm["hue"] <= 0.5:
            raise SpecError(f"{name}.hue", f"must be in [0, 0.5], got {prm['hue']}")
    elif name == "gaussian_blur":
        if int(prm["kernel"]) != prm["kernel"] or prm["kernel"] < 1 or prm["kernel"] % 2 == 0:
            raise SpecError(f"{name}.kernel", f"must be an odd positive integer, got {prm['kernel']}")
        if prm["sigma_min"] <= 0 or prm["sigma_max"] <= 0:
            raise SpecError(f"{name}.sigma_min", f"sigma must be > 0, got {prm['sigma_min']}..{prm['sigma_max']}")
        if prm["sigma_min"] > prm["sigma_max"]:
            raise SpecError(f"{name}.sigma_max", f"sigma_max must be >= sigma_min ({prm['sigma_min']})")
    elif name == "rotation":
        if not 0 <= prm["degrees"] <= 180:
            raise SpecError(f"{name}.degrees", f"must be in [0, 180], got {prm['degrees']}")
    elif name == "random_erasing":
        if not 0 < prm["scale_min"] <= prm["scale_max"] < 1:
            raise SpecError(f"{name}.scale_min", f"need 0 < scale_min <= scale_max < 1, got "
                                                 f"{prm['scale_min']}..{prm['scale_max']}")


def _t(name: str, p: float = 0.5, **params) -> TransformSpec:
    return TransformSpec(name, p, params)


PRESETS = {
    "none": lambda: AugmentSpec(normalize=False),  # pixels in [0, 1], nothing else
    "baseline": lambda: AugmentSpec(mode="each"),
    "gray-crop": lambda: AugmentSpec(mode="preprocess", crop=[320, 256], transforms=[_t("grayscale", 1.0)]),
    "strong": lambda: AugmentSpec(mode="each", transforms=[
        _t("color_jitter", 0.5), _t("gaussian_blur", 0.2), _t("hflip", 0.5), _t("rotation", 0.3, degrees=10.0),
        _t("random_erasing", 0.25)], mix=BatchMix(cutmix_p=0.3, vertical=True)),
    # the 2022 winners: random erasing, light colour and flips, and CutMix cut vertically at 46-54 % of the
    # width with a partner of the same class (README: "The winners' recipe")
    "winners-2022": lambda: AugmentSpec(mode="each", transforms=[
        _t("color_jitter", 0.3), _t("hflip", 0.5), _t("random_erasing", 0.5)],
        mix=BatchMix(cutmix_p=0.5, vertical=True, cut_min=0.46, cut_max=0.54, partner="same_class")),
}


def list_presets() -> list[str]:
    return list(PRESETS)


def create_preset(name: str) -> AugmentSpec:
    if name not in PRESETS:
        raise ValueError(f"unknown augmentation preset {name!r}; valid: {list_presets()}")
    return PRESETS[name]()


SPEC_FOLDER = "augment-specs"  # under the runs root: specs saved in the studio, usable by the CLI


def save_spec(runs_root, name: str, spec: AugmentSpec, *, replace: bool = False):
    """Save a validated spec as <runs_root>/augment-specs/<name>.json (atomically). A different spec saved under
    the name already is replaced only when asked: the name is what later runs are trained with."""
    from maskcls.common.fileio import check_name, inside, locked, write_text
    path = inside(runs_root, SPEC_FOLDER, check_name(name, "spec name") + ".json")
    if name in list_presets():  # a run records the name: it must mean one spec
        raise ValueError(f"{name!r} is a shipped preset ({', '.join(list_presets())}): a saved spec of that name "
                         f"would make a run's augment={name!r} mean two things; choose another name")
    text = spec.validate().to_json()
    with locked(path):
        if path.exists() and not replace:
            try:
                same = load_saved_spec(runs_root, name).to_json() == text
            except ValueError:
                same = False
            if not same:
                raise ValueError(f"a different augmentation spec is saved as {name!r} already ({path}): replace it "
                                 f"on purpose (--replace, or the page's Replace box) or choose another name")
        write_text(path, text)
    return path


def list_saved_specs(runs_root) -> list[str]:
    from pathlib import Path
    folder = Path(runs_root) / SPEC_FOLDER
    return sorted(p.stem for p in folder.glob("*.json")) if folder.is_dir() else []


def load_saved_spec(runs_root, name: str) -> AugmentSpec:
    from maskcls.common.fileio import check_name, inside
    path = inside(runs_root, SPEC_FOLDER, check_name(name, "spec name") + ".json")
    if not path.exists():
        raise ValueError(f"no saved augmentation spec named {name!r} in {path.parent}")
    from maskcls.common.fileio import LIMITS, read_text_file
    return AugmentSpec.from_json(read_text_file(path, "augment spec", LIMITS["json"], root=path.parent))


def describe_augment(augment, runs_root=None) -> str:
    """What a run's `augment` is, in a word: its preset's name, "saved: NAME" when it equals a spec saved in the
    runs root, else the transforms it draws ("custom: hflip, rotate, erasing")."""
    if isinstance(augment, str):
        return augment
    try:
        spec = AugmentSpec.from_dict(augment).to_dict()
    except ValueError:
        return "damaged spec"
    for name, known in _known_specs(str(runs_root) if runs_root else "", _folder_stamp(runs_root)):
        if known == spec:
            return name
    used = [t["name"] for t in spec["transforms"] if t.get("p", 0) > 0]
    return "custom: " + (", ".join(used[:4]) + (f" (+{len(used) - 4})" if len(used) > 4 else "") if used else "none")


def _folder_stamp(runs_root) -> int:
    from pathlib import Path
    try:
        return (Path(runs_root) / SPEC_FOLDER).stat().st_mtime_ns if runs_root else 0
    except OSError:
        return 0


@functools.lru_cache(maxsize=8)
def _known_specs(runs_root: str, stamp: int) -> tuple:
    """(name, spec dict) of every preset and saved spec; read again only when the saved specs' folder changes."""
    out = [(name, create_preset(name).to_dict()) for name in list_presets()]
    for name in list_saved_specs(runs_root) if runs_root else []:
        try:
            out.append((f"saved: {name}", load_saved_spec(runs_root, name).to_dict()))
        except ValueError:
            continue
    return tuple(out)
