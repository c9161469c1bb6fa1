"""The one run configuration shared by the CLI, the studio and the job runner (a dataclass <-> JSON)."""
from __future__ import annotations

import functools
import json
import os
import types
import typing
from dataclasses import asdict, dataclass, field, fields

from maskcls.common.fileio import LIMITS, loads
from maskcls.augment.spec import AugmentSpec, create_preset, list_presets
from maskcls.train.config_checks import TRACKERS, ConfigError, check_value  # noqa: F401 (TRACKERS re-exported)

CHOICES = {
    "head": ("single", "multi"),
    "freeze": ("none", "head"),
    "loss": ("ce", "focal", "smooth", "f1", "combo"),
    "sampler": ("none", "class", "mask", "gender", "age"),
    "optimizer": ("adam", "adamw", "sgd"),
    "scheduler": ("cosine", "step", "none"),
    "loader": ("cache", "pil"),
    "face_fallback": ("whole", "centre"),
}


# the keys that decide who validates and with which labels: runs that share them are scored on the same people
SPLIT_KEYS = ("data_root", "val_ratio", "split_seed", "fold", "n_folds", "corrections", "age_lower", "age_upper")
PATH_KEYS = ("data_root", "corrections", "weights_file", "cache_dir")  # stored absolute when a run is created


