"""ISBI 2012 challenge scores on small segmentations worked by hand, and the thinning
against a plain queue-based transcription of Fiji's flooding."""

import collections
import math
import time

import numpy as np
import pytest

from fcnjax import isbi_metrics

LN2, LN3 = math.log(2), math.log(3)


def two_cells() -> np.ndarray:
    """6x9 membrane with two true cells: rows 1-4, columns 1-3 (12 px) and 5-7 (12 px)."""
    cells = np.zeros((6, 9), bool)
    cells[1:5, 1:4] = True
    cells[1:5, 5:8] = True
    return cells


def as_map(proposed_cells: np.ndarray) -> np.ndarray:
    """Membrane probabilities 0 / 1: the same binarisation at all 11 thresholds."""
    return np.where(proposed_cells, 0.0, 1.0)


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """Same dams (0) and the same segments up to their ids."""
    if not np.array_equal(a == 0, b == 0):
        return False
    pairs = set(zip(a[a > 0].tolist(), b[a > 0].tolist()))
    return len(pairs) == len({p for p, _ in pairs}) == len({q for _, q in pairs})


def test_thresholds_are_fijis_accumulated_doubles():
    th = isbi_metrics.THRESHOLDS
    assert len(th) == 11 and th[0] == 0.0 and th[5] == 0.5
    assert th[3] == 0.30000000000000004 and th[8] == 0.7999999999999999
    assert th[-1] == 0.9999999999999999  # < 1: a cell probability of exactly 1 stays cell
    assert isbi_metrics.CHALLENGE_KEYS == ("v_rand", "v_info", "rand_error", "pixel_error")


def test_perfect_segmentation_scores_perfectly():
    cells = two_cells()
    membrane = np.where(cells, 0.1, 0.9)
    assert isbi_metrics.challenge_scores(membrane, cells) == {
        "v_rand": 1.0, "v_info": 1.0, "rand_error": 0.0, "pixel_error": 0.0}
    assert isbi_metrics.pixel_disagreement(membrane, cells) == 0.0


def test_merging_two_cells_by_hand():
    """Column 4 called cell joins them. Rand, inside the truth: n = (12, 12) in one segment,
    z = 0: sum n^2 = sum t^2 = 288, sum s^2 = 24^2 = 576, F = 576 / 864 = 2/3. Thinning
    cannot split one basin, so V_Rand is 2/3 too. Info: H(T) = ln 2, H(S) = 0 (one segment,
    no membrane pixel inside the truth): Fiji's special case merge 1, split 0, F = 0.
    Pixels: TP 24, FP 4, FN 0 -> F = 48 / 52."""
    cells = two_cells()
    merged = cells.copy()
    merged[1:5, 4] = True
    truth = isbi_metrics.segments(cells)
    assert isbi_metrics.rand_scores(isbi_metrics.segments(merged), truth) == pytest.approx(
        {"split": 1.0, "merge": 0.5, "fscore": 2 / 3})
    assert isbi_metrics.rand_counts(isbi_metrics.segments(merged), truth).tolist() == [
        288, 288, 0]
    assert isbi_metrics.info_scores(isbi_metrics.thinned_segments(merged), truth) == {
        "split": 0.0, "merge": 1.0, "fscore": 0.0}
    assert isbi_metrics.challenge_scores(as_map(merged), cells) == pytest.approx({
        "v_rand": 2 / 3, "v_info": 0.0, "rand_error": 1 / 3, "pixel_error": 1 - 48 / 52})
    assert isbi_metrics.pixel_disagreement(as_map(merged), cells) == pytest.approx(4 / 54)


def test_splitting_a_cell_by_a_one_pixel_membrane():
    """Row 2 of the left cell called membrane: segments of 3 and 6 px, 3 membrane pixels
    (singletons), the right cell intact. sum n^2 + z = 9 + 36 + 3 + 144 = 192 = sum s^2 + z;
    sum t^2 = 288: split 2/3, merge 1, F = 384 / 480 = 0.8. Thinning: each row-2 pixel
    touches both parts, a dam, so V_Rand = 0.8 too. Info, n = 24: every segment lies in one
    true cell, so I = H(T) = ln 2; H(S) = 3/24 ln 8 + 6/24 ln 4 + 12/24 ln 2 + 3/24 ln 24
    = 1.75 ln 2 + ln 3 / 8; F = 2 ln 2 / (2.75 ln 2 + ln 3 / 8) = 0.678399."""
    cells = two_cells()
    split = cells.copy()
    split[2, 1:4] = False
    truth = isbi_metrics.segments(cells)
    assert isbi_metrics.rand_scores(isbi_metrics.segments(split), truth) == pytest.approx(
        {"split": 192 / 288, "merge": 1.0, "fscore": 0.8})
    thin = isbi_metrics.thinned_segments(split)
    assert (thin[2, 1:4] == 0).all()
    v_info = 2 * LN2 / (2.75 * LN2 + LN3 / 8)
    assert v_info == pytest.approx(0.678399, abs=1e-6)
    info = isbi_metrics.info_scores(thin, truth)
    assert info["merge"] == pytest.approx(1.0)  # I / H(T)
    assert info["split"] == pytest.approx(LN2 / (1.75 * LN2 + LN3 / 8))  # I / H(S)
    assert isbi_metrics.challenge_scores(as_map(split), cells) == pytest.approx({
        "v_rand": 0.8, "v_info": v_info, "rand_error": 0.2,
        "pixel_error": 1 - 42 / 45})  # TP 21, FN 3: F = 42 / 45


