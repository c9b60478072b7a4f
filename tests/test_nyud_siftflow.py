"""NYUDv2 early / late fusion and SIFT Flow multi-task, end to end on tiny fake datasets:
their batches, one train + eval step of each paper config, the summed multi-task loss and
median-frequency class weights counted from the training labels."""

import dataclasses
import importlib
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tensorflow_datasets as tfds

from fcnjax import models, objective, train
from fcnjax.data import builders  # noqa: F401  (registers the builders)
from fcnjax.data import pipeline
from fcnjax.models.trunk import ConvLayer
from fcnjax.models.vgg import vgg16
from tests.data import fakes

DATASETS = {"nyud_v2/rgbd": fakes.write_nyud, "nyud_v2/rgbd_hha": fakes.write_nyud,
            "sift_flow": fakes.write_sift_flow}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """A tfds data_dir holding the fake NYUDv2 (both configs) and SIFT Flow, prepared."""
    root = tmp_path_factory.mktemp("datasets")
    tfds.disable_progress_bar()
    for name, write in DATASETS.items():
        manual = write(root / name.replace("/", "_"))
        tfds.builder(name, data_dir=str(root / "tfds")).download_and_prepare(
            download_config=tfds.download.DownloadConfig(manual_dir=str(manual)))
    return str(root / "tfds")


def tiny_config(name, data_dir):
    """configs/<name>.py on the fake data: one step on whole 6x8 images, nothing kept."""
    config = importlib.import_module(f"configs.{name}").get_config()
    config.prng_impl = "rbg"  # threefry's init of VGG16 compiles slowly on CPU
    config.input.tfds_data_dir = data_dir
    config.input.crop_size = config.input.eval_size = (fakes.H, fakes.W)
    config.input.check_data = False  # two fake images cannot show 40 (or 33) classes
    config.train.update(dict(steps=1, batch_size=1, log_every=1, eval_every=1,
                             checkpoint_every=1, keep_best=False, max_to_keep=1))
    config.eval.num_draw = 1
    return config