@dataclass
class RunConfig:
    # --- data ---
    data_root: str = ""  # competition-layout root; "" means the studio's demo data
    corrections: str = "none"  # label corrections: preset ("none", "community") or a CSV path
    age_lower: int = 30  # age band bounds: <lower, lower..upper-1, >=upper (top teams used upper=58)
    age_upper: int = 60  # the competition's bound; everyone in the real top band is exactly 60
    drop_borderline: int = 0  # train without people this many years below a bound (3: ages 27-29, 57-59)
    val_ratio: float = 0.2  # share of *people* held out for validation
    split_seed: int = 42  # seed of the person-level stratified split
    fold: int = -1  # -1: one split by val_ratio; k >= 0: fold k of n_folds
    full_data: bool = False  # train on every person (no validation split); the last epoch is the model
    n_folds: int = 5  # with fold >= 0: 5 folds = 20 % held out, the same share as val_ratio
    image_size: list = field(default_factory=lambda: [128, 96])  # [height, width] the model sees
    face_crop: bool = False  # cut each image to its MTCNN face box (cached per image) before resizing, everywhere
    face_margin: float = 0.2  # the face box grows by this share of its size on every side
    face_fallback: str = "whole"  # no face found: the whole frame ("whole") or a centre box ("centre")
    face_borrow: bool = False  # training photos without a face take their person's box (eval photos cannot)
    face_second_look: bool = True  # MTCNN at lower thresholds for the photos its first look missed
    remove_background: bool = False  # grey out the background (GrabCut seeded by the face) before cropping
    augment: typing.Any = "baseline"  # preset name or a full AugmentSpec dict
    # --- model ---
    model: str = "resnet18"  # any timm model name
    pretrained: bool = True  # hub weights when online; random init with a warning when not
    weights_file: str = ""  # local .pth/.safetensors backbone weights (overrides the hub)
    head: str = "single"  # single 18-way head, or multi: mask 3 + gender 2 + age 3 heads
    freeze: str = "none"  # "head": train only the classifier head
    unfreeze_after: int = 0  # with freeze=head: unfreeze the backbone after N epochs (0 = never)
    drop_rate: float = 0.0  # dropout before the head
    # --- loss and sampling ---
    loss: str = "ce"  # ce | focal | smooth | f1 | combo
    focal_gamma: float = 2.0  # focal loss focusing (Lin et al.'s default): rare classes weigh more
    smoothing: float = 0.1  # label smoothing epsilon (loss=smooth, and ce inside combo)
    combo: dict = field(default_factory=lambda: {"ce": 1.0, "f1": 1.0})  # loss=combo: weighted sum
    class_weights: bool = False  # inverse-frequency class weights in the loss
    sampler: str = "none"  # inverse-frequency WeightedRandomSampler over classes or one attribute
    # --- optimisation ---
    optimizer: str = "adamw"  # adam | adamw | sgd; AdamW: decoupled weight decay, robust at this scale
    lr: float = 1e-3  # peak learning rate; 1e-3 suits AdamW fine-tuning of small timm models
    weight_decay: float = 1e-4  # light regularisation: 18,900 images of 2,700 people overfit fast
    momentum: float = 0.9  # sgd only
    scheduler: str = "cosine"  # cosine | step | none, stepped per batch after the warm-up
    warmup_epochs: float = 0.0  # linear warm-up before cosine
    step_size: int = 5  # step scheduler: epochs between decays
    step_gamma: float = 0.5  # step scheduler: multiply the lr by this every step_size epochs
    grad_clip: float = 0.0  # max grad norm, 0 = off
    ema: float = 0.0  # EMA decay of the weights, 0 = off (e.g. 0.999)
    epochs: int = 10  # published teams trained 10-20 epochs; more mostly memorises people
    batch_size: int = 64  # global batch (split across GPUs under DDP); fits an 8 GB GPU at 224
    # --- execution ---
    amp: bool = True  # bf16 autocast on CUDA, and on CPUs with native bf16 (AMX / AVX512-BF16)
    channels_last: bool = True  # NHWC memory layout (cache loader): faster convolutions on GPU and oneDNN CPUs
    compile: bool = False  # torch.compile the model
    loader: str = "cache"  # cache: decode once, batched augmentation; pil: baseline-style per-epoch decode
    workers: int = 2  # DataLoader workers (pil) / cache build processes
    seed: int = 0  # model init, sampling and augmentation draws (the split has its own split_seed)
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    gpus: int = 1  # >1: DistributedDataParallel under torchrun
    cache_dir: str = ""  # decoded-image cache; "" = <data_root>/.maskcls-cache
    limit_batches: int = 0  # stop each epoch after N batches (smoke tests); 0 = all
    track: list = field(default_factory=list)  # trackers fed as it trains: "tensorboard", "mlflow", "wandb"
    track_project: str = ""  # W&B project / MLflow experiment ("" = maskcls; WANDB_PROJECT wins for W&B)
    track_uri: str = ""  # MLflow tracking URI ("" = MLFLOW_TRACKING_URI, else SQLite in <runs root>/mlflow/)
    track_artifacts: bool = False  # also send the best checkpoint to MLflow / W&B (it is large)
    track_group: str = ""  # the trackers' group ("" = from the run's name: NAME-foldK, NAME-sK, NAME-tNNN)
    team: bool = False  # push the run to the team store ($MASKCLS_TEAM, as $MASKCLS_MEMBER) when it completes
    keep_epochs: int = 10  # epoch_NNN.pt files kept (newest; weights only, for soups); 0 = all. best/last always stay

    # -------------------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, d: dict) -> "RunConfig":
        if not isinstance(d, dict):
            raise ConfigError(f"config must be a JSON object, got {type(d).__name__}")
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ConfigError(unknown_key(unknown[0]))
        hints = _hints(cls)
        for k, v in d.items():
            _check_type(k, v, hints[k])
        return cls(**d).validate()

    @classmethod
    def from_json(cls, text: str) -> "RunConfig":
        try:
            d = loads(text)
        except json.JSONDecodeError as e:
            raise ConfigError(f"config is not valid JSON ({e.msg} at line {e.lineno}, column {e.colno})") from None
        return cls.from_dict(d)

    @classmethod
    def load(cls, path) -> "RunConfig":
        from maskcls.common.fileio import read_text_file
        try:
            text = read_text_file(path, "config", LIMITS["json"])
        except UnicodeDecodeError:
            raise ConfigError(f"config {str(path)!r} is not UTF-8 text (expected a JSON object)") from None
        return cls.from_json(text)

    def with_overrides(self, pairs: list[str]) -> "RunConfig":
        """Apply `key=value` strings (values parsed as JSON when they can be, else as text)."""
        d = self.to_dict()
        for pair in pairs:
            if "=" not in pair:
                raise ConfigError(f"--set expects key=value, got {pair!r}")
            k, raw = pair.split("=", 1)
            if k not in d:
                raise ConfigError(unknown_key(k, "--set"))
            try:
                v = loads(raw)
            except json.JSONDecodeError:
                v = raw
            if isinstance(d[k], float) and raw.strip() in ("NaN", "Infinity", "-Infinity"):
                v = float(raw)  # typed on a command line: refused below as not finite, by name
            if k == "image_size" and isinstance(v, str) and "," in v:
                v = _parse_size(k, v)
            if isinstance(d[k], float) and isinstance(v, int) and not isinstance(v, bool):
                v = float(v)
            if isinstance(d[k], str) and not isinstance(v, str) and not (k == "augment" and isinstance(v, dict)):
                v = raw  # a text key takes the text as typed (a name that looks like a number stays a name)
            d[k] = v
        return RunConfig.from_dict(d)

    def split_spec(self):
        """Who trains and who validates (maskcls.data.splits.prepare_split takes it)."""
        from maskcls.data.splits import SplitSpec
        return SplitSpec(self.data_root, self.age_lower, self.age_upper, self.corrections, self.val_ratio,
                         self.split_seed, self.fold, self.n_folds, self.full_data, self.drop_borderline)

    def preprocess(self):
        """The photo -> pixels recipe of this run (maskcls.data.preprocess): training, validation, prediction,
        Grad-CAM and the Augment preview all use it."""
        from maskcls.common.settings import default_cache_dir
        from maskcls.data.faces import BoxRule
        from maskcls.data.preprocess import Preprocess
        held_out = BoxRule(borrow=False, fallback=self.face_fallback, second_look=self.face_second_look)
        return Preprocess(size=(int(self.image_size[0]), int(self.image_size[1])), crop=self.augment_spec().crop,
                          face_crop=self.face_crop, face_margin=self.face_margin,
                          train_rule=BoxRule(self.face_borrow, self.face_fallback, self.face_second_look),
                          held_out_rule=held_out, background=self.remove_background,
                          cache_dir=str(default_cache_dir(self)))

    def with_absolute_paths(self) -> "RunConfig":
        """The same config with its paths made absolute, so a job started in another folder (or a run evaluated
        from one) finds them; "" and correction presets stay as they are."""
        from maskcls.data.corrections import list_presets
        d = self.to_dict()
        for key in PATH_KEYS:
            value = d[key]
            if value and not (key == "corrections" and value in list_presets()):
                d[key] = os.path.abspath(os.path.expanduser(value))
        return RunConfig.from_dict(d)

    # -------------------------------------------------------------------------------------------
    def validate(self) -> "RunConfig":
        """Each key against its rule (maskcls.train.config_checks), then the rules that join keys."""
        hints = _hints(type(self))
        for f in fields(self):
            _check_type(f.name, getattr(self, f.name), hints[f.name])
            check_value(f.name, getattr(self, f.name))
        for key, options in CHOICES.items():
            if getattr(self, key) not in options:
                raise ConfigError(f"{key} must be one of {options}, got {getattr(self, key)!r}")
        if not self.fold < self.n_folds:
            raise ConfigError(f"fold must be -1 (no folds) or 0..{self.n_folds - 1}, got {self.fold}")
        if (self.face_crop or self.remove_background) and self.loader != "cache":
            raise ConfigError("face_crop and remove_background need loader=cache (they are applied when the decoded-image "
                              "cache is built)")
        if self.full_data and self.fold >= 0:
            raise ConfigError(f"full_data trains on every person, so it has no fold: set fold to -1, got {self.fold}")
        if not self.age_lower < self.age_upper:
            raise ConfigError(f"need 0 < age_lower < age_upper, got {self.age_lower}, {self.age_upper}")
        widest = self.age_upper - self.age_lower - 1
        if self.drop_borderline > widest:
            raise ConfigError(f"drop_borderline {self.drop_borderline} would leave out the whole {self.age_lower}-"
                              f"{self.age_upper - 1} age band (it is {widest + 1} years wide): use at most {widest}; "
                              f"the winners used 3")
        if self.warmup_epochs > self.epochs:
            raise ConfigError(f"warmup_epochs must be at most epochs ({self.epochs}): a warm-up longer than the run "
                              f"never reaches the peak lr; got {self.warmup_epochs}")
        self.augment_spec()  # raises with the spec field's name
        return self

    def augment_spec(self) -> AugmentSpec:
        if isinstance(self.augment, str):
            if self.augment not in list_presets():
                raise ConfigError(f"augment must be a preset {list_presets()} or a spec object, got {self.augment!r}")
            return create_preset(self.augment)
        try:
            return AugmentSpec.from_dict(self.augment)
        except ValueError as e:
            raise ConfigError(f"augment: {e}") from None


