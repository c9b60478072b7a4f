"""U-Net's augmentation on the device (fcnjax.data.device_elastic) against the host's
(fcnjax.data.elastic) for the same random draws, and through the pipeline (issue 15)."""

import jax
import numpy as np
import pytest
from PIL import Image
from test_image_folder import input_config

from fcnjax.data import device_elastic, elastic, pipeline
from fcnjax.run.errors import ConfigError
from fcnjax.run.state import create_train_state

UNET = dict(elastic_std=10.0, grid=3, max_rotation=180.0, max_shift=10.0, flip=True,
            contrast=0.1, brightness=0.1)


def cells(size, void_rows=0, seed=0):
    """A noisy image and cell (1) / membrane (0) labels, the first ``void_rows`` rows void."""
    rng = np.random.default_rng(seed)
    label = np.ones(size, np.int32)
    label[::7] = 0
    label[:, ::5] = 0
    label[:void_rows] = 255
    image = (label[..., None] * 0.5 + rng.normal(0, 1, (*size, 1))).astype(np.float32)
    return {"image": image, "label": label,
            "weight": rng.uniform(0.5, 3.0, size).astype(np.float32)}


def host(example, draw):
    return pipeline.void_weight(elastic.apply(example, draw, order=1))


def labels_read_not_blended(out_label, example, draw):
    """Every output label is the input's label at one of the 4 pixels around the position
    it reads (mirrored): a neighbour's class at worst, never a new value."""
    at = elastic.positions_of(example["label"].shape, draw)
    h, w = example["label"].shape
    near = []
    for dr in (np.floor, np.ceil):
        for dc in (np.floor, np.ceil):
            rows = elastic.mirror_index(dr(at[0]).astype(np.intp), h)
            cols = elastic.mirror_index(dc(at[1]).astype(np.intp), w)
            near.append(example["label"][rows, cols])
    return np.any(np.stack(near) == out_label, axis=0).all()


@pytest.mark.parametrize("settings", [
    UNET,
    dict(UNET, elastic_std=0.0),                      # rotation, shift, mirrors only
    dict(UNET, max_rotation=0.0, max_shift=0.0, flip=False),  # the elastic field only
    dict(UNET, contrast=0.0, brightness=0.0, grid=4),
])
def test_the_same_draws_give_the_same_example_as_on_the_host(settings):
    example = cells((61, 47), void_rows=6)
    warp = jax.jit(device_elastic.warp_example)
    differing, pixels = 0, 0
    for seed in range(6):
        draw = elastic.draw(np.random.default_rng(seed), **settings)
        expected = host(example, draw)
        got = jax.device_get(warp({**example, **draw}))
        assert sorted(got) == ["image", "label", "weight"]
        assert got["image"].shape == (61, 47, 1) and got["label"].dtype == np.int32
        np.testing.assert_allclose(got["image"], expected["image"], atol=2e-3)
        np.testing.assert_allclose(got["weight"], expected["weight"], atol=2e-3)
        assert (got["weight"][got["label"] == 255] == 0).all()
        assert labels_read_not_blended(got["label"], example, draw)
        differing += int(np.sum(got["label"] != expected["label"]))
        pixels += got["label"].size
    assert differing <= pixels * 1e-3  # float32 rounding at half-pixel boundaries only


def test_no_draws_no_change():
    example = cells((9, 8))
    batch = {k: v[None] for k, v in example.items()}
    out = device_elastic.apply_warps(batch)
    assert sorted(out) == sorted(batch)
    for key in batch:
        np.testing.assert_array_equal(out[key], batch[key])


def write_cells(root, count=3, size=(40, 36)):
    """<root>/train/{image,label}/<i>.png: noisy grey images, labels 255 cell / 0 membrane."""
    for kind in ("image", "label"):
        (root / "train" / kind).mkdir(parents=True)
    for i in range(count):
        ex = cells(size, seed=i)
        image = np.clip(ex["image"][..., 0] * 40 + 100, 0, 255).astype(np.uint8)
        Image.fromarray(image).save(root / "train" / "image" / f"{i}.png")
        Image.fromarray((ex["label"] * 255).astype(np.uint8)).save(
            root / "train" / "label" / f"{i}.png")
    return root


