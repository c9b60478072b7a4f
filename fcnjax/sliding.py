"""Sliding-window prediction: an image of any size through fixed windows (MMSegmentation's
``mode='slide'``), so the network compiles once and its activations are bounded by the
window. :func:`slide_bands` hands the blended scores out one row of windows at a time, so
a caller that keeps only labels (``predict``) holds one window row of scores, (window
height, W, classes) float32; :func:`predict_sliding` assembles the whole (H, W, classes).

Windows of ``window`` pixels start every ``stride`` pixels along each axis; the last one of
a row or column is moved back to end flush with the image, so every window lies inside it.
An image smaller than the window is first padded up to one window at its bottom and right
(``pad_mode``: "reflect" mirrors it, U-Net's extrapolation of missing context; "constant"
adds zeros, the mean once normalised, the FCNs' padding) and the padding's outputs are
dropped. Each window's class scores are added into the image with a weight per window
pixel, and every pixel is divided by the weights it received: constant weights average the
overlapping windows, Gaussian ones trust a window's centre more than its rim.

>>> window_starts(10, 4, 3)
[0, 3, 6]
>>> window_starts(3, 4, 3)
[0]
"""

from __future__ import annotations

import math
from typing import Callable, Iterator

import numpy as np
from tqdm import tqdm

BLENDS = ("constant", "gaussian")
"""Weights of a window's pixels where windows overlap (``config.eval.blend``)."""

GAUSSIAN_SIGMA = 1 / 8
"""Standard deviation of the Gaussian weight as a fraction of the window's side (nnU-Net's)."""

PROGRESS_WINDOWS = 64
"""An image of at least this many windows shows a progress bar over them."""

WindowFn = Callable[[np.ndarray], np.ndarray]
"""(N, h, w, C) windows -> (N, h, w, K) float class scores: the network, e.g. jitted."""


def window_starts(size: int, window: int, stride: int) -> list[int]:
    """First pixels of the windows along an axis of ``size`` pixels: 0, stride, 2 stride ...,
    the last one ``size - window`` (flush with the end); [0] when ``size <= window``."""
    if size <= window:
        return [0]
    count = math.ceil((size - window) / stride) + 1
    return [min(i * stride, size - window) for i in range(count)]


def blend_weights(window: tuple[int, int], blend: str) -> np.ndarray:
    """float32 (h, w) weights, all positive, 1 at the centre: ones ("constant") or a
    Gaussian of ``GAUSSIAN_SIGMA`` times each side ("gaussian")."""
    if blend == "constant":
        return np.ones(window, np.float32)
    if blend != "gaussian":
        raise ValueError(f"unknown blend {blend!r}: choose one of {BLENDS}")
    axes = []
    for n in window:
        offsets = np.arange(n, dtype=np.float64) - (n - 1) / 2
        axes.append(np.exp(-0.5 * (offsets / (GAUSSIAN_SIGMA * n)) ** 2))
    weights = np.outer(*axes)
    weights /= weights.max()
    return np.maximum(weights, np.finfo(np.float32).tiny).astype(np.float32)


def pad_to_window(image: np.ndarray, window: tuple[int, int], pad_mode: str) -> np.ndarray:
    """``image`` (H, W, C) padded at the bottom and right to at least ``window``."""
    pad = [(0, max(w - n, 0)) for n, w in zip(image.shape[:2], window)]
    if not any(after for _, after in pad):
        return image
    return np.pad(image, [*pad, (0, 0)], mode=pad_mode)


def batches(corners: list[tuple[int, int]], batch_size: int
            ) -> Iterator[list[tuple[int, int]]]:
    """``corners`` in consecutive groups of ``batch_size`` (the last may be shorter)."""
    for start in range(0, len(corners), batch_size):
        yield corners[start:start + batch_size]


def fill_batch(batch: np.ndarray, batch_size: int) -> np.ndarray:
    """``batch`` completed to ``batch_size`` rows with zeros (one shape: one compile)."""
    filler = batch_size - len(batch)
    if not filler:
        return batch
    return np.concatenate([batch, np.zeros((filler, *batch.shape[1:]), batch.dtype)])


