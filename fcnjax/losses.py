"""Per-pixel softmax cross-entropy over non-void pixels, as the FCN reference trains.

The reference sums the loss over every labelled pixel (``normalize=False``); some of its nets
and most later work take the mean instead. Losses here return per-pixel values and a mask;
``sum_and_count`` and ``reduce`` turn them into the scalar the optimizer sees.

>>> logits = jnp.zeros((1, 2, 2, 3))
>>> labels = jnp.array([[[0, 1], [2, 255]]])
>>> total, count = sum_and_count(logits, labels)
>>> round(float(total / count), 4), int(count)   # log(3) over the 3 labelled pixels
(1.0986, 3)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

IGNORE_LABEL = 255
"""Label of "void" pixels: they count in neither loss nor metrics."""

REDUCTIONS = ("sum", "mean")


def pixel_cross_entropy(logits: jax.Array, labels: jax.Array, *,
                        ignore_label: int = IGNORE_LABEL,
                        weights: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
    """Softmax cross-entropy of each pixel, zero on void pixels.

    logits: float (B, H, W, C). labels: int (B, H, W), class ids in [0, C) or ``ignore_label``;
    any other value is treated as void too. weights: optional float (B, H, W) per-pixel
    weight map (U-Net's border weights), multiplied into the loss.
    Returns ``(losses, mask)``: float32 (B, H, W) losses and bool (B, H, W) mask of the
    labelled pixels. Computed in float32 whatever the logits' dtype.
    """
    if logits.shape[:-1] != labels.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and labels {tuple(labels.shape)} "
                         "must agree on (B, H, W)")
    if weights is not None and weights.shape != labels.shape:
        raise ValueError(f"weights {tuple(weights.shape)} must have the labels' shape "
                         f"{tuple(labels.shape)}")
    num_classes = logits.shape[-1]
    mask = (labels != ignore_label) & (labels >= 0) & (labels < num_classes)
    safe_labels = jnp.where(mask, labels, 0).astype(jnp.int32)
    losses = optax.softmax_cross_entropy_with_integer_labels(
        logits.astype(jnp.float32), safe_labels)
    if weights is not None:
        losses = losses * weights.astype(jnp.float32)
    return jnp.where(mask, losses, 0.0), mask


def sum_and_count(logits: jax.Array, labels: jax.Array, *, ignore_label: int = IGNORE_LABEL,
                  weights: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
    """Summed loss over labelled pixels and their number: float32 scalars (sum, count)."""
    losses, mask = pixel_cross_entropy(logits, labels, ignore_label=ignore_label,
                                       weights=weights)
    return losses.sum(), mask.sum().astype(jnp.float32)


def reduce(total: jax.Array, count: jax.Array, reduction: str) -> jax.Array:
    """The loss to minimise: ``"sum"`` (the FCN reference's unnormalized loss) or ``"mean"``.

    The mean of a batch without labelled pixels is 0, not NaN.
    """
    if reduction == "sum":
        return total
    if reduction == "mean":
        return total / jnp.maximum(count, 1.0)
    raise ValueError(f"unknown loss reduction {reduction!r}; choose one of {REDUCTIONS}")


def segmentation_loss(logits: jax.Array, labels: jax.Array, *, reduction: str = "mean",
                      ignore_label: int = IGNORE_LABEL, weights: jax.Array | None = None
                      ) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
    """Scalar loss and its ``(sum, count)``: ``sum_and_count`` then ``reduce``."""
    total, count = sum_and_count(logits, labels, ignore_label=ignore_label, weights=weights)
    return reduce(total, count, reduction), (total, count)
