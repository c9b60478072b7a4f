"""Pictures a person can read: prediction grids, learning curves, class charts, overlays."""

import numpy as np
import pytest
from PIL import Image

from fcnjax.data.classes import VOID_COLOR, class_colors, class_names, palette
from fcnjax.run import reporting, visualize

CAMVID = class_colors("camvid", 11)
NAMES = class_names("camvid", 11)


def count(picture, color):
    """How many pixels of ``picture`` have exactly ``color``."""
    return int(np.all(picture == np.asarray(color, np.uint8), axis=-1).sum())


def mixed_examples():
    """A wide 37x211 and a tall 1024x207 example with known class regions."""
    rng = np.random.default_rng(0)
    wide = np.ones((37, 211), np.int64)
    wide[:, 105:] = 2  # truth only
    tall = np.full((1024, 207), 3)
    tall[512:] = 255  # void
    images = [rng.normal(size=(37, 211, 3)), rng.normal(size=(1024, 207, 3))]
    return images, [wide, tall], [np.ones_like(wide), np.full_like(tall, 4)]


def test_grid_of_mixed_sizes_shows_every_panel_in_its_class_colours():
    images, labels, predictions = mixed_examples()
    grid = visualize.comparison_grid(images, labels, predictions, 11, colors=CAMVID,
                                     names=NAMES)
    assert grid.dtype == np.uint8 and grid.ndim == 3 and grid.shape[2] == 3
    for c in (1, 2, 3, 4):  # truth and prediction regions: far more than a legend swatch
        assert count(grid, CAMVID[c]) > 2000, NAMES[c]
    assert count(grid, VOID_COLOR) > 2000
    assert count(grid, CAMVID[10]) == 0  # a class that occurs nowhere is not in the legend


def test_grid_takes_stacked_arrays_and_refuses_mismatched_sizes():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, (2, 64, 48))
    grid = visualize.comparison_grid(rng.normal(size=(2, 64, 48, 1)), labels, 1 - labels, 2)
    assert grid.dtype == np.uint8 and grid.shape[2] == 3
    assert count(grid, palette(2)[1]) > 1000
    with pytest.raises(ValueError, match="example 1: image"):
        visualize.comparison_grid([np.zeros((4, 4, 3))] * 2, [np.zeros((4, 4))] * 2,
                                  [np.zeros((4, 4)), np.zeros((4, 5))], 2)
    with pytest.raises(ValueError, match="one of each per example"):
        visualize.comparison_grid([np.zeros((4, 4, 3))], [], [], 2)


def test_panels_keep_their_aspect_ratio_and_tall_ones_are_capped():
    assert visualize.panel_size(37, 211) == pytest.approx((3.0, 3.0 * 37 / 211))
    assert visualize.panel_size(1024, 207) == pytest.approx((3.6 * 207 / 1024, 3.6))
    assert visualize.panel_size(10, 10, box_width=2.0, max_height=5.0) == (2.0, 2.0)


def test_write_predictions_saves_the_grid_of_lists(tmp_path):
    images, labels, predictions = mixed_examples()
    drawn = {"image": images, "label": labels, "prediction": predictions}
    grid = reporting.write_predictions(str(tmp_path), 7, drawn, 11, bgr=True,
                                       classes="camvid")
    with Image.open(tmp_path / "predictions_000007.png") as saved:
        np.testing.assert_array_equal(np.asarray(saved), grid)


def test_curve_points_group_by_split_and_skip_nulls():
    records = [{"step": 1, "mode": "train", "loss": 0.9, "mean_iu": None},
               {"step": 2, "mode": "train", "loss": float("nan"), "mean_iu": 0.2},
               {"step": 2, "mode": "eval", "split": "val", "loss": 0.5},
               {"step": 2, "mode": "eval", "split": "test", "loss": None},
               {"step": 4, "mode": "eval", "split": "test", "loss": 0.4}]
    assert visualize.curve_points(records, "train", "loss") == {"train": ([1], [0.9])}
    assert visualize.curve_points(records, "train", "mean_iu") == {"train": ([2], [0.2])}
    assert visualize.curve_points(records, "eval", "loss") == {"val": ([2], [0.5]),
                                                               "test": ([4], [0.4])}
    assert visualize.curve_points(records, "eval", "mean_iu") == {}


@pytest.mark.parametrize("records", [
    [{"step": 1, "mode": "train", "loss": 0.7, "pixel_acc": 0.5, "mean_iu": None}],
    [{"step": s, "mode": "train", "loss": None if s == 3 else 1 / s, "mean_iu": None}
     for s in range(1, 6)] + [{"step": 5, "mode": "eval", "split": "val", "loss": None,
                               "pixel_acc": 0.8, "mean_iu": None, "mean_dice": None}],
    [],
])
def test_learning_curve_png_for_one_record_nulls_or_none(tmp_path, records):
    reporter = reporting.Reporter(str(tmp_path), tensorboard=False)
    for record in records:
        reporter.write(record)
    with Image.open(reporter.learning_curve()) as picture:
        assert picture.mode == "RGB" and picture.size[0] > 1000 and picture.size[1] > 300


def test_eval_series_are_drawn_in_their_colour_only_once_there_are_evals():
    train = [{"step": s, "mode": "train", "loss": 1 / s} for s in range(1, 4)]
    evaluated = train + [{"step": 3, "mode": "eval", "split": "val", "loss": 0.4}]
    orange = (255, 127, 14)  # matplotlib's tab:orange: the first eval split's loss
    assert count(visualize.learning_curves(train), orange) == 0
    assert count(visualize.learning_curves(evaluated), orange) > 20


