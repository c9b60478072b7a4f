"""PyTorch versions of fcnjax's networks, written for the speed comparison in ``benchmarks/``.

They are the same architectures as :mod:`fcnjax.models` (same layers, same parameter counts,
same crops), written the way one would write them for PyTorch: NCHW modules, ceil-mode
``MaxPool2d``, grouped ``Conv2d``, and the fixed bilinear upsampling as a bias-free
``conv_transpose2d`` whose weight is a buffer (no gradient, not a parameter, moved by
``.to()``). Layer names are the Caffe blob names where the reference has them
(``conv1_1`` ... ``fc7``, ``score_fr``, ``score_pool4``, ``upscore2`` ...).

Crop offsets are written here as the reference's numbers (19 / 5, 27 / 5, 9, 31 for the
VGG16 nets); ``tests/test_benchmarks.py`` checks them against the offsets fcnjax derives
from the layer geometry, so each implementation checks the other.
"""

from __future__ import annotations

import dataclasses
import math
from collections import OrderedDict

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

VGG16_STAGES = ((2, 64), (2, 128), (3, 256), (3, 512), (3, 512))

INCEPTION_WIDTHS = (
    # name, (1x1, 3x3_reduce, 3x3, 5x5_reduce, 5x5, pool_proj); None marks a 3x3/2 max pool
    ("inception_3a", (64, 96, 128, 16, 32, 32)),
    ("inception_3b", (128, 128, 192, 32, 96, 64)),
    ("pool3", None),
    ("inception_4a", (192, 96, 208, 16, 48, 64)),
    ("inception_4b", (160, 112, 224, 24, 64, 64)),
    ("inception_4c", (128, 128, 256, 24, 64, 64)),
    ("inception_4d", (112, 144, 288, 32, 64, 64)),
    ("inception_4e", (256, 160, 320, 32, 128, 128)),
    ("pool4", None),
    ("inception_5a", (256, 160, 320, 32, 128, 128)),
    ("inception_5b", (384, 192, 384, 48, 128, 128)),
)


@dataclasses.dataclass(frozen=True)
class HeadSpec:
    """An FCN head: skips fused coarse to fine (each after a 4x4 stride-2 upscore), then the
    final bilinear upscore (``kernel``, ``stride``) cropped at ``offset``.

    skips: ``(layer, crop offset of score_<layer>)`` pairs, e.g. ``(("pool4", 5),)``.
    """

    skips: tuple[tuple[str, int], ...]
    kernel: int
    stride: int
    offset: int


FCN32S_HEAD = HeadSpec((), 64, 32, 19)
FCN16S_HEAD = HeadSpec((("pool4", 5),), 32, 16, 27)
FCN8S_HEAD = HeadSpec((("pool4", 5), ("pool3", 9)), 16, 8, 31)
ALEXNET_HEAD = HeadSpec((), 63, 32, 18)
GOOGLENET_HEAD = HeadSpec((), 63, 32, 16)


def bilinear_filter(size: int) -> np.ndarray:
    """1-D bilinear taps: f = ceil(size / 2), centre f - 1 (odd) or f - 0.5 (even)."""
    f = math.ceil(size / 2)
    centre = f - 1 if size % 2 else f - 0.5
    return 1.0 - np.abs(np.arange(size) - centre) / f


def conv_relu(cin: int, cout: int, kernel: int, stride: int = 1, pad: int = 0,
              groups: int = 1) -> nn.Sequential:
    return nn.Sequential(OrderedDict(
        conv=nn.Conv2d(cin, cout, kernel, stride, pad, groups=groups),
        relu=nn.ReLU(inplace=True)))


def lrn() -> nn.LocalResponseNorm:
    """Caffe's across-channel LRN as CaffeNet and GoogLeNet use it."""
    return nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=1.0)


