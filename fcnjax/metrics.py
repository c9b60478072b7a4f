"""The FCN paper's four segmentation metrics (and Dice), from one confusion matrix per split.

``confusion_matrix`` is plain JAX (jit it in the step); sum its results over every batch of
the split on device, then call ``scores`` once on the host. With n_ij the number of pixels of
class i predicted as j and t_i = sum_j n_ij:

- pixel accuracy: sum_i n_ii / sum_i t_i
- mean accuracy: mean_i n_ii / t_i
- mean IU: mean_i n_ii / (t_i + sum_j n_ji - n_ii)
- frequency weighted IU: sum_i t_i n_ii / (t_i + sum_j n_ji - n_ii) / sum_k t_k
- Dice (F1) of class i: 2 n_ii / (t_i + sum_j n_ji); mean Dice over classes

A class absent from the ground truth has no accuracy (0/0), and one absent from both ground
truth and prediction has no IU or Dice; such NaNs are left out of the means, as the
reference does. Scores are keyed by the short names in METRICS (``pixel_acc``, ``mean_acc``,
``mean_iu``, ``fw_iu``, ``mean_dice``); ``class_scores`` gives the per-class values.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from fcnjax.losses import IGNORE_LABEL

METRICS = ("pixel_acc", "mean_acc", "mean_iu", "fw_iu", "mean_dice")
"""Keys of ``scores``: the paper's four metrics, then the mean Dice coefficient."""


def confusion_matrix(labels: jax.Array, predictions: jax.Array, num_classes: int,
                     ignore: int = IGNORE_LABEL, where: jax.Array | None = None) -> jax.Array:
    """int32 (num_classes, num_classes) counts: row = true class, column = predicted class.

    labels, predictions: int arrays of one shape (e.g. (B, H, W)). Pixels labelled ``ignore``
    or outside [0, num_classes), and pixels where the optional bool ``where`` is False
    (padding; shape (B,) masks whole examples), are not counted. ``num_classes`` must be a
    Python int (static under jit).
    """
    if labels.shape != predictions.shape:
        raise ValueError(f"labels {tuple(labels.shape)} and predictions "
                         f"{tuple(predictions.shape)} must have one shape")
    valid = (labels != ignore) & (labels >= 0) & (labels < num_classes)
    valid &= (predictions >= 0) & (predictions < num_classes)
    if where is not None:
        where = jnp.asarray(where, bool)
        valid &= where.reshape(where.shape + (1,) * (labels.ndim - where.ndim))
    labels, predictions, valid = (a.astype(jnp.int32).reshape(-1)
                                  for a in (labels, predictions, valid))
    index = jnp.where(valid, labels * num_classes + predictions, 0)
    counts = jnp.zeros(num_classes * num_classes, jnp.int32).at[index].add(valid)
    return counts.reshape(num_classes, num_classes)


def per_class(confusion: np.ndarray) -> dict[str, np.ndarray]:
    """Per-class accuracy, IU, Dice (float64, NaN where undefined) and pixel count t_i."""
    n = np.asarray(confusion, np.float64)
    correct = np.diag(n)
    truth = n.sum(axis=1)          # t_i
    predicted = n.sum(axis=0)      # sum_j n_ji
    with np.errstate(divide="ignore", invalid="ignore"):
        accuracy = correct / truth
        iu = correct / (truth + predicted - correct)
        dice = 2 * correct / (truth + predicted)
    return {"accuracy": accuracy, "iu": iu, "dice": dice, "frequency": truth}


def scores(confusion: np.ndarray) -> dict[str, float]:
    """The paper's pixel accuracy, mean accuracy, mean IU, frequency weighted IU; mean Dice.

    confusion: (C, C) counts, row = truth, column = prediction, summed over the split.
    Values are Python floats in [0, 1] (NaN if nothing was labelled).
    """
    n = np.asarray(confusion, np.float64)
    if n.ndim != 2 or n.shape[0] != n.shape[1]:
        raise ValueError(f"confusion must be a square (C, C) matrix, got shape {n.shape}")
    c = per_class(n)
    total = n.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        pixel_accuracy = np.trace(n) / total
        fw_iu = np.nansum(c["frequency"] * c["iu"]) / total
    values = {
        "pixel_acc": pixel_accuracy,
        "mean_acc": _nanmean(c["accuracy"]),
        "mean_iu": _nanmean(c["iu"]),
        "fw_iu": fw_iu if total else np.nan,
        "mean_dice": _nanmean(c["dice"]),
    }
    return {k: float(v) for k, v in values.items()}


def class_scores(confusion: np.ndarray) -> dict[str, list[float | None]]:
    """Per-class ``iu``, ``dice`` and ``acc`` as lists of Python floats (JSON-ready).

    Undefined values (a class absent from truth and prediction; for ``acc``, from truth)
    are None.
    """
    c = per_class(confusion)
    return {name: [None if np.isnan(v) else float(v) for v in c[key]]
            for name, key in (("iu", "iu"), ("dice", "dice"), ("acc", "accuracy"))}


def _nanmean(x: np.ndarray) -> float:
    """Mean over the non-NaN entries; NaN (without a warning) when there are none."""
    finite = x[~np.isnan(x)]
    return float(finite.mean()) if finite.size else float("nan")