def test_thinning_a_two_pixel_membrane_changes_the_rand_score():
    """Rows 2 and 3 of the left cell called membrane (6 px). Unthinned: segments of 3 (row 1)
    and 3 (row 4), 6 singletons: sum n^2 + z = 9 + 9 + 6 + 144 = 168 = sum s^2 + z,
    sum t^2 = 288, F = 336 / 456 = 14/19, Rand error 5/19. Thinned: Fiji pops column by
    column, each row-2 pixel before the row-3 pixel below it; row 2 sees only the upper part
    and joins it, row 3 then sees upper and lower labels: dams. Segments 6, 3, 12 and 3 dams:
    sum n^2 + z = 36 + 9 + 144 + 3 = 192, F = 384 / 480 = 0.8; V_Info as in the one-pixel
    split (the same segment sizes): 2 ln 2 / (2.75 ln 2 + ln 3 / 8). Pixels: TP 18, FN 6,
    F = 36 / 42."""
    cells = two_cells()
    thick = cells.copy()
    thick[2:4, 1:4] = False
    thin = isbi_metrics.thinned_segments(thick)
    upper = thin[1, 1]
    assert upper > 0 and (thin[1:3, 1:4] == upper).all()
    assert (thin[3, 1:4] == 0).all() and (thin[4, 1:4] > 0).all() and thin[4, 1] != upper
    assert isbi_metrics.challenge_scores(as_map(thick), cells) == pytest.approx({
        "v_rand": 0.8, "v_info": 2 * LN2 / (2.75 * LN2 + LN3 / 8), "rand_error": 5 / 19,
        "pixel_error": 1 - 36 / 42})


def test_thinning_tie_breaks_and_edge_cases_by_hand():
    """Two membrane pixels between two cells: the first popped (left, or upper: Fiji's
    order is x outer, y inner) joins its cell, the second becomes the dam. Three: the middle
    one, reached from both sides in the second layer, is the dam. No cell pixel: Fiji's
    flooding makes the whole image one basin. Only cells: their components."""
    row = isbi_metrics.thinned_segments(np.array([[1, 0, 0, 1]], bool))
    assert row[0, 0] == row[0, 1] > 0 and row[0, 2] == 0 and row[0, 3] not in (0, row[0, 0])
    column = isbi_metrics.thinned_segments(np.array([[1], [0], [0], [1]], bool))
    np.testing.assert_array_equal(column.T, row)
    wide = isbi_metrics.thinned_segments(np.array([[1, 0, 0, 0, 1]], bool))[0]
    assert wide[0] == wide[1] > 0 and wide[2] == 0 and wide[3] == wide[4] not in (0, wide[0])
    np.testing.assert_array_equal(isbi_metrics.thinned_segments(np.zeros((2, 3), bool)),
                                  np.ones((2, 3)))
    assert same_partition(isbi_metrics.thinned_segments(np.ones((2, 2), bool)),
                          np.ones((2, 2), int))
    assert same_partition(isbi_metrics.thinned_segments(np.array([[1, 0, 1]], bool)),
                          np.array([[1, 0, 2]]))
    # 4-connectivity: diagonal neighbours are two segments
    assert same_partition(isbi_metrics.segments(np.eye(2, dtype=bool)),
                          np.array([[1, 0], [0, 2]]))


