"""predict: images or folders of any size -> palette masks and overlays, one forward function."""

import os

import jax
import numpy as np
import pytest
from PIL import Image

from configs import sample
from fcnjax import inference, models, predict
from fcnjax.data.classes import class_colors
from fcnjax.run import visualize
from fcnjax.run.state import create_train_state


def tiny_config(**model):
    config = sample.get_config()
    config.model.update({"features": 4, "levels": 2, **model})
    config.input.crop_size = (32, 32)
    return config


def write_image(path, size, mode="L", seed=0):
    rng = np.random.default_rng(seed)
    channels = () if mode == "L" else (3,)
    Image.fromarray(rng.integers(0, 256, (*size, *channels)).astype(np.uint8), mode).save(path)


def test_image_paths_take_files_and_folders_in_name_order(tmp_path):
    for name in ("10.png", "9.jpg", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    single = tmp_path / "one.png"
    single.write_bytes(b"")
    assert predict.image_paths([str(single), str(tmp_path)]) == [
        str(single), str(tmp_path / "9.jpg"), str(tmp_path / "10.png"), str(tmp_path / "one.png")]
    with pytest.raises(FileNotFoundError, match="no such image"):
        predict.image_paths([str(tmp_path / "missing.png")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no images"):
        predict.image_paths([str(tmp_path / "empty")])


def test_palette_png_keeps_class_ids_and_shows_the_dataset_colours(tmp_path):
    prediction = np.array([[0, 1], [2, 1]])
    colors = class_colors("camvid", 11)
    predict.palette_png(prediction, colors).save(tmp_path / "m.png")
    with Image.open(tmp_path / "m.png") as mask:
        np.testing.assert_array_equal(np.asarray(mask), prediction)
        np.testing.assert_array_equal(np.asarray(mask.convert("RGB"))[0, 1], (128, 0, 0))


def test_predict_files_writes_a_mask_and_overlay_per_image_at_its_own_size(tmp_path):
    config = tiny_config()
    write_image(tmp_path / "a.png", (37, 45))
    write_image(tmp_path / "b.png", (20, 16), mode="RGB")  # converted to the config's mode

    def labels(image):  # class 1 where the normalised pixel is bright
        assert image.dtype == np.float32 and image.shape[-1] == 1
        return (image[..., 0] > 0).astype(np.uint8)

    out = tmp_path / "out"
    written = predict.predict_files(config, labels, predict.image_paths([str(tmp_path)]),
                                    str(out))
    assert sorted(os.listdir(out)) == ["a.png", "a_overlay.png", "b.png", "b_overlay.png"]
    assert len(written) == 4
    with Image.open(out / "a.png") as mask, Image.open(out / "a_overlay.png") as over:
        assert mask.size == (45, 37) and over.mode == "RGB"
        pixels = np.asarray(Image.open(tmp_path / "a.png"))
        np.testing.assert_array_equal(np.asarray(mask), pixels > 127.5)
        # the blend at the image's size, then a legend strip below (padded to its width)
        assert over.size[0] == visualize.MIN_LEGEND_WIDTH and over.size[1] > 37
        display = np.repeat(pixels[..., None], 3, axis=-1)
        colors = class_colors(config.eval.classes, 2)
        blend = visualize.overlay(display, visualize.colorize(np.asarray(mask), 2, colors))
        np.testing.assert_array_equal(np.asarray(over)[:37, :45], blend)


@pytest.mark.parametrize("padding", ["same", "valid"])
def test_the_model_forward_scores_every_pixel_of_an_odd_sized_image(padding):
    """A "same" U-Net runs on the whole image; a "valid" one goes tile by tile."""
    config = tiny_config(padding=padding, levels=1)
    if padding == "valid":
        config.input.crop_size = (44, 44)  # 44 -> 28 outputs: tiles of 28 with 8 of context
    model = models.build(config.model)
    state = create_train_state(config, model, jax.random.key(0, impl="rbg"),
                               (1, *config.input.crop_size, 1))
    forward = inference.make_forward(config, state)
    scores = forward(np.random.default_rng(0).normal(size=(37, 45, 1)).astype(np.float32))
    assert scores.shape == (37, 45, 2) and np.all(np.isfinite(scores))


def valid_unet_state(config):
    model = models.build(config.model)
    return create_train_state(config, model, jax.random.key(0, impl="rbg"),
                              (1, *config.input.crop_size, 1))


def test_tiles_go_through_the_model_in_eval_batches():
    config = tiny_config(padding="valid", levels=1)
    config.input.crop_size = (44, 44)  # 28-pixel tile steps: a 60x60 image is 3x3 tiles
    config.eval.batch_size = 4
    state = valid_unet_state(config)
    shapes = []

    def apply_fn(variables, x, **kwargs):
        shapes.append(x.shape)  # traced once per batch shape
        return state.apply_fn(variables, x, **kwargs)

    forward = inference.make_forward(config, state.replace(apply_fn=apply_fn))
    image = np.random.default_rng(0).normal(size=(60, 60, 1)).astype(np.float32)
    scores = forward(image)
    assert shapes == [(4, 44, 44, 1)] and scores.shape == (60, 60, 2)
    config.eval.batch_size = 1
    np.testing.assert_allclose(inference.make_forward(config, state)(image), scores,
                               rtol=1e-4, atol=1e-4)


def test_tta_averages_the_probabilities_of_the_eight_rotations_and_mirrors():
    config = tiny_config(padding="valid", levels=1)
    config.input.crop_size = (44, 44)
    state = valid_unet_state(config)
    image = np.random.default_rng(1).normal(size=(37, 45, 1)).astype(np.float32)
    plain = inference.make_forward(config, state)
    averaged = np.exp(inference.make_forward(config, state, tta=True)(image))  # log-probs
    assert averaged.shape == (37, 45, 2)
    np.testing.assert_allclose(averaged.sum(-1), 1.0, rtol=1e-5)
    expected = np.mean([inference.untransform(inference.softmax(plain(np.ascontiguousarray(
        inference.transform(image, k, flip)))), k, flip) for k, flip in inference.DIHEDRAL], axis=0)
    np.testing.assert_allclose(averaged, expected, rtol=1e-5, atol=1e-6)
    # a symmetric image's averaged map is as symmetric (a single pass need not be)
    square = np.random.default_rng(2).normal(size=(40, 40, 1)).astype(np.float32)
    square = square + square[:, ::-1]
    out = np.exp(inference.make_forward(config, state, tta=True)(square))
    np.testing.assert_allclose(out, out[:, ::-1], rtol=1e-5, atol=1e-6)
