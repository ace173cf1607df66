"""Data pipeline throughput: 256×256 crops + 64×64 heatmaps per second per worker, from MPII-sized JPEGs.

Generates 1280×720 JPEGs (SynthPose figures on clutter), person scales drawn from the real MPII annotations when
``../shared`` is present (else a log-normal around MPII's median), and times three pipelines in the same run:

* **hgprune**: OpenCV decode at reduced resolution when the crop allows, one ``warpAffine``, heatmaps;
* **hgprune, full decode**: the same without ``IMREAD_REDUCED_*`` (isolates that optimisation);
* **seed-style PIL + SciPy**: a reimplementation of the seed's approach (PIL decode, resize, pad-crop,
  ``scipy.ndimage.rotate``, resize, per-joint Gaussians).

All single-process, one thread, interleaved (:func:`hgprune.timing.time_interleaved`): every round draws three
samples from each hgprune pipeline and one from the slower seed-style one, in a shuffled order, so all three share
the machine's load; images/s = samples drawn ÷ their total time, after one warm-up round.
Usage: ``python -m benchmarks.data [--images 40] [--samples 300]``.
"""

from __future__ import annotations

import argparse
import itertools
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch

from benchmarks.common import environment, environment_md, md_table, write_report
from hgprune.data import Augment, PoseDataset
from hgprune.data import transforms as T
from hgprune.data.mpii import PoseRecord
from hgprune.data.synthpose import SynthConfig, render_sample
from hgprune.timing import time_interleaved


