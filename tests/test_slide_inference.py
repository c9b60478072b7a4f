"""config.eval.mode = "slide" through the models: predict, evaluate and the evaluation during
training share ``inference.image_forward``. Tiny nets only (a 4-channel U-Net, an FCN on a
two-conv trunk), so every test runs in seconds on one CPU core."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from PIL import Image

from configs import sample
from fcnjax import inference, models, objective
from fcnjax.models.fcn import FCN
from fcnjax.models.layers import randomize
from fcnjax.models.trunk import Backbone, ConvLayer, PointwiseLayer, PoolLayer
from fcnjax.run import checkpoint, parallel
from fcnjax.run.errors import ConfigError
from fcnjax.run.state import create_train_state, state_sharding
from test_cli_datasets import cli, ok
from test_cli_errors import one_line


def tiny_config(mode="slide", window=(16, 16), stride=(), **model):
    """configs/sample.py with a 2-level, 4-channel same U-Net on 32x32 crops."""
    config = sample.get_config()
    config.model.update({"features": 4, "levels": 2, **model})
    config.input.crop_size = (32, 32)
    config.eval.update(dict(mode=mode, window=window, stride=stride, batch_size=1))
    return config


def unet_state(config):
    model = models.build(config.model)
    return create_train_state(config, model, jax.random.key(0, impl="rbg"),
                              (1, *config.input.crop_size, 1))


def tiny_fcn():
    """An FCN of the paper's head on a three-stage trunk (stride 8, 20 pixels of input pad)
    fusing pool2 as FCN-16s fuses pool4: the same crop and upscore code, far less work."""
    trunk = Backbone("tiny", (ConvLayer("conv1_1", 4, 3, pad=20), PoolLayer("pool1", 2, 2),
                              ConvLayer("conv2_1", 4, 3, pad=1), PoolLayer("pool2", 2, 2),
                              ConvLayer("conv3_1", 4, 3, pad=1), PoolLayer("pool3", 2, 2),
                              ConvLayer("fc6", 8, 3, fully_connected=True),
                              PointwiseLayer("drop7", "dropout")), output="drop7")
    model = FCN(trunk, num_classes=3, skips=("pool2",))
    params = randomize(jax.eval_shape(model.init, jax.random.key(0),
                                      jnp.zeros((1, 8, 8, 3)))["params"], 0)
    return model, params


def forwards(config, apply_fn, params, **eval_fields):
    """(whole-image forward, sliding forward) of one model."""
    apply = inference.make_apply(apply_fn)
    whole = config.copy_and_resolve_references()
    whole.eval.mode = "whole"
    slide = config.copy_and_resolve_references()
    slide.eval.update(eval_fields)
    variables = {"params": params}
    return (inference.image_forward(whole, apply, variables),
            inference.image_forward(slide, apply, variables))


def test_one_window_covering_the_image_is_the_whole_image_prediction():
    image = np.random.default_rng(0).normal(size=(24, 40, 1)).astype(np.float32)
    config = tiny_config(window=(24, 40))
    state = unet_state(config)
    whole, slide = forwards(config, state.apply_fn, state.params)
    np.testing.assert_array_equal(slide(image), whole(image))
    fcn_config = tiny_config(window=(24, 40))
    fcn_config.model = ml_collections.ConfigDict(dict(name="fcn8s", num_classes=3))
    model, params = tiny_fcn()
    rgb = np.random.default_rng(1).normal(size=(24, 40, 3)).astype(np.float32)
    whole, slide = forwards(fcn_config, model.apply, params)
    np.testing.assert_array_equal(slide(rgb), whole(rgb))


@pytest.mark.parametrize("name", ["unet", "fcn8s"])
def test_images_smaller_than_the_window_and_odd_sizes_come_back_at_their_size(name):
    config = tiny_config(window=(16, 16), stride=(11, 5))
    if name == "unet":
        state = unet_state(config)
        apply_fn, params, channels, classes = state.apply_fn, state.params, 1, 2
    else:
        config.model = ml_collections.ConfigDict(dict(name=name, num_classes=3))
        (model, params), channels, classes = tiny_fcn(), 3, 3
        apply_fn = model.apply
    for blend in ("constant", "gaussian"):
        _, slide = forwards(config, apply_fn, params, blend=blend)
        for size in ((5, 9), (1, 1), (37, 45), (16, 61)):
            image = np.random.default_rng(2).normal(size=(*size, channels)).astype(np.float32)
            scores = slide(image)
            assert scores.shape == (*size, classes) and np.all(np.isfinite(scores)), size


def test_sliding_compiles_once_for_every_image_size():
    config = tiny_config(window=(16, 16), stride=(8, 8))
    config.eval.batch_size = 3
    state = unet_state(config)
    traced = []

    def apply_fn(variables, x, **kwargs):
        traced.append(x.shape)  # jit traces once per input shape
        return state.apply_fn(variables, x, **kwargs)

    forward = inference.make_forward(config, state.replace(apply_fn=apply_fn))
    for size in ((20, 30), (45, 37), (8, 8), (64, 17)):
        image = np.random.default_rng(3).normal(size=(*size, 1)).astype(np.float32)
        assert forward(image).shape == (*size, 2)
    assert traced == [(3, 16, 16, 1)]


def test_a_valid_unet_slides_as_exact_overlap_tiles():
    config = tiny_config(padding="valid", levels=1, window=(60, 60))
    config.input.crop_size = (44, 44)
    state = unet_state(config)
    whole, slide = forwards(config, state.apply_fn, state.params)  # tiles of 44 and of 60
    image = np.random.default_rng(4).normal(size=(70, 53, 1)).astype(np.float32)
    np.testing.assert_allclose(slide(image), whole(image), rtol=1e-4, atol=1e-4)
    _, same_tiles = forwards(config, state.apply_fn, state.params, window=(44, 44))
    np.testing.assert_array_equal(same_tiles(image), whole(image))


@pytest.mark.parametrize("fields, words", [
    (dict(mode="slid"), ["config.eval.mode = 'slid'", "'whole', 'slide'"]),
    (dict(blend="box"), ["config.eval.blend = 'box'", "'gaussian'"]),
    (dict(window=(0, 16)), ["config.eval.window = (0, 16)", "(height, width)"]),
    (dict(window=(16,)), ["config.eval.window = (16,)"]),
    (dict(mode="whole", stride=(3, 2, 1)), ["config.eval.stride = (3, 2, 1)"]),
    (dict(stride=(17, 8)), ["exceeds config.eval.window = (16, 16)"]),
    (dict(model=dict(padding="valid", levels=1), window=(44, 60)), ["square"]),
    (dict(model=dict(padding="valid", levels=1), window=(45, 45)), ["45", "nearest valid"]),
    (dict(model=dict(padding="valid", levels=1), window=(44, 44), stride=(20, 20)),
     ["abut", "28 pixels apart"]),
    (dict(extra_labels=("geo_label",)), ["scores one head", "mode 'whole'"]),
])
def test_eval_settings_that_cannot_work_are_one_line_errors(fields, words):
    config = tiny_config()
    config.model.update(fields.pop("model", {}))
    config.input.extra_labels = fields.pop("extra_labels", ())
    config.eval.update(fields)
    with pytest.raises(ConfigError) as error:
        inference.check_eval(config)
    message = str(error.value)
    assert "\n" not in message
    for word in words:
        assert word in message, message


def test_the_evaluation_scores_slid_windows_as_it_scores_whole_images():
    """objective.make_eval_fn (train's and evaluate's) in slide mode: one window of the
    canvas size gives the whole-image scores; smaller windows score every pixel too."""
    config = tiny_config(window=(32, 32))
    state = unet_state(config)
    mesh = parallel.mesh_from_config(config.mesh)
    sharding = state_sharding(config, state, mesh)
    rng = np.random.default_rng(5)
    label = rng.integers(0, 2, (2, 32, 32)).astype(np.int32)
    label[:, :4] = 255
    batch = {"image": rng.normal(size=(2, 32, 32, 1)).astype(np.float32), "label": label}
    whole = config.copy_and_resolve_references()
    whole.eval.mode = "whole"
    expected, predicted = objective.make_eval_fn(whole, mesh, sharding)(state, batch)
    measured, slid = objective.make_eval_fn(config, mesh, sharding)(state, batch)
    np.testing.assert_array_equal(measured["confusion"], expected["confusion"])
    np.testing.assert_allclose(measured["loss_sum"], expected["loss_sum"], rtol=1e-5)
    np.testing.assert_array_equal(slid, np.asarray(predicted)[:2])
    config.eval.window = (16, 16)
    measured, slid = objective.make_eval_fn(config, mesh, sharding)(state, batch)
    assert int(np.asarray(measured["confusion"]).sum()) == int((label != 255).sum())
    assert slid.shape == (2, 32, 32)


def test_predict_slides_from_the_command_line(tmp_path):
    config = tiny_config()
    manager = checkpoint.make_manager(str(tmp_path / "work"))
    checkpoint.save(manager, 1, unet_state(config))
    checkpoint.wait(manager)
    manager.close()
    images = tmp_path / "images"
    images.mkdir()
    Image.fromarray(np.random.default_rng(6).integers(0, 256, (45, 70)).astype(np.uint8)).save(
        images / "a.png")
    args = ["--config", "configs/sample.py", "--config.model.features=4",
            "--config.model.levels=2", "--config.input.crop_size=(32,32)",
            "--checkpoint", tmp_path / "work", "--output", tmp_path / "out"]
    ok(cli("fcnjax.predict", *args, "--config.eval.mode=slide", "--config.eval.window=(16,16)",
           "--config.eval.blend=gaussian", "--config.eval.batch_size=4", images))
    with Image.open(tmp_path / "out" / "a.png") as mask:
        assert mask.size == (70, 45) and set(np.unique(np.asarray(mask))) <= {0, 1}
    one_line(cli("fcnjax.predict", *args[:-2], "--output", tmp_path / "bad",
                 "--config.eval.mode=slide", "--config.eval.stride=(40,40)", images),
             "fcnjax.predict: error:", "config.eval.stride = (40, 40)")
    assert not (tmp_path / "bad").exists()


def test_training_evaluates_window_by_window(tmp_path):
    from fcnjax import train

    config = tiny_config(window=(64, 64))
    config.eval.batch_size = 4
    config.train.update(dict(steps=2, batch_size=2, log_every=1, eval_every=2,
                             checkpoint_every=2))
    summary = train.train_and_evaluate(config, str(tmp_path / "work"))
    assert np.isfinite(summary["loss"]) and 0 <= summary["pixel_acc"] <= 1
    assert np.asarray(summary["confusion"]).sum() == 2 * 128 * 128  # every pixel of 2 images


@pytest.mark.parametrize("mode", ["whole", "slide"])
def test_predicts_labels_band_by_band_as_the_argmax_of_the_assembled_scores(mode):
    """predict's path (make_labels) reduces each band of rows to class ids: the same ids as
    the argmax of the whole (H, W, K) scores, as uint8."""
    config = tiny_config(mode=mode, window=(16, 16), stride=(7, 9))
    config.eval.blend = "gaussian"
    state = unet_state(config)
    image = np.random.default_rng(6).normal(size=(45, 38, 1)).astype(np.float32)
    labels = inference.make_labels(config, state)(image)
    assert labels.dtype == np.uint8 and labels.shape == (45, 38)
    scores = inference.make_forward(config, state)(image)
    np.testing.assert_array_equal(labels, np.argmax(scores, -1))
