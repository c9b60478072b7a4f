"""Pictures: class colours and names, prediction grids, overlays and learning curves.

Host-side numpy and Pillow only; callers write the returned uint8 arrays as PNGs.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
from PIL import Image, ImageDraw

from fcnjax.losses import IGNORE_LABEL

VOID_COLOR = (224, 224, 192)
"""Colour of void pixels (label 255), as in PASCAL VOC's label PNGs."""

CLASS_SETS: Mapping[str, tuple[str, ...]] = {
    "voc": ("background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car",
            "cat", "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person",
            "pottedplant", "sheep", "sofa", "train", "tvmonitor"),
    "camvid": ("sky", "building", "pole", "road", "pavement", "tree", "signsymbol", "fence",
               "car", "pedestrian", "bicyclist"),
    "isbi2012": ("membrane", "cell"),
    "nyud40": ("wall", "floor", "cabinet", "bed", "chair", "sofa", "table", "door", "window",
               "bookshelf", "picture", "counter", "blinds", "desk", "shelves", "curtain",
               "dresser", "pillow", "mirror", "floor mat", "clothes", "ceiling", "books",
               "refrigerator", "television", "paper", "towel", "shower curtain", "box",
               "whiteboard", "person", "night stand", "toilet", "sink", "lamp", "bathtub",
               "bag", "otherstructure", "otherfurniture", "otherprop"),
    "siftflow": ("awning", "balcony", "bird", "boat", "bridge", "building", "bus", "car",
                 "cow", "crosswalk", "desert", "door", "fence", "field", "grass", "moon",
                 "mountain", "person", "plant", "pole", "river", "road", "rock", "sand", "sea",
                 "sidewalk", "sign", "sky", "staircase", "streetlight", "sun", "tree",
                 "window"),
}
"""Class names of each dataset by class id (``config.eval.classes``)."""

CAMVID_COLORS = ((128, 128, 128), (128, 0, 0), (192, 192, 128), (128, 64, 128),
                 (60, 40, 222), (128, 128, 0), (192, 128, 128), (64, 64, 128), (64, 0, 128),
                 (64, 64, 0), (0, 128, 192))
"""SegNet's display colours of CamVid's 11 classes; other class sets use VOC's colour map."""


def palette(num_classes: int) -> np.ndarray:
    """uint8 (num_classes, 3) colours: the PASCAL VOC colour map (0 black, 1 dark red, ...).

    Class c spreads its bits over the channels: bit 3k of c sets bit 7-k of red,
    bit 3k+1 of green, bit 3k+2 of blue.
    """
    colors = np.zeros((num_classes, 3), np.uint8)
    for c in range(num_classes):
        code = c
        for k in range(8):
            for channel in range(3):
                colors[c, channel] |= ((code >> channel) & 1) << (7 - k)
            code >>= 3
    return colors


def class_colors(classes: str, num_classes: int) -> np.ndarray:
    """uint8 (num_classes, 3) colours of a class set: SegNet's for "camvid", else VOC's."""
    if classes == "camvid" and num_classes <= len(CAMVID_COLORS):
        return np.array(CAMVID_COLORS[:num_classes], np.uint8)
    return palette(num_classes)


def class_names(classes: str, num_classes: int) -> list[str]:
    """Names of ``num_classes`` classes from CLASS_SETS; "class <i>" where the set has none."""
    names = CLASS_SETS.get(classes, ())
    return [names[i] if i < len(names) else f"class {i}" for i in range(num_classes)]


def colorize(label: np.ndarray, num_classes: int,
             colors: np.ndarray | None = None) -> np.ndarray:
    """int (H, W) class ids -> uint8 (H, W, 3); void and out-of-range ids get VOID_COLOR.

    colors: uint8 (num_classes, 3), default the VOC colour map (``palette``).
    """
    label = np.asarray(label)
    colors = palette(num_classes) if colors is None else np.asarray(colors, np.uint8)
    colors = np.concatenate([colors, np.array([VOID_COLOR], np.uint8)])
    index = np.where((label >= 0) & (label < num_classes) & (label != IGNORE_LABEL),
                     label, num_classes)
    return colors[index]


def to_uint8(image: np.ndarray, bgr: bool = False) -> np.ndarray:
    """A normalised float (H, W, C) image stretched to uint8 (H, W, 3) RGB for display."""
    image = np.asarray(image, np.float32)
    if image.shape[-1] == 1:
        image = np.repeat(image, 3, axis=-1)
    elif bgr:
        image = image[..., ::-1]
    low, high = float(image.min()), float(image.max())
    scaled = (image - low) / (high - low) if high > low else np.zeros_like(image)
    return (scaled * 255).round().astype(np.uint8)