def mpii_scales(count: int, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    path = Path(os.environ.get("HGPRUNE_SHARED", Path(__file__).resolve().parents[2] / "shared"))
    path = path / "data/mpii/mpii_annotations.json.gz"
    if path.is_file():
        import gzip
        import json

        with gzip.open(path) as handle:
            scales = np.array([r["scale_provided"] for r in json.load(handle)])
        return rng.choice(scales, count), f"sampled from {path.name}"
    return np.exp(rng.normal(np.log(2.8), 0.45, count)), "log-normal around MPII's median (shared/ not found)"


def make_images(directory: Path, count: int, rng: np.random.Generator) -> tuple[list[PoseRecord], str]:
    scales, source = mpii_scales(count, rng)
    records = []
    for i in range(count):
        tile, rec = render_sample(SynthConfig(size=720, clutter=60, seed=i), "train", i)
        canvas = cv2.resize(tile, (1280, 720), interpolation=cv2.INTER_LINEAR)
        cv2.imwrite(str(directory / f"{i}.jpg"), canvas, [cv2.IMWRITE_JPEG_QUALITY, 90])
        s = float(scales[i])
        joints = np.array(rec["joint_self"])[:, :2] * [1280 / 720, 1.0]
        records.append(
            PoseRecord(
                image=f"{i}.jpg",
                center=np.array([640.0, 360.0 + 15 * s]),
                scale=1.25 * s,
                joints=joints,
                annotated=np.ones(16, bool),
                visible=np.ones(16, bool),
                is_val=False,
                raw_scale=s,
            )
        )
    return records, source


class FullDecodeDataset(PoseDataset):
    """The hgprune pipeline with reduced-resolution JPEG decoding switched off."""

    def __getitem__(self, index: int):
        original = T.reduction_factor
        T.reduction_factor = lambda *a, **k: 1
        try:
            return super().__getitem__(index)
        finally:
            T.reduction_factor = original


def seed_style_sample(path: Path, rec: PoseRecord, aug: Augment, rng: np.random.Generator, res: int = 256):
    """PIL + SciPy crop in the seed's manner: downscale the whole image, pad-crop, rotate, resize, draw Gaussians."""
    import scipy.ndimage
    from PIL import Image

    factor, rot, flip, color = aug.sample(rng)
    img = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255.0
    scale = rec.scale * factor
    sf = 200.0 * scale / res
    center = rec.center.copy()
    if sf >= 2:
        h, w = img.shape[:2]
        size = (max(1, int(w / sf)), max(1, int(h / sf)))
        img = np.asarray(Image.fromarray((img * 255).astype(np.uint8)).resize(size, Image.BILINEAR), np.float32) / 255
        center, scale = center / sf, scale / sf
    side = int(200 * scale)
    x0, y0 = int(center[0] - side / 2), int(center[1] - side / 2)
    crop = np.zeros((side, side, 3), np.float32)
    sx0, sy0 = max(0, x0), max(0, y0)
    sx1, sy1 = min(img.shape[1], x0 + side), min(img.shape[0], y0 + side)
    if sx1 > sx0 and sy1 > sy0:
        crop[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = img[sy0:sy1, sx0:sx1]
    if rot:
        crop = scipy.ndimage.rotate(crop, rot, reshape=False, order=1)
    crop = np.asarray(Image.fromarray((np.clip(crop, 0, 1) * 255).astype(np.uint8)).resize((res, res)), np.float32)
    if flip:
        crop = crop[:, ::-1]
    crop = np.clip(crop / 255.0 * color, 0, 1)
    out = res // 4
    target = np.zeros((16, out, out), np.float32)
    pts = (rec.joints - rec.center) / (200 * rec.scale * factor) * out + out / 2
    ys, xs = np.mgrid[0:out, 0:out]
    for j, (x, y) in enumerate(pts):
        if 0 <= x < out and 0 <= y < out:
            target[j] = np.exp(-((xs - int(x)) ** 2 + (ys - int(y)) ** 2) / 2.0)
    return torch.from_numpy(crop.transpose(2, 0, 1).copy()), torch.from_numpy(target)


def _drawing(sample: Callable[[int], object], per_call: int) -> Callable[[], None]:
    """A call that draws the next ``per_call`` samples (indices 0, 1, 2, … across calls)."""
    counter = itertools.count()

    def call() -> None:
        for _ in range(per_call):
            sample(next(counter))

    return call


def images_per_s(pipelines: dict[str, tuple[Callable[[int], object], int]], rounds: int) -> dict[str, float]:
    """Images per second of each ``name: (sample, per_round)`` pipeline: each round draws ``per_round`` samples from
    every pipeline, interleaved, after one warm-up round; rate = samples drawn ÷ their total time."""
    calls = [_drawing(sample, per_round) for sample, per_round in pipelines.values()]
    times = time_interleaved(calls, warmup=1, repeats=rounds, settle_ms=0)  # every sample counts: none untimed
    return {
        name: per_round * len(ms) / (sum(ms) / 1e3)
        for (name, (_, per_round)), ms in zip(pipelines.items(), times, strict=True)
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=40, help="distinct 1280x720 JPEGs")
    parser.add_argument("--samples", type=int, default=300, help="samples timed per pipeline")
    parser.add_argument("--input-size", type=int, default=256)
    parser.add_argument("--out-dir", default=None, help="report directory (default reports/benchmarks)")
    parser.add_argument("--device", default="cpu", help="accepted for make bench; the data pipeline runs on the CPU")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    env = environment()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        records, scale_source = make_images(Path(tmp), args.images, rng)
        fast = PoseDataset(records, tmp, input_size=args.input_size, augment=Augment())
        full = FullDecodeDataset(records, tmp, input_size=args.input_size, augment=Augment())
        n = len(records)
        factors = [T.reduction_factor(r.scale, args.input_size) for r in records]
        aug, srng = Augment(), np.random.default_rng(0)
        torch.manual_seed(0)
        results = images_per_s(
            {
                "hgprune (OpenCV, reduced decode)": (lambda i: fast[i % n], 3),
                "hgprune, full-resolution decode": (lambda i: full[i % n], 3),
                "seed-style PIL + SciPy": (
                    lambda i: seed_style_sample(Path(tmp) / records[i % n].image, records[i % n], aug, srng),
                    1,
                ),
            },
            rounds=max(1, args.samples // 3),
        )
    baseline = results["seed-style PIL + SciPy"]
    full_rate = results["hgprune, full-resolution decode"]
    data = {
        "benchmark": "data",
        "environment": env,
        "setup": {
            "image_size": [1280, 720],
            "input_size": args.input_size,
            "images": args.images,
            "samples": args.samples,
            "scales": scale_source,
            "decode_factors": {str(k): factors.count(k) for k in sorted(set(factors))},
            "augment": "seed defaults (scale, rotation p=0.6, flip p=0.5, colour)",
        },
        "images_per_s_per_worker": {k: round(v, 1) for k, v in results.items()},
        "ratio_vs_seed_style": {k: round(v / baseline, 2) for k, v in results.items()},
        "ratio_vs_full_decode": round(results["hgprune (OpenCV, reduced decode)"] / full_rate, 2),
        "goal_images_per_s": 300,
    }
    rows = [(k, v, v / baseline) for k, v in results.items()]
    markdown = (
        f"# Data pipeline throughput\n\n{args.input_size}×{args.input_size} crops + heatmaps from 1280×720 JPEGs, one "
        f"process, one thread, seed augmentation. Person scales {scale_source}; decode reduction factors used: "
        f"{data['setup']['decode_factors']}.\n\n"
        + md_table(["pipeline", "images/s per worker", "× seed-style"], rows)
        + f"\nReduced-resolution decoding alone: ×{data['ratio_vs_full_decode']:.2f}. Goal: ≥ 300 images/s.\n\n"
        + environment_md(env)
    )
    json_path, md_path = write_report("data", data, markdown, args.out_dir)
    print(markdown)
    print(f"wrote {json_path} and {md_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
