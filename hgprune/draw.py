"""The MPII skeleton drawn on a BGR image: shared by ``hgprune evaluate --visualize`` and ``hgprune predict --draw``."""

from __future__ import annotations

import cv2
import numpy as np

# MPII skeleton: legs, torso and head, arms (joint indices of docs/DESIGN.md §2)
SKELETON = [(0, 1), (1, 2), (2, 6), (6, 3), (3, 4), (4, 5), (6, 7), (7, 8), (8, 9),
            (10, 11), (11, 12), (12, 7), (7, 13), (13, 14), (14, 15)]  # fmt: skip
RIGHT_JOINTS = (0, 1, 2, 10, 11, 12)
LEFT_JOINTS = (3, 4, 5, 13, 14, 15)


def draw_skeleton(
    canvas: np.ndarray,
    points: np.ndarray,
    visible: np.ndarray | None = None,
    color: tuple[int, int, int] | None = None,
    thickness: int = 2,
) -> None:
    """Draw ``points`` (J, 2) in place on a BGR ``canvas``; ``color=None`` colours by side (right red, left blue).

    Joints whose ``visible`` flag is False (e.g. low confidence) and the limbs touching them are left out.
    """
    points = np.asarray(points, dtype=np.float64)
    visible = np.ones(len(points), dtype=bool) if visible is None else np.asarray(visible, dtype=bool)
    right, left = (0, 0, 255), (255, 0, 0)  # BGR: right limbs red, left limbs blue, centre green
    for a, b in SKELETON:
        if a < len(points) and b < len(points) and visible[a] and visible[b]:
            side = right if max(a, b) in RIGHT_JOINTS else left if a in LEFT_JOINTS else (0, 200, 0)
            pa = tuple(int(round(v)) for v in points[a])
            pb = tuple(int(round(v)) for v in points[b])
            cv2.line(canvas, pa, pb, color or side, thickness, cv2.LINE_AA)
    for j, point in enumerate(points):
        if visible[j]:
            cv2.circle(canvas, tuple(int(round(v)) for v in point), thickness + 1, color or (0, 255, 255), -1)