class Upscore(nn.Module):
    """Fixed bilinear transposed conv (one kernel per class), then a crop.

    dense: the reference's (C, C, k, k) weight, zero across classes. ``dense=False`` runs
    the same numbers as a depthwise (``groups=C``) transposed conv.
    """

    def __init__(self, channels: int, kernel: int, stride: int, dense: bool = True):
        super().__init__()
        taps = torch.from_numpy(bilinear_filter(kernel)).float()
        square = torch.outer(taps, taps)
        if dense:
            weight = torch.zeros(channels, channels, kernel, kernel)
            weight[torch.arange(channels), torch.arange(channels)] = square
        else:
            weight = square.expand(channels, 1, kernel, kernel).clone()
        self.register_buffer("weight", weight)
        self.stride = stride
        self.groups = 1 if dense else channels

    def forward(self, x: torch.Tensor, offset: int = 0,
                size: tuple[int, int] | None = None) -> torch.Tensor:
        y = F.conv_transpose2d(x, self.weight.to(x.dtype), stride=self.stride,
                               groups=self.groups)
        h, w = size if size is not None else (y.shape[-2] - offset, y.shape[-1] - offset)
        return y[:, :, offset:offset + h, offset:offset + w]


class VGG16(nn.Module):
    """VGG16 to fc7: 13 3x3 convs (conv1_1 padded by ``input_pad``), ceil-mode pools,
    fc6 as a 7x7 VALID conv and fc7 as 1x1, dropout 0.5. Returns pool3, pool4, fc7."""

    channels = {"pool3": 256, "pool4": 512, "out": 4096}

    def __init__(self, input_pad: int = 100):
        super().__init__()
        cin, stages = 3, []
        for s, (convs, cout) in enumerate(VGG16_STAGES, start=1):
            stage = OrderedDict()
            for i in range(1, convs + 1):
                stage[f"conv{s}_{i}"] = conv_relu(cin, cout, 3,
                                                  pad=input_pad if (s, i) == (1, 1) else 1)
                cin = cout
            stage[f"pool{s}"] = nn.MaxPool2d(2, 2, ceil_mode=True)
            stages.append(nn.Sequential(stage))
        self.stages = nn.ModuleList(stages)
        self.classifier = nn.Sequential(OrderedDict(
            fc6=conv_relu(512, 4096, 7), drop6=nn.Dropout(0.5),
            fc7=conv_relu(4096, 4096, 1), drop7=nn.Dropout(0.5)))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        features = {}
        for s, stage in enumerate(self.stages, start=1):
            x = features[f"pool{s}"] = stage(x)                     # 1/2 ... 1/32
        features["out"] = self.classifier(x)
        return features


class AlexNet(nn.Module):
    """CaffeNet to fc7: conv1 11x11/4 pad ``input_pad``, pool-then-LRN, grouped
    conv2/4/5, ceil-mode 3x3/2 pools, fc6 6x6 VALID, fc7 1x1."""

    channels = {"out": 4096}

    def __init__(self, input_pad: int = 100):
        super().__init__()
        self.features = nn.Sequential(OrderedDict(
            conv1=conv_relu(3, 96, 11, stride=4, pad=input_pad),
            pool1=nn.MaxPool2d(3, 2, ceil_mode=True), norm1=lrn(),
            conv2=conv_relu(96, 256, 5, pad=2, groups=2),
            pool2=nn.MaxPool2d(3, 2, ceil_mode=True), norm2=lrn(),
            conv3=conv_relu(256, 384, 3, pad=1),
            conv4=conv_relu(384, 384, 3, pad=1, groups=2),
            conv5=conv_relu(384, 256, 3, pad=1, groups=2),
            pool5=nn.MaxPool2d(3, 2, ceil_mode=True),
            fc6=conv_relu(256, 4096, 6), drop6=nn.Dropout(0.5),
            fc7=conv_relu(4096, 4096, 1), drop7=nn.Dropout(0.5)))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"out": self.features(x)}


