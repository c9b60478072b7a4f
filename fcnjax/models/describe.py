"""The FCN paper's Table 1, computed from the networks themselves.

``describe(name)`` gives a model's parameter count, conv layers, receptive field, max
stride and crop offsets; nothing is typed in except the paper's own figures, kept
apart in :data:`PAPER_TABLE1` for comparison. Needs only jax, flax and numpy.

Conventions (those that reproduce the paper's counts):
- parameters: learned scalars; fixed bilinear upsampling has none.
- conv layers: learned convolutions on the longest input-to-output path, the score
  layer included and fixed deconvolutions excluded (VGG16: 13 + fc6 + fc7 + score_fr).
- receptive field and max stride: of the coarsest scores (``score_fr``), in input pixels.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from fcnjax import models
from fcnjax.models.fcn import FCN
from fcnjax.models.layers import count_params

TABLE1_MODELS = ("fcn_alexnet", "fcn32s", "fcn16s", "fcn8s", "fcn8s_atonce", "fcn_googlenet",
                 "unet")

PAPER_TABLE1 = {
    # Long et al., Table 1 (21 classes, 500x500, Tesla K40c)
    "fcn_alexnet": {"params": 57e6, "conv_layers": 8, "receptive_field": 355, "max_stride": 32,
                    "k40c_ms": 50.0, "mean_iu": 39.8},
    "fcn32s": {"params": 134e6, "conv_layers": 16, "receptive_field": 404, "max_stride": 32,
               "k40c_ms": 210.0, "mean_iu": 56.0},
    "fcn_googlenet": {"params": 6e6, "conv_layers": 22, "receptive_field": 907, "max_stride": 32,
                      "k40c_ms": 59.0, "mean_iu": 42.5},
}

DEFAULT_CLASSES = {"unet": 2}


def describe(name: str, num_classes: int | None = None, **kwargs: Any) -> dict[str, Any]:
    """Table 1's columns for model ``name`` (a key of ``fcnjax.models.MODELS``).

    Returns {"model", "params", "conv_layers", "receptive_field", "max_stride",
    "crop_offsets"}; ``crop_offsets`` maps each crop layer to its offset in cells.
    """
    num_classes = num_classes or DEFAULT_CLASSES.get(name, 21)
    model = models.build({"name": name, "num_classes": num_classes, **kwargs})
    if isinstance(model, FCN):
        geometry = model.backbone.geometries()[model.backbone.output]
        plan = model.plan()
        upscores = len(plan.fusions) + 1 if model.learnable_upsampling else 0
        layers, field, stride = model.backbone.depth() + 1 + upscores, geometry.field, geometry.scale
        offsets, side, channels = plan.crop_offsets, 1, 3
    else:  # U-Net
        geometry = model.geometry()
        layers, field, stride = geometry.conv_layers, geometry.receptive_field, geometry.max_stride
        offsets, side, channels = geometry.crop_offsets, geometry.smallest_input, 1
    image = jax.ShapeDtypeStruct((1, side, side, channels), jnp.float32)
    params = jax.eval_shape(model.init, jax.random.key(0), image)["params"]
    return {"model": name, "params": count_params(params), "conv_layers": int(layers),
            "receptive_field": int(field), "max_stride": int(stride),
            "crop_offsets": dict(offsets)}


def format_row(row: dict[str, Any]) -> str:
    """One line of the describe table."""
    offsets = " ".join(f"{k}={v}" for k, v in row["crop_offsets"].items())
    return (f"{row['model']:<15} {row['params'] / 1e6:>8.2f}M {row['conv_layers']:>6} "
            f"{row['receptive_field']:>8} {row['max_stride']:>7}  {offsets}")


HEADER = f"{'model':<15} {'params':>9} {'convs':>6} {'field':>8} {'stride':>7}  crop offsets"
