"""Sliding windows without a network: where windows start, their blend weights, and that a
pointwise "network" slides to exactly its whole-image output at any size, stride and blend."""

import numpy as np
import pytest

from fcnjax import sliding


def pointwise(windows):
    """A network whose output pixel depends on its input pixel only: (N, h, w, 1) -> (N, h,
    w, 2); sliding it must give its whole-image output wherever the windows fall."""
    return np.concatenate([2 * windows, 1 - windows], axis=-1)


def test_windows_start_every_stride_and_the_last_ends_flush_with_the_image():
    assert sliding.window_starts(10, 4, 3) == [0, 3, 6]
    assert sliding.window_starts(10, 4, 4) == [0, 4, 6]
    assert sliding.window_starts(4, 4, 2) == [0]
    assert sliding.window_starts(3, 4, 1) == [0]
    for size in range(1, 40):
        for stride in range(1, 8):
            starts = sliding.window_starts(max(size, 7), 7, stride)
            covered = {p for s in starts for p in range(s, s + 7)}
            assert covered == set(range(max(size, 7))), (size, stride)
            assert all(b - a <= stride for a, b in zip(starts, starts[1:]))


@pytest.mark.parametrize("window", [(5, 8), (64, 64), (1, 3)])
def test_gaussian_weights_are_positive_and_peak_at_the_centre(window):
    weights = sliding.blend_weights(window, "gaussian")
    assert weights.shape == window and weights.dtype == np.float32
    assert np.all(weights > 0) and weights.max() == 1.0
    np.testing.assert_array_equal(weights, weights[::-1, ::-1])  # symmetric about the centre
    if window == (64, 64):
        assert weights[32, 32] > weights[32, 48] > weights[32, 0]
    np.testing.assert_array_equal(sliding.blend_weights(window, "constant"), 1.0)
    with pytest.raises(ValueError, match="unknown blend"):
        sliding.blend_weights(window, "box")


@pytest.mark.parametrize("blend", sliding.BLENDS)
def test_overlapping_windows_of_one_value_blend_to_that_value(blend):
    def constant(windows):
        return np.full((*windows.shape[:3], 3), 0.37, np.float32)

    image = np.zeros((50, 41, 1), np.float32)
    out = sliding.predict_sliding(constant, image, (16, 16), (5, 7), blend, batch_size=4)
    assert out.shape == (50, 41, 3) and out.dtype == np.float32
    np.testing.assert_allclose(out, 0.37, rtol=1e-6)


@pytest.mark.parametrize("blend", sliding.BLENDS)
@pytest.mark.parametrize("pad_mode", ["constant", "reflect"])
@pytest.mark.parametrize("size", [(37, 45), (64, 16), (5, 3), (1, 1), (16, 100)])
def test_a_pointwise_network_slides_to_its_whole_image_output(size, pad_mode, blend):
    """Odd sizes, images smaller than the window, overlaps: every pixel gets its own value."""
    image = np.random.default_rng(0).normal(size=(*size, 1)).astype(np.float32)
    shapes = []

    def window_fn(windows):
        shapes.append(windows.shape)
        return pointwise(windows)

    out = sliding.predict_sliding(window_fn, image, (16, 16), (5, 11), blend, batch_size=3,
                                  pad_mode=pad_mode)
    np.testing.assert_allclose(out, pointwise(image[None])[0], rtol=1e-5, atol=1e-6)
    assert set(shapes) == {(3, 16, 16, 1)}  # one shape for every image: one compile


def test_one_window_as_large_as_the_image_is_the_whole_image_output_exactly():
    image = np.random.default_rng(1).normal(size=(16, 24, 1)).astype(np.float32)
    whole = pointwise(image[None])[0]
    out = sliding.predict_sliding(pointwise, image, (16, 24), (16, 24), "constant")
    np.testing.assert_array_equal(out, whole)
    out = sliding.predict_sliding(pointwise, image, (16, 24), (16, 24), "gaussian")
    np.testing.assert_allclose(out, whole, rtol=1e-6)


def test_outputs_not_aligned_to_their_windows_are_refused():
    def shrinking(windows):
        return windows[:, 2:-2, 2:-2]

    with pytest.raises(ValueError, match="aligned"):
        sliding.predict_sliding(shrinking, np.zeros((20, 20, 1), np.float32), (16, 16),
                                (8, 8))


def test_large_images_show_a_progress_bar_over_windows(capsys):
    small = np.zeros((16, 16, 1), np.float32)
    sliding.predict_sliding(pointwise, small, (8, 8), (8, 8))
    assert "window" not in capsys.readouterr().err  # 4 windows: no bar
    large = np.zeros((100, 100, 1), np.float32)  # 13 x 13 windows
    sliding.predict_sliding(pointwise, large, (8, 8), (8, 8), batch_size=16)
    assert "/169" in capsys.readouterr().err  # a bar over the 169 windows


def test_bands_come_out_row_by_row_before_later_windows_run_and_tile_the_image():
    """A caller gets the top rows before the network has seen the bottom ones, so only one
    row of windows' scores is ever held; the bands assemble to predict_sliding's array."""
    image = np.random.default_rng(2).normal(size=(50, 41, 1)).astype(np.float32)
    seen = []

    def window_fn(windows):
        seen.append(len(windows))
        return pointwise(windows) * 0.5

    bands = sliding.slide_bands(window_fn, image, (16, 16), (6, 9), "gaussian")
    y, first = next(bands)
    assert y == 0 and first.shape == (6, 41, 2) and len(seen) == 4  # one row of 4 windows
    rest = list(bands)
    starts = [0] + [y for y, _ in rest]
    heights = [6] + [band.shape[0] for _, band in rest]
    assert starts == list(np.cumsum([0] + heights[:-1])) and sum(heights) == 50
    whole = sliding.predict_sliding(window_fn, image, (16, 16), (6, 9), "gaussian")
    np.testing.assert_array_equal(np.concatenate([first] + [b for _, b in rest]), whole)
