"""U-Net (Ronneberger, Fischer & Brox): a contracting path, a symmetric expanding path, skips.

Each level of the contracting path is two 3x3 convs + ReLU then a 2x2 max pool, doubling the
channels (64-128-256-512-1024). Each level of the expanding path upsamples x2 halving the
channels, concatenates the contracting path's features (cropped to align, skip first) and
applies two 3x3 convs + ReLU; a 1x1 ``score`` conv gives the logits. Every learned layer
but ``score`` is followed by a ReLU, the up-sampling's included; dropout ends the
contracting path.

All offsets come from :func:`unet_geometry`, which walks the same layers through
:mod:`fcnjax.models.coord_map`: with ``padding="valid"`` (the paper) the skips are centre-cropped
(88, 40, 16, 4 cells for 572 -> 388); with ``"same"`` every crop is 0 and output size equals
input size. Parameters: ``down1_conv1`` ... ``bottom_conv2``, ``up4`` (the upsampling's
learned layer), ``up4_conv1`` ... ``up1_conv2``, ``score``.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from fcnjax.models import coord_map
from fcnjax.models import layers
from fcnjax.models import remat
from fcnjax.models.fcn import check_image
from fcnjax.models.norm import NONE, Norm

PADS = {"valid": 0, "same": 1}
"""Padding of every 3x3 conv."""

UPSAMPLING_KERNELS = {"transpose": 2, "bilinear": 4}
"""Kernel of the x2 upsampling: the paper's 2x2 up-conv, or Caffe's fixed bilinear x2."""

up_conv_init = nn.initializers.variance_scaling(2.0, "fan_in", "normal", batch_axis=(0, 1))
"""The paper's std sqrt(2 / N): a 2x2 stride-2 up-conv output cell sees one cell, N = C_in."""


@dataclasses.dataclass(frozen=True)
class UNetGeometry:
    """Static structure of a U-Net, derived with :mod:`fcnjax.models.coord_map` before tracing.

    Attributes:
      levels: number of 2x2 max pools.
      pad: padding of each 3x3 conv (0 valid, 1 same).
      upsampling: "transpose" or "bilinear".
      up_crop: cells the bilinear deconvolution (kernel 4) drops so that its output lies on
        the 2x2 up-conv's grid (Caffe's pad 1); 0 for "transpose".
      skip_crops: crop offset of the skip features of levels 1 .. levels.
      max_stride: stride of the coarsest features (2 ** levels).
      conv_layers: learned convs on the longest path (up-sampling layers and score included).
      output: geometry of the logits; ``output.offset`` is the context lost on each side.
    """

    levels: int
    pad: int
    upsampling: str
    up_crop: int
    skip_crops: tuple[int, ...]
    max_stride: int
    conv_layers: int
    output: coord_map.Geometry

    @property
    def receptive_field(self) -> int:
        """coord_map's field of the logits (200 for the paper's net).

        Exact down the contracting path. After an up-sampling, neighbouring cells' windows
        advance unevenly (two children share a parent), which a single (scale, field) cannot
        describe: from 3 levels on, some logits see a few pixels more (204 measured for the
        paper's net).
        """
        return self.output.field

    @property
    def crop_offsets(self) -> dict[str, int]:
        """{"crop1": 88, ..., "crop4": 4} for the paper's net: skip crop offsets by level."""
        return {f"crop{level}": c for level, c in enumerate(self.skip_crops, 1)}

    @property
    def smallest_input(self) -> int:
        return next(n for n in itertools.count(1) if self._walk(n) is not None)

    def _double_conv(self, n: int) -> int:
        return coord_map.conv_size(coord_map.conv_size(n, 3, pad=self.pad), 3, pad=self.pad)

    def _walk(self, n: int) -> int | None:
        """Output side for an ``n``-pixel input side, or None if the net does not fit it."""
        skips = []
        for _ in range(self.levels):
            n = self._double_conv(n)
            if n < 1 or (self.pad == 0 and n % 2):  # valid: pools must see even maps
                return None
            skips.append(n)
            n = coord_map.pool_size(n, 2, 2)
        n = self._double_conv(n)
        for skip, crop in zip(reversed(skips), reversed(self.skip_crops)):
            if n < 1:
                return None
            n = self._double_conv(min(skip - crop, coord_map.deconv_size(n, 2, 2)))
        return n if n >= 1 else None

    def output_size(self, n: int) -> int:
        """Side of the logits for an ``n``-pixel input side (388 for 572, valid).

        Raises ValueError naming the nearest sizes that fit when ``n`` does not.
        """
        out = self._walk(n)
        if out is not None:
            return out
        below = next((m for m in range(n - 1, 0, -1) if self._walk(m) is not None), None)
        above = next(m for m in itertools.count(n + 1) if self._walk(m) is not None)
        nearest = (f"nearest valid sizes: {below} and {above}" if below else
                   f"the smallest valid size is {above}")
        raise ValueError(
            f"a valid-padding U-Net with {self.levels} levels cannot take a {n}-pixel input "
            f"side: every 2x2 max pool needs an even map and every map at least one pixel; "
            f"{nearest} (or use padding='same')")


