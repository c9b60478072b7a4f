"""CaffeNet (the BVLC reference AlexNet) made fully convolutional: FCN-AlexNet's trunk."""

from __future__ import annotations

from fcnjax.models.trunk import Backbone, ConvLayer, PointwiseLayer, PoolLayer


def alexnet(input_pad: int = 100) -> Backbone:
    """conv1 11x11/4 (pad ``input_pad``), pools 3x3/2 rounding up, LRN after pool1/pool2
    (CaffeNet's order), grouped conv2/conv4/conv5 (2 groups), fc6 6x6 VALID, fc7 1x1."""
    table = (
        ConvLayer("conv1", 96, 11, stride=4, pad=input_pad),
        PoolLayer("pool1", 3, 2),
        PointwiseLayer("norm1", "lrn"),
        ConvLayer("conv2", 256, 5, pad=2, groups=2),
        PoolLayer("pool2", 3, 2),
        PointwiseLayer("norm2", "lrn"),
        ConvLayer("conv3", 384, 3, pad=1),
        ConvLayer("conv4", 384, 3, pad=1, groups=2),
        ConvLayer("conv5", 256, 3, pad=1, groups=2),
        PoolLayer("pool5", 3, 2),
        ConvLayer("fc6", 4096, 6, fully_connected=True),
        PointwiseLayer("drop6", "dropout", 0.5),
        ConvLayer("fc7", 4096, 1, fully_connected=True),
        PointwiseLayer("drop7", "dropout", 0.5),
    )
    return Backbone("alexnet", table, output="drop7")