class Inception(nn.Module):
    """Inception v1 block: 1x1 | 1x1 -> 3x3 | 1x1 -> 5x5 | 3x3 max pool -> 1x1, concatenated."""

    def __init__(self, cin: int, widths: tuple[int, ...]):
        super().__init__()
        w1, r3, w3, r5, w5, wp = widths
        self.branch1 = conv_relu(cin, w1, 1)
        self.branch3 = nn.Sequential(conv_relu(cin, r3, 1), conv_relu(r3, w3, 3, pad=1))
        self.branch5 = nn.Sequential(conv_relu(cin, r5, 1), conv_relu(r5, w5, 5, pad=2))
        self.branch_pool = nn.Sequential(nn.MaxPool2d(3, 1, 1, ceil_mode=True),
                                         conv_relu(cin, wp, 1))
        self.out_channels = w1 + w3 + w5 + wp

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch1(x), self.branch3(x), self.branch5(x),
                          self.branch_pool(x)], dim=1)


class GoogLeNet(nn.Module):
    """Inception v1 main path to pool5: conv1 7x7/2 pad ``input_pad``, ceil-mode 3x3/2
    pools, LRNs, nine inception blocks, 7x7 stride-1 average pool, dropout 0.4."""

    channels = {"out": 1024}

    def __init__(self, input_pad: int = 114):
        super().__init__()
        layers = OrderedDict(
            conv1=conv_relu(3, 64, 7, stride=2, pad=input_pad),
            pool1=nn.MaxPool2d(3, 2, ceil_mode=True), norm1=lrn(),
            conv2_reduce=conv_relu(64, 64, 1),
            conv2=conv_relu(64, 192, 3, pad=1), norm2=lrn(),
            pool2=nn.MaxPool2d(3, 2, ceil_mode=True))
        cin = 192
        for name, widths in INCEPTION_WIDTHS:
            if widths is None:
                layers[name] = nn.MaxPool2d(3, 2, ceil_mode=True)
            else:
                layers[name] = block = Inception(cin, widths)
                cin = block.out_channels
        layers["pool5"] = nn.AvgPool2d(7, 1)
        layers["pool5_drop"] = nn.Dropout(0.4)
        self.features = nn.Sequential(layers)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"out": self.features(x)}


class FCN(nn.Module):
    """score_fr on the trunk's output, skip fusions (upscore x2, score, crop, add), then the
    final bilinear upscore cropped to the input size. Returns (B, C, H, W) logits."""

    def __init__(self, trunk: nn.Module, head: HeadSpec, num_classes: int = 21,
                 dense_upscore: bool = True):
        super().__init__()
        self.trunk, self.head = trunk, head
        self.score_fr = nn.Conv2d(trunk.channels["out"], num_classes, 1)
        self.fusions = []
        for i, (layer, offset) in enumerate(head.skips):
            up = "upscore2" if i == 0 else f"upscore_{head.skips[i - 1][0]}"
            self.add_module(up, Upscore(num_classes, 4, 2, dense_upscore))
            self.add_module(f"score_{layer}",
                            nn.Conv2d(trunk.channels[layer], num_classes, 1))
            self.fusions.append((layer, offset, up))
        self.upscore = Upscore(num_classes, head.kernel, head.stride, dense_upscore)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.trunk(x)
        h = self.score_fr(features["out"])
        for layer, offset, up in self.fusions:
            h = getattr(self, up)(h)
            skip = getattr(self, f"score_{layer}")(features[layer])
            h = h + skip[:, :, offset:offset + h.shape[2], offset:offset + h.shape[3]]
        return self.upscore(h, self.head.offset, tuple(x.shape[2:]))


