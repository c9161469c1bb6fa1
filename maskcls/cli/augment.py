"""Augmentation commands: preview draws of one image, save a spec for training, list presets and saved specs."""
from __future__ import annotations

from maskcls.cli.common import add, read_json_file, runs_root_of


def register(sub, parents) -> None:
    aug = sub.add_parser("augment", help="augmentation specs: preview draws, save, list",
                         description="augmentation specs: preview draws, save, list")
    acts = aug.add_subparsers(dest="action", required=True)
    p = add(acts, "preview", cmd_preview, "write a grid of the original and N random draws of one image", [])
    p.add_argument("image")
    p.add_argument("--spec", help="spec JSON file (default: --preset)")
    p.add_argument("--preset", default="strong")
    p.add_argument("--n", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="augment-preview.png")
    p = add(acts, "save", cmd_save, "validate a spec JSON and save it under a name for training", parents.of("runs_root"))
    p.add_argument("name")
    p.add_argument("spec", help="spec JSON file")
    p.add_argument("--replace", action="store_true", help="replace a different spec saved under that name")
    add(acts, "list", cmd_list, "presets and saved specs", parents.of("runs_root"))


def cmd_list(args) -> int:
    from maskcls.augment.spec import list_presets, list_saved_specs
    print("presets:", ", ".join(list_presets()))
    print("saved:  ", ", ".join(list_saved_specs(runs_root_of(args))) or "-")
    return 0


def cmd_save(args) -> int:
    from maskcls.augment.spec import AugmentSpec, save_spec
    print(save_spec(runs_root_of(args), args.name, AugmentSpec.from_dict(read_json_file(args.spec, "augment spec")),
                    replace=args.replace))
    return 0


def cmd_preview(args) -> int:
    from PIL import Image

    from maskcls.augment.preview import check_draws, contact_sheet, load_source, preview_draws
    from maskcls.augment.spec import AugmentSpec, create_preset
    from maskcls.common.fileio import atomic_path
    spec = AugmentSpec.from_dict(read_json_file(args.spec, "augment spec")) if args.spec else create_preset(args.preset)
    try:
        check_draws(args.n)
    except ValueError as e:
        raise ValueError(f"--n: {e}") from None
    from maskcls.common.outputs import guard_output
    from maskcls.common.settings import default_runs_root
    guard_output(args.out, example="grid.png", reads=[args.image, args.spec], runs_root=default_runs_root())
    source = load_source(args.image, spec)
    draws, fired, seconds = preview_draws(source, spec, args.n, args.seed)
    with atomic_path(args.out) as tmp:
        Image.fromarray(contact_sheet([source] + draws)).save(tmp, format="PNG")
    print(f"wrote {args.out}: {args.n} draws in {seconds * 1000:.0f} ms; fired: "
          + ", ".join(f"{k} {v}/{args.n}" for k, v in fired.items()))
    return 0
