"""Multi-scale and flip test-time augmentation (config.eval.scales, config.eval.flip), in
both eval modes: probabilities averaged at the image's own size."""

import numpy as np
import pytest

from fcnjax import inference, objective
from fcnjax.run import parallel
from fcnjax.run.errors import ConfigError
from fcnjax.run.state import state_sharding
from test_slide_inference import tiny_config, unet_state


def noise(size, seed=0):
    return np.random.default_rng(seed).normal(size=(*size, 1)).astype(np.float32)


def test_one_scale_without_flip_is_plain_prediction_bit_for_bit():
    config = tiny_config(mode="whole")
    state = unet_state(config)
    image = noise((37, 45))
    plain = inference.model_forward(config, state)(image)
    assert (config.eval.scales, config.eval.flip) == ((1.0,), False)
    np.testing.assert_array_equal(inference.make_forward(config, state)(image), plain)


@pytest.mark.parametrize("mode", ["whole", "slide"])
def test_flip_averaging_of_a_mirror_symmetric_image_is_symmetric(mode):
    config = tiny_config(mode=mode, window=(16, 16))
    config.eval.flip = True
    state = unet_state(config)
    half = noise((33, 20), seed=1)
    image = np.concatenate([half, half[:, ::-1]], axis=1)
    scores = inference.make_forward(config, state)(image)
    np.testing.assert_allclose(scores, scores[:, ::-1], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(inference.softmax(scores).sum(-1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("mode", ["whole", "slide"])
def test_any_image_size_at_any_scale_comes_back_at_its_own_size(mode):
    config = tiny_config(mode=mode, window=(16, 16))
    config.eval.update(dict(scales=(0.5, 0.75, 1.75), flip=True))
    forward = inference.make_forward(config, unet_state(config))
    for size in ((37, 45), (9, 13)):
        scores = forward(noise(size))
        assert scores.shape == (*size, 2) and np.all(np.isfinite(scores)), size
        np.testing.assert_allclose(np.exp(scores).sum(-1), 1.0, rtol=1e-4)


def test_scales_average_the_probabilities_of_each_resized_prediction():
    def forward(image):  # class 1's logit: the pixel; a resized copy predicts its own pixels
        return np.concatenate([np.zeros_like(image), image], axis=-1)

    image = noise((12, 10), seed=2)
    averaged = inference.augmented_average(forward, image, (1.0, 2.0))
    once = inference.softmax(forward(image))
    twice = inference.resize(inference.softmax(forward(inference.resize(image, (24, 20)))),
                             (12, 10))
    np.testing.assert_allclose(averaged, (once + twice) / 2, rtol=1e-6)


@pytest.mark.parametrize("fields, words", [
    (dict(scales=()), ["config.eval.scales = ()", "scales > 0"]),
    (dict(scales=(1.0, -0.5)), ["config.eval.scales = (1.0, -0.5)"]),
])
def test_augmentation_settings_that_cannot_work_are_one_line_errors(fields, words):
    config = tiny_config()
    config.eval.update(fields)
    with pytest.raises(ConfigError) as error:
        inference.check_eval(config)
    assert "\n" not in str(error.value)
    for word in words:
        assert word in str(error.value)


def test_the_evaluation_scores_augmented_predictions():
    config = tiny_config(mode="whole")
    config.eval.flip = True
    state = unet_state(config)
    mesh = parallel.mesh_from_config(config.mesh)
    rng = np.random.default_rng(5)
    label = rng.integers(0, 2, (2, 32, 32)).astype(np.int32)
    batch = {"image": rng.normal(size=(2, 32, 32, 1)).astype(np.float32), "label": label}
    eval_fn = objective.make_eval_fn(config, mesh, state_sharding(config, state, mesh))
    measured, predicted = eval_fn(state, batch)
    forward = inference.make_forward(config, state)
    expected = np.stack([np.argmax(forward(image), -1) for image in batch["image"]])
    np.testing.assert_array_equal(predicted, expected)
    assert int(np.asarray(measured["confusion"]).sum()) == 2 * 32 * 32
    assert np.isfinite(float(measured["loss_sum"]))
