"""The ISBI 2012 EM challenge's scores, computed as the challenge's Fiji code computes them.

Two generations of scores, both comparing a membrane probability map with the binary
ground truth (cells vs membranes), both maximised over thresholds:

- the 2012 leaderboard's (the U-Net paper's table: Rand error 0.0382, pixel error 0.0611):
  ``rand_error`` and ``pixel_error``, unthinned, counts summed over the slices;
- the 2016 evaluation script's, the leaderboard's final metrics: ``v_rand`` and ``v_info``,
  after thinning the proposal's boundaries, scores averaged over the slices.

``challenge_scores(membrane, true_cells)`` gives all four as ``{"v_rand", "v_info",
"rand_error", "pixel_error"}``: ``v_rand`` / ``v_info`` are scores (1 best), ``rand_error``
/ ``pixel_error`` errors (0 best), each at its own best threshold. Inputs: membrane
probabilities, float (H, W), (N, H, W) or a sequence of 2-D maps (sizes may differ), and
the true cell masks, bool, same shapes (True = cell / neuron interior, False = membrane).

What the Fiji code does
-----------------------
Read from github.com/fiji/Trainable_Segmentation (commit 41c7083, 2024),
``src/main/java/trainableSegmentation/metrics/`` ``RandError.java``, ``PixelError.java``,
``VariationOfInformation.java``, ``Metrics.java``, ``ClassificationStatistics.java`` and
``utils/WatershedTransform2D.java``, ``utils/Neighborhood2DC4.java``,
``utils/PixelRecord.java``; and the 2016 script, "Segmentation evaluation after border
thinning - Script" (imagej.net; imagej/imagej.github.io, version of January 12, 2016).

Proposal: an image of *cell* probabilities (white = cell); here ``1 - membrane``. The
thresholds are those of Fiji's loop ``for (th = 0.0; th <= 1.0; th += 0.1)`` in doubles:
0.0, 0.1, 0.2, 0.30000000000000004, ..., 0.7999999999999999, 0.8999999999999999,
0.9999999999999999 (11; :data:`THRESHOLDS`). A pixel is proposed cell where its cell
probability ``> th``. The truth is binarised with the same ``> th`` (Rand, V_Rand,
V_Info) or ``> 0`` (pixel error): the same for binary labels. At every threshold each
slice is scored in 2-D.

Pixel error (``PixelError.getPixelErrorMaximalFScore(0, 1, 0.1)``): cell pixels are the
positives; TP, FP, FN counted per slice and *summed over the slices*; F-score from the sums;
``pixel_error = 1 - max_th F``.

Rand error (``RandError.getForegroundRestrictedRandIndexMaximalFScore(0, 1, 0.1)``):
segments are the *4-connected* components of the cell pixels, in the truth and in the
thresholded proposal (``Utils.connectedComponents(.., 4)``); label 0 is membrane. Only
pixels inside a true cell count: the truth's zero component is pruned. A proposal
membrane pixel among them (proposal label 0) is a segment of its own, a singleton. With
n_ij the pixels of true cell i in proposed segment j > 0, z the pixels of true cells
proposed membrane, t_i = sum_j n_ij + (i's pixels in z) the true cell sizes and
s_j = sum_i n_ij (``getForegroundRestrictedRandIndexStatsN2``, normalised by N^2):

    TP = sum n_ij^2 + z,   FP = sum s_j^2 - sum n_ij^2,   FN = sum t_i^2 - TP
    split score = TP / (TP + FN) = (sum n_ij^2 + z) / sum t_i^2     (1: nothing split)
    merge score = TP / (TP + FP) = (sum n_ij^2 + z) / (sum s_j^2 + z) (1: nothing merged)
    F = 2 P R / (P + R) = 2 (sum n_ij^2 + z) / (sum s_j^2 + z + sum t_i^2)

TP, FP, FN are *summed over the slices* before the F-score; ``rand_error = 1 - max_th F``.
F-scores follow ``ClassificationStatistics``: precision is 1 when FP = 0, recall 1 when
FN = 0, F = 0 when both are 0. The max starts at 0 and takes a later threshold only when
strictly larger, so ties go to the lowest threshold and NaN scores are skipped.

V_Rand (2016 script: ``RandError.getMaximalVRandAfterThinning(0, 1, 0.1, true)``): the same
foreground-restricted Rand F-score, but the proposal's segments come from *thinning*: the
binarised proposal (membrane = 255, cell = 0) goes through ``WatershedTransform2D(.., 4)``,
Vincent & Soille's flooding watershed with 4-connectivity: the cell pixels' 4-connected
components are the basins, and the membrane pixels are flooded breadth-first from them,
each taking the label of the basin that reaches it, or becoming a one-pixel "dam" (label 0,
then a singleton as above) where two basins meet; a proposal with no cell pixel becomes one
segment. So the membranes shrink to one-pixel dams and their pixels join the cells; which
side a dam falls on follows Fiji's processing order (below). The last argument ``true``
(``perSliceAverage``) makes the stack's score the *mean of the per-slice F-scores*;
``v_rand = max_th mean_slices F``.

V_Info (2016 script: ``VariationOfInformation.getMaximalVInfoAfterThinning(0, 1, 0.1)``):
the same thinned segments and foreground restriction, the information-theoretic F-score
(``foregroundRestrictedFscore``). With p = counts / n, n the true cell pixels, each
proposal-membrane pixel a singleton of its own:

    H(T) = -sum_i (t_i/n) log(t_i/n)          H(S) = -sum_j (s_j/n) log(s_j/n) + (z/n) log n
    H(S, T) = -sum_ij (n_ij/n) log(n_ij/n) + (z/n) log n,    I = H(S) + H(T) - H(S, T)
    merge score = I / H(T)   (Fiji's "precision"),   split score = I / H(S)   ("recall")
    F = 2 merge split / (merge + split) = 2 I / (H(S) + H(T))

with Fiji's special cases: H(T) = 0 (one true cell) gives merge 0, split 1; H(S) = 0 (one
proposed segment, no membrane pixel inside the truth) gives merge 1, split 0 (this one wins
when both hold); either way F = 0; I = 0 gives NaN (a threshold then skipped). Per-slice
F-scores are *averaged over the slices* (``getForegroundRestrictedScoreAfterThinning``);
``v_info = max_th mean_slices F``.

So the unthinned 2012 scores sum counts over the slices (micro-average), the thinned 2016
scores average the slices' F-scores (macro-average).

The thinning, exactly (:func:`thinned_segments`)
------------------------------------------------
Fiji sorts the pixels by value (stable; ties in creation order: x outer, y inner, i.e.
column by column) and floods level 255 from a FIFO queue seeded with the membrane pixels
next to a basin, in that order; each pixel popped looks at its 4 neighbours in the order
(x-1, y), (x, y-1), (x+1, y), (x, y+1), takes the label of the labelled neighbours if they
all carry the same one, becomes a dam (0) if they carry two or more, and queues its
unvisited membrane neighbours. Flooding a binary image is a breadth-first search, so the
queue holds the membrane pixels layer by layer, layer d being the pixels at city-block
distance d from the nearest cell (``ndimage.distance_transform_cdt``). Here each layer is
processed at once with NumPy: a pixel's labelled neighbours are those of layer d - 1 plus
those of its own layer popped before it; the order inside a layer (the queue's: layer 1 in
Fiji's pixel order, layer d + 1 by the first popped neighbour and then the direction) is
computed, and the same-layer dependencies are resolved by iterating to the fixed point
(unique: they form a DAG along the order). The result equals Fiji's pixel for pixel (the
tests compare it with a plain queue-based transcription of the algorithm on random images).

Remaining differences from Fiji
-------------------------------
- Cell probabilities are ``1 - membrane`` computed in float64 from the given array; a
  submission is a float32 image of cell probabilities. A pixel whose float32 value of
  ``1 - p`` and float64 value fall on two sides of a threshold (within ~6e-8 of it) is
  binarised differently.
- A slice whose truth has no cell pixel makes Fiji's counts 0/0 = NaN (and the stack's
  score at every threshold NaN, so the maximum 0); here it is left out (no counts, no
  slice in the averages); a stack with no true cell pixel at all is a ValueError.
- Fiji computes entropies from a contingency matrix normalised by n and summed in
  floating point; here from the integer counts (Rand counts are exact int64). Results
  agree to rounding (~1e-15), except that with exactly one true cell Fiji's H(T) may come
  out ~1e-16 instead of 0 and so miss its special case, which is applied here.
- Fiji labels with 16-bit images (at most 65535 segments per slice); no such limit here.

Everything is NumPy/SciPy on the host; no Python loop runs over pixels.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from scipy import ndimage


def fiji_thresholds(start: float = 0.0, stop: float = 1.0, step: float = 0.1
                    ) -> tuple[float, ...]:
    """Fiji's ``for (th = start; th <= stop; th += step)`` thresholds, accumulated in doubles."""
    values, th = [], start
    while th <= stop:
        values.append(th)
        th += step
    return tuple(values)


