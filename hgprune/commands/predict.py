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
import re
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
    out = prepare_out(Path(args.out))
    predictor = Predictor(
        args.model,
        backend=args.backend or infer_backend(args.model),
        input_size=args.input_size,
        flip=args.flip,
        device=args.device,
        threads=args.threads,
        batch_size=args.batch_size,
    )
    names = output_names(images + videos)
    header = {"model": str(args.model), "backend": predictor.backend, "input_size": predictor.input_size,
              "flip": args.flip}  # fmt: skip
    skipped = list(missing)
    written = _predict_images(predictor, images, names, boxes, out, header, args, skipped) if images else 0
    frames = 0
    for video in videos:
        count = _predict_video(predictor, video, names[video], boxes, out, header, args)
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
    images or a pattern without matches is missing. A file named twice (or matched by two patterns) is kept once."""
    images: list[Path] = []
    videos: list[Path] = []
    missing: list[str] = []
    seen: set[str] = set()

    def add(candidate: Path) -> None:
        key = os.path.realpath(candidate)
        if key in seen:
            return
        seen.add(key)
        (videos if candidate.suffix.lower() in VIDEO_SUFFIXES else images).append(candidate)

    for text in inputs:
        path = Path(text)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                missing.append(text)
            for candidate in found:
                add(candidate)
            continue
        candidates = [path] if path.exists() else glob_files(text)
        if not candidates:
            missing.append(text)
        for candidate in candidates:
            if candidate.is_file():
                add(candidate)
    return images, videos, missing


MAX_GLOB_ENTRIES = 1_000_000  # directory entries one pattern may visit


def glob_files(pattern: str) -> list[Path]:
    """Files matching a glob pattern, sorted; ``**`` matches any number of folders. Symbolic links to folders are
    not followed (a link loop cannot hang it) and at most :data:`MAX_GLOB_ENTRIES` entries are visited."""
    if "**" not in pattern:
        return [Path(p) for p in sorted(glob.glob(pattern))]
    parts = Path(pattern).parts
    fixed = next((i for i, part in enumerate(parts) if glob.has_magic(part)), len(parts))
    root = Path(*parts[:fixed]) if fixed else Path(".")
    matcher = re.compile(_glob_regex("/".join(parts[fixed:])))
    found: list[Path] = []
    visited = 0
    for folder, dirs, files in os.walk(root, followlinks=False):
        dirs.sort()
        visited += len(dirs) + len(files)
        if visited > MAX_GLOB_ENTRIES:
            raise HgpruneError(f"{pattern}: visits more than {MAX_GLOB_ENTRIES:,} entries; narrow the pattern")
        relative = Path(folder).relative_to(root)
        for name in files:
            if not name.startswith(".") and matcher.fullmatch((relative / name).as_posix().removeprefix("./")):
                found.append(Path(folder) / name)
    return sorted(found)


def _glob_regex(pattern: str) -> str:
    """A regular expression for the folder-relative part of a glob (``**/`` any folders, ``*`` within one)."""
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:[^/]+/)*")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[" and "]" in pattern[i + 2 :]:
            end = pattern.index("]", i + 2)
            body = pattern[i + 1 : end]
            out.append("[" + ("^" + re.escape(body[1:]) if body.startswith("!") else re.escape(body)) + "]")
            i = end + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return "".join(out)


MAX_BOXES_BYTES = 16 << 20


def read_boxes(path: str) -> dict[str, list]:
    """``{image: [[x1, y1, x2, y2], ...]}``; keys may be the path as given or the file name. Every box is checked
    here (numbers within bounds, positive sides), before any model is loaded or file written."""
    from hgprune.fsutil import load_json_limited
    from hgprune.predict import box_to_crop

    data = load_json_limited(path, MAX_BOXES_BYTES, "boxes file (JSON)")
    if not isinstance(data, dict):
        raise HgpruneError(f"{path}: expected a JSON object mapping image → list of boxes, got {type(data).__name__}")
    for key, value in data.items():
        if not isinstance(value, list) or not all(isinstance(box, list) and len(box) == 4 for box in value):
            raise HgpruneError(f"{path}: boxes of {key[:80]!r} must be a list of [x1, y1, x2, y2]")
        for box in value:
            if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in box):
                raise HgpruneError(f"{path}: boxes of {key[:80]!r} must hold numbers, found {str(box)[:60]}")
            try:
                box_to_crop(box)
            except HgpruneError as exc:
                raise HgpruneError(f"{path}: boxes of {key[:80]!r}: {exc}") from None
    return data


def prepare_out(out: Path) -> Path:
    """The output folder, created and proven writable before any model is loaded; temp files a killed run left
    there are removed."""
    from hgprune.fsutil import sweep_stale_temps

    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write-test.{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise HgpruneError(f"{out}: cannot write output here ({exc.strerror or exc})") from None
    sweep_stale_temps(out)
    return out


MAX_NAME_CHARS = 100


def output_names(paths: list[Path]) -> dict[Path, str]:
    """One output name per input, unique by construction across images and videos (so ``NAME.json``,
    ``NAME.pose.jpg``, ``NAME/``, ``NAME.csv`` and ``NAME.pose.mp4`` of two inputs never meet, also on
    case-insensitive file systems) and safe as a file name: the stem with anything but letters, digits, ``._-``
    replaced, no leading dot, at most :data:`MAX_NAME_CHARS` characters. A taken name gets the first free ``_k``."""
    taken: set[str] = set()
    names: dict[Path, str] = {}
    for path in paths:
        base = re.sub(r"[^\w.-]", "_", path.stem).lstrip(".")[:MAX_NAME_CHARS] or "input"
        name, k = base, 1
        while name.casefold() in taken:
            name, k = f"{base}_{k}", k + 1
        taken.add(name.casefold())
        names[path] = name
    return names


def _boxes_for(path: Path, boxes: dict[str, list]):
    for key in (str(path), path.name, str(path.resolve())):
        if key in boxes:
            return boxes[key] or None
    return None


def _warn(message: str) -> None:
    print(f"hgprune: warning: {message}", file=sys.stderr)


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


def _predict_images(
    predictor, images: list[Path], names: dict[Path, str], boxes, out: Path, header, args, skipped: list[str]
) -> int:
    import cv2
    from tqdm import tqdm

    from hgprune.fsutil import atomic_write_bytes, atomic_write_text

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
                name = names[path]
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


# Decoded video frames held at once (a batch): frames are read until this many pixels, so memory does not grow
# with the frame size times --batch-size. A frame larger than the image budget is refused before it is decoded.
FRAME_BATCH_PIXELS = 32_000_000


def _predict_video(predictor, video: Path, name: str, boxes, out: Path, header, args) -> int | None:
    """Frames predicted in batches; JSON per frame, one CSV and optionally an annotated video. None: unreadable."""
    import cv2
    from tqdm import tqdm

    from hgprune.data.transforms import MAX_IMAGE_PIXELS
    from hgprune.fsutil import atomic_write_text, temp_path

    capture = cv2.VideoCapture(str(video))
    if not capture.isOpened():
        return None
    width, height = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))

    def check_frame(w: int, h: int) -> None:
        if w * h > MAX_IMAGE_PIXELS:
            capture.release()
            raise HgpruneError(
                f"{video}: frames of {w}×{h} pixels exceed the budget of {MAX_IMAGE_PIXELS:,} pixels per image; "
                "downscale the video first"
            )

    check_frame(width, height)  # declared in the container: refused before any frame is decoded
    frames_per_batch = max(1, min(args.batch_size, FRAME_BATCH_PIXELS // max(width * height, 1)))
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) or None
    suffix, fourcc = (".mp4", "mp4v") if video.suffix.lower() in (".mp4", ".m4v", ".mov") else (".avi", "MJPG")
    drawn_path = out / f"{name}.pose{suffix}"
    tmp_path = temp_path(drawn_path)
    writer = None
    rows = [_csv_header(predictor.config.num_joints)]
    frame_boxes = _boxes_for(video, boxes)
    count = 0
    try:
        with tqdm(total=total, desc=video.name, unit="frame", disable=None) as bar:
            while True:
                frames = []
                while len(frames) < frames_per_batch:
                    ok, frame = capture.read()
                    if not ok:
                        break
                    check_frame(frame.shape[1], frame.shape[0])
                    frames.append(frame)
                    if sum(f.shape[0] * f.shape[1] for f in frames) >= FRAME_BATCH_PIXELS:
                        break
                if not frames:
                    break
                poses = predictor.predict(frames, [frame_boxes] * len(frames), color="bgr")
                for i, frame in enumerate(frames):
                    people = poses.of_image(i)
                    source = f"{video}#frame={count}"
                    atomic_write_text(out / name / f"frame_{count:06d}.json", _record(header, source, people))
                    for p, person in enumerate(people):
                        values = np.column_stack([person["joints"], person["confidence"]]).reshape(-1)
                        rows.append(",".join([str(count), str(p), *(f"{v:.3f}" for v in values)]))
                    if args.draw:
                        if writer is None:
                            size = (frame.shape[1], frame.shape[0])
                            writer = cv2.VideoWriter(str(tmp_path), cv2.VideoWriter_fourcc(*fourcc), fps, size)
                            if not writer.isOpened():
                                raise HgpruneError(f"{drawn_path}: OpenCV cannot write {fourcc} video here")
                        writer.write(_draw_people(frame, people, args.min_confidence))
                    count += 1
                bar.update(len(frames))
        if count == 0:
            return None
        atomic_write_text(out / f"{name}.csv", "\n".join(rows) + "\n")
        if writer is not None:
            writer.release()
            writer = None
            try:
                os.replace(tmp_path, drawn_path)
            except OSError as exc:
                raise HgpruneError(f"{drawn_path}: cannot write ({exc.strerror or exc})") from None
    finally:  # clean-up never replaces the error that brought us here
        capture.release()
        if writer is not None:
            with contextlib.suppress(Exception):
                writer.release()
        with contextlib.suppress(OSError):
            tmp_path.unlink()
    return count