def _parse_size(key: str, text: str) -> list[int]:
    """'128,96' -> [128, 96], the CLI's short form of [height, width]."""
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        raise ConfigError(f"{key} must be [height, width] or HEIGHT,WIDTH in whole pixels (e.g. 128,96), got {text!r}")
    return [int(p) for p in parts]


def _check_type(key: str, value, hint) -> None:
    if hint is typing.Any:
        return
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        if any(_ok(value, h) for h in typing.get_args(hint)):
            return
    elif _ok(value, hint):
        return
    raise ConfigError(f"config key {key!r} must be {getattr(hint, '__name__', hint)}, got {type(value).__name__} "
                      f"({value!r})")


def _ok(value, hint) -> bool:
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint)


PRESETS = {
    # trains on the embedded demo data on a 2-core CPU in a few minutes
    "demo-cpu": dict(model="resnet10t", pretrained=False, image_size=[128, 96], epochs=8, batch_size=32, lr=3e-3,
                     augment="baseline", loss="ce", sampler="none", scheduler="cosine", warmup_epochs=0.5),
    # the seed team's GPU recipe, with the winning team's tweaks available as --set
    "gpu-effnet": dict(model="efficientnet_b0", pretrained=True, image_size=[224, 224], epochs=15, batch_size=64,
                       lr=1e-3, augment="strong", loss="combo", sampler="none", scheduler="cosine",
                       warmup_epochs=1.0),
    # the 2022 competition's winning steps on one config (README "The winners' recipe"): efficientnet_b0 as team
    # 5penCV chose (first place used b4), borderline ages 27-29 / 57-59 left out of training, a class-balanced
    # sampler, F1 + CE loss, the winners' CutMix; train it with --folds 5, vote the folds, retrain on all data
    "winners-2022": dict(model="efficientnet_b0", pretrained=True, image_size=[224, 224], epochs=12, batch_size=64,
                         lr=1e-3, augment="winners-2022", loss="combo", sampler="class", scheduler="cosine",
                         warmup_epochs=1.0, drop_borderline=3),
}


