"""Rematerialisation (``config.model.remat``): recompute activations in the backward pass
instead of keeping them, trading step time for memory at large sizes or batches.

"none" (the default) keeps every activation, as before: nothing is wrapped, the program
is unchanged. "stages" keeps only each trunk stage's output (VGG's conv blocks up to their
pool, U-Net's levels) and recomputes inside a stage; "full" keeps only every layer's
output and recomputes each layer's insides (conv, norm, ReLU). Parameter names are the
same under every policy (the wrapped functions build their layers in the caller's scope),
so checkpoints move between policies.
"""

from __future__ import annotations

from typing import Callable

import flax.linen as nn

POLICIES = ("none", "stages", "full")
"""Values of ``config.model.remat``."""


def check(policy: str) -> str:
    """``policy`` itself, or a ValueError naming the choices."""
    if policy not in POLICIES:
        raise ValueError(f"model.remat = {policy!r}: choose one of {POLICIES}")
    return policy


def wrap(module: nn.Module, fn: Callable, policy: str, level: str) -> Callable:
    """``fn(*arrays)`` rematerialised (``nn.remat``, in ``module``'s scope) when ``policy``
    is ``level`` ("stages" or "full"), else ``fn`` itself. Called inside ``module``'s compact
    method; ``fn`` makes its layers with their usual names, and takes Python values
    (``train``, names) from its closure, not as arguments."""
    if check(policy) != level:
        return fn
    lifted = nn.remat(lambda _, *arrays: fn(*arrays))
    return lambda *arrays: lifted(module, *arrays)
