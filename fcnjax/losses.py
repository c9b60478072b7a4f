"""Per-pixel losses over non-void pixels: softmax cross-entropy, as the FCN reference trains,
and the focal loss (Lin et al. 2017). Region losses (soft Dice, Lovász-softmax) are in
:mod:`fcnjax.region_losses`; :mod:`fcnjax.loss_terms` adds up the terms a config names.

The reference sums the loss over every labelled pixel (``normalize=False``); some of its nets
and most later work take the mean instead. Losses here return per-pixel values and a mask;
``sum_and_count`` and ``reduce`` turn them into the scalar the optimizer sees.

Three ways to weigh pixels, which multiply: ``weights``, a per-pixel map (U-Net's border
weights, :mod:`fcnjax.data.weight_map`); ``class_weights``, one weight per class (e.g.
:func:`fcnjax.data.classes.median_frequency_weights`); and ``keep_prob`` with a PRNG ``key``, the FCN paper's loss
sampling, which keeps each labelled pixel with probability ``keep_prob``. Dropped pixels
leave the mask, so ``count`` and the mean are over the pixels that were kept.

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

from fcnjax.data.classes import VOID

IGNORE_LABEL = VOID  # the loss's default ignore label: the void value
"""Label of "void" pixels: they count in neither loss nor metrics."""

REDUCTIONS = ("sum", "mean")


def check_shapes(logits: jax.Array, labels: jax.Array, weights: jax.Array | None = None,
                 class_weights: jax.Array | None = None) -> None:
    """ValueError quoting the shapes unless logits (B, H, W, C), labels (B, H, W), weights
    (B, H, W) and class_weights (C,) agree."""
    if logits.shape[:-1] != labels.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and labels {tuple(labels.shape)} "
                         "must agree on (B, H, W)")
    if weights is not None and weights.shape != labels.shape:
        raise ValueError(f"weights {tuple(weights.shape)} must have the labels' shape "
                         f"{tuple(labels.shape)}")
    num_classes = logits.shape[-1]
    if class_weights is not None and jnp.shape(class_weights) != (num_classes,):
        raise ValueError(f"class_weights {jnp.shape(class_weights)} must have one weight per "
                         f"class ({num_classes},)")


def labelled_pixels(labels: jax.Array, num_classes: int, *, ignore_label: int = IGNORE_LABEL,
                    keep_prob: float = 1.0, key: jax.Array | None = None) -> jax.Array:
    """bool (B, H, W): pixels whose label is a class id in [0, num_classes), not
    ``ignore_label``, and (with ``keep_prob`` < 1) kept by the loss sampling of ``key``."""
    mask = (labels != ignore_label) & (labels >= 0) & (labels < num_classes)
    return mask & sample_pixels(key, labels.shape, keep_prob)


def pixel_cross_entropy(logits: jax.Array, labels: jax.Array, *,
                        ignore_label: int = IGNORE_LABEL,
                        weights: jax.Array | None = None,
                        class_weights: jax.Array | None = None,
                        keep_prob: float = 1.0,
                        key: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
    """Softmax cross-entropy of each pixel, zero on void pixels.

    logits: float (B, H, W, C). labels: int (B, H, W), class ids in [0, C) or ``ignore_label``;
    any other value is treated as void too. weights: optional float (B, H, W) per-pixel
    weight map (U-Net's border weights), multiplied into the loss. class_weights: optional
    float (C,), the weight of each pixel's true class, multiplied too. keep_prob: with
    ``key``, each labelled pixel stays in the loss (and the mask) with this probability.
    Returns ``(losses, mask)``: float32 (B, H, W) losses and bool (B, H, W) mask of the
    labelled (and kept) pixels. Computed in float32 whatever the logits' dtype.
    """
    check_shapes(logits, labels, weights, class_weights)
    mask = labelled_pixels(labels, logits.shape[-1], ignore_label=ignore_label,
                           keep_prob=keep_prob, key=key)
    safe_labels = jnp.where(mask, labels, 0).astype(jnp.int32)
    losses = optax.softmax_cross_entropy_with_integer_labels(
        logits.astype(jnp.float32), safe_labels)
    return weigh(losses, mask, safe_labels, weights, class_weights), mask


def weigh(losses: jax.Array, mask: jax.Array, safe_labels: jax.Array,
          weights: jax.Array | None, class_weights: jax.Array | None) -> jax.Array:
    """float32 (B, H, W) ``losses`` times the weight map and each pixel's class weight, zero
    outside ``mask``. safe_labels: int32 (B, H, W), class ids (0 on void pixels)."""
    if weights is not None:
        losses = losses * weights.astype(jnp.float32)
    if class_weights is not None:
        losses = losses * jnp.asarray(class_weights, jnp.float32)[safe_labels]
    return jnp.where(mask, losses, 0.0)


def pixel_focal(logits: jax.Array, labels: jax.Array, *, gamma: float = 2.0,
                alpha: float | None = None, ignore_label: int = IGNORE_LABEL,
                weights: jax.Array | None = None, class_weights: jax.Array | None = None,
                keep_prob: float = 1.0, key: jax.Array | None = None
                ) -> tuple[jax.Array, jax.Array]:
    """Focal loss of each pixel, zero on void pixels: FL(p_t) = -alpha_t (1 - p_t)^gamma
    log p_t (Lin et al. 2017, eq. 5), p_t the softmax probability of the true class.

    gamma: static float >= 0; 0 without ``alpha`` is the cross-entropy. alpha: the paper's
    balance of two classes (static float in [0, 1]): alpha_t = alpha for class 1, 1 - alpha
    for class 0; None: 1 (more classes: weigh them with ``class_weights``). The other
    arguments and the result are ``pixel_cross_entropy``'s: logits float (B, H, W, C),
    labels int (B, H, W); returns float32 (B, H, W) losses and bool (B, H, W) mask.
    Gradients stay finite where p_t rounds to 1, for any gamma >= 0.

    >>> logits = jnp.log(jnp.array([[[[0.8, 0.2], [0.4, 0.6], [0.1, 0.9]]]]))
    >>> losses, _ = pixel_focal(logits, jnp.array([[[1, 0, 1]]]), gamma=2.0)
    >>> [round(float(x), 4) for x in losses[0, 0]]  # 0.8^2 ln 5, 0.6^2 ln 2.5, 0.1^2 ln(10/9)
    [1.03, 0.3299, 0.0011]
    """
    check_shapes(logits, labels, weights, class_weights)
    num_classes = logits.shape[-1]
    if gamma < 0:
        raise ValueError(f"focal gamma must be >= 0, got {gamma}")
    mask = labelled_pixels(labels, num_classes, ignore_label=ignore_label,
                           keep_prob=keep_prob, key=key)
    safe_labels = jnp.where(mask, labels, 0).astype(jnp.int32)
    log_p = jax.nn.log_softmax(logits.astype(jnp.float32), -1)
    log_pt = jnp.take_along_axis(log_p, safe_labels[..., None], -1)[..., 0]
    losses = -log_pt
    if gamma:
        miss = -jnp.expm1(log_pt)  # 1 - p_t, accurate near p_t = 1
        positive = miss > 0  # where p_t rounds to 1 the factor is 0, and so its gradient
        losses = losses * jnp.where(positive, jnp.where(positive, miss, 1.0) ** gamma, 0.0)
    if alpha is not None:
        if num_classes != 2 or not 0.0 <= alpha <= 1.0:
            raise ValueError(f"focal alpha {alpha} balances two classes (alpha in [0, 1]); "
                             f"these logits have {num_classes}: use class_weights")
        balance = jnp.array([1.0 - alpha, alpha], jnp.float32)
        class_weights = balance if class_weights is None else balance * class_weights
    return weigh(losses, mask, safe_labels, weights, class_weights), mask


def sample_pixels(key: jax.Array | None, shape: tuple[int, ...], keep_prob: float) -> jax.Array:
    """bool ``shape``: each pixel kept with probability ``keep_prob`` (all when it is 1).

    The FCN paper's loss sampling. ``keep_prob`` must be static (a Python float).
    """
    if not 0.0 < keep_prob <= 1.0:
        raise ValueError(f"keep_prob must be in (0, 1], got {keep_prob}")
    if keep_prob == 1.0:
        return jnp.ones(shape, bool)
    if key is None:
        raise ValueError(f"keep_prob={keep_prob} samples pixels: pass a PRNG key")
    return jax.random.bernoulli(key, keep_prob, shape)


def sum_and_count(logits: jax.Array, labels: jax.Array, *, ignore_label: int = IGNORE_LABEL,
                  weights: jax.Array | None = None, class_weights: jax.Array | None = None,
                  keep_prob: float = 1.0, key: jax.Array | None = None
                  ) -> tuple[jax.Array, jax.Array]:
    """Summed loss over labelled (and kept) pixels and their number: float32 (sum, count)."""
    losses, mask = pixel_cross_entropy(logits, labels, ignore_label=ignore_label,
                                       weights=weights, class_weights=class_weights,
                                       keep_prob=keep_prob, key=key)
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
                      ignore_label: int = IGNORE_LABEL, weights: jax.Array | None = None,
                      class_weights: jax.Array | None = None, keep_prob: float = 1.0,
                      key: jax.Array | None = None
                      ) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
    """Scalar loss and its ``(sum, count)``: ``sum_and_count`` then ``reduce``.

    With ``keep_prob`` < 1 the mean is over the pixels kept; the sum covers only them.
    """
    total, count = sum_and_count(logits, labels, ignore_label=ignore_label, weights=weights,
                                 class_weights=class_weights, keep_prob=keep_prob, key=key)
    return reduce(total, count, reduction), (total, count)
