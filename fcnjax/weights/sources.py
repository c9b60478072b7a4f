"""``config.init``: the one place that turns a named weight source into a model's params.

``checkpoint``: an earlier stage's workdir (FCN-16s from FCN-32s; new score layers zero;
``python -m fcnjax.zoo convert`` makes one of a published caffemodel);
``torchvision_vgg16`` / ``pytorch_fcn``: PyTorch weight files (:mod:`fcnjax.weights.surgery`);
``caffe_vgg16``: the reference's ImageNet VGG_ILSVRC_16_layers.caffemodel
(:mod:`fcnjax.weights.caffe`, fc6 / fc7 as convolutions).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

import jax
import jax.numpy as jnp
from tqdm import tqdm

from fcnjax.run import checkpoint, parallel
from fcnjax.run.errors import ConfigError
from fcnjax.weights import surgery

if TYPE_CHECKING:
    import ml_collections

Shape = tuple[int, ...]


def chosen_source(init: ml_collections.ConfigDict) -> tuple[str, str] | None:
    """``(field, path)`` of the one source ``config.init`` names, or None; ConfigError when
    it names several."""
    sources = {k: v for k, v in init.items() if v}
    if len(sources) > 1:
        raise ConfigError(f"config.init names {sorted(sources)}: set at most one")
    return next(iter(sources.items())) if sources else None


def initial_params(init: ml_collections.ConfigDict, model: Any, key: jax.Array,
                   image_shape: Shape | Mapping[str, Shape]) -> Any | None:
    """Params from ``config.init``'s source (see the module's doc), or None to draw them at
    random. A model with normalisation layers (``config.model.norm``) takes none: the
    sources hold the papers' norm-free weights (ConfigError)."""
    chosen = chosen_source(init)
    if chosen is None:
        return None
    source, path = chosen
    norm = getattr(model, "norm", "none")
    if norm != "none":
        raise ConfigError(f"config.init.{source} holds norm-free weights and cannot start "
                          f"config.model.norm={norm!r}: set norm='none' or leave config.init "
                          "empty to train from scratch")
    image = jax.tree.map(lambda shape: jax.ShapeDtypeStruct(shape, jnp.float32), image_shape,
                         is_leaf=lambda x: isinstance(x, tuple))
    if source == "pytorch_fcn":
        params = surgery.from_pytorch_fcn(path, model)
    else:
        if source == "checkpoint":
            old = checkpoint.restore_params(path)
        elif source == "caffe_vgg16":
            from fcnjax.weights import caffe  # protobuf: only for Caffe files

            old = {"trunk": caffe.from_caffe_vgg16(path)}
        else:
            old = {"trunk": surgery.from_torchvision_vgg16(path)}
        params, report = surgery.stage_init(model, old, key, image)
        if parallel.is_main_process():
            tqdm.write(f"init from {source} {path}: {len(report.copied)} arrays copied, "
                       f"new: {', '.join(report.new) or 'none'}")
    return jax.tree_util.tree_map(jnp.asarray, params)
