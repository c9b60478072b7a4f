"""U-Net's per-pixel loss weights (Ronneberger et al. 2015, eq. 2).

    w(x) = w_c(x) + w0 * exp(-(d1(x) + d2(x))^2 / (2 sigma^2))

w_c balances the class frequencies; d1 and d2 are the distances from pixel x to the nearest
and the second nearest cell, the cells being the connected components (4-connected) of the
cell class. The second term makes the thin background ridges separating touching cells
expensive to get wrong, so the net learns to keep the cells apart. It is added on background
(non-cell) pixels only, as the paper describes: inside a cell d1 is 0 and the term would
only blur the cell's own pixels near a neighbour. Void pixels weigh 0.

For ISBI 2012 the cells are class 1 (stored 255, white) and the membranes class 0 (black):
configs/unet_isbi.py maps the labels so. With the paper's w0 = 10, sigma = 5 a one-pixel
membrane between two cells (d1 = d2 = 1) weighs w_c + 9.2.

Distances are Euclidean between pixel centres (a background pixel next to a cell is 1 from
it), computed by ``scipy.ndimage`` one cell at a time inside the cell's bounding box grown
by ``cutoff`` pixels: beyond that the term is below ``w0 * exp(-cutoff^2 / (2 sigma^2))``.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from scipy import ndimage

from fcnjax.data.classes import VOID, median_frequency_weights

W0 = 10.0
SIGMA = 5.0


def default_cutoff(w0: float = W0, sigma: float = SIGMA, tolerance: float = 1e-4) -> float:
    """Distance sum beyond which the border term is below ``tolerance`` (24 px for 10, 5)."""
    return sigma * math.sqrt(2 * math.log(max(w0, tolerance) / tolerance))


def cells(label: np.ndarray, cell_class: int = 1) -> tuple[np.ndarray, int]:
    """4-connected components of the cell class: int32 (H, W) ids 1..n (0 elsewhere), n."""
    components, count = ndimage.label(label == cell_class)
    return components.astype(np.int32), int(count)


def nearest_two_distances(components: np.ndarray, count: int,
                          cutoff: float) -> tuple[np.ndarray, np.ndarray]:
    """d1, d2: float32 (H, W) distances to the nearest and second nearest cell.

    A distance above ``cutoff`` may be reported as infinity (the cell was not looked for
    that far). Pixels of a cell are at distance 0 from it.
    """
    d1 = np.full(components.shape, np.inf, np.float32)
    d2 = np.full(components.shape, np.inf, np.float32)
    margin = int(math.ceil(cutoff))
    for cell, box in enumerate(ndimage.find_objects(components), start=1):
        if box is None:
            continue
        window = tuple(slice(max(s.start - margin, 0), min(s.stop + margin, n))
                       for s, n in zip(box, components.shape))
        d = ndimage.distance_transform_edt(components[window] != cell).astype(np.float32)
        near, second = d1[window], d2[window]
        second[...] = np.minimum(second, np.maximum(near, d))
        near[...] = np.minimum(near, d)
    return d1, d2


def border_term(d1: np.ndarray, d2: np.ndarray, w0: float = W0,
                sigma: float = SIGMA) -> np.ndarray:
    """w0 * exp(-(d1 + d2)^2 / (2 sigma^2)), float32; 0 where a distance is infinite."""
    total = (d1 + d2).astype(np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        term = w0 * np.exp(-total ** 2 / (2 * sigma ** 2))
    return np.where(np.isfinite(total), term, 0.0).astype(np.float32)


def class_counts(label: np.ndarray, num_classes: int) -> np.ndarray:
    """Pixels of each class 0 .. num_classes - 1 (void and other values not counted)."""
    valid = (label >= 0) & (label < num_classes)
    return np.bincount(label[valid].ravel(), minlength=num_classes)[:num_classes]


def border_weights(label: np.ndarray, *, num_classes: int = 2, cell_class: int = 1,
                   w0: float = W0, sigma: float = SIGMA,
                   class_weights: Sequence[float] | None = None,
                   ignore_label: int = VOID, cutoff: float | None = None) -> np.ndarray:
    """The paper's weight map of one label image.

    label: int (H, W) class ids, ``ignore_label`` void. class_weights: w_c per class; by
    default median-frequency weights of this label's own class counts
    (:func:`fcnjax.data.classes.median_frequency_weights`). Returns float32 (H, W), 0 on void.
    """
    label = np.asarray(label)
    if label.ndim != 2:
        raise ValueError(f"need one (H, W) label image, got shape {label.shape}")
    if class_weights is None:
        class_weights = median_frequency_weights(class_counts(label, num_classes))
    class_weights = np.asarray(class_weights, np.float32)
    if class_weights.shape != (num_classes,):
        raise ValueError(f"need {num_classes} class weights, got {class_weights.shape}")
    valid = (label >= 0) & (label < num_classes) & (label != ignore_label)
    weights = np.where(valid, class_weights[np.where(valid, label, 0)], 0.0).astype(np.float32)
    if w0:
        components, count = cells(label, cell_class)
        cutoff = default_cutoff(w0, sigma) if cutoff is None else cutoff
        d1, d2 = nearest_two_distances(components, count, cutoff)
        background = valid & (label != cell_class)
        weights += np.where(background, border_term(d1, d2, w0, sigma), 0.0)
    return weights