def progress(total: int, unit: str) -> tqdm:
    """A progress bar over ``total`` windows or tiles, shown from ``PROGRESS_WINDOWS`` on."""
    return tqdm(total=total, unit=unit, desc="predict", leave=False,
                disable=total < PROGRESS_WINDOWS, dynamic_ncols=True)


Band = tuple[int, np.ndarray]
"""(y, scores): the finished blended scores (rows, W, K) of image rows y ... y + rows - 1."""


def slide_bands(window_fn: WindowFn, image: np.ndarray, window: tuple[int, int],
                stride: tuple[int, int], blend: str = "constant", batch_size: int = 1,
                pad_mode: str = "constant") -> Iterator[Band]:
    """Class scores of ``image``, one row of windows at a time, top to bottom.

    image: float (H, W, C), any H, W >= 1. window_fn: the network on (batch_size, h, w, C)
    windows, returning (batch_size, h, w, K) scores aligned with its input. stride: (dy, dx),
    each in [1, window side]. Yields (y, float32 (rows, W, K)) bands that tile the image's
    rows in order, each as soon as no later window reaches it: only one window row of
    scores, (h, W, K), is held, so memory grows with the image's width, not its area.
    """
    if image.ndim != 3 or min(image.shape[:2]) < 1:
        raise ValueError(f"need an (H, W, C) image, got shape {image.shape}")
    height, width = image.shape[:2]
    padded = pad_to_window(image, window, pad_mode)
    (h, w), weights = window, blend_weights(window, blend)
    rows = window_starts(padded.shape[0], h, stride[0])
    columns = window_starts(padded.shape[1], w, stride[1])
    total = norm = None  # the scores and weights of padded rows rows[i] ... rows[i] + h - 1
    with progress(len(rows) * len(columns), "window") as bar:
        for i, y in enumerate(rows):
            if i:
                shift_up(total, y - rows[i - 1])
                shift_up(norm, y - rows[i - 1])
            for group in batches(columns, batch_size):
                cut = np.stack([padded[y:y + h, x:x + w] for x in group])
                scores = np.asarray(window_fn(fill_batch(cut, batch_size)), np.float32)
                if scores.shape[1:3] != (h, w):
                    raise ValueError(f"window_fn returned {scores.shape[1:3]} scores for "
                                     f"{(h, w)} windows; sliding needs outputs aligned to "
                                     "inputs")
                if total is None:
                    total = np.zeros((h, padded.shape[1], scores.shape[-1]), np.float32)
                    norm = np.zeros((h, padded.shape[1], 1), np.float32)
                for x, score in zip(group, scores):
                    total[:, x:x + w] += score * weights[..., None]
                    norm[:, x:x + w] += weights[..., None]
                bar.update(len(group))
            done = min(rows[i + 1] if i + 1 < len(rows) else y + h, height) - y
            if done > 0:
                yield y, total[:done, :width] / norm[:done, :width]


def shift_up(rows: np.ndarray, count: int) -> None:
    """Move ``rows`` (n, ...) up by ``count`` in place, zeros entering at the bottom."""
    rows[:len(rows) - count] = rows[count:]
    rows[len(rows) - count:] = 0


def assemble(bands: Iterator[Band], size: tuple[int, int]) -> np.ndarray:
    """The (H, W, K) array of ``bands`` covering ``size`` = (H, W); a band that is the whole
    image is returned as it is."""
    out = None
    for y, band in bands:
        if y == 0 and band.shape[0] == size[0]:
            return band
        if out is None:
            out = np.empty((*size, band.shape[-1]), band.dtype)
        out[y:y + band.shape[0]] = band
    return out


def predict_sliding(window_fn: WindowFn, image: np.ndarray, window: tuple[int, int],
                    stride: tuple[int, int], blend: str = "constant", batch_size: int = 1,
                    pad_mode: str = "constant") -> np.ndarray:
    """Class scores of every pixel of ``image``: :func:`slide_bands` (same arguments)
    assembled into one float32 (H, W, K) array."""
    bands = slide_bands(window_fn, image, window, stride, blend, batch_size, pad_mode)
    return assemble(bands, image.shape[:2])