def unet_geometry(levels: int = 4, padding: str = "valid",
                  upsampling: str = "transpose") -> UNetGeometry:
    """Walk the U-Net's layers through coord_map: crop offsets, field, stride, depth."""
    if padding not in PADS or upsampling not in UPSAMPLING_KERNELS or levels < 1:
        raise ValueError(f"need levels >= 1, padding in {sorted(PADS)} and upsampling in "
                         f"{sorted(UPSAMPLING_KERNELS)}; got {levels}, {padding!r}, "
                         f"{upsampling!r}")
    pad, kernel = PADS[padding], UPSAMPLING_KERNELS[upsampling]
    g, skips = coord_map.IMAGE, []
    for _ in range(levels):
        g = g.conv(3, pad=pad).conv(3, pad=pad)
        skips.append(g)
        g = g.pool(2, 2)
    g = g.conv(3, pad=pad).conv(3, pad=pad)
    max_stride, crops, up_crop = int(g.scale), [], 0
    for skip in reversed(skips):
        grid = g.deconv(2, 2)  # each coarse cell splits into two children
        up_crop = coord_map.crop_offset(g.deconv(kernel, 2), grid)
        g = g.deconv(kernel, 2).cropped_to(grid)
        crops.append(coord_map.crop_offset(skip, g))
        g = g.conv(3, pad=pad).conv(3, pad=pad)
    convs = 2 * levels + 2 + 3 * levels + 1  # down, bottom, up (up-sampling + 2), score
    return UNetGeometry(levels, pad, upsampling, up_crop, tuple(reversed(crops)), max_stride,
                        convs, output=g.conv(1))


def conv_relu(x: jax.Array, name: str, features: int, kernel: int, pad: int, dtype: Any, *,
              norm: Norm = NONE, train: bool = False) -> jax.Array:
    """conv ``name``, ``norm`` (none by default), ReLU: (B, h, w, C) -> (B, h', w', features)."""
    y = layers.conv(name, features, kernel, pad=pad, dtype=dtype)(x)
    return nn.relu(norm(y, name, train=train, dtype=dtype))


def double_conv(x: jax.Array, name: str, features: int, pad: int, dtype: Any, *,
                norm: Norm = NONE, train: bool = False,
                each: Callable[[Callable], Callable] = lambda fn: fn) -> jax.Array:
    """Two 3x3 conv (+ norm) + ReLU, ``{name}_conv1`` and ``{name}_conv2``: (B, h, w, C) ->
    features. each: wraps each conv's function (``remat="full"``)."""
    for i in (1, 2):
        x = each(functools.partial(conv_relu, name=f"{name}_conv{i}", features=features,
                                   kernel=3, pad=pad, dtype=dtype, norm=norm, train=train))(x)
    return x


class UpConv(nn.Module):
    """The paper's 2x2 stride-2 up-convolution: (B, h, w, C) -> (B, 2h, 2w, features)."""

    features: int
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        kernel = self.param("kernel", up_conv_init, (2, 2, x.shape[-1], self.features))
        bias = self.param("bias", nn.initializers.zeros, (self.features,))
        return layers.transposed_conv(x, kernel.astype(self.dtype), 2) + bias.astype(self.dtype)


def upsample(x: jax.Array, name: str, features: int, geometry: UNetGeometry,
             dtype: Any, *, norm: Norm = NONE, train: bool = False) -> jax.Array:
    """x2 upsampling halving channels, then ``norm`` and ReLU: (B, h, w, C) -> (B, 2h, 2w,
    features).

    "transpose": learned 2x2 up-conv ``name``. "bilinear": fixed bilinear deconvolution
    (kernel 4, stride 2, cropped by ``geometry.up_crop``) then a 1x1 conv ``name``.
    """
    if geometry.upsampling == "transpose":
        y = UpConv(features, dtype, name=name)(x)
    else:
        size = tuple(coord_map.deconv_size(n, 2, 2) for n in x.shape[1:3])
        kernel = UPSAMPLING_KERNELS["bilinear"]
        x = layers.Upscore(kernel, 2, dtype=dtype, name=f"{name}_bilinear")(
            x, geometry.up_crop, size)
        y = layers.conv(name, features, 1, dtype=dtype)(x)
    return nn.relu(norm(y, name, train=train, dtype=dtype))


