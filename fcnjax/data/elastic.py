"""U-Net's data augmentation: elastic deformation, shift, rotation, flips and grey values.

The paper (section 3.1) draws "random displacement vectors on a coarse 3 by 3 grid" from a
Gaussian with 10 pixels standard deviation and computes per-pixel displacements by bicubic
interpolation. Here that field is added to a random rotation about the centre, a random
shift and random mirrors, and the result resamples the whole example in one pass:

  output pixel p reads input position  centre + R(angle) M (p - centre) + shift + field(p)

with M the mirrors. The image and the weight map are sampled with cubic splines (``order``
3; 1 is bilinear and faster), the label with nearest neighbour so classes never blend and
no new label value appears. Positions outside the example read its mirror image, for all
three alike. Then the image's grey values change: ``image * contrast + brightness``.

Everything runs on the host in NumPy/SciPy and draws from one ``np.random.Generator``, the
way grain's ``random_map`` passes it, so a seeded pipeline repeats itself. The draws
(:func:`draw`) are apart from their use (:func:`apply`): with ``config.input.augment_on =
"device"`` the pipeline ships the draws with the crop and :mod:`fcnjax.data.device_elastic`
applies them inside the jitted train step.
"""

from __future__ import annotations

import math
from typing import Mapping

import numpy as np
from scipy import ndimage

Example = dict[str, np.ndarray]
Draw = dict[str, np.ndarray]


def keys_cubic(t: np.ndarray, a: float = -0.5) -> np.ndarray:
    """Keys' bicubic convolution kernel (Catmull-Rom for a = -0.5) at offsets ``t``."""
    t = np.abs(t)
    near = ((a + 2) * t - (a + 3)) * t * t + 1
    far = ((t - 5) * t + 8) * t * a - 4 * a
    return np.where(t <= 1, near, np.where(t < 2, far, 0.0))


def cubic_upsampling_matrix(size: int, nodes: int) -> np.ndarray:
    """float64 (size, nodes): bicubic interpolation from ``nodes`` values spread evenly over
    pixels 0 .. size - 1 (first node at pixel 0, last at size - 1), edges clamped.

    Rows sum to 1, so a constant grid gives that constant everywhere.
    """
    if nodes < 2:
        return np.ones((size, 1))
    u = np.arange(size) * (nodes - 1) / max(size - 1, 1)   # position in node units
    taps = keys_cubic(u[:, None] - np.arange(-1, nodes + 1)[None, :])  # nodes -1 .. nodes
    matrix = taps[:, 1:-1].copy()
    matrix[:, 0] += taps[:, 0]      # clamped edges: node -1 reads node 0,
    matrix[:, -1] += taps[:, -1]    # node `nodes` reads node nodes - 1
    return matrix


def displacement_field(shape: tuple[int, int], grid: np.ndarray) -> np.ndarray:
    """Dense float32 (2, H, W) displacements (rows, columns) bicubically interpolated from
    ``grid``: (2, g, g) displacements at the nodes of a g x g grid spanning the image."""
    rows = cubic_upsampling_matrix(shape[0], grid.shape[1]).astype(np.float32)
    cols = cubic_upsampling_matrix(shape[1], grid.shape[2]).astype(np.float32)
    return np.einsum("ik,ckl,jl->cij", rows, grid.astype(np.float32), cols, optimize=True)


def sampling_positions(shape: tuple[int, int], *, angle: float = 0.0,
                       shift: tuple[float, float] = (0.0, 0.0),
                       mirror: tuple[bool, bool] = (False, False),
                       field: np.ndarray | None = None) -> np.ndarray:
    """float32 (2, H, W): the input position (row, column) each output pixel reads.

    angle: radians, rotation about the centre; shift: pixels; mirror: (up-down, left-right).
    """
    centre = ((shape[0] - 1) / 2, (shape[1] - 1) / 2)
    y = np.arange(shape[0], dtype=np.float32)[:, None] - centre[0]
    x = np.arange(shape[1], dtype=np.float32)[None, :] - centre[1]
    y, x = (-y if mirror[0] else y), (-x if mirror[1] else x)
    cos, sin = math.cos(angle), math.sin(angle)
    positions = np.stack(np.broadcast_arrays(cos * y - sin * x + centre[0] + shift[0],
                                             sin * y + cos * x + centre[1] + shift[1]))
    positions = positions.astype(np.float32)
    return positions if field is None else positions + field


def mirror_index(i: np.ndarray, n: int, xp=np) -> np.ndarray:
    """Fold integer positions into 0 .. n - 1 by mirroring about the edge pixels
    (... 2 1 | 0 1 2 ... n-1 | n-2 ...), scipy's mode "mirror". ``xp``: the array module
    (``jax.numpy`` in :mod:`fcnjax.data.device_elastic`)."""
    if n == 1:
        return xp.zeros_like(i)
    i = xp.abs(i) % (2 * n - 2)
    return xp.where(i >= n, 2 * n - 2 - i, i)


