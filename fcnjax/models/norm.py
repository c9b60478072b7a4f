"""Normalisation after each convolution, for training from scratch (``config.model.norm``).

The papers' networks have none ("none", the default: the layer is not made at all, so
parameter trees, Table 1 and every result stay as they were). "batch" adds a BatchNorm
named ``<conv>_bn`` after each convolution, before its ReLU; its running mean and variance
live in the ``batch_stats`` collection, kept in the train state. "group" adds a GroupNorm
``<conv>_gn``, which keeps no statistics.

Under ``jax.jit`` over a mesh the batch axis is sharded, and XLA reduces BatchNorm's mean
and variance over the whole (global) batch, as it reduces the loss.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

NORMS = ("none", "batch", "group")
"""Values of ``config.model.norm``."""

BATCH_MOMENTUM = 0.9
"""Weight of the old running statistics at each train step (PyTorch's momentum 0.1)."""

EPSILON = 1e-5
"""Added to the variance before its square root (PyTorch's and Caffe's default)."""


def group_count(channels: int, groups: int) -> int:
    """GroupNorm's number of groups for ``channels``: the largest divisor of ``channels``
    not above ``groups`` (32 on 64 channels gives 32; on 48, 24; on 16, 16)."""
    return next(g for g in range(min(groups, channels), 0, -1) if channels % g == 0)


@dataclasses.dataclass(frozen=True)
class Norm:
    """Which normalisation follows each convolution: ``kind`` in :data:`NORMS`, ``groups``
    the most GroupNorm groups (see :func:`group_count`)."""

    kind: str = "none"
    groups: int = 32

    def __post_init__(self):
        if self.kind not in NORMS:
            raise ValueError(f"model.norm = {self.kind!r}: choose one of {NORMS}")
        if self.groups < 1:
            raise ValueError(f"model.norm_groups = {self.groups}: need at least 1")

    def __call__(self, x: jax.Array, name: str, *, train: bool, dtype: Any) -> jax.Array:
        """Normalise a conv's output x (B, h, w, C) over the batch and space ("batch") or
        channel groups and space ("group"); "none" returns x itself. Called inside a
        module's compact method; ``train=False`` uses BatchNorm's running statistics."""
        if self.kind == "none":
            return x
        if self.kind == "batch":
            return nn.BatchNorm(use_running_average=not train, momentum=BATCH_MOMENTUM,
                                epsilon=EPSILON, dtype=dtype, param_dtype=jnp.float32,
                                name=f"{name}_bn")(x)
        return nn.GroupNorm(num_groups=group_count(x.shape[-1], self.groups), epsilon=EPSILON,
                            dtype=dtype, param_dtype=jnp.float32, name=f"{name}_gn")(x)


NONE = Norm()
"""No normalisation: the papers' networks."""


def model_variables(params: Any, batch_stats: Any = None) -> dict[str, Any]:
    """What ``model.apply`` takes: ``{"params": params}``, with ``"batch_stats"`` when the
    model keeps BatchNorm statistics (None: it has none)."""
    if batch_stats is None:
        return {"params": params}
    return {"params": params, "batch_stats": batch_stats}


def state_variables(state: Any) -> dict[str, Any]:
    """:func:`model_variables` of a train state: its params and its ``batch_stats`` (a flax
    ``TrainState`` without that field counts as having none)."""
    return model_variables(state.params, getattr(state, "batch_stats", None))