def join(skip: jax.Array, up: jax.Array, offset: int) -> jax.Array:
    """Align and concatenate, skip first: -> (B, h, w, C_skip + C_up).

    ``skip`` is cropped at ``offset``, after which both maps start on the same cell; both are
    then cut to the shorter size (the up-sampled map is one row longer after an odd pool).
    """
    size = tuple(min(s - offset, u) for s, u in zip(skip.shape[1:3], up.shape[1:3]))
    return jnp.concatenate([layers.crop(skip, offset, size), layers.crop(up, 0, size)], -1)


class UNet(nn.Module):
    """U-Net for (B, H, W, C) images.

    Attributes:
      num_classes: score channels (2 for the ISBI cell segmentation).
      features: channels of the first level, doubled at each pool.
      levels: number of 2x2 max pools (4 in the paper: max stride 16).
      padding: "valid" (the paper: 572 -> 388) or "same" (output size = input size, any size).
      upsampling: "transpose" (learned 2x2 up-conv) or "bilinear" (fixed x2 + 1x1 conv).
      dropout: rate of the dropout ending the contracting path.
      dtype: compute dtype (float32 or bfloat16); parameters stay float32.
      norm, norm_groups: normalisation after each conv but ``score`` ("none", the paper's;
        "batch"; "group"), :mod:`fcnjax.models.norm`.
      remat: rematerialisation ("none"; "stages": each level, down and up; "full": each
        conv), :mod:`fcnjax.models.remat`.
    """

    num_classes: int = 2
    features: int = 64
    levels: int = 4
    padding: str = "valid"
    upsampling: str = "transpose"
    dropout: float = 0.5
    dtype: Any = jnp.float32
    norm: str = "none"
    norm_groups: int = 32
    remat: str = "none"

    def geometry(self) -> UNetGeometry:
        return unet_geometry(self.levels, self.padding, self.upsampling)

    @nn.compact
    def __call__(self, image: jax.Array, *, train: bool = False) -> jax.Array:
        """image: float (B, H, W, C) -> float32 (B, H', W', num_classes) logits.

        H' = ``geometry().output_size(H)`` (H for "same"); the logits' pixel j is input pixel
        ``j + geometry().output.offset``. ``train=True`` needs a ``"dropout"`` PRNG key.
        """
        check_image(image)
        geometry = self.geometry()
        for n in image.shape[1:3]:
            geometry.output_size(n)
        width = [self.features * 2 ** i for i in range(self.levels + 1)]
        norm, pad, dtype = Norm(self.norm, self.norm_groups), geometry.pad, self.dtype
        options = dict(norm=norm, train=train)
        each = functools.partial(remat.wrap, self, policy=self.remat, level="full")
        stage = functools.partial(remat.wrap, self, policy=self.remat, level="stages")

        def down(name: str, features: int) -> Callable:
            return stage(lambda y: double_conv(y, name, features, pad, dtype, each=each,
                                               **options))

        def bottom(y: jax.Array) -> jax.Array:
            y = double_conv(y, "bottom", width[-1], pad, dtype, each=each, **options)
            return nn.Dropout(self.dropout, deterministic=not train, name="bottom_dropout")(y)

        def up(level: int) -> Callable:
            def run(y: jax.Array, skip: jax.Array) -> jax.Array:
                name, features = f"up{level}", width[level - 1]
                y = each(lambda z: upsample(z, name, features, geometry, dtype, **options))(y)
                y = join(skip, y, geometry.skip_crops[level - 1])
                return double_conv(y, name, features, pad, dtype, each=each, **options)
            return stage(run)

        x, skips = image.astype(dtype), []
        for level in range(1, self.levels + 1):
            x = down(f"down{level}", width[level - 1])(x)
            skips.append(x)
            x = layers.max_pool(x, 2, 2)
        x = stage(bottom)(x)
        for level in range(self.levels, 0, -1):
            x = up(level)(x, skips[level - 1])
        return layers.conv("score", self.num_classes, 1, dtype=self.dtype)(x).astype(jnp.float32)
