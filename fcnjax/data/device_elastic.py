"""U-Net's augmentation on the accelerator: :mod:`fcnjax.data.elastic`'s warp in JAX.

With ``config.input.augment_on = "device"`` the input pipeline does the cheap part on the
host (decode, normalise, border weights, mirror, crop) and draws the augmentation's random
numbers there with :func:`fcnjax.data.elastic.draw`, the same calls in the same order as the
host path; the batch carries them as ``warp_*`` arrays. :func:`apply_warps`, called at the
top of the jitted train step, turns them into the warped batch: the dense field from the
coarse grid (the same bicubic matrices), the sampling positions, bilinear resampling of the
image and the weight map (``jax.scipy.ndimage.map_coordinates``, mode "mirror", as scipy's
on the host), nearest neighbour for the label, the grey values, weight 0 on void.

On the host the warp costs ~0.035 s of one CPU core per 572x572 example (BENCHMARKS.md),
which a GPU step outruns; on the accelerator it is a few gathers per pixel in the step.

Same draws, same example, up to float32 rounding: sin and cos are computed in float32 here
and in float64 on the host, and the field's sums run in another order, so positions differ
by ~1e-5 px. Images and weights agree to ~1e-4; a label differs only where a position lies
within that of a half-pixel boundary (a few pixels in 10^5), and then holds the class of
the neighbouring pixel: labels are always read, never interpolated. Only bilinear resampling
(``resample_order = 1``) exists here: JAX's map_coordinates has no cubic splines.
"""

from __future__ import annotations

from typing import Mapping

import jax
import jax.numpy as jnp
from jax.scipy import ndimage

from fcnjax.data import elastic
from fcnjax.data.classes import VOID

KEYS = ("warp_grid", "warp_angle", "warp_shift", "warp_mirror", "warp_grey")
"""The batch entries :func:`fcnjax.data.elastic.draw` fills, one row per example."""


def has_warps(batch: Mapping[str, jax.Array]) -> bool:
    """Whether ``batch`` carries augmentation draws to apply."""
    return KEYS[0] in batch


def positions(shape: tuple[int, int], draw: Mapping[str, jax.Array]) -> jax.Array:
    """float32 (2, H, W): where each output pixel reads (elastic.positions_of in JAX)."""
    rows = jnp.asarray(elastic.cubic_upsampling_matrix(shape[0], draw["warp_grid"].shape[1]),
                       jnp.float32)
    cols = jnp.asarray(elastic.cubic_upsampling_matrix(shape[1], draw["warp_grid"].shape[2]),
                       jnp.float32)
    field = jnp.einsum("ik,ckl,jl->cij", rows, draw["warp_grid"].astype(jnp.float32), cols)
    centre = ((shape[0] - 1) / 2, (shape[1] - 1) / 2)
    y = jnp.arange(shape[0], dtype=jnp.float32)[:, None] - centre[0]
    x = jnp.arange(shape[1], dtype=jnp.float32)[None, :] - centre[1]
    y = jnp.where(draw["warp_mirror"][0], -y, y)
    x = jnp.where(draw["warp_mirror"][1], -x, x)
    angle = draw["warp_angle"].astype(jnp.float32)
    cos, sin = jnp.cos(angle), jnp.sin(angle)
    shift = draw["warp_shift"].astype(jnp.float32)
    return jnp.stack([cos * y - sin * x + centre[0] + shift[0],
                      sin * y + cos * x + centre[1] + shift[1]]) + field


def nearest(x: jax.Array, at: jax.Array) -> jax.Array:
    """(H, W[, C]) ``x`` read at the pixels nearest ``at`` (2, H', W'), mirrored outside."""
    rows = elastic.mirror_index(jnp.rint(at[0]).astype(jnp.int32), x.shape[0], jnp)
    cols = elastic.mirror_index(jnp.rint(at[1]).astype(jnp.int32), x.shape[1], jnp)
    return x[rows, cols]


def bilinear(x: jax.Array, at: jax.Array) -> jax.Array:
    """float32 (H, W) or (H, W, C) ``x`` read bilinearly at ``at``, mirrored outside."""
    def read(plane: jax.Array) -> jax.Array:
        return ndimage.map_coordinates(plane, [at[0], at[1]], order=1, mode="mirror")

    x = x.astype(jnp.float32)
    return read(x) if x.ndim == 2 else jax.vmap(read, in_axes=-1, out_axes=-1)(x)


def warp_example(example: Mapping[str, jax.Array]) -> dict[str, jax.Array]:
    """One example (no batch axis) with its ``warp_*`` draws applied; they are dropped."""
    out = {k: v for k, v in example.items() if k not in KEYS}
    at = positions(example["label"].shape, example)
    contrast, brightness = example["warp_grey"].astype(jnp.float32)
    out["image"] = bilinear(example["image"], at) * contrast + brightness
    out["label"] = nearest(example["label"], at)
    if "weight" in example:
        weight = jnp.maximum(bilinear(example["weight"], at), 0.0)
        out["weight"] = jnp.where(out["label"] == VOID, 0.0, weight)
    return out


def apply_warps(batch: Mapping[str, jax.Array]) -> dict[str, jax.Array]:
    """``batch`` with every example warped by its draws (none: ``batch`` as it is)."""
    if not has_warps(batch):
        return dict(batch)
    return jax.vmap(warp_example)(dict(batch))
