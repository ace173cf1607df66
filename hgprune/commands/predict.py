"""``hgprune predict MODEL INPUT... --out DIR``: joints of people in images, folders, globs or videos.

One JSON per image (``DIR/<name>.json``), per video one JSON per frame (``DIR/<video>/frame_NNNNNN.json``) plus
``DIR/<video>.csv``; with ``--draw`` the skeleton on each image (``<name>.pose.jpg``) or an annotated video
(``<video>.pose.mp4`` / ``.avi``). Every file is written atomically (videos to a temp file renamed when complete), so an
interrupted run leaves whole files only. Unreadable inputs are skipped with a warning and counted.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import json
import os
import sys
from pathlib import Path

import numpy as np

from hgprune.errors import HgpruneError
from hgprune.settings import Batch, InputSide, Real, Threads, flag

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from hgprune.predict import BACKENDS

    parser.add_argument("model", help="hgprune/seed checkpoint, TorchScript archive or ONNX graph (hgprune exports)")
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="images, folders, glob patterns or video files")
    parser.add_argument("--out", required=True, help="output folder (created)")
    parser.add_argument(
        "--draw", action="store_true", help="also write the skeleton on each image / an annotated video"
    )
    parser.add_argument("--boxes", help="JSON file: image path or file name → list of person boxes [x1, y1, x2, y2]")
    parser.add_argument("--backend", choices=BACKENDS, help="default: from MODEL (.onnx → onnxruntime, archive → ts)")
    parser.add_argument("--flip", action="store_true", help="average with the mirror image's heatmaps")
    parser.add_argument("--batch-size", **flag(Batch, 8), help="crops per forward pass (default 8)")
    parser.add_argument("--threads", **flag(Threads), help="CPU threads (default: torch's)")
    parser.add_argument("--input-size", **flag(InputSide), help="square input side (default: the model's)")
    parser.add_argument("--device", default="cpu", help="torch device for the torch/torchscript backends")
    parser.add_argument("--min-confidence", **flag(Real(-1e3, 1e3), 0.0), help="--draw: skip joints with a lower peak")


def main(args: argparse.Namespace) -> int:
    from hgprune.predict import Predictor, infer_backend

    if not Path(args.model).is_file():
        raise HgpruneError(f"{args.model}: model file not found")
    images, videos, missing = expand_inputs(args.inputs)
    if not images and not videos:
        raise HgpruneError(f"no images or videos found in {' '.join(args.inputs)}")
    for text in missing:
        _warn(f"{text}: no such file or no match, skipped")
    boxes = read_boxes(args.boxes) if args.boxes else {}
    predictor = Predictor(
        args.model,
        backend=args.backend or infer_backend(args.model),
        input_size=args.input_size,
        flip=args.flip,
        device=args.device,
        threads=args.threads,
        batch_size=args.batch_size,
    )
    out = Path(args.out)
    header = {"model": str(args.model), "backend": predictor.backend, "input_size": predictor.input_size,
              "flip": args.flip}  # fmt: skip
    skipped = list(missing)
    written = _predict_images(predictor, images, boxes, out, header, args, skipped) if images else 0
    frames = 0
    for video in videos:
        count = _predict_video(predictor, video, boxes, out, header, args)
        if count is None:
            skipped.append(str(video))
            _warn(f"{video}: cannot open video, skipped")
        frames += count or 0
    if written == 0 and frames == 0:
        raise HgpruneError(f"no readable input among {len(skipped)} ({skipped[0]} …); nothing written")
    print(f"wrote {written} image JSON files and {frames} video frames to {out}"
          f"{' with drawings' if args.draw else ''}; {len(skipped)} unreadable input(s) skipped")  # fmt: skip
    return 0


def expand_inputs(inputs: list[str]) -> tuple[list[Path], list[Path], list[str]]:
    """(images, videos, missing) from paths, folders (their images, sorted) and glob patterns; a folder without
    images or a pattern without matches is missing."""
    images: list[Path] = []
    videos: list[Path] = []
    missing: list[str] = []
    for text in inputs:
        path = Path(text)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                missing.append(text)
            images += found
            continue
        candidates = [path] if path.exists() else [Path(p) for p in sorted(glob.glob(text, recursive=True))]
        if not candidates:
            missing.append(text)
        for candidate in candidates:
            if candidate.is_file():
                (videos if candidate.suffix.lower() in VIDEO_SUFFIXES else images).append(candidate)
    return images, videos, missing


def read_boxes(path: str) -> dict[str, list]:
    """``{image: [[x1, y1, x2, y2], ...]}``; keys may be the path as given or the file name."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise HgpruneError(f"{path}: cannot read boxes ({str(exc).splitlines()[0][:120]})") from None
    if not isinstance(data, dict):
        raise HgpruneError(f"{path}: expected a JSON object mapping image → list of boxes, got {type(data).__name__}")
    for key, value in data.items():
        array = np.asarray(value, dtype=object)
        if not isinstance(value, list) or (value and (array.ndim != 2 or array.shape[1] != 4)):
            raise HgpruneError(f"{path}: boxes of {key!r} must be a list of [x1, y1, x2, y2]")
    return data


def _boxes_for(path: Path, boxes: dict[str, list]):
    for key in (str(path), path.name, str(path.resolve())):
        if key in boxes:
            return boxes[key] or None
    return None


