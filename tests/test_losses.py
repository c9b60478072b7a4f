"""Per-pixel softmax cross-entropy: void handling, reductions, a numpy reference."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fcnjax import losses


def numpy_xent(logits: np.ndarray, labels: np.ndarray, ignore: int = 255) -> tuple[float, int]:
    """Independent reference: summed -log softmax of the true class over labelled pixels."""
    z = logits.astype(np.float64)
    log_softmax = z - z.max(-1, keepdims=True)
    log_softmax -= np.log(np.exp(log_softmax).sum(-1, keepdims=True))
    keep = labels != ignore
    picked = np.take_along_axis(log_softmax, np.where(keep, labels, 0)[..., None], -1)[..., 0]
    return float(-(picked * keep).sum()), int(keep.sum())


def random_batch(seed: int = 0, classes: int = 5, void_fraction: float = 0.3):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(2, 6, 7, classes)).astype(np.float32) * 3
    labels = rng.integers(0, classes, size=(2, 6, 7))
    labels[rng.random(labels.shape) < void_fraction] = 255
    return logits, labels.astype(np.int32)


def test_sum_and_count_match_numpy_log_softmax_reference():
    logits, labels = random_batch()
    total, count = losses.sum_and_count(jnp.asarray(logits), jnp.asarray(labels))
    expected_total, expected_count = numpy_xent(logits, labels)
    np.testing.assert_allclose(float(total), expected_total, rtol=1e-5)
    assert int(count) == expected_count


def test_ignored_pixels_do_not_change_loss():
    logits, labels = random_batch()
    void = labels == 255
    scrambled = logits.copy()
    scrambled[void] = np.random.default_rng(1).normal(size=(void.sum(), logits.shape[-1])) * 100
    for reduction in losses.REDUCTIONS:
        a, _ = losses.segmentation_loss(jnp.asarray(logits), jnp.asarray(labels),
                                        reduction=reduction)
        b, _ = losses.segmentation_loss(jnp.asarray(scrambled), jnp.asarray(labels),
                                        reduction=reduction)
        np.testing.assert_allclose(float(a), float(b), rtol=1e-6)


def test_void_pixels_get_zero_loss_and_zero_gradient():
    logits, labels = random_batch()
    per_pixel, mask = losses.pixel_cross_entropy(jnp.asarray(logits), jnp.asarray(labels))
    assert not np.asarray(mask)[labels == 255].any()
    assert (np.asarray(per_pixel)[labels == 255] == 0).all()
    grad = jax.grad(lambda z: losses.sum_and_count(z, jnp.asarray(labels))[0])(
        jnp.asarray(logits))
    assert (np.asarray(grad)[labels == 255] == 0).all()


def test_mean_is_sum_divided_by_labelled_pixels():
    logits, labels = random_batch()
    total, (s, count) = losses.segmentation_loss(jnp.asarray(logits), jnp.asarray(labels),
                                                 reduction="sum")
    mean, _ = losses.segmentation_loss(jnp.asarray(logits), jnp.asarray(labels),
                                       reduction="mean")
    np.testing.assert_allclose(float(total), float(s))
    np.testing.assert_allclose(float(mean), float(total) / float(count), rtol=1e-6)


def test_all_void_batch_has_zero_mean_loss_not_nan():
    logits, _ = random_batch()
    labels = jnp.full(logits.shape[:-1], 255, jnp.int32)
    mean, (_, count) = losses.segmentation_loss(jnp.asarray(logits), labels, reduction="mean")
    assert float(mean) == 0.0 and float(count) == 0.0


def test_weight_map_scales_each_pixel_loss():
    logits, labels = random_batch()
    weights = np.random.default_rng(2).uniform(0.5, 3.0, size=labels.shape).astype(np.float32)
    plain, _ = losses.pixel_cross_entropy(jnp.asarray(logits), jnp.asarray(labels))
    weighted, _ = losses.pixel_cross_entropy(jnp.asarray(logits), jnp.asarray(labels),
                                             weights=jnp.asarray(weights))
    np.testing.assert_allclose(np.asarray(weighted), np.asarray(plain) * weights, rtol=1e-6)


def test_bfloat16_logits_are_scored_in_float32():
    logits, labels = random_batch()
    total, _ = losses.sum_and_count(jnp.asarray(logits, jnp.bfloat16), jnp.asarray(labels))
    assert total.dtype == jnp.float32


def test_jit_equals_eager():
    logits, labels = random_batch()
    eager = losses.sum_and_count(jnp.asarray(logits), jnp.asarray(labels))
    jitted = jax.jit(losses.sum_and_count)(jnp.asarray(logits), jnp.asarray(labels))
    np.testing.assert_allclose(np.asarray(eager), np.asarray(jitted), rtol=1e-6)


def test_bad_shapes_and_reduction_raise_value_error():
    logits, labels = random_batch()
    with pytest.raises(ValueError, match="must agree"):
        losses.pixel_cross_entropy(jnp.asarray(logits), jnp.asarray(labels[:, :3]))
    with pytest.raises(ValueError, match="unknown loss reduction"):
        losses.reduce(jnp.float32(1), jnp.float32(1), "median")


def test_class_weights_scale_each_pixel_by_its_true_class_weight():
    logits, labels = random_batch()
    class_weights = np.array([0.5, 1.0, 2.0, 3.0, 4.0], np.float32)
    plain, _ = losses.pixel_cross_entropy(jnp.asarray(logits), jnp.asarray(labels))
    weighted, mask = losses.pixel_cross_entropy(jnp.asarray(logits), jnp.asarray(labels),
                                                class_weights=jnp.asarray(class_weights))
    expected = np.asarray(plain) * class_weights[np.where(labels == 255, 0, labels)]
    np.testing.assert_allclose(np.asarray(weighted), np.where(labels == 255, 0, expected),
                               rtol=1e-6)
    with pytest.raises(ValueError, match="one weight per class"):
        losses.pixel_cross_entropy(jnp.asarray(logits), jnp.asarray(labels),
                                   class_weights=jnp.ones(3))


def test_class_and_pixel_weights_multiply():
    logits, labels = random_batch()
    weights = np.random.default_rng(3).uniform(0.5, 2.0, size=labels.shape).astype(np.float32)
    class_weights = np.arange(1, 6, dtype=np.float32)
    both, _ = losses.pixel_cross_entropy(jnp.asarray(logits), jnp.asarray(labels),
                                         weights=jnp.asarray(weights),
                                         class_weights=jnp.asarray(class_weights))
    plain, _ = losses.pixel_cross_entropy(jnp.asarray(logits), jnp.asarray(labels))
    expected = np.asarray(plain) * weights * class_weights[np.where(labels == 255, 0, labels)]
    np.testing.assert_allclose(np.asarray(both), expected, rtol=1e-5)



def test_loss_sampling_keeps_about_keep_prob_and_means_over_the_kept_pixels():
    rng = np.random.default_rng(4)
    logits = rng.normal(size=(2, 64, 64, 3)).astype(np.float32)
    labels = rng.integers(0, 3, size=(2, 64, 64)).astype(np.int32)
    labels[:, :8] = 255
    key = jax.random.key(0)
    per_pixel, mask = losses.pixel_cross_entropy(jnp.asarray(logits), jnp.asarray(labels),
                                                 keep_prob=0.25, key=key)
    mask = np.asarray(mask)
    labelled = labels != 255
    assert not mask[~labelled].any()
    assert abs(mask.sum() / labelled.sum() - 0.25) < 0.03
    mean, (total, count) = losses.segmentation_loss(jnp.asarray(logits), jnp.asarray(labels),
                                                    keep_prob=0.25, key=key)
    plain, _ = losses.pixel_cross_entropy(jnp.asarray(logits), jnp.asarray(labels))
    assert int(count) == mask.sum()
    np.testing.assert_allclose(float(mean), np.asarray(plain)[mask].mean(), rtol=1e-5)
    np.testing.assert_allclose(float(total), np.asarray(per_pixel).sum(), rtol=1e-5)


def test_loss_sampling_needs_a_key_and_a_probability_in_range():
    logits, labels = random_batch()
    with pytest.raises(ValueError, match="PRNG key"):
        losses.pixel_cross_entropy(jnp.asarray(logits), jnp.asarray(labels), keep_prob=0.5)
    with pytest.raises(ValueError, match="keep_prob"):
        losses.pixel_cross_entropy(jnp.asarray(logits), jnp.asarray(labels), keep_prob=0.0,
                                   key=jax.random.key(0))
    same, _ = losses.sum_and_count(jnp.asarray(logits), jnp.asarray(labels), keep_prob=1.0)
    plain, _ = losses.sum_and_count(jnp.asarray(logits), jnp.asarray(labels))
    assert float(same) == float(plain)