def unet_input(root, **overrides):
    settings = {("elastic_grid" if k == "grid" else k): v for k, v in UNET.items()}
    return input_config(root, image_mode="L", label_values=(0, 255), bgr=False,
                        mean=(127.5,), scale=1 / 127.5, eval_split="train", mirror_pad=6,
                        crop_size=(32, 30), border_weights=True,
                        **{**settings, "resample_order": 1, **overrides})


def test_device_batches_warped_in_the_step_are_the_host_batches(tmp_path):
    config = unet_input(write_cells(tmp_path))
    on_host = pipeline.train_batches(config, 2, seed=3, shard=(0, 1))
    on_device = pipeline.train_batches({**config, "augment_on": "device"}, 2, seed=3,
                                       shard=(0, 1))
    warp = jax.jit(device_elastic.apply_warps)
    for _ in range(3):
        expected, shipped = next(on_host), next(on_device)
        assert shipped["warp_grid"].shape == (2, 2, 3, 3)
        assert shipped["warp_mirror"].dtype == bool and shipped["warp_grey"].shape == (2, 2)
        got = jax.device_get(warp(shipped))
        assert sorted(got) == sorted(expected) == ["image", "label", "weight"]
        np.testing.assert_allclose(got["image"], expected["image"], atol=2e-3)
        np.testing.assert_allclose(got["weight"], expected["weight"], atol=2e-3)
        assert np.mean(got["label"] != expected["label"]) < 2e-3


def test_weight_maps_computed_once_per_image_change_nothing(tmp_path, monkeypatch):
    config = unet_input(write_cells(tmp_path))
    computed = []
    border_weights = pipeline.add_border_weights
    monkeypatch.setattr(pipeline, "add_border_weights",
                        lambda *a, **k: computed.append(1) or border_weights(*a, **k))
    batches = pipeline.train_batches({**config, "read_threads": 1}, 2, seed=1, shard=(0, 1))
    cached = [next(batches) for _ in range(4)]
    assert len(computed) == 3  # 8 examples of 3 images
    monkeypatch.setattr(pipeline, "WEIGHT_CACHE_BYTES", 0)  # nothing kept: each read anew
    batches = pipeline.train_batches({**config, "read_threads": 1}, 2, seed=1, shard=(0, 1))
    for a in cached:
        b = next(batches)
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])
    assert len(computed) >= 3 + 8  # every example computed anew


@pytest.mark.parametrize("overrides, message", [
    (dict(augment_on="gpu"), "unknown config.input.augment_on 'gpu'"),
    (dict(augment_on="device", resample_order=3), "set config.input.resample_order=1"),
    (dict(augment_on="device", elastic_std=0.0, max_rotation=0.0, max_shift=0.0,
          contrast=0.0, brightness=0.0), "none is set"),
])
def test_device_settings_it_cannot_honour_are_one_line_errors(tmp_path, overrides, message):
    config = unet_input(write_cells(tmp_path, count=1), **overrides)
    with pytest.raises(ConfigError, match=message):
        pipeline.train_batches(config, 1, seed=0, shard=(0, 1))


def test_the_train_step_warps_device_batches_as_the_host_did(tmp_path):
    """One jitted fcnjax.train.train_step on the host batch and on the device batch of the
    same seed: the same loss and confusion (weights on, a 2-level U-Net)."""
    from configs import sample
    from fcnjax import models, train
    from fcnjax.run import parallel

    config = sample.get_config()
    config.model.update(features=4, levels=2)
    config.input.update(unet_input(write_cells(tmp_path)).to_dict())
    model = models.build(config.model)
    key = jax.random.key(0, impl="rbg")  # threefry's init compiles for seconds on CPU
    mesh = parallel.make_mesh(1)
    step = jax.jit(train.train_step)
    measured = {}
    for on in ("host", "device"):
        batch = next(pipeline.train_batches({**config.input, "augment_on": on}, 2, seed=5,
                                            shard=(0, 1)))
        state = create_train_state(config, model, key, (1, 32, 30, 1))
        _, measured[on] = step(state, parallel.global_batch(batch, mesh), key)
    np.testing.assert_allclose(measured["device"]["loss"], measured["host"]["loss"], rtol=1e-4)
    confusion = {on: np.asarray(m["confusion"]) for on, m in measured.items()}
    assert np.abs(confusion["device"] - confusion["host"]).sum() <= 4
