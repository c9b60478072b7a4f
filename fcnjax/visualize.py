"""Pictures of predictions: colour maps for class ids and an image | label | prediction grid.

Host-side numpy only; callers write the returned uint8 arrays with Pillow.
"""

from __future__ import annotations

import numpy as np

from fcnjax.losses import IGNORE_LABEL

VOID_COLOR = (224, 224, 192)
"""Colour of void pixels (label 255), as in PASCAL VOC's label PNGs."""


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


def colorize(label: np.ndarray, num_classes: int) -> np.ndarray:
    """int (H, W) class ids -> uint8 (H, W, 3); void and out-of-range ids get VOID_COLOR."""
    label = np.asarray(label)
    colors = np.concatenate([palette(num_classes), np.array([VOID_COLOR], np.uint8)])
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
                    num_classes: int, *, bgr: bool = False, gap: int = 2) -> np.ndarray:
    """One row per example: image | label | prediction, as uint8 (N*H', 3*W', 3).

    images: float (N, H, W, C); labels, predictions: int (N, H, W), all of one size.
    """
    if not (images.shape[:3] == labels.shape == predictions.shape):
        raise ValueError(f"images {images.shape[:3]}, labels {labels.shape} and predictions "
                         f"{predictions.shape} must share (N, H, W)")
    n, h, w = labels.shape
    grid = np.full((n * (h + gap) - gap, 3 * (w + gap) - gap, 3), 255, np.uint8)
    for i in range(n):
        panels = (to_uint8(images[i], bgr), colorize(labels[i], num_classes),
                  colorize(predictions[i], num_classes))
        for j, panel in enumerate(panels):
            grid[i * (h + gap):i * (h + gap) + h, j * (w + gap):j * (w + gap) + w] = panel
    return grid
