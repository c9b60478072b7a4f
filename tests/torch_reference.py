"""Plain PyTorch reference nets for the surgery parity tests (test helper, not a test).

FCN32s, FCN16s, FCN8s and FCN8sAtOnce are written the way wkentaro/pytorch-fcn writes
them: Caffe blob names as attributes, conv1_1 padded by 100, ceil-mode pools, bias-free
ConvTranspose2d upsampling, and crops at the reference's *literal* offsets (19; 5, 27;
5, 9, 31). fcnjax derives those offsets from geometry, so agreeing with these nets is an
independent check. ``VGG16`` mirrors torchvision's module layout (``features``,
``avgpool``, ``classifier``) without importing torchvision. Nothing here imports fcnjax.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

VGG_CONVS = (
    ("conv1_1", 3, 64), ("conv1_2", 64, 64),
    ("conv2_1", 64, 128), ("conv2_2", 128, 128),
    ("conv3_1", 128, 256), ("conv3_2", 256, 256), ("conv3_3", 256, 256),
    ("conv4_1", 256, 512), ("conv4_2", 512, 512), ("conv4_3", 512, 512),
    ("conv5_1", 512, 512), ("conv5_2", 512, 512), ("conv5_3", 512, 512),
)
"""(name, in, out) of VGG16's 3x3 convolutions; a 2x2 max pool follows each *_2/*_3 last."""

STAGE_ENDS = ("conv1_2", "conv2_2", "conv3_3", "conv4_3", "conv5_3")


def bilinear_weight(channels: int, size: int) -> torch.Tensor:
    """ConvTranspose2d weight (C, C, k, k): a bilinear filter per channel (pytorch-fcn's)."""
    factor = (size + 1) // 2
    center = factor - 1 if size % 2 == 1 else factor - 0.5
    rows, cols = np.ogrid[:size, :size]
    filt = (1 - abs(rows - center) / factor) * (1 - abs(cols - center) / factor)
    weight = np.zeros((channels, channels, size, size), np.float32)
    weight[range(channels), range(channels)] = filt
    return torch.from_numpy(weight)