def resample(x: np.ndarray, positions: np.ndarray, order: int) -> np.ndarray:
    """(H, W) or (H, W, C) array read at ``positions`` (2, H', W'); mirrored outside.

    order 0 (nearest neighbour) indexes directly, several times faster than scipy.
    """
    if order == 0:
        rows = mirror_index(np.rint(positions[0]).astype(np.intp), x.shape[0])
        cols = mirror_index(np.rint(positions[1]).astype(np.intp), x.shape[1])
        return x[rows, cols]
    if x.ndim == 2:
        return ndimage.map_coordinates(x, positions, order=order, mode="mirror")
    return np.stack([resample(x[..., c], positions, order) for c in range(x.shape[-1])], -1)


def warp(example: Mapping[str, np.ndarray], positions: np.ndarray, order: int = 3) -> Example:
    """Resample image, label and (if present) weight at the same ``positions``.

    image: float (H, W, C), ``order`` splines; label: int (H, W), nearest neighbour;
    weight: float (H, W), like the image, clipped at 0 (cubic splines overshoot). Other
    keys pass through unchanged.
    """
    out = dict(example)
    out["image"] = resample(example["image"].astype(np.float32), positions, order)
    out["label"] = resample(example["label"], positions, 0).astype(example["label"].dtype)
    if "weight" in example:
        weight = resample(example["weight"].astype(np.float32), positions, order)
        out["weight"] = np.maximum(weight, 0.0)
    return out


def grey_values(image: np.ndarray, contrast: float, brightness: float) -> np.ndarray:
    """image * contrast + brightness, float32."""
    return (image * np.float32(contrast) + np.float32(brightness)).astype(np.float32)


def draw(rng: np.random.Generator, *, elastic_std: float = 10.0, grid: int = 3,
         max_rotation: float = 180.0, max_shift: float = 0.0, flip: bool = True,
         contrast: float = 0.0, brightness: float = 0.0) -> Draw:
    """The random numbers of one augmentation (see :func:`augment` for the arguments), drawn
    in a fixed order: grid displacements, angle, shift, mirrors, contrast, brightness.

    Every entry has the same shape whatever is switched off (zeros, or 1 for the contrast),
    so the draws of a batch stack; :func:`apply` (here) and
    :mod:`fcnjax.data.device_elastic` (on the accelerator) turn them into the example.
    """
    field = (rng.normal(0.0, elastic_std, (2, grid, grid)) if elastic_std
             else np.zeros((2, grid, grid)))
    angle = math.radians(rng.uniform(-max_rotation, max_rotation)) if max_rotation else 0.0
    shift = rng.uniform(-max_shift, max_shift, 2) if max_shift else np.zeros(2)
    mirror = rng.random(2) < 0.5 if flip else np.zeros(2, bool)
    grey = ((rng.uniform(1 - contrast, 1 + contrast), rng.uniform(-brightness, brightness))
            if contrast or brightness else (1.0, 0.0))
    return {"warp_grid": field, "warp_angle": np.float64(angle), "warp_shift": shift,
            "warp_mirror": mirror, "warp_grey": np.asarray(grey, np.float64)}


def positions_of(shape: tuple[int, int], draw: Mapping[str, np.ndarray]) -> np.ndarray:
    """float32 (2, H, W): where each output pixel reads, for the numbers ``draw`` holds."""
    grid = draw["warp_grid"]
    field = displacement_field(shape, grid) if np.any(grid) else None
    shift = draw["warp_shift"]
    return sampling_positions(shape, angle=float(draw["warp_angle"]),
                              shift=(shift[0], shift[1]),
                              mirror=tuple(bool(m) for m in draw["warp_mirror"]), field=field)


def apply(example: Mapping[str, np.ndarray], draw: Mapping[str, np.ndarray],
          order: int = 3) -> Example:
    """``example`` warped and its grey values changed as ``draw`` (:func:`draw`) says."""
    out = warp(example, positions_of(example["label"].shape, draw), order)
    contrast, brightness = draw["warp_grey"]
    if (contrast, brightness) != (1.0, 0.0):
        out["image"] = grey_values(out["image"], contrast, brightness)
    return out


def augment(example: Mapping[str, np.ndarray], rng: np.random.Generator, *,
            elastic_std: float = 10.0, grid: int = 3, max_rotation: float = 180.0,
            max_shift: float = 0.0, flip: bool = True, contrast: float = 0.0,
            brightness: float = 0.0, order: int = 3) -> Example:
    """One random U-Net augmentation of ``{"image", "label"[, "weight"]}``: :func:`draw`,
    then :func:`apply`.

    elastic_std: pixels, std of the grid displacements (0: no deformation). max_rotation:
    degrees, angle uniform in [-max, max]. max_shift: pixels, uniform per axis. flip: mirror
    each axis with probability 1/2. contrast, brightness: the grey values become
    ``image * U(1 - contrast, 1 + contrast) + U(-brightness, brightness)``.
    """
    numbers = draw(rng, elastic_std=elastic_std, grid=grid, max_rotation=max_rotation,
                   max_shift=max_shift, flip=flip, contrast=contrast, brightness=brightness)
    return apply(example, numbers, order)
