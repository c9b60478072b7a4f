"""The train state, made and restored in one place: ``TrainState`` of a config's model
(:func:`create_train_state`), where its arrays live on a mesh (:func:`state_sharding`) and
a checkpoint restored onto it (:func:`restore_state`). ``train``, ``evaluate``, ``predict``
and ``python -m fcnjax.zoo convert`` all go through here. Which weights an evaluation uses,
the trained ones or their moving average (``config.eval.weights``), is chosen here too
(:func:`eval_weights`, :func:`weights_for_eval`).
"""

from __future__ import annotations

import dataclasses
import functools
import os
from typing import TYPE_CHECKING, Any, Mapping

import jax
import jax.numpy as jnp
from flax import serialization, struct
from flax.training import train_state
from jax.sharding import Mesh

from fcnjax import optim
from fcnjax.run import checkpoint, parallel
from fcnjax.run.errors import ConfigError

if TYPE_CHECKING:
    import ml_collections

CHANNELS = {"L": 1, "RGB": 3}

Shape = tuple[int, ...]
WEIGHTS = ("auto", "ema", "raw")
"""Values of ``config.eval.weights``."""


class TrainState(train_state.TrainState):
    """flax's TrainState (step, params, optimizer state) and two optional fields, each None
    when off, and then nothing of it is stored or checkpointed (:func:`state_dict`):

    - ``ema_params``: the exponential moving average of ``params`` (the same tree of float32
      arrays) when ``config.optim.ema_decay`` > 0, moved after every optimizer update by
      :func:`fcnjax.optim.ema_update`; ``ema_decay`` is static (part of the compiled step);
    - ``batch_stats``: the model's BatchNorm running statistics
      (``config.model.norm = "batch"``), updated by train steps, read by evaluation and
      prediction.
    """

    ema_params: Any = None
    ema_decay: float = struct.field(pytree_node=False, default=0.0)
    batch_stats: Any = None

    def apply_gradients(self, *, grads: Any, **kwargs: Any) -> TrainState:
        """flax's update (``step``, ``params``, ``opt_state`` and ``kwargs``), then the
        moving average's, unless the optimizer call only accumulated a gradient."""
        new = super().apply_gradients(grads=grads, **kwargs)
        if self.ema_params is None:
            return new
        return new.replace(ema_params=optim.ema_update(
            self.ema_params, new.params, self.ema_decay, optim.has_updated(new.opt_state)))


def state_dict(state: TrainState) -> dict[str, Any]:
    """The state dict (``flax.serialization.to_state_dict``, what checkpoints hold) of a
    :class:`TrainState`: its array fields, less those that are None. With ema_params off
    it is flax's own TrainState's, so checkpoints of either kind restore into the other."""
    return {field.name: serialization.to_state_dict(getattr(state, field.name))
            for field in dataclasses.fields(state) if field.metadata.get("pytree_node", True)
            and getattr(state, field.name) is not None}


def from_state_dict(state: TrainState, saved: Mapping[str, Any]) -> TrainState:
    """``state`` with the values of a :func:`state_dict`; a field it lacks must be None in
    ``state`` (ValueError otherwise)."""
    updates = {}
    for field in dataclasses.fields(state):
        current = getattr(state, field.name)
        if not field.metadata.get("pytree_node", True):
            continue
        if field.name in saved:
            updates[field.name] = serialization.from_state_dict(current, saved[field.name],
                                                                name=field.name)
        elif current is not None:
            raise ValueError(f"the state dict has no {field.name!r} (its fields: "
                             f"{sorted(saved)})")
    return state.replace(**updates)


# flax's dataclass registered every field; this replaces that for TrainState alone
serialization.register_serialization_state(TrainState, state_dict, from_state_dict,
                                           override=True)


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
    params read already (``pretrained`` is then ignored). With ``config.optim.ema_decay`` > 0
    the state's ``ema_params`` start as a copy of the initial params. A model with BatchNorm
    gets its initial ``batch_stats`` (zero means, unit variances) from ``model.init``.
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
    decay = float(config.optim.ema_decay)
    ema = jax.tree.map(jnp.copy, params) if decay else None  # its own buffers: both donated
    return TrainState.create(apply_fn=model.apply, params=params, tx=tx, ema_params=ema,
                             ema_decay=decay, batch_stats=batch_stats)