class VGGTrunk(nn.Module):
    """conv1_1 ... fc7 as in pytorch-fcn's FCN classes; ``trunk`` returns pool3/pool4/drop7."""

    def __init__(self):
        super().__init__()
        for name, cin, cout in VGG_CONVS:
            setattr(self, name, nn.Conv2d(cin, cout, 3, padding=100 if name == "conv1_1" else 1))
        self.pool = nn.MaxPool2d(2, stride=2, ceil_mode=True)
        self.fc6 = nn.Conv2d(512, 4096, 7)
        self.fc7 = nn.Conv2d(4096, 4096, 1)
        self.relu = nn.ReLU(inplace=True)
        self.drop = nn.Dropout2d()

    def trunk(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h, taps = x, {}
        for name, _, _ in VGG_CONVS:
            h = self.relu(getattr(self, name)(h))
            if name in STAGE_ENDS:
                h = self.pool(h)
                taps[f"pool{len(taps) + 1}"] = h
        h = self.drop(self.relu(self.fc6(h)))
        taps["drop7"] = self.drop(self.relu(self.fc7(h)))
        return taps


class FCN32s(VGGTrunk):
    def __init__(self, n_class: int = 21):
        super().__init__()
        self.score_fr = nn.Conv2d(4096, n_class, 1)
        self.upscore = nn.ConvTranspose2d(n_class, n_class, 64, stride=32, bias=False)

    def forward(self, x):
        h = self.upscore(self.score_fr(self.trunk(x)["drop7"]))
        return h[:, :, 19:19 + x.size(2), 19:19 + x.size(3)].contiguous()


class FCN16s(VGGTrunk):
    def __init__(self, n_class: int = 21):
        super().__init__()
        self.score_fr = nn.Conv2d(4096, n_class, 1)
        self.score_pool4 = nn.Conv2d(512, n_class, 1)
        self.upscore2 = nn.ConvTranspose2d(n_class, n_class, 4, stride=2, bias=False)
        self.upscore16 = nn.ConvTranspose2d(n_class, n_class, 32, stride=16, bias=False)

    def forward(self, x):
        taps = self.trunk(x)
        upscore2 = self.upscore2(self.score_fr(taps["drop7"]))  # 1/16
        h = self.score_pool4(taps["pool4"])
        score_pool4c = h[:, :, 5:5 + upscore2.size(2), 5:5 + upscore2.size(3)]
        h = self.upscore16(upscore2 + score_pool4c)
        return h[:, :, 27:27 + x.size(2), 27:27 + x.size(3)].contiguous()


class FCN8s(VGGTrunk):
    pool4_scale = 1.0
    pool3_scale = 1.0

    def __init__(self, n_class: int = 21):
        super().__init__()
        self.score_fr = nn.Conv2d(4096, n_class, 1)
        self.score_pool3 = nn.Conv2d(256, n_class, 1)
        self.score_pool4 = nn.Conv2d(512, n_class, 1)
        self.upscore2 = nn.ConvTranspose2d(n_class, n_class, 4, stride=2, bias=False)
        self.upscore8 = nn.ConvTranspose2d(n_class, n_class, 16, stride=8, bias=False)
        self.upscore_pool4 = nn.ConvTranspose2d(n_class, n_class, 4, stride=2, bias=False)

    def forward(self, x):
        taps = self.trunk(x)
        upscore2 = self.upscore2(self.score_fr(taps["drop7"]))  # 1/16
        h = self.score_pool4(taps["pool4"] * self.pool4_scale)
        score_pool4c = h[:, :, 5:5 + upscore2.size(2), 5:5 + upscore2.size(3)]
        upscore_pool4 = self.upscore_pool4(upscore2 + score_pool4c)  # 1/8
        h = self.score_pool3(taps["pool3"] * self.pool3_scale)
        score_pool3c = h[:, :, 9:9 + upscore_pool4.size(2), 9:9 + upscore_pool4.size(3)]
        h = self.upscore8(upscore_pool4 + score_pool3c)
        return h[:, :, 31:31 + x.size(2), 31:31 + x.size(3)].contiguous()


class FCN8sAtOnce(FCN8s):
    pool4_scale = 0.01
    pool3_scale = 0.0001


class VGG16(nn.Module):
    """torchvision's VGG16 layout: ``features.{0,2,5,...,28}``, ``classifier.{0,3,6}``."""

    def __init__(self, num_classes: int = 1000):
        super().__init__()
        modules = []
        for name, cin, cout in VGG_CONVS:
            modules += [nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(inplace=True)]
            if name in STAGE_ENDS:
                modules.append(nn.MaxPool2d(2, stride=2))
        self.features = nn.Sequential(*modules)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096), nn.ReLU(True), nn.Dropout(),
            nn.Linear(4096, 4096), nn.ReLU(True), nn.Dropout(),
            nn.Linear(4096, num_classes))

    def forward(self, x, stop: int | None = None):
        """Logits, or the output of ``classifier[:stop]`` (stop=5: fc7 after its ReLU)."""
        h = torch.flatten(self.avgpool(self.features(x)), 1)
        return self.classifier[:stop](h)


def random_state_dict(net: nn.Module, generator: torch.Generator,
                      skip: tuple[str, ...] = ()) -> dict[str, torch.Tensor]:
    """He-scaled Gaussian weights and small random biases for every parameter of ``net``.

    Works on a net built on the meta device (only shapes are read). Keys in ``skip``
    are left out (to be filled by the caller).
    """
    out = {}
    for key, param in net.state_dict().items():
        if key in skip:
            continue
        if key.endswith("bias"):
            out[key] = 0.1 * torch.randn(param.shape, generator=generator)
        else:
            fan_in = param[0].numel()
            out[key] = torch.randn(param.shape, generator=generator) * (2.0 / fan_in) ** 0.5
    return out