def thin_vgg16(input_pad=100):
    """VGG16's layers, strides and pads with 1/64 of its channels (fc6, fc7: 64): the paper
    nets' geometry at a size a CPU test steps in seconds (the full one takes ~30 s)."""
    full = vgg16(input_pad)
    layers = tuple(dataclasses.replace(layer, features=max(layer.features // 64, 2))
                   if isinstance(layer, ConvLayer) else layer for layer in full.layers)
    return dataclasses.replace(full, layers=layers)


def first_batch(config):
    return next(pipeline.train_batches(config.input, 1, config.seed))


def test_early_fusion_images_are_bgr_and_log_depth(data_dir):
    config = tiny_config("nyud_rgbd", data_dir)
    image = first_batch(config)["image"][0]
    assert image.shape == (fakes.H, fakes.W, 4)
    colour = {3: 3.0, 23: 23.0}  # the fake's constant pixels of the two training images
    value = float(image[1, 1, 0] + 116.190)
    assert round(value) in colour
    depth = 1000 + 100 * (round(value) == 23)
    np.testing.assert_allclose(image[1, 1, 3], np.log(depth) - 7.844, rtol=1e-5)
    np.testing.assert_allclose(image[0, 0, 3], np.log(1) - 7.844, rtol=1e-5)  # depth 0


def test_late_fusion_batches_carry_a_normalised_hha(data_dir):
    config = tiny_config("nyud_rgbhha", data_dir)
    batch = first_batch(config)
    assert set(batch) == {"image", "hha", "label"}
    assert batch["image"].shape == batch["hha"].shape == (1, fakes.H, fakes.W, 3)
    pixel = batch["hha"][0, 0, 0] + np.float32([132.431, 94.076, 118.477])
    assert np.allclose(pixel, pixel[0]) and round(float(pixel[0])) in (9, 10)


def test_siftflow_batches_carry_both_labels_padded_void(data_dir):
    config = tiny_config("siftflow_fcn16s", data_dir)
    config.input.eval_size = (fakes.H + 2, fakes.W)
    (batch,) = list(pipeline.eval_dataset(config.input, "test", 1))
    np.testing.assert_array_equal(batch["label"][0, 0, :4], [255, 0, 32, 1])
    np.testing.assert_array_equal(batch["geo_label"][0, 0, :4], [255, 0, 1, 2])
    assert (batch["geo_label"][0, fakes.H:] == 255).all()  # the padding is void
    assert batch["geo_label"].dtype == np.int32


@pytest.mark.parametrize("name", ["nyud_rgbd", "nyud_rgbhha", "siftflow_fcn16s"])
def test_one_train_and_eval_step_of_each_paper_config(name, data_dir, tmp_path,
                                                      monkeypatch):
    monkeypatch.setattr(models, "vgg16", thin_vgg16)
    final = train.train_and_evaluate(tiny_config(name, data_dir), str(tmp_path))
    assert np.isfinite(final["loss"]) and 0 <= final["mean_iu"] <= 1
    with open(tmp_path / "metrics.jsonl") as f:
        records = [json.loads(line) for line in f]
    assert [r["mode"] for r in records] == ["train", "eval"]
    for record in records:
        if name == "siftflow_fcn16s":  # the geometric head's own scores
            assert 0 <= record["geo_pixel_acc"] <= 1 and np.isfinite(record["geo_loss"])
            assert len(record.get("geo_class_iu", [0] * 3)) == 3
        else:
            assert not any(k.startswith("geo_") for k in record)
    assert len(records[1]["class_iu"]) == (33 if name == "siftflow_fcn16s" else 40)


def test_the_multi_task_loss_is_the_sum_of_the_heads_losses():
    rng = np.random.default_rng(0)
    sem = jnp.asarray(rng.normal(size=(2, 4, 5, 33)), jnp.float32)
    geo = jnp.asarray(rng.normal(size=(2, 4, 5, 3)), jnp.float32)
    label = rng.integers(0, 33, (2, 4, 5)).astype(np.int32)
    geo_label = rng.integers(0, 3, (2, 4, 5)).astype(np.int32)
    label[0, 0], geo_label[1, :2] = 255, 255
    options = dict(reduction="sum", ignore_label=255)
    loss, measured = objective.score_batch({"sem": sem, "geo": geo},
                                           {"label": label, "geo_label": geo_label}, **options)
    sem_loss, sem_measured = objective.score_batch(sem, {"label": label}, **options)
    geo_loss, geo_measured = objective.score_batch(geo, {"label": geo_label}, **options)
    np.testing.assert_allclose(loss, sem_loss + geo_loss, rtol=1e-6)
    np.testing.assert_allclose(measured["loss"], loss)
    np.testing.assert_array_equal(measured["confusion"], sem_measured["confusion"])
    np.testing.assert_array_equal(measured["geo_confusion"], geo_measured["confusion"])
    assert float(measured["geo_pixels"]) == 40 - 10
    with pytest.raises(ValueError, match="need labels"):
        objective.score_batch({"sem": sem, "geo": geo}, {"label": label}, **options)


def test_median_frequency_class_weights_come_from_the_training_labels(data_dir):
    config = tiny_config("siftflow_fcn16s", data_dir)
    config.loss.class_weights = "median_frequency"
    # training labels (fakes.write_sift_flow): class 0 and 32 in 24 pixels, 1 and 2 in 12
    weighted = objective.with_class_weights(config)
    expected = np.zeros(33)
    expected[[0, 32]], expected[[1, 2]] = 0.75, 1.5
    np.testing.assert_allclose(weighted.loss.class_weights, expected, rtol=1e-6)
    assert config.loss.class_weights == "median_frequency"  # the config itself unchanged
    assert objective.with_class_weights(weighted) is weighted  # a tuple stays as it is
    config.loss.class_weights = "median"
    with pytest.raises(ValueError, match="unknown config.loss.class_weights"):
        objective.with_class_weights(config)