def comparison_grid(images: np.ndarray, labels: np.ndarray, predictions: np.ndarray,
                    num_classes: int, *, bgr: bool = False, gap: int = 2,
                    colors: np.ndarray | None = None) -> np.ndarray:
    """One row per example: image | label | prediction, as uint8 (N*H', 3*W', 3).

    images: float (N, H, W, C); labels, predictions: int (N, H, W), all of one size.
    """
    if not (images.shape[:3] == labels.shape == predictions.shape):
        raise ValueError(f"images {images.shape[:3]}, labels {labels.shape} and predictions "
                         f"{predictions.shape} must share (N, H, W)")
    n, h, w = labels.shape
    grid = np.full((n * (h + gap) - gap, 3 * (w + gap) - gap, 3), 255, np.uint8)
    for i in range(n):
        panels = (to_uint8(images[i], bgr), colorize(labels[i], num_classes, colors),
                  colorize(predictions[i], num_classes, colors))
        for j, panel in enumerate(panels):
            grid[i * (h + gap):i * (h + gap) + h, j * (w + gap):j * (w + gap) + w] = panel
    return grid


def overlay(image: np.ndarray, mask: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """uint8 (H, W, 3) blend of an RGB image and a colour mask of one size: ``alpha`` mask."""
    blend = (1 - alpha) * np.asarray(image, np.float32) + alpha * np.asarray(mask, np.float32)
    return blend.round().clip(0, 255).astype(np.uint8)


CURVE_COLORS = ((31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189))


def line_chart(series: Mapping[str, tuple[Sequence[float], Sequence[float]]], title: str,
               size: tuple[int, int] = (420, 300)) -> np.ndarray:
    """uint8 (H, W, 3) chart of named (x, y) series: lines, axis ranges, a legend.

    NaN or None values are skipped; an empty chart still has its frame and title.
    """
    width, height = size
    left, right, top, bottom = 56, 12, 24, 28
    canvas = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(canvas)
    points = {name: [(float(x), float(y)) for x, y in zip(*xy)
                     if y is not None and np.isfinite(y)] for name, xy in series.items()}
    every = [p for pts in points.values() for p in pts]
    draw.text((left, 6), title, fill="black")
    draw.rectangle((left, top, width - right, height - bottom), outline="black")
    if not every:
        return np.asarray(canvas)
    (x0, x1), (y0, y1) = ((min(v), max(v)) for v in zip(*every))
    x1, y1 = (x1 if x1 > x0 else x0 + 1), (y1 if y1 > y0 else y0 + 1)

    def to_pixel(x, y):
        return (left + (x - x0) / (x1 - x0) * (width - left - right),
                height - bottom - (y - y0) / (y1 - y0) * (height - top - bottom))

    for i, (name, pts) in enumerate(points.items()):
        color = CURVE_COLORS[i % len(CURVE_COLORS)]
        pixels = [to_pixel(x, y) for x, y in pts]
        if len(pixels) > 1:
            draw.line(pixels, fill=color, width=2)
        for px, py in pixels:
            draw.ellipse((px - 2, py - 2, px + 2, py + 2), fill=color)
        draw.text((width - right - 110, top + 4 + 12 * i), name, fill=color)
    draw.text((4, top), f"{y1:.3g}", fill="black")
    draw.text((4, height - bottom - 10), f"{y0:.3g}", fill="black")
    draw.text((left, height - bottom + 6), f"{x0:g}", fill="black")
    draw.text((width - right - 40, height - bottom + 6), f"step {x1:g}", fill="black")
    return np.asarray(canvas)


def learning_curves(records: Sequence[Mapping[str, object]]) -> np.ndarray:
    """uint8 image of metrics.jsonl records: loss (train, eval) beside eval mean IU / pixel acc."""
    def pick(mode, key):
        rows = [r for r in records if r.get("mode") == mode and key in r]
        return [r["step"] for r in rows], [r[key] for r in rows]

    loss = line_chart({"train loss": pick("train", "loss"), "eval loss": pick("eval", "loss")},
                      "per-pixel loss")
    scores = line_chart({"eval mean IU": pick("eval", "mean_iu"),
                         "eval pixel acc": pick("eval", "pixel_acc"),
                         "train mean IU": pick("train", "mean_iu")}, "scores")
    return np.concatenate([loss, scores], axis=1)
