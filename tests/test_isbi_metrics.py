"""ISBI 2012 pixel and Rand errors on small segmentations worked by hand."""

import numpy as np
import pytest

from fcnjax import isbi_metrics


def two_cells() -> np.ndarray:
    """6x9 membrane with two true cells: rows 1-4, columns 1-3 (12 px) and 5-7 (12 px)."""
    cells = np.zeros((6, 9), bool)
    cells[1:5, 1:4] = True
    cells[1:5, 5:8] = True
    return cells


def test_perfect_segmentation_scores_zero_errors():
    cells = two_cells()
    membrane = np.where(cells, 0.1, 0.9)
    assert isbi_metrics.rand_error(membrane, cells) == 0.0
    assert isbi_metrics.pixel_error(membrane, cells) == 0.0
    assert isbi_metrics.pixel_disagreement(membrane, cells) == 0.0


def test_merging_two_cells_by_hand():
    """Column 4 called cell joins them: inside the truth n = (12, 12) in one segment, so
    sum n^2 = sum t^2 = 288, sum s^2 = 24^2 = 576, F = 576 / 864 = 2/3."""
    cells = two_cells()
    merged = cells.copy()
    merged[1:5, 4] = True
    scores = isbi_metrics.rand_scores(isbi_metrics.segments(merged),
                                      isbi_metrics.segments(cells))
    assert scores == pytest.approx({"split": 1.0, "merge": 0.5, "fscore": 2 / 3})
    membrane = np.where(merged, 0.0, 1.0)
    assert isbi_metrics.rand_error(membrane, cells) == pytest.approx(1 / 3)
    # pixels: TP 24, FP 4, FN 0 -> F = 48 / 52
    assert isbi_metrics.pixel_error(membrane, cells) == pytest.approx(1 - 48 / 52)
    assert isbi_metrics.pixel_disagreement(membrane, cells) == pytest.approx(4 / 54)


def test_splitting_a_cell_by_hand():
    """Row 2 of the left cell called membrane: segments of 3 and 6 px and 3 singletons,
    the right cell intact. sum n^2 = 9 + 36 + 3 + 144 = 192 = sum s^2;
    sum t^2 = 144 + 144 = 288. split = 2/3, merge = 1, F = 384 / 480 = 0.8."""
    cells = two_cells()
    split = cells.copy()
    split[2, 1:4] = False
    scores = isbi_metrics.rand_scores(isbi_metrics.segments(split),
                                      isbi_metrics.segments(cells))
    assert scores == pytest.approx({"split": 192 / 288, "merge": 1.0, "fscore": 0.8})
    assert isbi_metrics.rand_error(np.where(split, 0.0, 1.0), cells) == pytest.approx(0.2)


def test_the_best_threshold_is_taken():
    """A soft map: the gap between the cells at 0.55 membrane merges them at low cell
    thresholds and not at high ones; the Rand error takes the best threshold."""
    cells = two_cells()
    membrane = np.where(cells, 0.2, 1.0)
    membrane[1:5, 4] = 0.55
    assert isbi_metrics.rand_error(membrane, cells) == 0.0
    score, threshold = isbi_metrics.best_over_thresholds(
        membrane, cells, lambda p, t: isbi_metrics.rand_scores(
            isbi_metrics.segments(p), isbi_metrics.segments(t))["fscore"])
    assert score == 1.0 and 0.45 <= threshold < 0.8


def test_stacks_average_images_per_threshold():
    cells = two_cells()
    merged = cells.copy()
    merged[1:5, 4] = True
    membranes = np.stack([np.where(cells, 0.0, 1.0), np.where(merged, 0.0, 1.0)])
    error = isbi_metrics.rand_error(membranes, np.stack([cells, cells]))
    assert error == pytest.approx((0 + 1 / 3) / 2)
    with pytest.raises(ValueError, match="one shape"):
        isbi_metrics.rand_error(membranes, cells)