THRESHOLDS = fiji_thresholds()
"""The challenge scripts' 11 thresholds on the cell probability, 0.0 to 0.9999999999999999."""

CHALLENGE_KEYS = ("v_rand", "v_info", "rand_error", "pixel_error")
"""The keys of :func:`challenge_scores`."""

_NONE = np.iinfo(np.int64).max
_NONE32 = np.iinfo(np.int32).max


# ----------------------------------------------------------------------------- segments

def segments(cells: np.ndarray) -> np.ndarray:
    """int32 (H, W): 4-connected components of the bool cell mask numbered 1 .. n, 0 off."""
    return ndimage.label(np.asarray(cells, bool))[0].astype(np.int32)


def thinned_segments(cells: np.ndarray) -> np.ndarray:
    """int32 (H, W): the 2016 script's thinned segmentation of a binarised proposal.

    Fiji's ``WatershedTransform2D(binary proposal, 4)``: the 4-connected components of the
    cell pixels flooded over the membrane pixels; where two meet, a one-pixel dam, 0. No
    cell pixel: one segment, all 1. Label ids are arbitrary (only the partition counts).
    """
    cells = np.asarray(cells, bool)
    if cells.ndim != 2:
        raise ValueError(f"need one 2-D cell mask, got shape {cells.shape}")
    return _thinned(cells, segments(cells))