def list_config_presets() -> list[str]:
    return list(PRESETS)


def create_config(preset: str | None = None, **overrides) -> RunConfig:
    if preset and preset not in PRESETS:
        raise ConfigError(f"unknown config preset {preset!r}{did_you_mean(preset, list(PRESETS))}; valid: "
                          f"{', '.join(PRESETS)}")
    base = dict(PRESETS[preset]) if preset else {}
    base.update(overrides)
    return RunConfig.from_dict(base)


@functools.lru_cache(maxsize=None)
def _hints(cls) -> dict:
    """The dataclass's field types, resolved once (typing.get_type_hints compiles every annotation each call:
    80 % of a config's validation, which a season of 2,000 runs pays on every cold index)."""
    return typing.get_type_hints(cls)


def run_config(run) -> RunConfig:
    """A run folder's config.json through the schema (keys, types, ranges): what uses a run's config values goes
    through here, so a damaged one (a list for data_root) is one ValueError naming the file, never a TypeError."""
    try:
        return RunConfig.from_dict(run.read_config())
    except ConfigError as e:
        raise ValueError(f"{run.config_path} is damaged: {e}") from None


def did_you_mean(word: str, options) -> str:
    """' (did you mean 'lr'?)' for a close match among `options`, else ''."""
    import difflib
    close = difflib.get_close_matches(str(word), list(options), n=2, cutoff=0.6)
    return f" (did you mean {' or '.join(map(repr, close))}?)" if close else ""


def unknown_key(key: str, where: str = "") -> str:
    """The message for a key that is no config key: the close matches, then every key."""
    names = sorted(f.name for f in fields(RunConfig))
    return (f"unknown config key {key!r}{' in ' + where if where else ''}{did_you_mean(key, names)}; the keys are: "
            f"{', '.join(names)} (`maskcls config keys` says what each does)")


def key_docs() -> list[dict]:
    """Every config key with its default and the comment beside it in RunConfig (one source: this file)."""
    import inspect
    import re
    comments = {}
    section = ""
    for line in inspect.getsource(RunConfig).splitlines():
        head = re.match(r"\s*# --- (.+) ---", line)
        if head:
            section = head.group(1)
        m = re.match(r"\s+(\w+): [^=]+= .*?  # (.+)$", line)
        if m:
            comments[m.group(1)] = (section, m.group(2).strip())
    defaults = RunConfig().to_dict()
    return [{"key": f.name, "default": defaults[f.name], "section": comments.get(f.name, ("", ""))[0],
             "meaning": comments.get(f.name, ("", ""))[1]} for f in fields(RunConfig)]
