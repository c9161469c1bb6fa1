"""Data commands: scan a data root, generate demo data, find the faces."""
from __future__ import annotations


from maskcls.common.fileio import dumps
from maskcls.cli.common import add, emit


def register(sub, parents) -> None:
    p = add(sub, "scan", cmd_scan, "index a data root and report people, images, class counts and skipped files",
            parents.of("json"))
    p.add_argument("root", help="data root in the competition layout")
    p.add_argument("--corrections", default=None, help="preset (community) or CSV of label corrections")
    p.add_argument("--age-bounds", default="30,60", help="lower,upper age band bounds (default 30,60)")

    p = add(sub, "demo-data", cmd_demo, "write a synthetic dataset in the competition layout (resumes into a partly "
            "written folder of the same demo; refuses a folder holding anything else)", parents.of("quiet"))
    p.add_argument("out", help="folder to write the dataset into")
    p.add_argument("--people", type=int, default=300)
    p.add_argument("--eval-people", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--from-listing", default=None, help="reproduce a real listing: a train_image_paths.txt file, or "
                   "'real' for the competition's own listing that maskcls carries")
    p.add_argument("--eval-ids", default=None, help="eval ImageIDs in info.csv order (default: beside the listing)")
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--photo", action="store_true", help="photo-like images (texture, sensor noise, phone JPEG "
                   "settings): they cost what a real 384x512 photo costs to decode, for benchmarks")
    p.add_argument("--locked", action="store_true", help="as the studio does: under the folder's lock, with "
                   "generation.json and a .complete marker (a second generator of the same folder exits at once)")

    p = add(sub, "faces", cmd_faces, "find the face in every image (MTCNN), cache the boxes, report coverage and "
            "write a CSV of them", parents.of("json", "quiet"))
    p.add_argument("root", help="data root in the competition layout")
    p.add_argument("--margin", type=float, default=0.2, help="grow each face box by this share of its size")
    p.add_argument("--cache-dir", default=None, help="where the boxes are cached (default: the data's image cache)")
    p.add_argument("--eval", action="store_true", help="also the eval images, reported apart")
    p.add_argument("--fallback", choices=["whole", "centre"], default="whole",
                   help="no face found: the whole frame (default) or a centre box")
    p.add_argument("--borrow", action="store_true", help="training photos borrow their person's box (as a run with "
                   "face_borrow=true trains)")
    p.add_argument("--device", default="auto")


def cmd_scan(args) -> int:
    from maskcls.data.corrections import corrections_summary, load_corrections
    from maskcls.data.index import index_data
    from maskcls.data.labels import AgeBounds, class_name
    try:
        lo, hi = (int(x) for x in args.age_bounds.split(","))
    except ValueError:
        raise ValueError(f"--age-bounds expects LOWER,UPPER such as 30,60; got {args.age_bounds!r}") from None
    bounds = AgeBounds(lo, hi)
    corr = load_corrections(args.corrections) if args.corrections else None
    s = index_data(args.root, bounds, corr).summary()
    lines = [f"root        {s['root']}", f"people      {s['people']}", f"images      {s['images']}",
             f"eval images {s['eval_images']} ({s['eval_missing']} missing)", "class counts:"]
    lines += [f"  {c:2d} {class_name(c, bounds):28s} {n}" for c, n in enumerate(s["class_counts"])]
    lines.append(f"skipped     {len(s['skipped'])}")
    lines += [f"  {r['path']}: {r['reason']}" for r in s["skipped"][:50]]
    for key in ("missing", "inconsistent"):
        if s[key]:
            lines.append(f"{key:11s} {len(s[key])}")
            lines += [f"  {r['path']}: {r['reason']}" for r in s[key][:20]]
    if s["corrections"]:
        lines.append(corrections_summary(s["corrections"]))
    lines.append(f"seconds     {s['seconds']}")
    emit(s, args.json, "\n".join(lines))
    return 0


def cmd_demo(args) -> int:
    from maskcls.common.progress import TerminalProgress
    from maskcls.data.demo import demo_progress, generate_demo, write_demo
    progress = TerminalProgress(args.quiet)
    bar = progress.count("drawing people", "person")
    if args.locked:
        finished = generate_demo(args.out, bar, people=args.people, eval_people=args.eval_people, seed=args.seed)
        progress.close()
        print(dumps({**demo_progress(args.out), "generated_here": finished}))
        return 0
    info = write_demo(args.out, args.people, args.eval_people, args.seed, from_listing=args.from_listing,
                      eval_ids=args.eval_ids, workers=args.workers, progress=bar, photo=args.photo)
    progress.close()
    print(dumps(info))
    return 0


def _coverage_line(name: str, c: dict) -> str:
    return (f"{name:10s} {c['images']:6d} images: {c['detected']} detected ({c['detected_%']:.0f} %), "
            f"{c['borrowed']} borrowed ({c['borrowed_%']:.0f} %), {c['fallback']} fallback ({c['fallback_%']:.0f} %)")


def cmd_faces(args) -> int:
    from maskcls.common.devices import resolve_device
    from maskcls.common.progress import TerminalProgress
    from maskcls.common.settings import default_cache_dir
    from maskcls.data.faces import BoxRule, faces_report
    from maskcls.data.index import index_data
    if not 0 <= args.margin <= 1:
        raise ValueError(f"--margin must be between 0 and 1, got {args.margin}")
    index = index_data(args.root)
    eval_paths = index.eval["path"].tolist() if args.eval and index.eval is not None else []
    progress = TerminalProgress(args.quiet)
    device = resolve_device(args.device)
    out = faces_report(index.train["path"].tolist(), eval_paths, default_cache_dir(args.root, args.cache_dir),
                       margin=args.margin, device=device if device.type == "cuda" else "cpu",
                       progress=progress.count("finding faces", "img"),
                       train_rule=BoxRule(borrow=args.borrow, fallback=args.fallback),
                       held_out_rule=BoxRule(fallback=args.fallback))
    progress.close()
    lines = [_coverage_line(k, out[k]) for k in ("training", "validation", "eval") if k in out]
    lines += ([f"WARNING: {out['warning']}"] if out["warning"] else [])
    lines.append(f"{out['seconds']} s; boxes in {out['csv']}")
    emit(out, args.json, "\n".join(lines))
    return 0
