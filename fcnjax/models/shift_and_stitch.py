"""Shift-and-stitch: dense output from a coarse net, the FCN paper's alternative to upsampling.

For a net of output stride ``f``, evaluate it on the ``f * f`` inputs shifted by
``(dy, dx)`` pixels, ``0 <= dy, dx < f``, and interlace the coarse outputs: the result is
the output the same net would give with every stride removed and its later filters
dilated ("filter rarefaction"), at ``f * f`` times the cost.
"""

from __future__ import annotations

from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp


def shift_and_stitch(fn: Callable[[jax.Array], jax.Array], image: jax.Array,
                     stride: int) -> jax.Array:
    """Dense output of a stride-``stride`` function from ``stride**2`` shifted inputs.

    fn: maps (B, H, W, C) to (B, h, w, K) with output stride ``stride``.
    image: (B, H, W, C). The shifted input for (dy, dx) is ``image[:, dy:, dx:]``,
      zero-padded at the bottom and right back to H x W.
    Returns (B, h * stride, w * stride, K) with ``out[:, y*stride + dy, x*stride + dx]
    == fn(shifted(dy, dx))[:, y, x]``: row ``r`` of the output sits ``r`` input pixels
    below row 0 of ``fn(image)``, on the same grid. Shifts run one at a time
    (``lax.map``) so memory stays that of one evaluation.
    """
    if image.ndim != 4:
        raise ValueError(f"image must be (B, H, W, C), got shape {tuple(image.shape)}")
    b, h, w, c = image.shape
    padded = jnp.pad(image, ((0, 0), (0, stride - 1), (0, stride - 1), (0, 0)))
    dy, dx = jnp.divmod(jnp.arange(stride * stride), stride)

    def evaluate(shift):
        start = (0, shift[0], shift[1], 0)
        return fn(jax.lax.dynamic_slice(padded, start, (b, h, w, c)))

    coarse = jax.lax.map(evaluate, jnp.stack([dy, dx], axis=1))  # (f*f, B, h', w', K)
    _, _, hc, wc, k = coarse.shape
    coarse = coarse.reshape(stride, stride, b, hc, wc, k)
    return coarse.transpose(2, 3, 0, 4, 1, 5).reshape(b, hc * stride, wc * stride, k)


def coarse_scores(model: nn.Module, variables, image: jax.Array,
                  layer: str = "score_fr") -> jax.Array:
    """An FCN's coarse class scores (``score_fr``: stride 32 for VGG16) for ``image``.

    Use with :func:`shift_and_stitch` to get the paper's dense shift-and-stitch output:
    ``shift_and_stitch(lambda x: coarse_scores(model, v, x), image, 32)``.
    """
    _, state = model.apply(variables, image, mutable=["intermediates"],
                           capture_intermediates=lambda mdl, _: mdl.name == layer)
    found = jax.tree_util.tree_leaves(state.get("intermediates", {}).get(layer, {}))
    if not found:
        raise ValueError(f"{type(model).__name__} has no layer named {layer!r}")
    return found[0].astype(jnp.float32)
