"""Fully convolutional networks (Long, Shelhamer & Darrell): one head over any backbone.

The head reads like the paper: score the coarse features (``score_fr``), then for each
skip layer upsample x2 (``upscore2``), score the skip (``score_pool4``), crop it to align
and fuse by summation, and finally upsample to the image and crop to its size. FCN-32s,
-16s and -8s differ only in ``skips``; every crop offset comes from :mod:`fcnjax.models.coord_map`.

Parameter names are the reference's Caffe blob names: ``trunk/conv1_1`` ... ``trunk/fc7``,
``score_fr``, ``score_pool4``, ``score_pool3`` (and ``upscore2``, ``upscore_pool4``,
``upscore8`` kernels when upsampling is learnable).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from fcnjax.models import coord_map
from fcnjax.models import layers
from fcnjax.models.trunk import Backbone, Trunk


@dataclasses.dataclass(frozen=True)
class Fusion:
    """One skip fusion: upsample the running scores, crop the skip's scores, add them."""

    layer: str       # skip source, e.g. "pool4"
    upscore: str     # name of the upsampling layer, e.g. "upscore2"
    kernel: int
    stride: int
    offset: int      # crop of score_<layer> (5 for pool4 in FCN-16s and -8s)


@dataclasses.dataclass(frozen=True)
class HeadPlan:
    """The static structure of an FCN head: fusions, then the final upsampling and crop."""

    fusions: tuple[Fusion, ...]
    upscore: str
    kernel: int
    stride: int
    offset: int

    @property
    def crop_offsets(self) -> dict[str, int]:
        """Crop offset of every crop layer, by the reference's names (score_pool4c ... score)."""
        offsets = {f"score_{f.layer}c": f.offset for f in self.fusions}
        offsets["score"] = self.offset
        return offsets


def plan_head(backbone: Backbone, skips: Sequence[str] = ()) -> HeadPlan:
    """Derive upsampling factors, kernels and crop offsets from the backbone's geometry.

    skips: layers fused from coarse to fine, e.g. ``("pool4", "pool3")`` for FCN-8s.
    """
    geometry = backbone.geometries()
    g = geometry[backbone.output]
    fusions = []
    for i, layer in enumerate(skips):
        if layer not in geometry:
            raise ValueError(f"skip layer {layer!r} is not a layer of {backbone.name}")
        target = geometry[layer]
        stride = g.scale / target.scale
        if stride.denominator != 1 or stride < 2:
            raise ValueError(f"skip {layer!r} (stride {target.scale}) must be finer than the "
                             f"scores it joins (stride {g.scale}) by a whole factor")
        stride = int(stride)
        kernel = coord_map.upsampling_kernel(g, stride, target)
        up = g.deconv(kernel, stride)
        name = "upscore2" if i == 0 else f"upscore_{skips[i - 1]}"
        fusions.append(Fusion(layer, name, kernel, stride,
                              coord_map.crop_offset(target, up)))
        g = up
    stride = int(g.scale)
    kernel = coord_map.upsampling_kernel(g, stride, coord_map.IMAGE)
    offset = coord_map.crop_offset(g.deconv(kernel, stride), coord_map.IMAGE)
    return HeadPlan(tuple(fusions), "upscore" if not skips else f"upscore{stride}",
                    kernel, stride, offset)


def check_image(image: jax.Array, what: str = "image") -> None:
    """Raise a ValueError unless ``image`` is a (B, H, W, C) batch."""
    if image.ndim != 4:
        raise ValueError(f"{what} must be a batch of shape (B, H, W, C), got shape "
                         f"{tuple(image.shape)}; add a batch axis with image[None]")


def fcn_head(streams: Mapping[str, Mapping[str, jax.Array]], plan: HeadPlan, num_classes: int,
             image_size: tuple[int, int], *, weights: Mapping[str, float] | None = None,
             skip_scales: Sequence[float] = (), suffix: str = "", learnable: bool = False,
             dtype: Any = jnp.float32, coarse_layer: str = "drop7") -> jax.Array:
    """Score, fuse and upsample; called inside a module's ``compact`` method.

    streams: features of each input stream by layer name (one stream, ``{"": feats}``,
      except in late fusion); the scores of several streams are summed with ``weights``.
    skip_scales: factors applied to each skip's features before scoring (FCN-8s at-once).
    suffix: appended to every layer name, as SIFT Flow's ``score_fr_sem``.
    Returns float32 (B, H, W, num_classes) logits aligned with the input image.
    """
    weights = weights or {s: 1.0 for s in streams}

    def score(layer: str, source: str, scale: float = 1.0) -> jax.Array:
        total = 0.0
        for stream, features in streams.items():
            name = f"score_{layer}{suffix}" + (f"_{stream}" if len(streams) > 1 else "")
            x = features[source]
            x = x * jnp.asarray(scale, x.dtype) if scale != 1.0 else x
            y = layers.conv(name, num_classes, 1, dtype=dtype, zero_init=True)(x)
            total = total + weights[stream] * y if len(streams) > 1 else y
        return total

    h = score("fr", coarse_layer)
    scales = tuple(skip_scales) or (1.0,) * len(plan.fusions)
    for fusion, scale in zip(plan.fusions, scales):
        h = layers.Upscore(fusion.kernel, fusion.stride, learnable, dtype,
                           name=fusion.upscore + suffix)(h)
        skip = score(fusion.layer, fusion.layer, scale)
        h = h + layers.crop(skip, fusion.offset, h.shape[1:3])
    h = layers.Upscore(plan.kernel, plan.stride, learnable, dtype,
                       name=plan.upscore + suffix)(h, plan.offset, image_size)
    return h.astype(jnp.float32)


