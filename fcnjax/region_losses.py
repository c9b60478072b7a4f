"""Losses of a whole region rather than of each pixel: soft Dice (Milletari et al. 2016) and
Lovász-softmax (Berman et al. 2018), for the rare, thin classes that a per-pixel loss lets
the frequent ones outvote.

Each returns one float32 scalar: a mean over the classes present in the labels (weighted by
``class_weights``) of a per-class loss in [0, 1], over the whole batch or (``per_image``)
averaged over the images that hold a labelled pixel. Void pixels (``ignore_label``, and
pixels the loss sampling of ``key`` drops) take no part: the result is the one of the
labelled pixels alone. A batch with no labelled pixel has loss 0 and zero gradients.

>>> logits = jnp.log(jnp.array([[[[0.8, 0.2], [0.4, 0.6], [0.1, 0.9]]]]))
>>> labels = jnp.array([[[1, 0, 1]]])
>>> round(float(soft_dice(logits, labels, smooth=0.0)), 4)  # 1 - (0.8/2.3 + 2.2/3.7) / 2
0.5288
>>> round(float(lovasz_softmax(logits, labels)), 4)  # (0.7 + 0.5333) / 2
0.6167
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from fcnjax import losses
from fcnjax.losses import IGNORE_LABEL


def probabilities_and_targets(logits: jax.Array, labels: jax.Array, ignore_label: int,
                              keep_prob: float, key: jax.Array | None
                              ) -> tuple[jax.Array, jax.Array, jax.Array]:
    """float32 softmax probabilities p (B, H, W, C), float32 one-hot targets g (B, H, W, C)
    (zero on void pixels) and the bool (B, H, W) mask of the labelled (and kept) pixels."""
    num_classes = logits.shape[-1]
    mask = losses.labelled_pixels(labels, num_classes, ignore_label=ignore_label,
                                  keep_prob=keep_prob, key=key)
    targets = jax.nn.one_hot(jnp.where(mask, labels, 0), num_classes, dtype=jnp.float32)
    targets = targets * mask[..., None]
    return jax.nn.softmax(logits.astype(jnp.float32), -1), targets, mask


def present_mean(class_losses: jax.Array, present: jax.Array,
                 class_weights: jax.Array | None = None) -> jax.Array:
    """float32 scalar: per group (image, or the whole batch) the mean of ``class_losses``
    (G, C) over the classes ``present`` (bool (G, C)), weighted by ``class_weights`` (C,);
    then the mean over the groups with a present class of non-zero weight (none: 0).
    ``class_losses`` must be finite everywhere (absent classes' values get weight 0)."""
    weights = present.astype(jnp.float32)
    if class_weights is not None:
        weights = weights * jnp.asarray(class_weights, jnp.float32)
    norm = weights.sum(-1)
    scored = norm > 0
    group = jnp.sum(weights * class_losses, -1) / jnp.where(scored, norm, 1.0)
    return jnp.sum(jnp.where(scored, group, 0.0)) / jnp.maximum(scored.sum(), 1)


def soft_dice(logits: jax.Array, labels: jax.Array, *, ignore_label: int = IGNORE_LABEL,
              weights: jax.Array | None = None, class_weights: jax.Array | None = None,
              keep_prob: float = 1.0, key: jax.Array | None = None, smooth: float = 1.0,
              squared: bool = False, per_image: bool = False) -> jax.Array:
    """Multi-class soft Dice loss: 1 - D_c averaged over the present classes, where

        D_c = (2 sum_i w_i p_ic g_ic + smooth) / (sum_i w_i p_ic^k + sum_i w_i g_ic + smooth)

    over the labelled pixels i of the batch (or of each image, ``per_image``); p softmax
    probabilities, g one-hot labels, k = 2 with ``squared`` (Milletari et al.'s eq. 1), else
    1 (the common form). logits: float (B, H, W, C); labels: int (B, H, W), void =
    ``ignore_label``; weights: optional float (B, H, W) pixel weights w (U-Net's border
    map; 1 without); class_weights: optional float (C,), the classes' weights in the mean;
    keep_prob, key: the loss sampling of ``losses.sample_pixels``. Returns float32 ().
    """
    losses.check_shapes(logits, labels, weights, class_weights)
    if smooth < 0:
        raise ValueError(f"dice smooth must be >= 0, got {smooth}")
    p, g, mask = probabilities_and_targets(logits, labels, ignore_label, keep_prob, key)
    w = mask.astype(jnp.float32) if weights is None else jnp.where(
        mask, weights.astype(jnp.float32), 0.0)
    w = w[..., None]
    axes = (1, 2) if per_image else (0, 1, 2)
    intersection = jnp.sum(w * p * g, axes)  # (G, C)
    denominator = jnp.sum(w * (p * p if squared else p), axes) + jnp.sum(w * g, axes) + smooth
    present = (jnp.sum(g, axes) > 0) & (denominator > 0)
    dice = (2 * intersection + smooth) / jnp.where(present, denominator, 1.0)
    if not per_image:
        dice, present = dice[None], present[None]
    return present_mean(jnp.where(present, 1.0 - dice, 0.0), present, class_weights)


def lovasz_grad(sorted_targets: jax.Array) -> jax.Array:
    """Gradient of the Lovász extension of the Jaccard loss at errors sorted descending
    (Berman et al. 2018, Alg. 1): float (..., N) targets in that order -> float (..., N).

    With n = sum(g): J_i = 1 - (n - cumsum(g)_i) / (n + cumsum(1 - g)_i), grad = diff(J)
    (grad_0 = J_0)."""
    total = sorted_targets.sum(-1, keepdims=True)
    intersection = total - jnp.cumsum(sorted_targets, -1)
    union = total + jnp.cumsum(1.0 - sorted_targets, -1)  # >= 1 everywhere
    jaccard = 1.0 - intersection / union
    return jnp.concatenate([jaccard[..., :1], jnp.diff(jaccard, axis=-1)], -1)


def lovasz_softmax(logits: jax.Array, labels: jax.Array, *,
                   ignore_label: int = IGNORE_LABEL, class_weights: jax.Array | None = None,
                   keep_prob: float = 1.0, key: jax.Array | None = None,
                   per_image: bool = False) -> jax.Array:
    """Lovász-softmax loss (Berman et al. 2018, eq. 12, classes="present"): per class c,
    the Lovász extension of the Jaccard loss at the errors |g_ic - p_ic| of the labelled
    pixels of the batch (or of each image, ``per_image``), averaged over the classes
    present in the labels (weighted by ``class_weights``).

    logits: float (B, H, W, C); labels: int (B, H, W), void = ``ignore_label``;
    class_weights: optional float (C,); keep_prob, key: the loss sampling of
    ``losses.sample_pixels``. Returns float32 (). No per-pixel weight map: the extension
    weighs pixels by the order of their errors. Sorts C arrays of H*W (or B*H*W) errors.
    """
    losses.check_shapes(logits, labels, None, class_weights)
    p, g, mask = probabilities_and_targets(logits, labels, ignore_label, keep_prob, key)
    # void pixels get error 0: they sort after every positive error, so they change
    # neither the sum nor the gradient of the labelled pixels' terms
    errors = jnp.where(mask[..., None], jnp.abs(g - p), 0.0)
    groups = labels.shape[0] if per_image else 1
    num_classes = logits.shape[-1]
    errors = errors.reshape(groups, -1, num_classes).swapaxes(1, 2)  # (G, C, N)
    g = g.reshape(groups, -1, num_classes).swapaxes(1, 2)
    order = jnp.argsort(-errors, axis=-1)
    sorted_errors = jnp.take_along_axis(errors, order, -1)
    sorted_targets = jnp.take_along_axis(g, order, -1)
    class_losses = jnp.sum(sorted_errors * lovasz_grad(sorted_targets), -1)  # (G, C)
    return present_mean(class_losses, g.sum(-1) > 0, class_weights)
