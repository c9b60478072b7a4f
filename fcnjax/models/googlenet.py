"""GoogLeNet (Inception v1, Szegedy et al. 2015) made fully convolutional: FCN-GoogLeNet's trunk.

The FCN paper scores GoogLeNet's final layer at stride 32 (its Table 1: 22 layers, 6M
parameters, receptive field 907) but the reference repository never released the net.
Here it is BVLC GoogLeNet's main path with Caffe's layer names (``inception_3a/1x1`` is
``inception_3a`` / ``1x1``): the auxiliary classifiers and the 1000-way classifier are
dropped, and the 7x7 stride-1 average pool stays, so ``score_fr`` sees 907 pixels.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from fcnjax.models import layers
from fcnjax.models.norm import NONE, Norm
from fcnjax.models.trunk import Backbone, ConvLayer, PointwiseLayer, PoolLayer

INCEPTION_WIDTHS = {
    # name: (1x1, 3x3_reduce, 3x3, 5x5_reduce, 5x5, pool_proj)
    "inception_3a": (64, 96, 128, 16, 32, 32),
    "inception_3b": (128, 128, 192, 32, 96, 64),
    "inception_4a": (192, 96, 208, 16, 48, 64),
    "inception_4b": (160, 112, 224, 24, 64, 64),
    "inception_4c": (128, 128, 256, 24, 64, 64),
    "inception_4d": (112, 144, 288, 32, 64, 64),
    "inception_4e": (256, 160, 320, 32, 128, 128),
    "inception_5a": (256, 160, 320, 32, 128, 128),
    "inception_5b": (384, 192, 384, 48, 128, 128),
}


class InceptionBlock(nn.Module):
    """Four parallel branches (1x1; 1x1 then 3x3; 1x1 then 5x5; 3x3 max pool then 1x1),
    concatenated along channels. All keep the spatial size. ``norm`` goes between each
    conv and its ReLU."""

    widths: tuple[int, int, int, int, int, int]
    dtype: Any = jnp.float32
    norm: Norm = NONE

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        w1, r3, w3, r5, w5, wp = self.widths

        def conv_relu(name, features, kernel, inputs):
            y = layers.conv(name, features, kernel, pad=kernel // 2, dtype=self.dtype)(inputs)
            return nn.relu(self.norm(y, name, train=train, dtype=self.dtype))

        return jnp.concatenate([
            conv_relu("1x1", w1, 1, x),
            conv_relu("3x3", w3, 3, conv_relu("3x3_reduce", r3, 1, x)),
            conv_relu("5x5", w5, 5, conv_relu("5x5_reduce", r5, 1, x)),
            conv_relu("pool_proj", wp, 1, layers.max_pool(x, 3, 1, pad=1)),
        ], axis=-1)


@dataclasses.dataclass(frozen=True)
class InceptionLayer:
    """Table entry for an inception block: geometry of its widest (5x5) branch, depth 2."""

    name: str
    widths: tuple[int, int, int, int, int, int]
    depth: int = 2

    def geometry(self, g):
        return g.conv(5, 1, 2)

    def size(self, n):
        return n

    def __call__(self, x, *, dtype, train, norm=NONE):
        return InceptionBlock(self.widths, dtype=dtype, norm=norm, name=self.name)(x, train)


def googlenet(input_pad: int = 114) -> Backbone:
    """GoogLeNet up to ``pool5/drop`` (7x7 stride-1 average pool, dropout 0.4).

    input_pad: padding of conv1/7x7_s2 (3 in the classifier). 114 pixels is the least
    with which every input size down to 1x1 still fills the 7x7 pool5 window and comes
    back at full size after the x32 upsampling (``tests/models/test_geometry.py`` checks
    1 to 1000 pixels); the geometry then picks a 63x63 bilinear kernel, as FCN-AlexNet's.
    """
    inception = lambda name: InceptionLayer(name, INCEPTION_WIDTHS[name])  # noqa: E731
    table = (
        ConvLayer("conv1", 64, 7, stride=2, pad=input_pad),
        PoolLayer("pool1", 3, 2),
        PointwiseLayer("norm1", "lrn"),
        ConvLayer("conv2_reduce", 64, 1),
        ConvLayer("conv2", 192, 3, pad=1),
        PointwiseLayer("norm2", "lrn"),
        PoolLayer("pool2", 3, 2),
        inception("inception_3a"),
        inception("inception_3b"),
        PoolLayer("pool3", 3, 2),
        *(inception(f"inception_4{c}") for c in "abcde"),
        PoolLayer("pool4", 3, 2),
        inception("inception_5a"),
        inception("inception_5b"),
        PoolLayer("pool5", 7, 1, kind="avg"),
        PointwiseLayer("pool5_drop", "dropout", 0.4),
    )
    return Backbone("googlenet", table, output="pool5_drop")