def flood_by_queue(cells: np.ndarray) -> np.ndarray:
    """Vincent & Soille's flooding of a binary image, transcribed one pixel at a time as
    Fiji's WatershedTransform2D runs it (cells at level 0, membranes at 255, 4-neighbours
    in the order x-1, y-1, x+1, y+1, ties in the order x outer, y inner)."""
    height, width = cells.shape
    mask, dam, init, queued = -2, 0, -1, -3
    label = {(x, y): init for x in range(width) for y in range(height)}

    def around(x, y):
        for u, v in ((x - 1, y), (x, y - 1), (x + 1, y), (x, y + 1)):
            if 0 <= u < width and 0 <= v < height:
                yield u, v

    pixels = [(x, y) for x in range(width) for y in range(height)]
    basins = 0
    for level in ([p for p in pixels if cells[p[1], p[0]]],
                  [p for p in pixels if not cells[p[1], p[0]]]):
        fifo, flag = collections.deque(), False
        for p in level:
            label[p] = mask
            if any(label[q] >= dam for q in around(*p)):
                label[p] = queued
                fifo.append(p)
        while fifo:
            p = fifo.popleft()
            for q in around(*p):
                if label[q] > 0:
                    if label[p] == queued or (label[p] == dam and flag):
                        label[p] = label[q]
                    elif label[p] > 0 and label[p] != label[q]:
                        label[p], flag = dam, False
                elif label[q] == dam:
                    if label[p] == queued:
                        label[p], flag = dam, True
                elif label[q] == mask:
                    label[q] = queued
                    fifo.append(q)
        for p in level:  # new minima
            if label[p] == mask:
                basins += 1
                label[p] = basins
                fifo.append(p)
                while fifo:
                    for q in around(*fifo.popleft()):
                        if label[q] == mask:
                            label[q] = basins
                            fifo.append(q)
    out = np.zeros((height, width), np.int64)
    for (x, y), value in label.items():
        out[y, x] = max(value, 0)
    return out


def test_thinning_equals_fijis_flooding_pixel_for_pixel():
    """The layer-at-once NumPy thinning against the queue, on random masks: noise of every
    density, smooth blobs, and Voronoi membranes of 1-6 px (where dams fall by order)."""
    rng = np.random.default_rng(0)
    from scipy import ndimage
    for trial in range(240):
        shape = tuple(rng.integers(1, 13, 2)) if trial < 160 else tuple(rng.integers(16, 30, 2))
        kind = trial % 3
        if kind == 0:
            cells = rng.random(shape) < rng.uniform(0.02, 0.95)
        elif kind == 1:
            cells = ndimage.gaussian_filter(rng.random(shape), rng.uniform(0.5, 2)) > 0.5
        else:
            cells = voronoi_cells(shape, rng, int(rng.integers(2, 12)), rng.uniform(0.5, 6))
        assert same_partition(flood_by_queue(cells), isbi_metrics.thinned_segments(cells)), (
            trial, cells.astype(int))


def test_a_stack_sums_the_2012_counts_and_averages_the_2016_scores():
    """Slice 1 perfect, slice 2 merged (as above). Rand pair counts [TP, FP, FN]: (288, 0, 0)
    and (288, 288, 0); summed (576, 288, 0): P = 2/3, R = 1, F = 0.8, Rand error 0.2, where
    averaging the slices' F-scores would give (1 + 2/3) / 2 = 5/6, error 1/6 = 0.1667.
    Pixels: (24, 0, 0) + (24, 4, 0) = (48, 4, 0), F = 96/100, error 0.04 (averaged:
    1 - (1 + 12/13) / 2 = 1/26 = 0.0385). The 2016 script averages: V_Rand = 5/6 (summed
    it would be 0.8), V_Info = (1 + 0) / 2 = 0.5."""
    cells = two_cells()
    merged = cells.copy()
    merged[1:5, 4] = True
    membranes = np.stack([as_map(cells), as_map(merged)])
    stack = np.stack([cells, cells])
    assert isbi_metrics.rand_error(membranes, stack) == pytest.approx(0.2)
    assert isbi_metrics.pixel_error(membranes, stack) == pytest.approx(0.04)
    assert isbi_metrics.v_rand(membranes, stack) == pytest.approx(5 / 6)
    assert isbi_metrics.v_info(membranes, stack) == pytest.approx(0.5)
    assert isbi_metrics.challenge_scores(membranes, stack) == pytest.approx(
        {"v_rand": 5 / 6, "v_info": 0.5, "rand_error": 0.2, "pixel_error": 0.04})
    averaged, _ = isbi_metrics.best_over_thresholds(
        membranes, stack, lambda p, t: isbi_metrics.rand_scores(
            isbi_metrics.segments(p), isbi_metrics.segments(t))["fscore"])
    assert 1 - averaged == pytest.approx(1 / 6)  # the per-slice average: not the 2012 score
    with pytest.raises(ValueError, match="one shape"):
        isbi_metrics.rand_error(membranes, cells)


