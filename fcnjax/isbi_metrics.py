"""The ISBI 2012 EM challenge's pixel error and Rand error (Arganda-Carreras et al. 2015).

Both compare a membrane probability map with the binary ground truth (cells vs membranes)
and are 1 minus the best F-score over thresholds, the way the challenge's Fiji scripts
score a submission: at each threshold t in 0.0, 0.1, ..., 1.0 a pixel is cell where its
cell probability 1 - p_membrane exceeds t.

Pixel error: 1 - the maximal F-score of pixel similarity, the cell pixels being positives.

Rand error: 1 - the maximal F-score of the foreground-restricted Rand index. Cells are the
4-connected components of the cell pixels, in the truth and in the thresholded proposal.
Only pixels inside a true cell count (the truth's membranes, its "zero component", are
left out); a proposal membrane pixel among them is a segment of its own. With n_ij the
pixels in proposed segment i and true cell j, s_i = sum_j n_ij and t_j = sum_i n_ij:

    split score  V_split = sum n_ij^2 / sum t_j^2     (1: no true cell is split)
    merge score  V_merge = sum n_ij^2 / sum s_i^2     (1: no two true cells are merged)
    F-score      V_Rand  = 2 sum n_ij^2 / (sum s_i^2 + sum t_j^2)

Over several images each threshold's F-scores are averaged, then maximised. Everything is
NumPy/SciPy on the host.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy import ndimage

THRESHOLDS = tuple(round(0.1 * i, 1) for i in range(11))
"""The challenge script's thresholds on the cell probability: 0.0 to 1.0 by 0.1."""


def segments(cells: np.ndarray) -> np.ndarray:
    """int32 (H, W): 4-connected components of the bool cell mask numbered 1 .. n, 0 off."""
    return ndimage.label(cells)[0].astype(np.int32)


def rand_scores(proposal: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Foreground-restricted Rand split, merge and F-scores of two segmentations.

    proposal, truth: int (H, W) segment ids, 0 = membrane. Returns {"split", "merge",
    "fscore"}; all 1.0 when the truth has no cell pixel.
    """
    if proposal.shape != truth.shape:
        raise ValueError(f"proposal {proposal.shape} and truth {truth.shape} differ in shape")
    inside = truth > 0
    p, t = proposal[inside].astype(np.int64), truth[inside].astype(np.int64)
    if t.size == 0:
        return {"split": 1.0, "merge": 1.0, "fscore": 1.0}
    singletons = float(np.count_nonzero(p == 0))
    joint = np.unique(t[p > 0] * (int(p.max()) + 1) + p[p > 0], return_counts=True)[1]
    sum_nij2 = float(np.sum(joint.astype(np.float64) ** 2)) + singletons
    sum_t2 = float(np.sum(np.bincount(t).astype(np.float64) ** 2))
    sum_s2 = float(np.sum(np.bincount(p[p > 0]).astype(np.float64) ** 2)) + singletons
    return {"split": sum_nij2 / sum_t2, "merge": sum_nij2 / sum_s2,
            "fscore": 2 * sum_nij2 / (sum_s2 + sum_t2)}


def pixel_fscore(proposed_cells: np.ndarray, true_cells: np.ndarray) -> float:
    """F-score of cell pixels: 2 TP / (2 TP + FP + FN); 1.0 when neither has a cell pixel."""
    tp = np.count_nonzero(proposed_cells & true_cells)
    wrong = np.count_nonzero(proposed_cells ^ true_cells)
    return 1.0 if tp + wrong == 0 else 2 * tp / (2 * tp + wrong)


def _as_stacks(membrane: np.ndarray, true_cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    membrane, true_cells = np.asarray(membrane, np.float64), np.asarray(true_cells, bool)
    if membrane.shape != true_cells.shape or membrane.ndim not in (2, 3):
        raise ValueError(f"need membrane probabilities and true cell masks of one shape, "
                         f"(H, W) or (N, H, W); got {membrane.shape} and {true_cells.shape}")
    return (membrane[None], true_cells[None]) if membrane.ndim == 2 else (membrane, true_cells)


def best_over_thresholds(membrane: np.ndarray, true_cells: np.ndarray, score,
                         thresholds: Sequence[float] = THRESHOLDS) -> tuple[float, float]:
    """Max over thresholds of the mean over images of ``score(proposed_cells, true_cells)``.

    membrane: float (H, W) or (N, H, W) membrane probabilities; true_cells: bool, same shape.
    Returns (best score, its threshold on the cell probability).
    """
    membrane, true_cells = _as_stacks(membrane, true_cells)
    means = [np.mean([score(1.0 - m > t, c) for m, c in zip(membrane, true_cells)])
             for t in thresholds]
    best = int(np.argmax(means))
    return float(means[best]), float(thresholds[best])


def rand_error(membrane: np.ndarray, true_cells: np.ndarray,
               thresholds: Sequence[float] = THRESHOLDS) -> float:
    """1 - maximal foreground-restricted Rand F-score (the challenge's Rand error)."""
    def fscore(proposed, truth):
        return rand_scores(segments(proposed), segments(truth))["fscore"]
    return 1.0 - best_over_thresholds(membrane, true_cells, fscore, thresholds)[0]


def pixel_error(membrane: np.ndarray, true_cells: np.ndarray,
                thresholds: Sequence[float] = THRESHOLDS) -> float:
    """1 - maximal F-score of pixel similarity (the challenge's pixel error)."""
    return 1.0 - best_over_thresholds(membrane, true_cells, pixel_fscore, thresholds)[0]


def pixel_disagreement(membrane: np.ndarray, true_cells: np.ndarray,
                       threshold: float = 0.5) -> float:
    """Fraction of pixels whose class at ``threshold`` differs from the truth (the older
    definition: squared Euclidean distance between binary labelings, per pixel)."""
    membrane, true_cells = _as_stacks(membrane, true_cells)
    return float(np.mean((1.0 - membrane > threshold) != true_cells))


def isbi_scores(membrane: np.ndarray, true_cells: np.ndarray) -> dict[str, float]:
    """{"rand_error", "pixel_error", "pixel_disagreement"} of one or several images."""
    return {"rand_error": rand_error(membrane, true_cells),
            "pixel_error": pixel_error(membrane, true_cells),
            "pixel_disagreement": pixel_disagreement(membrane, true_cells)}
