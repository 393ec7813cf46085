"""The detection half of the OCR example: a page into PP-OCR det's input, its probability map into
text boxes in page pixels.

Rule: the page is scaled to fit the detector's fixed 640x640 input (padded with white, normalised by
ImageNet's mean and deviation); the map is thresholded and its 8-connected components (runs of each
row joined by union-find) whose mean probability is high enough become boxes, grown by DBNet's
unclip distance and scaled back to the page. numpy only; running the model is ocr_pipeline.py's.
"""

from __future__ import annotations

from math import ceil

import numpy as np
from bilinear import resize

DET_SIZE = 640  # the detector's input is (1, 3, 640, 640)
Box = tuple[int, int, int, int]
DET_MEAN = np.array([0.485, 0.456, 0.406], np.float32).reshape(3, 1, 1)
DET_STD = np.array([0.229, 0.224, 0.225], np.float32).reshape(3, 1, 1)


def det_input(page: np.ndarray) -> tuple[np.ndarray, float]:
    """The detector's input for an RGB uint8 page (H, W, 3), scaled to fit 640x640 and padded with
    white, and the scale from page pixels to input pixels."""
    scale = DET_SIZE / max(page.shape[:2])
    scaled = resize(page, max(1, round(page.shape[0] * scale)), max(1, round(page.shape[1] * scale)))
    canvas = np.full((DET_SIZE, DET_SIZE, 3), 255, np.float32)
    canvas[: scaled.shape[0], : scaled.shape[1]] = scaled
    chw = canvas.transpose(2, 0, 1) / 255.0
    return ((chw - DET_MEAN) / DET_STD)[None].astype(np.float32), scale


def text_boxes(
    probability: np.ndarray, threshold: float = 0.3, box_threshold: float = 0.6, min_side: int = 3
) -> list[Box]:
    """Boxes (top, left, bottom, right; exclusive) of the connected regions of `probability` (H, W)
    above `threshold` whose mean probability reaches `box_threshold`, grown by DBNet's unclip
    distance (area * 1.5 / perimeter), top to bottom then left to right."""
    mask = probability > threshold
    boxes = []
    for rows, cols in components(mask):
        top, bottom, left, right = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
        height, width = bottom - top, right - left
        if min(height, width) < min_side or probability[rows, cols].mean() < box_threshold:
            continue
        grow = round(height * width * 1.5 / (2 * (height + width)))
        boxes.append((max(0, top - grow), max(0, left - grow), bottom + grow, right + grow))
    return sorted(boxes)


def components(mask: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """The 8-connected components of a boolean mask, as (rows, cols) index arrays: runs of each row
    are joined with the overlapping runs of the row above by union-find."""
    runs: list[tuple[int, int, int]] = []  # (row, start, end) of each run of True
    for row in np.flatnonzero(mask.any(axis=1)):
        edges = np.flatnonzero(np.diff(np.concatenate(([0], mask[row].view(np.int8), [0]))))
        runs.extend((int(row), int(s), int(e)) for s, e in zip(edges[::2], edges[1::2], strict=True))
    parent = list(range(len(runs)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    above: list[int] = []
    current: list[int] = []
    for i, (row, start, end) in enumerate(runs):
        if current and runs[current[0]][0] != row:
            above = current if runs[current[0]][0] == row - 1 else []
            current = []
        for j in above:
            if runs[j][1] <= end and start <= runs[j][2]:  # overlapping or diagonal neighbours
                parent[root(j)] = root(i)
        current.append(i)
    groups: dict[int, list[int]] = {}
    for i in range(len(runs)):
        groups.setdefault(root(i), []).append(i)
    return [run_pixels([runs[i] for i in members]) for members in groups.values()]


def run_pixels(runs: list[tuple[int, int, int]]) -> tuple[np.ndarray, np.ndarray]:
    rows = np.concatenate([np.full(end - start, row) for row, start, end in runs])
    cols = np.concatenate([np.arange(start, end) for _, start, end in runs])
    return rows, cols


def boxes_on_page(output: np.ndarray, page: np.ndarray, scale: float) -> list[Box]:
    """The text boxes in page pixels of the detector's `output` (1, 1, H, W) on `page` scaled by `scale`."""
    probability = output[0, 0]
    height, width = page.shape[:2]
    return [
        (
            int(top / scale),
            int(left / scale),
            min(height, ceil(bottom / scale)),
            min(width, ceil(right / scale)),
        )
        for top, left, bottom, right in text_boxes(probability)
    ]