def test_row_normalized_rows_sum_to_one_and_empty_rows_are_nan():
    rates = visualize.row_normalized([[3, 1, 0], [0, 0, 0], [2, 2, 4]])
    np.testing.assert_allclose(rates[[0, 2]], [[0.75, 0.25, 0], [0.25, 0.25, 0.5]])
    assert np.isnan(rates[1]).all()
    with pytest.raises(ValueError, match=r"\(C, C\)"):
        visualize.row_normalized([[1, 2, 3]])


def test_confusion_heatmap_colours_cells_by_row_percent_and_greys_empty_rows():
    from matplotlib import colormaps

    full = (np.asarray(colormaps["Blues"](1.0)[:3]) * 255).round()
    picture = visualize.confusion_heatmap([[10, 0], [0, 0]], ["membrane", "cell"])
    assert picture.dtype == np.uint8
    assert count(picture, full) > 3000  # the 100% cell
    assert count(picture, (224, 224, 224)) > 3000  # the class with no pixels: grey
    many = visualize.confusion_heatmap(np.eye(40, dtype=int) * 5,
                                       class_names("nyud40", 40))
    assert many.shape[0] > picture.shape[0] and count(many, full) > 40 * 100
    with pytest.raises(ValueError, match="2 class names"):
        visualize.confusion_heatmap(np.eye(3), ["a", "b"])


def test_class_iou_bars_are_as_long_as_the_iou_and_absent_classes_have_none():
    colors = np.array([(255, 0, 0), (0, 0, 255), (0, 255, 0)], np.uint8)
    chart = visualize.class_iou_chart([0.9, 0.1, None], ["a", "b", "c"], colors)
    red, blue = count(chart, colors[0]), count(chart, colors[1])
    assert red > 5 * blue > 0
    assert count(chart, colors[2]) == 0
    with pytest.raises(ValueError, match="3 IoU values but 2 class names"):
        visualize.class_iou_chart([0.9, 0.1, None], ["a", "b"])


def test_write_class_pictures_beside_the_json(tmp_path):
    summary = {"class_iu": [0.8, None], "confusion": [[5, 1], [0, 0]]}
    paths = reporting.write_class_pictures(str(tmp_path / "eval_val_40"), summary, "isbi2012")
    assert paths == [str(tmp_path / "eval_val_40_class_iou.png"),
                     str(tmp_path / "eval_val_40_confusion.png")]
    for path in paths:
        with Image.open(path) as picture:
            assert picture.mode == "RGB" and min(picture.size) > 200


def test_classes_present_and_colours_present():
    ids, void = visualize.classes_present([np.array([[0, 2], [255, 2]]), np.array([[1]])], 4)
    assert ids == [0, 1, 2] and void
    assert visualize.classes_present([np.array([[5, 0]])], 4) == ([0], True)
    assert visualize.classes_present([np.array([[3, 0]])], 4) == ([0, 3], False)
    mask = visualize.colorize(np.array([[1, 3], [3, 1]]), 11, CAMVID)
    assert visualize.colors_present(mask, CAMVID) == [1, 3]


def test_overlay_with_legend_keeps_the_blend_and_lists_the_classes_present():
    rng = np.random.default_rng(2)
    image = rng.integers(0, 256, (120, 300, 3)).astype(np.uint8)
    label = np.zeros((120, 300), np.int64)
    label[:, 150:] = 8
    mask = visualize.colorize(label, 11, CAMVID)
    picture = visualize.overlay_with_legend(image, mask, NAMES, CAMVID)
    np.testing.assert_array_equal(picture[:120], visualize.overlay(image, mask))
    strip = picture[120:]
    assert strip.shape[0] > 10 and strip.shape[1] == 300
    assert count(strip, CAMVID[0]) > 20 and count(strip, CAMVID[8]) > 20  # sky, car
    assert count(strip, CAMVID[3]) == 0  # road is not in the image
    narrow = visualize.overlay_with_legend(image[:20, :30], mask[:20, :30], NAMES, CAMVID)
    assert narrow.shape[1] == visualize.MIN_LEGEND_WIDTH
    assert (narrow[:20, 30:] == 255).all()  # padded on the right with white


def test_legend_strip_wraps_into_more_rows_when_narrow():
    colors = palette(12)
    names = class_names("voc", 12)
    wide = visualize.legend_strip(names, colors, 1600)
    narrow = visualize.legend_strip(names, colors, 300)
    assert wide.shape[0] < narrow.shape[0] and narrow.shape[1] <= 301
    with pytest.raises(ValueError, match="at least one name"):
        visualize.legend_strip([], [], 300)


def test_overlay_and_colours_present_work_slice_by_slice(monkeypatch):
    """A picture larger than one slice of rows blends and finds colours as a small one does."""
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (37, 11, 3), dtype=np.uint8)
    colors = np.array([[10, 20, 30], [200, 0, 0], [0, 0, 255]], np.uint8)
    mask = colors[np.zeros((37, 11), int)]
    mask[36, 10] = colors[2]  # in the last slice only
    whole = visualize.overlay(image, mask, 0.3)
    monkeypatch.setattr(visualize, "CHUNK_PIXELS", 40)  # slices of 3 rows
    assert len(visualize.row_slices(image.shape)) == 13
    np.testing.assert_array_equal(visualize.overlay(image, mask, 0.3), whole)
    expected = (0.7 * image.astype(np.float32) + 0.3 * mask).round().astype(np.uint8)
    np.testing.assert_array_equal(whole, expected)
    assert visualize.colors_present(mask, colors) == [0, 2]
