"""VGG16 (Simonyan & Zisserman) made fully convolutional, as in the FCN reference nets."""

from __future__ import annotations

from fcnjax.models.trunk import Backbone, ConvLayer, PointwiseLayer, PoolLayer

VGG16_STAGES = ((2, 64), (2, 128), (3, 256), (3, 512), (3, 512))
"""(3x3 convs, channels) per stage; each stage ends in a 2x2 stride-2 max pool."""


def vgg16(input_pad: int = 100) -> Backbone:
    """VGG16 up to ``drop7``: conv1_1 ... pool5, fc6 (7x7 VALID), fc7 (1x1), dropout 0.5.

    input_pad: padding of conv1_1. The reference's 100 pixels let any input size, down
    to 1x1, reach fc6 and be cropped back to its own size after upsampling.
    """
    table = []
    for stage, (convs, features) in enumerate(VGG16_STAGES, start=1):
        for i in range(1, convs + 1):
            pad = input_pad if (stage, i) == (1, 1) else 1
            table.append(ConvLayer(f"conv{stage}_{i}", features, 3, pad=pad))
        table.append(PoolLayer(f"pool{stage}", 2, 2))
    table += [
        ConvLayer("fc6", 4096, 7, fully_connected=True),
        PointwiseLayer("drop6", "dropout", 0.5),
        ConvLayer("fc7", 4096, 1, fully_connected=True),
        PointwiseLayer("drop7", "dropout", 0.5),
    ]
    return Backbone("vgg16", tuple(table), output="drop7")
