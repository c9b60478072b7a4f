"""Overlap-tile prediction equals the untiled prediction; dihedral test-time averaging.

The U-Net here is tiny (3 levels, 4 first-level channels) so that a 1024x1024 image, tiled
into 11 x 11 tiles of 188 pixels and predicted whole, takes a few seconds on a CPU; the
tiling logic only sees its geometry (context 44, period 8), which differs from the paper's
net (92, 16) in numbers only.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fcnjax import inference
from fcnjax.models.unet import UNet, unet_geometry


@pytest.fixture(scope="module")
def tiny_unet():
    model = UNet(num_classes=3, features=4, levels=3, padding="valid")
    init = jax.jit(model.init)  # eager threefry init takes tens of seconds on a CPU
    params = init(jax.random.key(0, impl="rbg"), jnp.zeros((1, 92, 92, 1)))["params"]
    apply = jax.jit(functools.partial(model.apply, {"params": params}))
    return model, apply


def untiled(apply, geometry, image: np.ndarray) -> np.ndarray:
    """The net on the whole image, mirrored by its context and on to the next size it takes."""
    height, width = image.shape[:2]
    c = int(geometry.output.offset)

    def fitting(n):
        return next(m for m in range(n + 2 * c, n + 2 * c + 64) if geometry._walk(m))

    pad = ((c, fitting(height) - height - c), (c, fitting(width) - width - c), (0, 0))
    out = np.asarray(apply(np.pad(image, pad, mode="reflect")[None]))[0]
    return out[:height, :width]


def test_paper_plan_steps_by_a_multiple_of_the_coarsest_stride():
    plan = inference.unet_plan(unet_geometry(), 572)
    assert (plan.tile, plan.out, plan.context, plan.step) == (572, 388, 92, 384)
    assert plan.grid(512, 512) == (2, 2)


@pytest.mark.parametrize("size", [(1024, 1024), (301, 257), (37, 5)])
def test_tiled_prediction_equals_untiled_where_both_exist(tiny_unet, size):
    model, apply = tiny_unet
    geometry = model.geometry()
    plan = inference.unet_plan(geometry, 188)
    image = np.random.default_rng(0).normal(size=(*size, 1)).astype(np.float32)
    tiled = inference.predict_tiled(apply, image, plan, batch_size=8)
    assert tiled.shape == (*size, 3)
    np.testing.assert_allclose(tiled, untiled(apply, geometry, image), atol=1e-5, rtol=1e-4)


def test_a_step_off_the_pooling_grid_would_not_match(tiny_unet):
    """Why ``step`` is rounded: advancing tiles by the full 100-pixel output shifts the
    pooling grid by 4 pixels and changes the prediction."""
    model, apply = tiny_unet
    geometry = model.geometry()
    off_grid = inference.TilePlan(tile=188, out=100, context=44, step=100)
    image = np.random.default_rng(1).normal(size=(200, 200, 1)).astype(np.float32)
    tiled = inference.predict_tiled(apply, image, off_grid, batch_size=4)
    assert not np.allclose(tiled, untiled(apply, geometry, image), atol=1e-4)


def test_same_padding_and_uncentred_outputs_are_rejected():
    with pytest.raises(ValueError, match="padding='valid'"):
        inference.unet_plan(unet_geometry(padding="same"), 64)
    with pytest.raises(ValueError, match="not centred"):
        inference.make_plan(10, 5)


def box_blur(image: np.ndarray) -> np.ndarray:
    """3x3 mean with mirrored borders: commutes with every rotation and mirror."""
    padded = np.pad(image, ((1, 1), (1, 1), (0, 0)), mode="symmetric")
    h, w = image.shape[:2]
    return sum(padded[i:i + h, j:j + w] for i in range(3) for j in range(3)) / 9


def test_dihedral_average_of_an_equivariant_function_is_the_function():
    image = np.random.default_rng(2).normal(size=(7, 5, 2)).astype(np.float32)
    np.testing.assert_allclose(inference.dihedral_average(box_blur, image), box_blur(image),
                               rtol=1e-5, atol=1e-6)


def test_dihedral_average_symmetrises_a_position_dependent_function():
    """f(x) = x + row index. Mapped back, the ramp of each of the 8 orientations runs down,
    up, right or left (twice each), so the average is the mean of those four ramps."""
    h, w = 5, 5
    image = np.zeros((h, w, 1), np.float32)
    out = inference.dihedral_average(lambda x: x + np.arange(x.shape[0])[:, None, None], image)
    r, c = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    expected = (r + (h - 1 - r) + c + (w - 1 - c)) / 4
    np.testing.assert_allclose(out[..., 0], expected, rtol=1e-6)
    np.testing.assert_allclose(inference.untransform(inference.transform(image, 3, True), 3, True),
                               image)
