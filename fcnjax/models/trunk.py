"""Backbones as layer tables: one table drives both the Flax module and its geometry.

A :class:`Backbone` is a tuple of layer specs (``ConvLayer``, ``PoolLayer`` ...). The
:class:`Trunk` module runs them in order and returns every layer's output by its Caffe
name; :meth:`Backbone.geometries` walks the same table in pure Python to give each
layer's :class:`~fcnjax.models.coord_map.Geometry`. The two cannot disagree.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol

import flax.linen as nn
import jax
import jax.numpy as jnp

from fcnjax.models import coord_map, layers, remat
from fcnjax.models.norm import NONE, Norm


class LayerSpec(Protocol):
    """What a backbone layer declares: its name, geometry, output size and learned depth."""

    name: str
    depth: int

    def geometry(self, g: coord_map.Geometry) -> coord_map.Geometry: ...

    def size(self, n: int) -> int: ...

    def __call__(self, x: jax.Array, *, dtype: Any, train: bool, norm: Norm = NONE
                 ) -> jax.Array: ...


@dataclasses.dataclass(frozen=True)
class ConvLayer:
    """Convolution + ReLU (``conv_relu`` in the reference ``net.py``), with ``norm`` between
    them when the model asks for one (``<name>_bn`` / ``<name>_gn``).

    ``fully_connected`` marks a classifier layer made convolutional (fc6, fc7): VALID,
    stride 1, computed as a matrix product (:class:`layers.FullyConnectedConv`).
    """

    name: str
    features: int
    kernel: int
    stride: int = 1
    pad: int = 0
    groups: int = 1
    fully_connected: bool = False
    depth: int = 1

    def __post_init__(self):
        if self.fully_connected and (self.stride, self.pad, self.groups) != (1, 0, 1):
            raise ValueError(f"{self.name}: a fully connected layer is a VALID, stride-1, "
                             "ungrouped convolution")

    def geometry(self, g):
        return g.conv(self.kernel, self.stride, self.pad)

    def size(self, n):
        return coord_map.conv_size(n, self.kernel, self.stride, self.pad)

    def __call__(self, x, *, dtype, train, norm=NONE):
        if self.fully_connected:
            y = layers.FullyConnectedConv(self.features, self.kernel, dtype, name=self.name)(x)
        else:
            outer, inner = layers.split_padding(self.kernel, self.pad)
            y = layers.conv(self.name, self.features, self.kernel, stride=self.stride,
                            pad=inner, groups=self.groups, dtype=dtype)(layers.pad_input(x, outer))
        return nn.relu(norm(y, self.name, train=train, dtype=dtype))


@dataclasses.dataclass(frozen=True)
class PoolLayer:
    """Caffe pooling: max rounds its size up; average (GoogLeNet's pool5) is VALID."""

    name: str
    kernel: int
    stride: int
    pad: int = 0
    kind: str = "max"
    depth: int = 0

    def geometry(self, g):
        return g.pool(self.kernel, self.stride, self.pad)

    def size(self, n):
        if self.kind == "max":
            return coord_map.pool_size(n, self.kernel, self.stride, self.pad)
        return coord_map.conv_size(n, self.kernel, self.stride, self.pad)

    def __call__(self, x, *, dtype, train, norm=NONE):
        del dtype, train, norm
        if self.kind == "max":
            return layers.max_pool(x, self.kernel, self.stride, self.pad)
        if layers.concrete(*x.shape[1:3]) and min(x.shape[1:3]) < self.kernel:
            raise ValueError(f"{self.name}: {self.kernel}x{self.kernel} average pool needs a map "
                             f"at least that large, got {x.shape[1]}x{x.shape[2]}")
        return nn.avg_pool(x, (self.kernel,) * 2, (self.stride,) * 2)


@dataclasses.dataclass(frozen=True)
class PointwiseLayer:
    """A layer that keeps the geometry: LRN or dropout."""

    name: str
    kind: str  # "lrn" | "dropout"
    rate: float = 0.5
    depth: int = 0

    def geometry(self, g):
        return g

    def size(self, n):
        return n

    def __call__(self, x, *, dtype, train, norm=NONE):
        del dtype, norm
        if self.kind == "lrn":
            return layers.local_response_norm(x)
        return nn.Dropout(self.rate, deterministic=not train, name=self.name)(x)


@dataclasses.dataclass(frozen=True)
class Backbone:
    """A named, fully convolutional feature extractor.

    Attributes:
      name: e.g. ``"vgg16"``.
      layers: the layer table, input to output.
      output: the layer whose features feed ``score_fr`` (``drop7`` for VGG16).
    """

    name: str
    layers: tuple[LayerSpec, ...]
    output: str

    def geometries(self, image: coord_map.Geometry = coord_map.IMAGE
                   ) -> dict[str, coord_map.Geometry]:
        """Geometry of every layer's output, by layer name."""
        out, g = {}, image
        for layer in self.layers:
            g = out[layer.name] = layer.geometry(g)
        return out

    def sizes(self, size: int) -> dict[str, int]:
        """Spatial size of every layer's output for a ``size``-pixel input side."""
        out = {}
        for layer in self.layers:
            size = out[layer.name] = layer.size(size)
        return out

    def depth(self) -> int:
        """Learned convolution layers from input to ``output``."""
        total = 0
        for layer in self.layers:
            total += layer.depth
            if layer.name == self.output:
                return total
        raise ValueError(f"{self.name}: output layer {self.output!r} is not in the table")


def stages(backbone: Backbone) -> tuple[tuple[LayerSpec, ...], ...]:
    """The table up to ``backbone.output`` cut after every pooling layer: VGG16's five conv
    blocks (conv1_1 ... pool1, ...) and fc6 ... drop7; the units of ``remat="stages"``."""
    cut, stage = [], []
    for layer in backbone.layers:
        stage.append(layer)
        if isinstance(layer, PoolLayer) or layer.name == backbone.output:
            cut.append(tuple(stage))
            stage = []
        if layer.name == backbone.output:
            break
    return tuple(cut)


class Trunk(nn.Module):
    """Runs a :class:`Backbone` table. Returns ``{layer name: (B, h, w, C) features}``.

    norm, norm_groups: normalisation after each conv (:mod:`fcnjax.models.norm`).
    remat: :mod:`fcnjax.models.remat`'s policy; with "stages" the features are each stage's
    last layer only (the pools and the output: what FCN heads read).
    """

    backbone: Backbone
    dtype: Any = jnp.float32
    norm: str = "none"
    norm_groups: int = 32
    remat: str = "none"

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool = False) -> dict[str, jax.Array]:
        norm = Norm(self.norm, self.norm_groups)

        def run_layer(layer: LayerSpec) -> Any:
            return remat.wrap(self, lambda y: layer(y, dtype=self.dtype, train=train,
                                                    norm=norm), self.remat, "full")

        def run_stage(stage: tuple[LayerSpec, ...]) -> Any:
            def run(y):
                out = {}
                for layer in stage:
                    y = out[layer.name] = run_layer(layer)(y)
                return out if self.remat != "stages" else {stage[-1].name: y}
            return remat.wrap(self, run, self.remat, "stages")

        features = {}
        x = x.astype(self.dtype)
        for stage in stages(self.backbone):
            features.update(run_stage(stage)(x))
            x = features[stage[-1].name]
        return features
