"""What stops a training run before it loses anything: a config that cannot work, an
unwritable workdir, a NaN loss.

:mod:`fcnjax.train` runs them; its command line turns them into one-line errors. Every
process of a multi-process run checks for itself (the losses and parameters it reads are
replicated), so all of them stop at the same step.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from fcnjax.run import checkpoint
from fcnjax.run.errors import ConfigError, UserError

DTYPES = ("float32", "bfloat16", "float16")


def check_config(config: Any) -> None:
    """ConfigError (one line, naming the field and the fix) for values a run cannot use:
    sizes, steps, batches and cadences below 1, a malformed crop or canvas, an unknown
    dtype, ``label_values`` of another length than the classes. Runs in milliseconds, before
    any folder is made or anything compiles."""
    def positive(name: str, value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"config.{name} = {value!r}: it must be a whole number >= 1")

    for name in ("train.steps", "train.batch_size", "train.log_every", "train.eval_every",
                 "train.checkpoint_every", "train.max_to_keep", "eval.batch_size",
                 "model.num_classes"):
        section, field = name.split(".")
        positive(name, config[section][field])
    if config.eval.num_draw < 0:
        raise ConfigError(f"config.eval.num_draw = {config.eval.num_draw}: it must be >= 0")
    for name, size, empty in (("crop_size", config.input.crop_size, False),
                              ("eval_size", config.input.eval_size, True)):
        size = tuple(size)
        if not (empty and size == ()) and (
                len(size) != 2 or not all(isinstance(n, int) and n >= 1 for n in size)):
            allowed = "() (whole images) or " if empty else ""
            raise ConfigError(f"config.input.{name} = {size}: give {allowed}(height, width) "
                              "in pixels, e.g. (224, 224)")
    check_unet_sizes(config)
    dtype = config.model.get("dtype", "float32")
    if isinstance(dtype, str) and dtype not in DTYPES:
        raise ConfigError(f"config.model.dtype = {dtype!r}: choose one of {DTYPES}")
    values = tuple(config.input.label_values)
    if values and len(values) != config.model.num_classes:
        raise ConfigError(f"config.input.label_values = {values} names {len(values)} classes "
                          f"but config.model.num_classes = {config.model.num_classes}: give "
                          "one stored value per class")


def check_unet_sizes(config: Any) -> None:
    """ConfigError when a U-Net's geometry cannot take the crop or the eval canvas (a valid
    U-Net's pools need even maps): the message names the nearest sizes that fit."""
    model = config.model
    if model.name != "unet":
        return
    from fcnjax.models.unet import unet_geometry

    geometry = unet_geometry(model.get("levels", 4), model.get("padding", "valid"),
                             model.get("upsampling", "transpose"))
    for name in ("crop_size", "eval_size"):
        for side in tuple(config.input[name]):
            try:
                geometry.output_size(side)
            except ValueError as error:
                raise ConfigError(f"config.input.{name} = {tuple(config.input[name])}: "
                                  f"{error}") from None


class UnwritableWorkdir(UserError, OSError):
    """The workdir cannot be created or written to."""


def prepare_workdir(workdir: str) -> None:
    """Create ``workdir`` and check that files can be written in it (UnwritableWorkdir)."""
    try:
        os.makedirs(workdir, exist_ok=True)
        with tempfile.TemporaryFile(dir=workdir):
            pass
    except OSError as e:
        raise UnwritableWorkdir(f"workdir {workdir!r} cannot be written to "
                                f"({e.strerror or e}): pass a writable --workdir") from e


class NonFiniteLoss(UserError, FloatingPointError):
    """The loss (or the parameters) became NaN or infinite: training stopped."""


def check_finite(step_losses: list[jax.Array], first_step: int, state: Any,
                 manager: Any) -> None:
    """Raise NonFiniteLoss naming the first step whose loss is not finite, or, if every loss
    is finite, when the parameters are not (then the last update broke them). The message
    names the last checkpoint saved before, which is kept."""
    values = np.asarray(jax.device_get(step_losses), np.float64)
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        what = f"the loss is {values[bad[0]]} at step {first_step + int(bad[0])}"
    elif not bool(all_finite(state.params)):
        what = f"the parameters are not finite after step {first_step + len(values) - 1}"
    else:
        return
    checkpoint.wait(manager)
    last = manager.latest_step()
    kept = (f"the last good checkpoint, step {last}, is kept in {manager.directory}"
            if last is not None else "no checkpoint was saved before it")
    raise NonFiniteLoss(f"{what}: training stopped; {kept}. Lower config.optim.learning_rate "
                        "(a sum loss needs a tiny one) or check the data.")


@jax.jit
def all_finite(tree: Any) -> jax.Array:
    """True when every element of every array of ``tree`` is finite (replicated, when
    ``tree`` lives on a mesh, so every process can read it)."""
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]))
