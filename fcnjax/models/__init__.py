"""The paper's networks by name. ``build(config.model)`` is the one way configs make a model.

Every entry takes ``num_classes``, ``dtype`` and (for FCNs) ``learnable_upsampling``
as keyword arguments; see each constructor for the rest.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import flax.linen as nn
import jax.numpy as jnp

from fcnjax.models.alexnet import alexnet
from fcnjax.models.fcn import FCN, LateFusionFCN, MultiTaskFCN, plan_head
from fcnjax.models.googlenet import googlenet
from fcnjax.models.trunk import Backbone, Trunk
from fcnjax.models.unet import UNet
from fcnjax.models.vgg import vgg16
from fcnjax.run.errors import ConfigError

AT_ONCE_SCALES = (0.01, 0.0001)
"""FCN-8s at-once scales pool4 and pool3 before scoring them (fixed Scale layers)."""


def fcn32s(**kwargs) -> FCN:
    """FCN-VGG16 at stride 32 (the paper's FCN-32s)."""
    return FCN(vgg16(), **kwargs)


def fcn16s(**kwargs) -> FCN:
    """FCN-VGG16 fusing pool4: stride 16."""
    return FCN(vgg16(), skips=("pool4",), **kwargs)


def fcn8s(**kwargs) -> FCN:
    """FCN-VGG16 fusing pool4 and pool3: stride 8."""
    return FCN(vgg16(), skips=("pool4", "pool3"), **kwargs)


def fcn8s_atonce(**kwargs) -> FCN:
    """FCN-8s trained in one stage, skips scaled by 0.01 (pool4) and 0.0001 (pool3)."""
    return FCN(vgg16(), skips=("pool4", "pool3"), skip_scales=AT_ONCE_SCALES, **kwargs)


def fcn_alexnet(**kwargs) -> FCN:
    """FCN-AlexNet (CaffeNet trunk, 63x63 stride-32 upscore)."""
    return FCN(alexnet(), **kwargs)


def fcn_googlenet(**kwargs) -> FCN:
    """FCN-GoogLeNet (Inception v1 trunk, stride-32 scores)."""
    return FCN(googlenet(), **kwargs)


def nyud_early_fusion(**kwargs) -> FCN:
    """NYUDv2 RGB-D early fusion: FCN-32s on a 4-channel (BGR + depth) input, 40 classes."""
    kwargs.setdefault("num_classes", 40)
    return FCN(vgg16(), **kwargs)


def nyud_late_fusion(**kwargs) -> LateFusionFCN:
    """NYUDv2 RGB-HHA late fusion: color and HHA VGG16 streams, scores summed 0.5 / 0.5."""
    return LateFusionFCN(vgg16(), **kwargs)


def siftflow_fcn16s(num_classes: int = 33, **kwargs) -> MultiTaskFCN:
    """SIFT Flow FCN-16s: one VGG16 trunk, heads "sem" (``num_classes``, 33) and "geo" (3)."""
    return MultiTaskFCN(vgg16(), tasks=(("sem", num_classes), ("geo", 3)), **kwargs)


MODELS: Mapping[str, Callable[..., nn.Module]] = {
    "fcn32s": fcn32s,
    "fcn_vgg16": fcn32s,
    "fcn16s": fcn16s,
    "fcn8s": fcn8s,
    "fcn8s_atonce": fcn8s_atonce,
    "fcn_alexnet": fcn_alexnet,
    "fcn_googlenet": fcn_googlenet,
    "nyud_early_fusion": nyud_early_fusion,
    "nyud_late_fusion": nyud_late_fusion,
    "siftflow_fcn16s": siftflow_fcn16s,
    "unet": UNet,
}


def build(config: Mapping[str, Any]) -> nn.Module:
    """Make the model named ``config["name"]``; other keys are its keyword arguments.

    ``dtype`` may be a string ("float32", "bfloat16").
    """
    kwargs = dict(config)
    name = kwargs.pop("name")
    if name not in MODELS:
        raise ConfigError(f"unknown model {name!r}; choose one of {sorted(MODELS)}")
    if isinstance(kwargs.get("dtype"), str):
        kwargs["dtype"] = jnp.dtype(kwargs["dtype"])
    return MODELS[name](**kwargs)


__all__ = ["MODELS", "build", "FCN", "LateFusionFCN", "MultiTaskFCN", "Backbone", "Trunk",
           "plan_head", "vgg16", "alexnet", "googlenet", "UNet",
           *(name for name in MODELS if name != "unet")]
