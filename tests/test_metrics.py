"""Confusion matrix and the paper's four metrics against an independent numpy computation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fcnjax import metrics


def reference_scores(labels: np.ndarray, predictions: np.ndarray, num_classes: int,
                     ignore: int = 255) -> dict[str, float]:
    """Per-class loops straight from the paper's definitions (no confusion matrix)."""
    keep = labels != ignore
    gt, pr = labels[keep], predictions[keep]
    accuracies, ious, dices, weighted = [], [], [], 0.0
    for c in range(num_classes):
        true_c, pred_c = gt == c, pr == c
        t = true_c.sum()
        hit = (true_c & pred_c).sum()
        union = (true_c | pred_c).sum()
        if t:
            accuracies.append(hit / t)
        if union:
            ious.append(hit / union)
            dices.append(2 * hit / (t + pred_c.sum()))
            weighted += t * hit / union
    return {"pixel_acc": (gt == pr).mean(), "mean_acc": np.mean(accuracies),
            "mean_iu": np.mean(ious), "fw_iu": weighted / gt.size, "mean_dice": np.mean(dices)}


def random_split(seed: int, num_classes: int = 6, batches: int = 3):
    """Random labels with void and two classes never present (one predicted, one not)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(batches):
        labels = rng.integers(0, num_classes - 2, size=(2, 9, 11))
        labels[rng.random(labels.shape) < 0.2] = 255
        predictions = np.where(rng.random(labels.shape) < 0.6, labels,
                               rng.integers(0, num_classes - 1, size=labels.shape))
        predictions = np.where(labels == 255, rng.integers(0, num_classes, labels.shape),
                               predictions)
        out.append((labels.astype(np.int32), predictions.astype(np.int32)))
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_scores_of_accumulated_confusion_match_numpy_reference(seed):
    num_classes = 6
    split = random_split(seed, num_classes)
    confusion = sum(np.asarray(metrics.confusion_matrix(jnp.asarray(l), jnp.asarray(p),
                                                        num_classes))
                    for l, p in split)
    labels = np.concatenate([l.ravel() for l, _ in split])
    predictions = np.concatenate([p.ravel() for _, p in split])
    expected = reference_scores(labels, predictions, num_classes)
    got = metrics.scores(confusion)
    assert set(got) == set(metrics.METRICS)
    for name in metrics.METRICS:
        np.testing.assert_allclose(got[name], expected[name], rtol=1e-12, err_msg=name)


def test_confusion_rows_are_truth_columns_are_predictions_void_skipped():
    labels = jnp.array([[0, 0, 1, 255, 2]])
    predictions = jnp.array([[0, 1, 1, 0, 0]])
    np.testing.assert_array_equal(metrics.confusion_matrix(labels, predictions, 3),
                                  [[1, 1, 0], [0, 1, 0], [1, 0, 0]])


def test_classes_absent_from_truth_and_prediction_are_left_out_of_means():
    confusion = np.array([[5, 1, 0], [2, 2, 0], [0, 0, 0]])  # class 2 never seen
    s = metrics.scores(confusion)
    np.testing.assert_allclose(s["mean_acc"], (5 / 6 + 2 / 4) / 2)
    np.testing.assert_allclose(s["mean_iu"], (5 / 8 + 2 / 5) / 2)  # IU uses the minus sign
    np.testing.assert_allclose(s["mean_dice"], (10 / 13 + 4 / 7) / 2)
    per_class = metrics.class_scores(confusion)
    np.testing.assert_allclose(per_class["iu"][:2], [5 / 8, 2 / 5])
    np.testing.assert_allclose(per_class["dice"][:2], [10 / 13, 4 / 7])
    assert per_class["iu"][2] is None and per_class["dice"][2] is None
    assert per_class["acc"][2] is None


def test_class_predicted_but_absent_from_truth_counts_zero_iu_and_no_accuracy():
    confusion = np.array([[3, 1], [0, 0]])  # class 1 only predicted
    s = metrics.scores(confusion)
    np.testing.assert_allclose(s["mean_acc"], 3 / 4)
    np.testing.assert_allclose(s["mean_iu"], (3 / 4 + 0.0) / 2)
    assert metrics.class_scores(confusion) == {"iu": [0.75, 0.0], "dice": [6 / 7, 0.0],
                                               "acc": [0.75, None]}


def test_hand_computed_three_class_matrix_with_void():
    """Every metric of a 3-class split worked out by hand; void pixels change nothing."""
    labels = jnp.array([[0, 0, 0, 0, 1, 1, 1, 2, 255, 255]])
    predictions = jnp.array([[0, 0, 0, 1, 1, 1, 2, 2, 0, 1]])
    confusion = metrics.confusion_matrix(labels, predictions, 3)
    np.testing.assert_array_equal(confusion, [[3, 1, 0], [0, 2, 1], [0, 0, 1]])
    s = metrics.scores(confusion)
    # t = (4, 3, 1), predicted = (3, 3, 2), correct = (3, 2, 1), 8 labelled pixels
    ius = (3 / 4, 2 / 4, 1 / 2)
    np.testing.assert_allclose(s["pixel_acc"], 6 / 8)
    np.testing.assert_allclose(s["mean_acc"], (3 / 4 + 2 / 3 + 1) / 3)
    np.testing.assert_allclose(s["mean_iu"], sum(ius) / 3)
    np.testing.assert_allclose(s["fw_iu"], (4 * ius[0] + 3 * ius[1] + 1 * ius[2]) / 8)
    np.testing.assert_allclose(s["mean_dice"], (6 / 7 + 4 / 6 + 2 / 3) / 3)


def test_where_mask_drops_padded_examples():
    labels = jnp.array([[[0, 1]], [[1, 1]]])
    predictions = jnp.array([[[0, 1]], [[0, 0]]])
    got = metrics.confusion_matrix(labels, predictions, 2, where=jnp.array([True, False]))
    np.testing.assert_array_equal(got, [[1, 0], [0, 1]])


def test_confusion_matrix_jits_and_equals_eager():
    labels, predictions = random_split(3)[0]
    eager = metrics.confusion_matrix(jnp.asarray(labels), jnp.asarray(predictions), 6)
    jitted = jax.jit(metrics.confusion_matrix, static_argnums=2)(
        jnp.asarray(labels), jnp.asarray(predictions), 6)
    np.testing.assert_array_equal(eager, jitted)
    assert jitted.dtype == jnp.int32 and int(jitted.sum()) == int((labels != 255).sum())


def test_empty_confusion_gives_nan_without_warnings():
    with np.errstate(all="raise"):
        s = metrics.scores(np.zeros((3, 3)))
    assert all(np.isnan(v) for v in s.values())