def _warn(message: str) -> None:
    print(f"hgprune: warning: {message}", file=sys.stderr)


def _unique_names(paths: list[Path]) -> list[str]:
    """Output names from file stems, numbered where two inputs share a stem (a.jpg and a.png, two folders)."""
    used: dict[str, int] = {}
    names = []
    for path in paths:
        stem = path.stem
        count = used.get(stem, 0)
        used[stem] = count + 1
        names.append(stem if count == 0 else f"{stem}_{count}")
    return names


def _record(header: dict, source: str, people: list[dict]) -> str:
    from hgprune.data.mpii import JOINT_NAMES

    body = {"image": source, **header, "joint_names": JOINT_NAMES, "people": people}
    return json.dumps(body, indent=1) + "\n"


def _draw_people(canvas: np.ndarray, people: list[dict], min_confidence: float) -> np.ndarray:
    from hgprune.draw import draw_skeleton

    thickness = max(1, round(max(canvas.shape[:2]) / 300))
    for person in people:
        visible = np.asarray(person["confidence"]) >= min_confidence
        draw_skeleton(canvas, np.asarray(person["joints"]), visible, None, thickness)
    return canvas


def _predict_images(predictor, images: list[Path], boxes, out: Path, header, args, skipped: list[str]) -> int:
    import cv2
    from tqdm import tqdm

    from hgprune.fsutil import atomic_write_bytes, atomic_write_text

    names = _unique_names(images)
    written = 0
    with tqdm(total=len(images), desc="predict", unit="img", disable=None) as bar:
        for start in range(0, len(images), args.batch_size):
            chunk = images[start : start + args.batch_size]
            poses = predictor.predict(chunk, [_boxes_for(p, boxes) for p in chunk], skip_unreadable=True)
            for i, path in enumerate(chunk):
                if i in poses.unreadable:
                    _warn(f"{path}: missing or unreadable image, skipped")
                    skipped.append(str(path))
                    continue
                people = poses.of_image(i)
                name = names[start + i]
                atomic_write_text(out / f"{name}.json", _record(header, str(path), people))
                written += 1
                if args.draw:
                    canvas = _draw_people(cv2.imread(str(path), cv2.IMREAD_COLOR), people, args.min_confidence)
                    ok, encoded = cv2.imencode(".jpg", canvas, [cv2.IMWRITE_JPEG_QUALITY, 92])
                    if not ok:
                        raise HgpruneError(f"{out / name}.pose.jpg: could not encode the drawing")
                    atomic_write_bytes(out / f"{name}.pose.jpg", encoded.tobytes())
            bar.update(len(chunk))
    return written


def _csv_header(num_joints: int) -> str:
    from hgprune.data.mpii import JOINT_NAMES

    columns = ["frame", "person"]
    for name in JOINT_NAMES[:num_joints]:
        columns += [f"{name}_x", f"{name}_y", f"{name}_confidence"]
    return ",".join(columns)


def _predict_video(predictor, video: Path, boxes, out: Path, header, args) -> int | None:
    """Frames predicted in batches; JSON per frame, one CSV and optionally an annotated video. None: unreadable."""
    import cv2
    from tqdm import tqdm

    from hgprune.fsutil import atomic_write_text

    capture = cv2.VideoCapture(str(video))
    if not capture.isOpened():
        return None
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) or None
    suffix, fourcc = (".mp4", "mp4v") if video.suffix.lower() in (".mp4", ".m4v", ".mov") else (".avi", "MJPG")
    drawn_path = out / f"{video.stem}.pose{suffix}"
    tmp_path = out / f".{video.stem}.pose.tmp{suffix}"
    writer = None
    rows = [_csv_header(predictor.config.num_joints)]
    frame_boxes = _boxes_for(video, boxes)
    count = 0
    try:
        with tqdm(total=total, desc=video.name, unit="frame", disable=None) as bar:
            while True:
                frames = []
                while len(frames) < args.batch_size:
                    ok, frame = capture.read()
                    if not ok:
                        break
                    frames.append(frame)
                if not frames:
                    break
                poses = predictor.predict(frames, [frame_boxes] * len(frames), color="bgr")
                for i, frame in enumerate(frames):
                    people = poses.of_image(i)
                    source = f"{video}#frame={count}"
                    atomic_write_text(out / video.stem / f"frame_{count:06d}.json", _record(header, source, people))
                    for p, person in enumerate(people):
                        values = np.column_stack([person["joints"], person["confidence"]]).reshape(-1)
                        rows.append(",".join([str(count), str(p), *(f"{v:.3f}" for v in values)]))
                    if args.draw:
                        if writer is None:
                            out.mkdir(parents=True, exist_ok=True)
                            size = (frame.shape[1], frame.shape[0])
                            writer = cv2.VideoWriter(str(tmp_path), cv2.VideoWriter_fourcc(*fourcc), fps, size)
                            if not writer.isOpened():
                                raise HgpruneError(f"{drawn_path}: OpenCV cannot write {fourcc} video here")
                        writer.write(_draw_people(frame, people, args.min_confidence))
                    count += 1
                bar.update(len(frames))
        if count == 0:
            return None
        atomic_write_text(out / f"{video.stem}.csv", "\n".join(rows) + "\n")
        if writer is not None:
            writer.release()
            writer = None
            os.replace(tmp_path, drawn_path)
    finally:
        capture.release()
        if writer is not None:
            writer.release()
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
    return count