def make_trunk(model: Any, name: str) -> Trunk:
    """The trunk ``name`` of an FCN module, with its backbone, dtype, norm and remat; called
    inside the module's compact method."""
    return Trunk(model.backbone, model.dtype, model.norm, model.norm_groups, model.remat,
                 name=name)


class FCN(nn.Module):
    """An FCN: backbone, ``score_fr``, skip fusions, bilinear upsampling to the input size.

    Attributes:
      backbone: layer table of the trunk (``vgg16()``, ``alexnet()``, ``googlenet()``).
      num_classes: score channels (21 for PASCAL VOC, background included).
      skips: layers fused coarse to fine: ``()`` 32s, ``("pool4",)`` 16s,
        ``("pool4", "pool3")`` 8s.
      skip_scales: fixed factors on the skip features (at-once: ``(0.01, 0.0001)``).
      learnable_upsampling: train the bilinear-initialised deconvolutions (fixed in the
        reference).
      dtype: compute dtype (float32 or bfloat16); parameters stay float32.
      norm, norm_groups: normalisation after each trunk conv ("none", the paper's;
        "batch"; "group"), :mod:`fcnjax.models.norm`.
      remat: rematerialisation of the trunk ("none", "stages", "full"),
        :mod:`fcnjax.models.remat`.
    """

    backbone: Backbone
    num_classes: int = 21
    skips: tuple[str, ...] = ()
    skip_scales: tuple[float, ...] = ()
    learnable_upsampling: bool = False
    dtype: Any = jnp.float32
    norm: str = "none"
    norm_groups: int = 32
    remat: str = "none"

    def plan(self) -> HeadPlan:
        return plan_head(self.backbone, self.skips)

    @nn.compact
    def __call__(self, image: jax.Array, *, train: bool = False) -> jax.Array:
        """image: float (B, H, W, C), preprocessed -> float32 (B, H, W, num_classes) logits.

        ``train=True`` turns dropout on and needs a ``"dropout"`` PRNG key.
        """
        check_image(image)
        features = make_trunk(self, "trunk")(image, train=train)
        return fcn_head({"": features}, self.plan(), self.num_classes, image.shape[1:3],
                        skip_scales=self.skip_scales, learnable=self.learnable_upsampling,
                        dtype=self.dtype, coarse_layer=self.backbone.output)


class LateFusionFCN(nn.Module):
    """NYUDv2 late fusion: one trunk per modality, their scores summed before upsampling.

    Takes a mapping ``{stream: (B, H, W, C_stream)}`` (e.g. ``color`` and ``hha``); each
    stream has its own trunk (``color/conv1_1`` ...) and score layers
    (``score_fr_color``), combined with ``weights`` (0.5 / 0.5 in the paper) at every level.
    """

    backbone: Backbone
    num_classes: int = 40
    streams: tuple[str, ...] = ("color", "hha")
    weights: tuple[float, ...] = (0.5, 0.5)
    skips: tuple[str, ...] = ()
    learnable_upsampling: bool = False
    dtype: Any = jnp.float32
    norm: str = "none"
    norm_groups: int = 32
    remat: str = "none"

    @nn.compact
    def __call__(self, images: Mapping[str, jax.Array], *, train: bool = False) -> jax.Array:
        if set(images) != set(self.streams):
            raise ValueError(f"expected inputs {sorted(self.streams)}, got {sorted(images)}")
        for name, image in images.items():
            check_image(image, f"input {name!r}")
        sizes = {tuple(image.shape[1:3]) for image in images.values()}
        if len(sizes) != 1:
            raise ValueError(f"all streams must have one height and width, got {sorted(sizes)}")
        features = {s: make_trunk(self, s)(images[s], train=train)
                    for s in self.streams}
        return fcn_head(features, plan_head(self.backbone, self.skips), self.num_classes,
                        sizes.pop(), weights=dict(zip(self.streams, self.weights)),
                        learnable=self.learnable_upsampling, dtype=self.dtype,
                        coarse_layer=self.backbone.output)


class MultiTaskFCN(nn.Module):
    """SIFT Flow's multi-task FCN: one trunk, one head per task (``score_fr_sem`` ...).

    Returns ``{task: float32 (B, H, W, classes)}``; the paper sums the tasks' losses.
    """

    backbone: Backbone
    tasks: tuple[tuple[str, int], ...] = (("sem", 33), ("geo", 3))
    skips: tuple[str, ...] = ("pool4",)
    learnable_upsampling: bool = False
    dtype: Any = jnp.float32
    norm: str = "none"
    norm_groups: int = 32
    remat: str = "none"

    @nn.compact
    def __call__(self, image: jax.Array, *, train: bool = False) -> dict[str, jax.Array]:
        check_image(image)
        features = make_trunk(self, "trunk")(image, train=train)
        plan = plan_head(self.backbone, self.skips)
        return {task: fcn_head({"": features}, plan, classes, image.shape[1:3],
                               suffix=f"_{task}", learnable=self.learnable_upsampling,
                               dtype=self.dtype, coarse_layer=self.backbone.output)
                for task, classes in self.tasks}
