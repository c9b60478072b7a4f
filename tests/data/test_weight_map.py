"""U-Net's border weight map on synthetic cells a known distance apart."""

import math

import numpy as np
import pytest

from fcnjax.data import weight_map


def two_cells() -> np.ndarray:
    """20x30 membrane (class 0) holding two cells (class 1): rows 5-14, columns 3-9 and
    14-20, so columns 10-13 are a 4-pixel gap of membrane between them."""
    label = np.zeros((20, 30), np.int32)
    label[5:15, 3:10] = 1
    label[5:15, 14:21] = 1
    return label


def expected_term(d1: float, d2: float) -> float:
    return 10 * math.exp(-(d1 + d2) ** 2 / (2 * 5 ** 2))


def test_border_term_at_pixels_of_known_distances():
    w = weight_map.border_weights(two_cells(), class_weights=[1.0, 1.0])
    # in the gap, row 10: column 11 is 2 from the left cell (col 9), 3 from the right (col 14)
    assert w[10, 11] == pytest.approx(1 + expected_term(2, 3), rel=1e-5)
    assert w[10, 10] == pytest.approx(1 + expected_term(1, 4), rel=1e-5)
    # above the gap, (2, 11): nearest cell pixels (5, 9) and (5, 14): sqrt(13) and sqrt(18)
    assert w[2, 11] == pytest.approx(1 + expected_term(math.sqrt(13), math.sqrt(18)), rel=1e-5)
    # left of the left cell, (10, 0): 3 to it, 14 to the right cell
    assert w[10, 0] == pytest.approx(1 + expected_term(3, 14), rel=1e-5)
    # cell pixels get w_c only
    assert w[10, 5] == 1.0 and w[7, 17] == 1.0


def test_class_balance_defaults_to_median_frequency_of_the_label():
    label = two_cells()
    cell = (label == 1).mean()
    w = weight_map.border_weights(label, w0=0.0)
    median = 0.5  # median of two frequencies f and 1 - f
    assert w[10, 5] == pytest.approx(median / cell, rel=1e-5)
    assert w[0, 0] == pytest.approx(median / (1 - cell), rel=1e-5)


def test_a_single_cell_has_no_border_term_and_void_weighs_zero():
    label = np.zeros((12, 12), np.int32)
    label[3:8, 3:8] = 1
    label[0, :] = 255
    w = weight_map.border_weights(label, class_weights=[2.0, 1.0])
    assert (w[0] == 0).all()
    np.testing.assert_array_equal(w[1:], np.where(label[1:] == 1, 1.0, 2.0))


def test_windowed_distances_match_brute_force_on_random_cells():
    rng = np.random.default_rng(0)
    label = (rng.random((40, 50)) < 0.55).astype(np.int32)
    components, count = weight_map.cells(label)
    d1, d2 = weight_map.nearest_two_distances(components, count, cutoff=1e9)
    yy, xx = np.mgrid[:40, :50]

    def distance_to(k):
        rows, cols = np.nonzero(components == k)
        return np.hypot(yy[..., None] - rows, xx[..., None] - cols).min(-1)

    all_d = np.stack([distance_to(k) for k in range(1, count + 1)])
    all_d.sort(0)
    np.testing.assert_allclose(d1, all_d[0], rtol=1e-6)
    np.testing.assert_allclose(d2, all_d[1], rtol=1e-6)
    # with the default cutoff the weights agree wherever the term is not negligible
    near = weight_map.border_term(*weight_map.nearest_two_distances(
        components, count, weight_map.default_cutoff()))
    np.testing.assert_allclose(near, weight_map.border_term(d1, d2), atol=1e-3)