def state_sharding(config: ml_collections.ConfigDict, state: Any, mesh: Mesh) -> Any:
    """Where each array of ``state`` lives on ``mesh``: replicated, or split as
    ``config.mesh.shard_params`` / ``min_shard_size`` say (:func:`parallel.state_sharding`)."""
    return parallel.state_sharding(state, mesh, shard_params=config.mesh.shard_params,
                                   min_shard_size=config.mesh.min_shard_size)


def restore_state(config: ml_collections.ConfigDict, path: str, mesh: Mesh | None = None
                  ) -> Any:
    """The train state of ``config``'s model restored from the checkpoint ``path`` names
    (see ``checkpoint.locate``); FileNotFoundError or checkpoint.CheckpointMismatch. It has
    ``ema_params`` when the checkpoint has them, whatever ``config.optim.ema_decay`` says.

    mesh: place the state on it as ``config.mesh`` says (:func:`state_sharding`); None:
    on the default device.
    """
    from fcnjax import models

    model = models.build(config.model)
    key = jax.random.key(config.seed, impl=config.prng_impl)
    state = create_train_state(config, model, key, input_shape(config), pretrained=False)
    saved = checkpoint.saved_fields(path)
    if saved is not None and ("ema_params" in saved) != (state.ema_params is not None):
        state = state.replace(ema_params=jax.tree.map(jnp.copy, state.params)
                              if "ema_params" in saved else None)
    if mesh is not None:
        state = parallel.shard_state(state, state_sharding(config, state, mesh))
    return checkpoint.restore_path(path, state)  # onto the template's placement


def eval_weights(config: ml_collections.ConfigDict) -> str:
    """"ema" or "raw": the weights evaluations use, as ``config.eval.weights`` says ("auto":
    "ema" when ``config.optim.ema_decay`` > 0, else "raw"); ConfigError for another value."""
    weights = config.eval.weights
    if weights not in WEIGHTS:
        raise ConfigError(f"config.eval.weights = {weights!r}: choose one of {WEIGHTS}")
    if weights == "auto":
        return "ema" if config.optim.ema_decay > 0 else "raw"
    return weights


def check_weights(config: ml_collections.ConfigDict) -> None:
    """ConfigError (one line) for a training config whose evaluations cannot have the
    weights they ask for: ``eval.weights`` "ema" without ``optim.ema_decay``."""
    if eval_weights(config) == "ema" and not config.optim.ema_decay > 0:
        raise ConfigError("config.eval.weights = 'ema' needs the moving average of "
                          f"training, off at config.optim.ema_decay = "
                          f"{config.optim.ema_decay}: set it (e.g. 0.999) or eval.weights "
                          "to 'raw'")


def weights_for_eval(config: ml_collections.ConfigDict, state: TrainState,
                     source: str) -> TrainState:
    """``state`` as an evaluation sees it: its ``params`` replaced by its ``ema_params``
    when :func:`eval_weights` is "ema" (the tree keeps its structure and placement), else
    ``state`` itself. source: where the state came from, for the one-line ConfigError of
    "ema" when it has no moving average."""
    if eval_weights(config) == "raw":
        return state
    if state.ema_params is None:
        raise ConfigError(f"{source} holds no ema_params (it was trained with "
                          "config.optim.ema_decay = 0): pass --config.eval.weights=raw, or "
                          "train with optim.ema_decay > 0")
    return state.replace(params=state.ema_params)


def restore_for_eval(config: ml_collections.ConfigDict, path: str,
                     mesh: Mesh | None = None) -> TrainState:
    """:func:`restore_state`, with the weights ``config.eval.weights`` asks for as its
    ``params`` (:func:`weights_for_eval`): what evaluate and predict score and draw."""
    eval_weights(config)  # a wrong value: before anything is read
    where = os.path.join(*map(str, checkpoint.locate(path)))
    return weights_for_eval(config, restore_state(config, path, mesh),
                            f"checkpoint {where}")
