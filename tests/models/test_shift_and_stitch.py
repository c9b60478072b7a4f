"""Shift-and-stitch equals the same net with strides removed and filters dilated (a trous)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fcnjax import models
from fcnjax.models.shift_and_stitch import coarse_scores, shift_and_stitch

DN = ("NHWC", "HWIO", "NHWC")


def conv(x, w, stride=1, dilation=1):
    return jax.lax.conv_general_dilated(x, w, (stride, stride), "VALID",
                                        rhs_dilation=(dilation, dilation), dimension_numbers=DN)


def pool(x, stride=2, dilation=1):
    return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 2, 2, 1), (1, stride, stride, 1),
                                 "VALID", window_dilation=(1, dilation, dilation, 1))


@pytest.fixture
def weights():
    k1, k2 = jax.random.split(jax.random.key(0))
    return jax.random.normal(k1, (3, 3, 2, 4)), jax.random.normal(k2, (3, 3, 4, 3))


def test_one_strided_conv_stitches_into_the_stride_one_conv(weights):
    w, _ = weights
    image = jax.random.normal(jax.random.key(1), (2, 21, 18, 2))
    dense = shift_and_stitch(lambda x: conv(x, w, stride=3), image, 3)
    reference = conv(image, w)  # stride 1: one output per input position
    n_h, n_w = reference.shape[1:3]
    np.testing.assert_allclose(dense[:, :n_h, :n_w], reference, rtol=1e-5, atol=1e-5)


def test_stride_four_net_stitches_into_its_filter_rarefied_twin(weights):
    """conv -> pool/2 -> conv -> pool/2 stitched == conv -> pool -> dilated conv -> dilated pool."""
    w1, w2 = weights
    image = jax.random.normal(jax.random.key(2), (1, 30, 27, 2))

    def coarse(x):
        return pool(conv(pool(conv(x, w1)), w2))

    def rarefied(x):
        return pool(conv(pool(conv(x, w1), stride=1), w2, dilation=2), stride=1, dilation=2)

    dense = shift_and_stitch(coarse, image, 4)
    reference = rarefied(image)
    n_h, n_w = reference.shape[1:3]
    assert dense.shape[1] >= n_h and dense.shape[2] >= n_w
    np.testing.assert_allclose(dense[:, :n_h, :n_w], reference, rtol=1e-5, atol=1e-5)


def test_stitched_cells_are_the_net_at_the_shifted_input(weights):
    w, _ = weights
    image = jax.random.normal(jax.random.key(3), (1, 12, 12, 2))
    fn = lambda x: conv(x, w, stride=2)  # noqa: E731
    dense = shift_and_stitch(fn, image, 2)
    shifted = jnp.pad(image[:, 1:, 0:], ((0, 0), (0, 1), (0, 0), (0, 0)))
    np.testing.assert_allclose(dense[:, 1::2, 0::2], fn(shifted), rtol=1e-6)


def test_coarse_scores_are_the_score_fr_map():
    model = models.fcn_alexnet(num_classes=4)
    image = jax.random.normal(jax.random.key(4), (1, 40, 40, 3))
    variables = model.init(jax.random.key(5), image)
    scores = coarse_scores(model, variables, image)
    # alexnet: (40 + 200 - 11) // 4 + 1 = 58 -> pools 3/2 ceil: 29, 14, 7 -> fc6 6x6 -> 2
    assert scores.shape == (1, 2, 2, 4)
    with pytest.raises(ValueError, match="no layer named"):
        coarse_scores(model, variables, image, layer="score_pool9")