def test_the_best_threshold_is_taken_ties_to_the_lowest():
    """The gap between the cells at cell probability 0.45 merges them at thresholds 0.0-0.4
    (F = 2/3) and not from 0.5 on; the cells (0.8) are cells up to 0.7999999999999999.
    F = 1 at 0.5, 0.6, 0.7, 0.79..: Fiji keeps the first maximum, 0.5."""
    cells = two_cells()
    membrane = np.where(cells, 0.2, 1.0)
    membrane[1:5, 4] = 0.55
    assert isbi_metrics.rand_error(membrane, cells) == 0.0
    assert isbi_metrics.v_rand(membrane, cells) == 1.0
    score, threshold = isbi_metrics.best_over_thresholds(
        membrane, cells, lambda p, t: isbi_metrics.rand_scores(
            isbi_metrics.segments(p), isbi_metrics.segments(t))["fscore"])
    assert score == 1.0 and threshold == 0.5
    # a NaN score (Fiji's V_Info when I = 0) is never the best: from 0.0, all is cell
    nan_at_zero = isbi_metrics.best_over_thresholds(
        np.where(cells, 0.1, 0.9), cells, lambda p, t: math.nan if p.all() else 0.5)
    assert nan_at_zero == (0.5, 0.1)


def test_slices_without_cells_are_left_out_and_sizes_may_differ():
    """A slice whose truth has no cell makes Fiji's counts 0/0; here it is skipped. Slices
    of different sizes go in as a list; an all-membrane truth has no score."""
    cells = two_cells()
    merged = cells.copy()
    merged[1:5, 4] = True
    empty = np.zeros((4, 5), bool)
    scores = isbi_metrics.challenge_scores([as_map(merged), np.full((4, 5), 0.3)],
                                           [cells, empty])
    assert scores == pytest.approx(isbi_metrics.challenge_scores(as_map(merged), cells))
    with pytest.raises(ValueError, match="no cell pixel"):
        isbi_metrics.challenge_scores(np.full((4, 5), 0.3), empty)


def test_information_scores_special_cases():
    """One true cell: H(T) = 0, Fiji's merge 0, split 1, F = 0. Independent segmentations,
    truth rows vs proposal columns of a 2x2 block: I = ln 2 + ln 2 - ln 4 = 0, F = 0/0 =
    NaN, as in Fiji (a threshold scoring NaN is never the best)."""
    one = np.ones((2, 2), int)
    assert isbi_metrics.info_scores(np.array([[1, 1], [2, 2]]), one) == {
        "split": 1.0, "merge": 0.0, "fscore": 0.0}
    independent = isbi_metrics.info_scores(np.array([[1, 2], [1, 2]]),
                                           np.array([[1, 1], [2, 2]]))
    assert independent["merge"] == independent["split"] == 0.0
    assert math.isnan(independent["fscore"])


def voronoi_cells(shape, rng, seeds: int, width: float) -> np.ndarray:
    """Voronoi cells with membranes ``width`` px wide: the gap between the nearest and the
    second nearest seed."""
    points = rng.random((seeds, 2)) * shape
    grid = np.stack(np.mgrid[:shape[0], :shape[1]], -1)[..., None, :]
    distance = np.sort(np.linalg.norm(grid - points, axis=-1), axis=-1)
    return distance[..., 1] - distance[..., 0] > width


def test_a_2x128x128_stack_scores_quickly_and_consistently():
    """Soft Voronoi membranes with noise: the one-pass scores equal the single ones (the
    5x512x512 case takes about 2-4 s on two loaded cores; nothing here asserts a time)."""
    rng = np.random.default_rng(1)
    cells = np.stack([voronoi_cells((128, 128), rng, 40, 2.0) for _ in range(2)])
    membrane = np.clip(np.where(cells, 0.25, 0.8) + rng.normal(0, 0.2, cells.shape), 0, 1)
    start = time.perf_counter()
    scores = isbi_metrics.challenge_scores(membrane, cells)
    print(f"2x128x128: {time.perf_counter() - start:.2f} s, {scores}")
    assert scores == pytest.approx({
        "v_rand": isbi_metrics.v_rand(membrane, cells),
        "v_info": isbi_metrics.v_info(membrane, cells),
        "rand_error": isbi_metrics.rand_error(membrane, cells),
        "pixel_error": isbi_metrics.pixel_error(membrane, cells)})
    assert 0.5 < scores["v_rand"] <= 1 and 0.5 < scores["v_info"] <= 1
    assert 0 <= scores["rand_error"] < 0.5 and 0 <= scores["pixel_error"] < 0.5
    assert set(isbi_metrics.isbi_scores(membrane, cells)) == {
        *isbi_metrics.CHALLENGE_KEYS, "pixel_disagreement"}
