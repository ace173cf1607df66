"""``hgprune evaluate``: the seed's evaluate_mpii.py, flag for flag — PCKh under both protocols, preds.mat, images."""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from hgprune.commands.common import (
    add_data_arguments,
    check_device,
    datasets_from_args,
    parse_bool,
    parse_input_shape,
    print_json,
)
from hgprune.data import save_predictions_mat
from hgprune.data.mpii import MAT_STAMP
from hgprune.data.transforms import affine_matrix, apply_affine, to_rgb_image
from hgprune.draw import draw_skeleton
from hgprune.errors import HgpruneError
from hgprune.fsutil import atomic_write_bytes
from hgprune.metrics import DECODERS, format_table
from hgprune.models import ARCHS, load_model
from hgprune.settings import MAX_SAMPLES, Batch, Int, Width, Workers, flag
from hgprune.train import evaluate_model


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model-file", "--model_file", dest="model_file", required=True, help="checkpoint to evaluate")
    # the seed builds --arch/--N/--M (defaults hg1, 128, 128) and loads the weights into it; hgprune reads the
    # architecture from the checkpoint, so these only check it when given
    parser.add_argument("--arch", "-a", choices=ARCHS, help="expected architecture (checked against the checkpoint)")
    parser.add_argument("--N", **flag(Width), help="expected stem width (checked against the checkpoint)")
    parser.add_argument("--M", **flag(Width), help="expected trunk width (checked against the checkpoint)")
    parser.add_argument("--workers", "-j", **flag(Workers, 2), help="DataLoader workers")
    parser.add_argument("--batch-size", "--batch_size", dest="batch_size", **flag(Batch, 6))
    parser.add_argument(
        "--visualize", type=parse_bool, nargs="?", const=True, default=False,
        help="save images with predicted (colour) and true (white) skeletons: True/False",
    )  # fmt: skip
    parser.add_argument(
        "--visualization_path", "--visualization-path", dest="visualization_path", default="visualizations"
    )
    parser.add_argument(
        "--visualize-limit", dest="visualize_limit", **flag(Int(0, MAX_SAMPLES), 0), help="at most this many"
    )
    parser.add_argument(
        "--input_shape", "--input-shape", dest="input_shape", nargs="+", default=None,
        help="input size (default: the size stored in the checkpoint, else 256)",
    )  # fmt: skip
    add_data_arguments(parser)
    parser.add_argument(
        "--flip", "--flip-test", "--flip_test", dest="flip_test", action="store_true",
        help="average with the mirrored image's heatmaps (the seed's --flip)",
    )  # fmt: skip
    parser.add_argument("--protocol", choices=("both", "mpii", "seed"), default="both", help="PCKh table(s) to print")
    parser.add_argument(
        "--decode", choices=DECODERS, default="exact",
        help="heatmap decoding: exact (default) or seed (reproduces the numbers of the seed's evaluate_mpii.py, whose "
        "final_preds lands about one heatmap pixel up-left)",
    )  # fmt: skip
    parser.add_argument("--preds", default=None, help="where to write preds.mat (default: next to --model-file)")
    parser.add_argument("--force", action="store_true", help="overwrite a predictions file hgprune did not write")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")


def check_overwrite(path: Path, force: bool) -> None:
    """Refuse to replace a file hgprune did not write (e.g. the seed's own preds.mat) unless ``force``."""
    if force or not path.exists():
        return
    if path.is_file():
        with open(path, "rb") as handle:
            if handle.read(len(MAT_STAMP)) == MAT_STAMP:
                return
    raise HgpruneError(f"{path}: exists and was not written by hgprune; choose another --preds or pass --force")


def main(args: argparse.Namespace) -> int:
    check_device(args.device)
    image_path = getattr(args, "image_path", None)
    if image_path and not Path(image_path).is_dir():  # refused before the model or any worker loads
        raise HgpruneError(f"--image-path {image_path}: image folder not found")
    model = load_model(args.model_file)
    expected = {"arch": args.arch, "N": args.N, "M": args.M}
    found = {"arch": model.config.arch, "N": model.config.N, "M": model.config.M}
    wrong = [f"--{k} {v} (checkpoint has {found[k]})" for k, v in expected.items() if v is not None and v != found[k]]
    if wrong:
        raise HgpruneError(f"{args.model_file}: does not match " + ", ".join(wrong))
    input_size = parse_input_shape(args.input_shape) if args.input_shape else model.config.input_size
    preds_path = Path(args.preds) if args.preds else Path(args.model_file).resolve().parent / "preds.mat"
    check_overwrite(preds_path, args.force)
    dataset = datasets_from_args(args, input_size, ("val",), model.config.normalization)["val"]
    result = evaluate_model(
        model, dataset, batch_size=args.batch_size, device=args.device, flip_test=args.flip_test, workers=args.workers,
        decode=args.decode,
    )  # fmt: skip
    save_predictions_mat(preds_path, result.preds)
    written = {"preds": str(preds_path)}
    if args.visualize:
        count = visualize(
            dataset, result.preds, args.visualization_path, model.config.normalization, limit=args.visualize_limit
        )
        written["visualizations"] = f"{count} images in {args.visualization_path}"
    protocols = ["mpii", "seed"] if args.protocol == "both" else [args.protocol]
    if args.json:
        out = {p: getattr(result, p).to_dict() for p in protocols}
        out.update(loss=result.loss, num_samples=len(result), decode=args.decode, **written)
        print_json(out)
        return 0
    print(f"{args.model_file}: {model.config.arch} N={model.config.N} M={model.config.M}, {len(result)} samples"
          f"{' (flip test)' if args.flip_test else ''}, loss {result.loss:.6f}, {args.decode} decoding, input "
          f"normalisation {model.config.normalization.describe()}")  # fmt: skip
    print(format_table([getattr(result, p) for p in protocols]))
    for key, value in written.items():
        print(f"{key}: {value}")
    return 0


def visualize(dataset, preds: np.ndarray, out_dir: str | Path, normalization, limit: int = 0) -> int:
    """Draw each validation crop (the model's inputs, de-normalised with its ``normalization``) with its predicted
    (coloured) and true (white) skeletons as out_dir/NNNNNN.png."""

    out_dir = Path(out_dir)
    gt = dataset.ground_truth()
    count = len(dataset) if not limit else min(limit, len(dataset))
    for i in range(count):
        image, _, _, meta = dataset[i]
        size = image.shape[-1]
        rgb = to_rgb_image(image.numpy(), normalization)
        canvas = np.ascontiguousarray((rgb[..., ::-1] * 255).astype(np.uint8))
        zoom = max(1, 256 // size)
        canvas = cv2.resize(canvas, (size * zoom, size * zoom), interpolation=cv2.INTER_NEAREST)
        mat = affine_matrix(np.asarray(meta["center"]), float(meta["scale"]), float(meta.get("rotation", 0.0)), size)
        true = apply_affine(gt.joints[i], mat) * zoom
        pred = apply_affine(preds[i], mat) * zoom
        visible = ~np.asarray(gt.missing[i], dtype=bool)
        draw_skeleton(canvas, true, visible, (255, 255, 255), 1)
        draw_skeleton(canvas, pred, np.ones(len(pred), dtype=bool), None, 2)
        ok, encoded = cv2.imencode(".png", canvas)
        if not ok:
            raise HgpruneError(f"{out_dir}: could not encode visualisation {i}")
        atomic_write_bytes(out_dir / f"{i:06d}.png", encoded.tobytes())
    return count
