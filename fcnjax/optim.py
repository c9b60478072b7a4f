"""The FCN reference's solver as optax: SGD with momentum and weight decay, per-layer policy;
or, by ``config.optim.name``, AdamW or any optax optimizer that takes a learning rate, under
the same policy.

Caffe sets a learning policy per parameter (``lr_mult``, ``decay_mult``): weights 1x the rate
with weight decay, biases 2x the rate without decay, and the bilinear ``upscore``
deconvolutions ``lr_mult: 0`` (fixed). In fcnjax a fixed upsampling layer has no parameters
at all, so ``config.model.learnable_upsampling`` alone decides whether ``upscore*`` kernels
exist and learn. ``param_labels`` names each parameter's group and ``make_optimizer`` gives
each group its transformation with ``optax.multi_transform``.

``name`` picks that transformation: "sgd" (the reference's, the default) or a function of
optax whose first parameter is ``learning_rate`` (``optimizer_names``), e.g. "adamw". Each
group's learning rate is the schedule times its ``lr_mult``; its weight decay
``weight_decay * decay_mult`` goes to the optimizer's own ``weight_decay`` argument where it
has one (AdamW's decoupled decay), else is added to the gradient first (L2, as SGD's).
Momentum is SGD's alone; other optimizers keep optax's defaults.

``trainable`` restricts learning to some layers: "score" trains only the score layers (the
paper's FCN-32s-fixed, "only the last layer is fine-tuned"), everything else is frozen.

Config fields read (``config.optim``): name, learning_rate, momentum, weight_decay,
bias_lr_mult, bias_decay_mult, trainable, schedule, warmup_steps, accumulate, ema_decay
(``train_upscore``: deprecated, see :func:`check`).

``ema_decay`` > 0 keeps an exponential moving average of the parameters beside them
(:func:`ema_update`; the train state's ``ema_params``, :mod:`fcnjax.run.state`).
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import optax

from fcnjax.run.errors import ConfigError, deprecated

GROUPS = ("weight", "bias", "frozen")
SCHEDULES = ("constant", "cosine", "poly")


def trainable_prefixes(trainable: str) -> tuple[str, ...]:
    """``config.optim.trainable`` ("score_fr,score_pool4" or "") as a tuple of name prefixes."""
    return tuple(p.strip() for p in trainable.split(",") if p.strip())


def param_group(path: tuple[str, ...], trainable: tuple[str, ...] = ()) -> str:
    """"bias" for biases, else "weight"; "frozen" outside the ``trainable`` prefixes.

    path: parameter names from the root, e.g. ``("trunk", "conv1_1", "bias")``. With
    ``trainable`` prefixes, a parameter none of whose names starts with one is frozen.
    """
    if trainable and not any(name.startswith(p) for name in path for p in trainable):
        return "frozen"
    return "bias" if path[-1] == "bias" else "weight"


def param_labels(params: Any, trainable: str = "") -> Any:
    """A pytree like ``params`` with each leaf replaced by its group name (see GROUPS)."""
    prefixes = trainable_prefixes(trainable)

    def label(path, _):
        names = tuple(str(getattr(k, "key", getattr(k, "name", k))) for k in path)
        return param_group(names, prefixes)
    return jax.tree_util.tree_map_with_path(label, params)


def learning_rate_schedule(config: Mapping[str, Any], steps: int,
                           multiplier: float = 1.0) -> optax.Schedule:
    """``config.learning_rate * multiplier``, held fixed (the paper's choice) or decayed.

    "cosine" decays to 0 over ``steps`` updates; "poly" is (1 - t/steps)^0.9 (DeepLab's).
    With ``warmup_steps = w > 0`` the rate first rises linearly from 0 over w updates, then
    follows the schedule over the remaining ``steps - w``.
    """
    rate = config["learning_rate"] * multiplier
    schedule, warmup = config["schedule"], int(config["warmup_steps"])
    if warmup < 0:
        raise ConfigError(f"optim.warmup_steps must be >= 0, got {warmup}")
    rest = max(steps - warmup, 1)
    if schedule == "constant":
        main = optax.constant_schedule(rate)
    elif schedule == "cosine":
        main = optax.cosine_decay_schedule(rate, rest)
    elif schedule == "poly":
        main = optax.polynomial_schedule(rate, 0.0, 0.9, rest)
    else:
        raise ConfigError(f"unknown learning-rate schedule {schedule!r}; "
                          f"choose one of {SCHEDULES}")
    if not warmup:
        return main
    return optax.join_schedules([optax.linear_schedule(0.0, rate, warmup), main], [warmup])


def sgd(config: Mapping[str, Any], steps: int, lr_mult: float = 1.0,
        decay_mult: float = 1.0) -> optax.GradientTransformation:
    """Caffe's SGD for one group: add ``weight_decay * decay_mult * w``, then momentum SGD."""
    decay = config["weight_decay"] * decay_mult
    momentum = config["momentum"] or None
    step = optax.sgd(learning_rate_schedule(config, steps, lr_mult), momentum=momentum)
    return optax.chain(optax.add_decayed_weights(decay), step) if decay else step


UNUSABLE = {
    "lbfgs": "its update needs the loss function (a line search)",
    "optimistic_adam": "takes no learning-rate schedule (optimistic_adam_v2 does)",
    "rprop": "takes no learning-rate schedule",
    "sm3": "takes no learning-rate schedule",
}
"""optax optimizers taking a learning rate that a train step cannot use, and why."""


def optimizer_names() -> tuple[str, ...]:
    """Names ``config.optim.name`` may hold: the public functions of optax whose first
    parameter is ``learning_rate`` and whose others all have defaults (adam, adamw, lion,
    rmsprop, sgd, ...; not the ``scale_by_*`` building blocks, nor ``UNUSABLE``)."""
    names = []
    for name in dir(optax):
        factory = getattr(optax, name)
        if (name.startswith(("_", "scale")) or name in UNUSABLE
                or not inspect.isfunction(factory)):
            continue
        try:
            first, *rest = inspect.signature(factory).parameters.values()
        except (TypeError, ValueError):  # no signature, or no parameter at all
            continue
        if first.name == "learning_rate" and all(
                p.default is not p.empty or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
                for p in rest):
            names.append(name)
    return tuple(sorted(names))


def optimizer(name: Any) -> Callable[..., optax.GradientTransformation]:
    """``optax.<name>`` (ConfigError listing the choices, in one line, for another name)."""
    names = optimizer_names()
    if name not in names:
        raise ConfigError(f"config.optim.name = {name!r}: choose 'sgd' (the reference), "
                          "'adamw' or another optax optimizer that takes a learning rate: "
                          + ", ".join(names))
    return getattr(optax, name)


def by_name(name: str, config: Mapping[str, Any], steps: int, lr_mult: float = 1.0,
            decay_mult: float = 1.0) -> optax.GradientTransformation:
    """``optax.<name>`` for one group: the schedule times ``lr_mult``; weight decay times
    ``decay_mult``, through the optimizer's ``weight_decay`` argument where it has one
    (decoupled, as AdamW's), else added to the gradient before it (L2, as ``sgd``)."""
    factory = optimizer(name)
    decay = config["weight_decay"] * decay_mult
    rate = learning_rate_schedule(config, steps, lr_mult)
    if "weight_decay" in inspect.signature(factory).parameters:
        return factory(rate, weight_decay=decay)
    step = factory(rate)
    return optax.chain(optax.add_decayed_weights(decay), step) if decay else step


def check(config: Mapping[str, Any], steps: int) -> None:
    """ConfigError (one line) for an optimizer ``config`` (``config.optim``) that cannot
    train: an unknown name (the choices listed), a learning rate that is not positive and
    finite, momentum outside [0, 1), negative weight decay, an unknown schedule, a negative
    warmup, accumulate below 1. Builds the solver, so every field it reads is checked;
    nothing is compiled."""
    optimizer(config.get("name", "sgd"))
    rate = config["learning_rate"]
    if not isinstance(rate, (int, float)) or not 0 < rate < float("inf"):
        raise ConfigError(f"config.optim.learning_rate = {rate!r}: it must be a positive "
                          "number (the step size of gradient descent; a negative one climbs "
                          "the loss)")
    if not 0 <= config["momentum"] < 1:
        raise ConfigError(f"config.optim.momentum = {config['momentum']!r}: it must be in "
                          "[0, 1)")
    if config["weight_decay"] < 0:
        raise ConfigError(f"config.optim.weight_decay = {config['weight_decay']!r}: it must "
                          "be >= 0")
    decay = config["ema_decay"]
    if isinstance(decay, bool) or not isinstance(decay, (int, float)) or not 0 <= decay < 1:
        raise ConfigError(f"config.optim.ema_decay = {decay!r}: it must be in [0, 1) (0: no "
                          "moving average of the weights; e.g. 0.999)")
    if config.get("train_upscore"):
        deprecated("config.optim.train_upscore", "config.model.learnable_upsampling alone "
                   "decides: learnable upscore kernels learn, fixed ones have no parameters")
    make_optimizer(config, steps)


def make_optimizer(config: Mapping[str, Any], steps: int) -> optax.GradientTransformation:
    """The solver for ``config`` (``config.optim``), training for ``steps`` calls of update.

    With ``accumulate = k > 1`` gradients of k consecutive calls are averaged before one
    update (``optax.MultiSteps``), as the reference's ``iter_size``; schedules then count
    updates, ``steps // k`` in all. ``config["name"]`` picks the optimizer of the weight and
    bias groups (see the module's docstring); frozen parameters get zero updates.
    """
    accumulate = int(config["accumulate"])
    if accumulate < 1:
        raise ConfigError(f"optim.accumulate must be >= 1, got {accumulate}")
    updates = max(steps // accumulate, 1)
    name = config.get("name", "sgd")
    group = sgd if name == "sgd" else (lambda *args: by_name(name, *args))
    tx = optax.multi_transform(
        {"weight": group(config, updates),
         "bias": group(config, updates, config["bias_lr_mult"], config["bias_decay_mult"]),
         "frozen": optax.set_to_zero()},
        lambda params: param_labels(params, config["trainable"]))
    return optax.MultiSteps(tx, every_k_schedule=accumulate) if accumulate > 1 else tx


def has_updated(opt_state: Any) -> jax.Array | bool:
    """Whether the optimizer call that produced ``opt_state`` changed the parameters: always,
    except for the first k - 1 of every k calls under ``accumulate = k`` (``optax.MultiSteps``
    only sums their gradients)."""
    if isinstance(opt_state, optax.MultiStepsState):
        return jnp.logical_and(opt_state.mini_step == 0, opt_state.gradient_step > 0)
    return True


def ema_update(ema: Any, params: Any, decay: float, updated: jax.Array | bool = True) -> Any:
    """The moving average after one optimizer update: ``decay * ema + (1 - decay) * params``
    leaf by leaf (same tree and shapes as ``params``, float32 like them).

    No debiasing: the average starts at the initial parameters (``create_train_state``), not
    at zero, so it carries no bias toward zero to divide out (optax.ema's ``debias``).
    updated: False (an accumulating call, :func:`has_updated`) keeps ``ema`` as it is.
    """
    def leaf(old: jax.Array, new: jax.Array) -> jax.Array:
        return jnp.where(updated, decay * old + (1.0 - decay) * new, old)

    return jax.tree.map(leaf, ema, params)
