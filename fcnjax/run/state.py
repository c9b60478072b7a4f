"""The train state, made and restored in one place: ``TrainState`` of a config's model
(:func:`create_train_state`), where its arrays live on a mesh (:func:`state_sharding`) and
a checkpoint restored onto it (:func:`restore_state`). ``train``, ``evaluate``, ``predict``
and ``python -m fcnjax.zoo convert`` all go through here.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, Mapping

import jax
import jax.numpy as jnp
from flax.training import train_state
from jax.sharding import Mesh

from fcnjax import optim
from fcnjax.run import checkpoint, parallel

if TYPE_CHECKING:
    import ml_collections

CHANNELS = {"L": 1, "RGB": 3}

Shape = tuple[int, ...]


def input_shape(config: ml_collections.ConfigDict) -> Shape | dict[str, Shape]:
    """Shape of one model input, (1, H, W, C): the image's (a channel more with
    ``depth_key``), or ``{"image": ..., key: ...}`` with ``extra_inputs`` (their channels:
    their ``extra_means``)."""
    cfg = config.input
    image = (1, *cfg.crop_size, CHANNELS[cfg.image_mode] + bool(cfg.depth_key))
    if not cfg.extra_inputs:
        return image
    return {"image": image, **{key: (1, *cfg.crop_size, len(mean))
                               for key, mean in zip(cfg.extra_inputs, cfg.extra_means)}}


class TrainState(train_state.TrainState):
    """flax's TrainState (step, params, optimizer state) with the model's BatchNorm running
    statistics, ``batch_stats`` (``config.model.norm = "batch"``; None for a model that
    keeps none). Train steps update them, evaluation and prediction read them, checkpoints
    hold them."""

    batch_stats: Any = None


def is_shape(x: Any) -> bool:
    """Whether ``x`` is a shape tuple (a leaf of :func:`input_shape`'s result)."""
    return isinstance(x, tuple) and all(isinstance(n, int) for n in x)


def create_train_state(config: ml_collections.ConfigDict, model: Any, key: jax.Array,
                       image_shape: Shape | Mapping[str, Shape], *, pretrained: bool = True,
                       params: Any = None) -> TrainState:
    """Initialise ``model`` on zeros of ``image_shape`` (B, H, W, C) with the config's optimizer
    (a mapping of shapes for a model of several inputs, see ``input_shape``).

    Weights come from :func:`fcnjax.weights.sources.initial_params` when ``config.init``
    names a source and ``pretrained`` is set; pass ``pretrained=False`` for a template that a
    checkpoint restore will overwrite anyway (no weight file is read then). params: initial
    params read already (``pretrained`` is then ignored). A model with BatchNorm gets its
    initial ``batch_stats`` (zero means, unit variances) from ``model.init``.
    """
    if params is None and pretrained:
        from fcnjax.weights import sources  # weight readers: only when a source is named

        params = sources.initial_params(config.init, model, key, image_shape)
    batch_stats = None
    if params is None or getattr(model, "norm", "none") == "batch":
        init = jax.jit(functools.partial(model.init, train=False))
        zeros = jax.tree.map(lambda shape: jnp.zeros(shape, jnp.float32), image_shape,
                             is_leaf=is_shape)
        variables = init(key, zeros)
        params = variables["params"] if params is None else params
        batch_stats = variables.get("batch_stats")
    tx = optim.make_optimizer(config.optim, config.train.steps)
    return TrainState.create(apply_fn=model.apply, params=params, tx=tx,
                             batch_stats=batch_stats)


def state_sharding(config: ml_collections.ConfigDict, state: Any, mesh: Mesh) -> Any:
    """Where each array of ``state`` lives on ``mesh``: replicated, or split as
    ``config.mesh.shard_params`` / ``min_shard_size`` say (:func:`parallel.state_sharding`)."""
    return parallel.state_sharding(state, mesh, shard_params=config.mesh.shard_params,
                                   min_shard_size=config.mesh.min_shard_size)


def restore_state(config: ml_collections.ConfigDict, path: str, mesh: Mesh | None = None
                  ) -> Any:
    """The train state of ``config``'s model restored from the checkpoint ``path`` names
    (see ``checkpoint.locate``); FileNotFoundError or checkpoint.CheckpointMismatch.

    mesh: place the state on it as ``config.mesh`` says (:func:`state_sharding`); None:
    on the default device.
    """
    from fcnjax import models

    model = models.build(config.model)
    key = jax.random.key(config.seed, impl=config.prng_impl)
    state = create_train_state(config, model, key, input_shape(config), pretrained=False)
    if mesh is not None:
        state = parallel.shard_state(state, state_sharding(config, state, mesh))
    return checkpoint.restore_path(path, state)  # onto the template's placement