def centre_crop(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    top, left = (x.shape[2] - size[0]) // 2, (x.shape[3] - size[1]) // 2
    return x[:, :, top:top + size[0], left:left + size[1]]


class UNet(nn.Module):
    """U-Net (Ronneberger et al. 2015): ``levels`` down steps of two 3x3 convs + 2x2 max pool
    (64 ... 1024 channels), dropout at the end of the contracting path, 2x2 up-convs + ReLU
    (as in the authors' Caffe model) halving the channels, centre-cropped skips concatenated, two 3x3 convs, a 1x1 classifier.
    ``padding="valid"`` is the paper's net (572 -> 388); ``"same"`` keeps the size."""

    def __init__(self, in_channels: int = 1, num_classes: int = 2, features: int = 64,
                 levels: int = 4, padding: str = "valid", dropout: float = 0.5):
        super().__init__()
        pad = {"valid": 0, "same": 1}[padding]

        def double_conv(cin, cout):
            return nn.Sequential(conv_relu(cin, cout, 3, pad=pad),
                                 conv_relu(cout, cout, 3, pad=pad))

        widths = [features * 2 ** i for i in range(levels + 1)]
        self.down = nn.ModuleList()
        cin = in_channels
        for width in widths[:-1]:
            self.down.append(double_conv(cin, width))
            cin = width
        self.bottom = double_conv(widths[-2], widths[-1])
        self.drop = nn.Dropout(dropout)
        self.upconv = nn.ModuleList()
        self.up = nn.ModuleList()
        for width in reversed(widths[:-1]):
            self.upconv.append(nn.ConvTranspose2d(2 * width, width, 2, stride=2))
            self.up.append(double_conv(2 * width, width))
        self.classifier = nn.Conv2d(features, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
            x = F.max_pool2d(x, 2)
        x = self.drop(self.bottom(x))
        for upconv, block, skip in zip(self.upconv, self.up, reversed(skips)):
            x = F.relu(upconv(x), inplace=True)
            x = block(torch.cat([centre_crop(skip, x.shape[2:]), x], dim=1))
        return self.classifier(x)


def fcn32s(**kwargs) -> FCN:
    return FCN(VGG16(), FCN32S_HEAD, **kwargs)


def fcn16s(**kwargs) -> FCN:
    return FCN(VGG16(), FCN16S_HEAD, **kwargs)


def fcn8s(**kwargs) -> FCN:
    return FCN(VGG16(), FCN8S_HEAD, **kwargs)


def fcn_alexnet(**kwargs) -> FCN:
    return FCN(AlexNet(), ALEXNET_HEAD, **kwargs)


def fcn_googlenet(**kwargs) -> FCN:
    return FCN(GoogLeNet(), GOOGLENET_HEAD, **kwargs)


def unet(**kwargs) -> UNet:
    return UNet(**kwargs)


MODELS = {
    "fcn32s": fcn32s,
    "fcn16s": fcn16s,
    "fcn8s": fcn8s,
    "fcn_alexnet": fcn_alexnet,
    "fcn_googlenet": fcn_googlenet,
    "unet": unet,
}


def build(name: str, **kwargs) -> nn.Module:
    if name not in MODELS:
        raise ValueError(f"no PyTorch version of {name!r}; choose one of {sorted(MODELS)}")
    return MODELS[name](**kwargs)


@torch.no_grad()
def randomize_(model: nn.Module, seed: int = 0, bias_std: float = 0.01) -> nn.Module:
    """Fill every parameter with random values: weights N(0, 2 / fan_in), biases N(0, bias_std^2).

    fan_in counts input channels times kernel taps (for ``ConvTranspose2d`` too, whose
    weight is stored (C_in, C_out, k, k)). Timings then see realistic activations, where
    the reference would zero-initialise the score layers.
    """
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            if name == "weight" and isinstance(module, nn.ConvTranspose2d):
                std = math.sqrt(2.0 / (p.shape[0] * math.prod(p.shape[2:])))
            elif name == "weight":
                std = math.sqrt(2.0 / math.prod(p.shape[1:]))
            else:
                std = bias_std
            p.copy_(torch.randn(p.shape, generator=generator) * std)
    return model


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