def _thinned(cells: np.ndarray, basins: np.ndarray) -> np.ndarray:
    """:func:`thinned_segments` given ``basins = segments(cells)``."""
    if not cells.any():
        return np.ones(cells.shape, np.int32)
    if cells.all():
        return basins
    # Fiji's (x, y) grid, x outer: the row-major order of the transpose is Fiji's pixel order.
    grid = np.ascontiguousarray(cells.T)
    stride = grid.shape[1] + 2
    offsets = np.array([-stride, -1, stride, 1])  # (x-1, y), (x, y-1), (x+1, y), (x, y+1)
    labels = np.full((grid.shape[0] + 2, stride), -1, np.int32)  # -1: not labelled (yet)
    labels[1:-1, 1:-1] = np.where(grid, basins.T, -1)
    layer = np.full(labels.shape, -1, np.int32)
    layer[1:-1, 1:-1] = ndimage.distance_transform_cdt(~grid, metric="taxicab")
    labels, layer = labels.ravel(), layer.ravel()
    border = np.flatnonzero(layer > 0)  # in Fiji's order
    depth = layer[border]
    border = border[np.argsort(depth.astype(np.uint16) if depth.max() < 2 ** 16 else depth,
                               kind="stable")]
    starts = np.searchsorted(layer[border], np.arange(1, int(layer.max()) + 2))
    rank = np.full(labels.shape, -1, np.int64)
    order = border[starts[0]:starts[1]]  # layer 1, in Fiji's pixel order
    for d in range(1, len(starts)):
        rank[order] = np.arange(order.size)
        labels[order] = _flood_layer(labels, layer, rank, order, offsets, d)
        if d + 1 < len(starts):  # layer d + 1 in queue order: first popped neighbour, direction
            following = border[starts[d]:starts[d + 1]]
            behind = following[:, None] - offsets
            key = np.where(layer[behind] == d, rank[behind] * 4 + np.arange(4), _NONE)
            order = following[np.argsort(key.min(axis=1))]
    return labels.reshape(layer.size // stride, stride)[1:-1, 1:-1].T.copy()


def _flood_layer(labels, layer, rank, order, offsets, d) -> np.ndarray:
    """Labels of the membrane pixels ``order`` (layer d, in queue order) as Fiji's flooding
    gives them: the one label of their labelled neighbours (layer d - 1, and those of layer d
    popped before them), 0 (a dam) for two or more, 0 for none but dams."""
    near = order[:, None] + offsets
    known = labels[near]  # layer d - 1 (and basins): final; layers d, d + 1: still -1
    low = np.where(known > 0, known, _NONE32).min(axis=1)
    high = known.max(axis=1)
    result = np.where(low == high, low, 0)
    earlier = (layer[near] == d) & (rank[near] < rank[order][:, None])
    # Same-layer neighbours popped before: recompute a pixel while one of those changed
    # (a DAG along the queue order, so this stops at its one fixed point). A pixel whose
    # layer d - 1 neighbours already disagree stays a dam whatever they say.
    open_ = ~((high > 0) & (low != high))
    rows = np.flatnonzero(earlier.any(axis=1) & open_)
    source = rank[near]
    while rows.size:
        seen = np.where(earlier[rows], result[np.where(earlier[rows], source[rows], 0)], -1)
        low2 = np.minimum(low[rows], np.where(seen > 0, seen, _NONE32).min(axis=1))
        high2 = np.maximum(high[rows], seen.max(axis=1))
        update = np.where(low2 == high2, low2, 0)
        changed = rows[update != result[rows]]
        result[rows] = update
        ahead = order[changed][:, None] + offsets
        later = (layer[ahead] == d) & (rank[ahead] > changed[:, None])
        rows = np.unique(rank[ahead][later])
        rows = rows[open_[rows]]
    return result


# ----------------------------------------------------------------------- per-slice scores

class _Truth:
    """A true segmentation's cell pixels (flat indices), their ids and the cell sizes:
    computed once per slice, used at every threshold."""

    def __init__(self, truth: np.ndarray):
        self.shape = np.shape(truth)
        flat = np.asarray(truth).ravel()
        self.inside = np.flatnonzero(flat > 0)
        self.ids = flat[self.inside].astype(np.int64)
        self.rows = int(self.ids.max()) + 1 if self.ids.size else 1
        sizes = np.bincount(self.ids)
        self.sizes = sizes[sizes > 0]


def _overlap(proposal: np.ndarray, truth):
    """(n, z, true cell sizes, proposed segment sizes, joint counts n_ij) inside the truth's
    cells (truth: int (H, W) ids or a ``_Truth``); int64 arrays of the non-zero counts."""
    truth = truth if isinstance(truth, _Truth) else _Truth(truth)
    proposal = np.asarray(proposal)
    if proposal.shape != truth.shape:
        raise ValueError(f"proposal {proposal.shape} and truth {truth.shape} differ in shape")
    p = proposal.ravel()[truth.inside].astype(np.int64)
    none = np.zeros(0, np.int64)
    width = int(p.max()) + 1 if p.size else 1
    if truth.rows * width <= 4 * p.size + 4096:  # the whole table: one bincount
        table = np.bincount(truth.ids * width + p, minlength=truth.rows * width)
        table = table.reshape(truth.rows, width)
        z, s_sizes, joint = int(table[:, 0].sum()), table[:, 1:].sum(axis=0), table[:, 1:]
    else:
        on = p > 0
        z = int(p.size - np.count_nonzero(on))
        s_sizes = np.bincount(p[on]) if z < p.size else none
        joint = (np.unique(truth.ids[on] * width + p[on], return_counts=True)[1]
                 if z < p.size else none)
    return (int(p.size), z, truth.sizes, s_sizes[s_sizes > 0], joint[joint > 0])


def rand_counts(proposal: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """int64 [TP, FP, FN] of the foreground-restricted Rand index (Fiji's N^2 pair counts).

    proposal, truth: int (H, W) segment ids, 0 = membrane. TP = sum n_ij^2 + z, FP =
    sum s_j^2 - sum n_ij^2, FN = sum t_i^2 - TP; all 0 when the truth has no cell pixel.
    """
    _, z, t, s, joint = _overlap(proposal, truth)
    same = int(np.sum(joint * joint))
    tp = same + z
    return np.array([tp, int(np.sum(s * s)) - same, int(np.sum(t * t)) - tp], np.int64)


def fscore(tp, fp, fn):
    """``ClassificationStatistics``' F-score (arrays broadcast): precision 1 when FP = 0,
    recall 1 when FN = 0, F = 2 P R / (P + R), 0 when P + R = 0."""
    tp, fp, fn = (np.asarray(x, np.float64) for x in (tp, fp, fn))
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(fp == 0, 1.0, tp / (tp + fp))
        recall = np.where(fn == 0, 1.0, tp / (tp + fn))
        total = precision + recall
        f = np.where(total > 0, 2 * precision * recall / np.where(total > 0, total, 1), 0.0)
    return float(f) if f.ndim == 0 else f


def rand_scores(proposal: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Foreground-restricted Rand split, merge and F-scores of two segmentations.

    proposal, truth: int (H, W) segment ids, 0 = membrane. Returns {"split", "merge",
    "fscore"}; all 1.0 when the truth has no cell pixel.
    """
    tp, fp, fn = (float(c) for c in rand_counts(proposal, truth))
    if tp == 0:
        return {"split": 1.0, "merge": 1.0, "fscore": 1.0}
    return {"split": tp / (tp + fn), "merge": tp / (tp + fp), "fscore": fscore(tp, fp, fn)}


def _entropy(sizes: np.ndarray, n: int) -> float:
    p = sizes / n
    return float(-np.sum(p * np.log(p)))


def info_scores(proposal: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Foreground-restricted information-theoretic split, merge and F-scores (Fiji's
    ``foregroundRestrictedFscore``): split I/H(S), merge I/H(T), F = 2 I / (H(S) + H(T)),
    with Fiji's special cases for H(T) = 0 or H(S) = 0 (F = 0); all 1.0 when the truth has
    no cell pixel. proposal, truth: int (H, W) segment ids, 0 = membrane (singletons)."""
    n, z, t, s, joint = _overlap(proposal, truth)
    if n == 0:
        return {"split": 1.0, "merge": 1.0, "fscore": 1.0}
    singles = z / n * np.log(n)
    h_truth = _entropy(t, n)
    h_proposal = _entropy(s, n) + singles
    mutual = h_truth + h_proposal - (_entropy(joint, n) + singles)
    with np.errstate(divide="ignore", invalid="ignore"):
        merge, split = np.float64(mutual) / h_truth, np.float64(mutual) / h_proposal
        if h_truth == 0:
            merge, split = 0.0, 1.0
        if h_proposal == 0:
            merge, split = 1.0, 0.0
        f = 2 * merge * split / np.float64(merge + split)
    return {"split": float(split), "merge": float(merge), "fscore": float(f)}


def pixel_counts(proposed_cells: np.ndarray, true_cells: np.ndarray) -> np.ndarray:
    """int64 [TP, FP, FN] of cell pixels (cells are the positives)."""
    proposed_cells, true_cells = np.asarray(proposed_cells, bool), np.asarray(true_cells, bool)
    tp = np.count_nonzero(proposed_cells & true_cells)
    return np.array([tp, np.count_nonzero(proposed_cells) - tp,
                     np.count_nonzero(true_cells) - tp], np.int64)


# ------------------------------------------------------------------------------ stacks

def _slices(membrane, true_cells) -> list[tuple[np.ndarray, np.ndarray]]:
    """(membrane float64 (H, W), true cells bool (H, W)) pairs of an image, a stack or
    sequences of 2-D maps."""
    def as_list(x, dtype):
        if isinstance(x, np.ndarray) or not isinstance(x, (list, tuple)):
            x = np.asarray(x, dtype)
            return [x] if x.ndim == 2 else list(x) if x.ndim == 3 else None
        x = [np.asarray(m, dtype) for m in x]
        return x if all(m.ndim == 2 for m in x) else None
    maps, cells = as_list(membrane, np.float64), as_list(true_cells, bool)
    if (maps is None or cells is None or len(maps) != len(cells) or not maps
            or any(m.shape != c.shape for m, c in zip(maps, cells))):
        raise ValueError("need membrane probabilities and true cell masks of one shape, "
                         "(H, W), (N, H, W) or sequences of 2-D maps; got "
                         f"{getattr(membrane, 'shape', type(membrane).__name__)} and "
                         f"{getattr(true_cells, 'shape', type(true_cells).__name__)}")
    return list(zip(maps, cells))


def _best(scores: Sequence[float], thresholds: Sequence[float]) -> tuple[float, float]:
    """Fiji's maximum: from 0, a later score only when strictly larger (NaN never)."""
    best, at = 0.0, float(thresholds[0])
    for score, th in zip(scores, thresholds):
        if score > best:
            best, at = float(score), float(th)
    return best, at


def _tables(membrane, true_cells, thresholds: Sequence[float], thinned: bool = True,
            unthinned: bool = True) -> dict[str, np.ndarray]:
    """Per slice and threshold: "rand" and "pixel" counts (N, T, 3), "v_rand" and "v_info"
    per-slice F-scores (N, T), of the slices whose truth has a cell pixel."""
    pairs = [(m, c) for m, c in _slices(membrane, true_cells) if c.any()]
    if not pairs:
        raise ValueError("the truth has no cell pixel: the challenge scores are undefined")
    shape = (len(pairs), len(thresholds))
    out = {"rand": np.zeros(shape + (3,), np.int64), "pixel": np.zeros(shape + (3,), np.int64),
           "v_rand": np.zeros(shape), "v_info": np.zeros(shape)}
    for i, (membrane_map, cells) in enumerate(pairs):
        truth = _Truth(segments(cells))
        cell_probability = 1.0 - membrane_map
        for j, th in enumerate(thresholds):
            proposed = cell_probability > th
            basins = segments(proposed)
            if unthinned:
                out["pixel"][i, j] = pixel_counts(proposed, cells)
                out["rand"][i, j] = rand_counts(basins, truth)
            if thinned:
                thin = _thinned(proposed, basins)
                out["v_rand"][i, j] = fscore(*rand_counts(thin, truth))
                out["v_info"][i, j] = info_scores(thin, truth)["fscore"]
    return out


def best_over_thresholds(membrane, true_cells, score: Callable[[np.ndarray, np.ndarray], float],
                         thresholds: Sequence[float] = THRESHOLDS) -> tuple[float, float]:
    """Max over thresholds of the mean over slices of ``score(proposed_cells, true_cells)``
    (the 2016 script's per-slice average), with Fiji's maximum (ties: lowest threshold).

    membrane: float (H, W), (N, H, W) or 2-D maps; true_cells: bool, same shapes.
    Returns (best score, its threshold on the cell probability).
    """
    pairs = _slices(membrane, true_cells)
    means = [np.mean([score(1.0 - m > t, c) for m, c in pairs]) for t in thresholds]
    return _best(means, thresholds)


def rand_error(membrane, true_cells, thresholds: Sequence[float] = THRESHOLDS) -> float:
    """1 - maximal foreground-restricted Rand F-score, pair counts summed over the slices
    (the 2012 leaderboard's Rand error; Fiji's
    ``getForegroundRestrictedRandIndexMaximalFScore``)."""
    counts = _tables(membrane, true_cells, thresholds, thinned=False)["rand"].sum(axis=0)
    return 1.0 - _best(fscore(*counts.T), thresholds)[0]


def pixel_error(membrane, true_cells, thresholds: Sequence[float] = THRESHOLDS) -> float:
    """1 - maximal F-score of cell pixels, counts summed over the slices (the 2012
    leaderboard's pixel error, Fiji's ``getPixelErrorMaximalFScore``)."""
    counts = _tables(membrane, true_cells, thresholds, thinned=False)["pixel"].sum(axis=0)
    return 1.0 - _best(fscore(*counts.T), thresholds)[0]


def v_rand(membrane, true_cells, thresholds: Sequence[float] = THRESHOLDS) -> float:
    """Maximal foreground-restricted Rand F-score after thinning, per-slice F-scores
    averaged (the 2016 script's V_Rand; 1 best)."""
    scores = _tables(membrane, true_cells, thresholds, unthinned=False)["v_rand"]
    return _best(scores.mean(axis=0), thresholds)[0]


def v_info(membrane, true_cells, thresholds: Sequence[float] = THRESHOLDS) -> float:
    """Maximal foreground-restricted information-theoretic F-score after thinning,
    per-slice F-scores averaged (the 2016 script's V_Info; 1 best)."""
    scores = _tables(membrane, true_cells, thresholds, unthinned=False)["v_info"]
    return _best(scores.mean(axis=0), thresholds)[0]


def challenge_scores(membrane, true_cells, thresholds: Sequence[float] = THRESHOLDS
                     ) -> dict[str, float]:
    """All four scores in one pass over the slices and thresholds:

    - ``"v_rand"``: V_Rand after thinning, the 2016 script's (:func:`v_rand`), 1 best;
    - ``"v_info"``: V_Info after thinning, the 2016 script's (:func:`v_info`), 1 best;
    - ``"rand_error"``: the 2012 Rand error, unthinned (:func:`rand_error`), 0 best;
    - ``"pixel_error"``: the 2012 pixel error (:func:`pixel_error`), 0 best.

    membrane: membrane probabilities, float (H, W), (N, H, W) or a sequence of 2-D maps;
    true_cells: bool masks of the same shapes, True inside cells.
    """
    tables = _tables(membrane, true_cells, thresholds)
    return {"v_rand": _best(tables["v_rand"].mean(axis=0), thresholds)[0],
            "v_info": _best(tables["v_info"].mean(axis=0), thresholds)[0],
            "rand_error": 1.0 - _best(fscore(*tables["rand"].sum(axis=0).T), thresholds)[0],
            "pixel_error": 1.0 - _best(fscore(*tables["pixel"].sum(axis=0).T), thresholds)[0]}


def pixel_disagreement(membrane, true_cells, threshold: float = 0.5) -> float:
    """Fraction of pixels whose class at ``threshold`` differs from the truth (the older
    definition: squared Euclidean distance between binary labelings, per pixel)."""
    pairs = _slices(membrane, true_cells)
    wrong = sum(np.count_nonzero((1.0 - m > threshold) != c) for m, c in pairs)
    return float(wrong / sum(c.size for _, c in pairs))


def isbi_scores(membrane, true_cells) -> dict[str, float]:
    """:func:`challenge_scores` and ``"pixel_disagreement"`` of one or several images."""
    return {**challenge_scores(membrane, true_cells),
            "pixel_disagreement": pixel_disagreement(membrane, true_cells)}
