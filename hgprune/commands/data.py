"""``hgprune data inspect|synth``: verify an MPII set-up before a long run; generate SynthPose."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from hgprune.commands.common import print_json
from hgprune.errors import HgpruneError
from hgprune.settings import MAX_SAMPLES, Int, SynthSection, Workers, flag, mirror


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="data_command", metavar="ACTION", parser_class=type(parser))
    inspect = sub.add_parser("inspect", help="people and images per split, missing/unreadable images")
    inspect.add_argument("--dataset", choices=("mpii", "synthpose"), default="mpii")
    inspect.add_argument("--annotations", required=True, help="annotation JSON (seed or HRNet format, .gz or plain)")
    inspect.add_argument("--image-path", help="image folder (default: images/ next to the annotations)")
    inspect.add_argument("--gt-mat", help="validation ground truth (gt_valid.mat layout) to check against the split")
    inspect.add_argument(
        "--verify",
        action="store_true",
        help="decode every image (slow; finds truncated files) instead of a header check",
    )
    inspect.add_argument("--max-list", **flag(Int(0, MAX_SAMPLES), 20), help="missing images listed in the text output")
    inspect.add_argument("--json", action="store_true")
    synth = sub.add_parser("synth", help="generate SynthPose (JPEGs + annotations.json + gt_valid.mat)")
    synth.add_argument("--out", required=True, help="output directory")
    synth.add_argument("--num-train", **mirror(SynthSection, "num_train"))
    synth.add_argument("--num-val", **mirror(SynthSection, "num_val"))
    synth.add_argument("--seed", **mirror(SynthSection, "seed"))
    synth.add_argument("--size", **mirror(SynthSection, "size"), help="image side in pixels (default 128)")
    synth.add_argument("--workers", **flag(Workers, 0), help="generation processes (default 0: in-process)")


def _image_status(path: Path, verify: bool, declared: tuple[float, float] | None = None) -> str:
    """missing / unreadable / ok. Both checks apply training's header rules (pixel budget, declared size);
    ``verify`` also decodes every byte, so a truncated file is caught."""
    from hgprune.data.transforms import acceptable_size, image_size, verify_image

    if not path.is_file():
        return "missing"
    if path.stat().st_size == 0:
        return "unreadable"
    if verify:
        return "ok" if verify_image(path, declared) else "unreadable"
    return "ok" if acceptable_size(image_size(path), declared) else "unreadable"


def inspect(args: argparse.Namespace) -> dict:
    from hgprune.data.mpii import check_order, load_annotations, load_ground_truth_mat, split_records

    annotations = Path(args.annotations)
    records = load_annotations(annotations)
    image_root = Path(args.image_path) if args.image_path else annotations.parent / "images"
    if not image_root.is_dir():
        raise HgpruneError(f"--image-path: {image_root} is not a directory")
    report: dict = {"annotations": str(annotations), "image_path": str(image_root), "splits": {}}
    status_of: dict[str, str] = {}
    declared = {r.image: (r.width, r.height) for r in records if r.width and r.height}
    for split in ("train", "val"):
        people = split_records(records, split)
        images = sorted({r.image for r in people})
        for name in images:
            if name not in status_of:
                status_of[name] = _image_status(image_root / name, args.verify, declared.get(name))
        report["splits"][split] = {
            "people": len(people),
            "images": len(images),
            "missing_images": sum(status_of[n] == "missing" for n in images),
            "unreadable_images": sum(status_of[n] == "unreadable" for n in images),
        }
    report["missing"] = sorted(n for n, s in status_of.items() if s == "missing")
    report["unreadable"] = sorted(n for n, s in status_of.items() if s == "unreadable")
    if args.gt_mat:
        gt = load_ground_truth_mat(args.gt_mat)
        check_order(split_records(records, "val"), gt, args.gt_mat)
        report["gt_mat"] = {"path": args.gt_mat, "people": len(gt.joints), "order": "matches"}
    return report


CHECK_FAILED = 1  # the exit status of an inspection that found missing or unreadable images (as pip check's)


def check_status(report: dict) -> int:
    """0 when every image of the set-up was found and readable, else :data:`CHECK_FAILED`, so a script can gate a
    long run on ``hgprune data inspect``; a summary goes to stderr."""
    missing, unreadable = len(report["missing"]), len(report["unreadable"])
    if not missing and not unreadable:
        return 0
    print(f"hgprune: data inspect: check failed: {missing:,} missing and {unreadable:,} unreadable image(s)",
          file=sys.stderr)  # fmt: skip
    return CHECK_FAILED


def main(args: argparse.Namespace) -> int:
    if args.data_command == "inspect":
        report = inspect(args)
        if args.json:
            print_json(report)
            return check_status(report)
        print(f"{report['annotations']}  (images: {report['image_path']})")
        for split, s in report["splits"].items():
            print(f"  {split:<5} {s['people']:>7,} people  {s['images']:>7,} images  "
                  f"{s['missing_images']:>6,} missing  {s['unreadable_images']:>5,} unreadable")  # fmt: skip
        if "gt_mat" in report:
            print(f"  {report['gt_mat']['path']}: {report['gt_mat']['people']:,} people, order matches the val split")
        for kind in ("missing", "unreadable"):
            names = report[kind]
            if names:
                shown = ", ".join(names[: args.max_list])
                extra = len(names) - args.max_list
                more = f" … and {extra:,} more (--json lists all)" if extra > 0 else ""
                print(f"  {kind}: {shown}{more}")
        return check_status(report)
    if args.data_command == "synth":
        from hgprune.data.synthpose import generate, synth_config

        cfg = synth_config({"num_train": args.num_train, "num_val": args.num_val, "size": args.size, "seed": args.seed})
        start = time.time()
        out = generate(cfg, args.out, workers=args.workers, progress=True)
        total = cfg.num_train + cfg.num_val
        print(f"wrote {total:,} images ({cfg.num_train:,} train, {cfg.num_val:,} val, {cfg.size}px) to {out} "
              f"in {time.time() - start:.1f} s: annotations.json, gt_valid.mat, images/")  # fmt: skip
        return 0
    raise HgpruneError("data: choose an action: inspect or synth (see 'hgprune data --help')")
