"""An fcnjax model in Flax NNX code, through Flax's own Linen-to-NNX bridge.

    python examples/nnx_bridge.py        # from the repository root

fcnjax's models are Linen modules (``fcnjax.models.MODELS``); ``flax.nnx.bridge.ToNNX``
wraps any of them as an NNX module whose ``nnx.Param`` variables mirror the Linen params
tree name for name (``trunk/conv1_1/kernel`` ...). This script builds a small U-Net that
way, runs a forward pass, takes one ``nnx.Optimizer`` step, and moves weights between the
two APIs in both directions, checking that ``model.apply`` and the NNX module agree.

The functions are the recipe (tests/models/test_nnx_bridge.py runs them on every model):
``to_nnx`` (fresh random weights), ``from_linen`` (given Linen params: no random init),
``linen_params`` (NNX -> Linen) and ``load_linen_params`` (Linen -> NNX, in place).
Dropout (FCNs' drop6 / drop7, U-Net's bottom_dropout) runs with ``train=True`` and a
``"dropout"`` stream in the module's ``nnx.Rngs`` or in the call's ``rngs=``.

Written against flax 0.12 (checked with 0.12.8), whose ``nnx.Optimizer(model, tx, wrt=...)``
needs ``wrt`` and whose ``update`` takes the model: ``optimizer.update(model, grads)``.
"""

from __future__ import annotations

import os
import sys
from typing import Any

if __name__ == "__main__":  # run as a file: make the repository root importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from flax.nnx import bridge

from fcnjax import losses, models


def to_nnx(model: Any, example: Any, seed: int = 0) -> bridge.ToNNX:
    """``model`` (a Linen module) as an NNX module, its weights drawn as ``model.init``
    draws them. example: an input of the model's shape, e.g. float32 (1, H, W, C), or a
    mapping of them for a model of several inputs (``nyud_late_fusion``)."""
    @nnx.jit  # one compiled init: eager, jax.random would compile a program per weight shape
    def make(example: Any) -> bridge.ToNNX:
        module = bridge.ToNNX(model, rngs=nnx.Rngs(params=seed, dropout=seed + 1))
        return bridge.lazy_init(module, example)

    return make(example)


def linen_params(module: nnx.Module) -> dict[str, Any]:
    """The NNX module's weights as the Linen ``params`` tree (nested dicts of arrays) that
    ``model.apply({"params": ...}, image)`` takes."""
    return nnx.to_pure_dict(nnx.state(module, nnx.Param))


def load_linen_params(module: nnx.Module, params: Any) -> None:
    """Set the NNX module's weights to the Linen ``params`` tree (same names and shapes as
    ``model.init(...)["params"]``, e.g. a checkpoint's, ``fcnjax.run.checkpoint
    .restore_params``)."""
    state = nnx.state(module, nnx.Param)
    nnx.replace_by_pure_dict(state, params)
    nnx.update(module, state)


def from_linen(model: Any, example: Any, params: Any, seed: int = 0) -> bridge.ToNNX:
    """``model`` as an NNX module holding the Linen ``params``. The module is first made
    abstract (``nnx.eval_shape``: shapes only, nothing drawn or compiled), then its weights
    are filled in and its random streams made anew (``to_nnx__rngs``: ToNNX's own)."""
    module = nnx.eval_shape(lambda: to_nnx(model, example, seed))
    load_linen_params(module, params)
    module.to_nnx__rngs = nnx.Rngs(params=seed, dropout=seed + 1)
    return module


@nnx.jit
def forward(module: nnx.Module, image: Any) -> Any:
    """The module's logits of ``image`` (inference: no dropout), compiled."""
    return module(image)


@nnx.jit
def train_step(module: nnx.Module, optimizer: nnx.Optimizer, image: jax.Array,
               label: jax.Array) -> jax.Array:
    """One optimizer step of the mean per-pixel cross-entropy (void: 255) on image float32
    (B, H, W, C) and label int32 (B, H, W); returns the loss before the step. Dropout draws
    from the module's "dropout" stream."""
    def loss_fn(m: nnx.Module) -> jax.Array:
        logits = m(image, train=True)
        return losses.segmentation_loss(logits, label)[0]

    loss, grads = nnx.value_and_grad(loss_fn)(module)
    optimizer.update(module, grads)
    return loss


def main() -> None:
    model = models.build({"name": "unet", "num_classes": 2, "features": 8, "levels": 2,
                          "padding": "same"})
    rng = np.random.default_rng(0)
    image = jnp.asarray(rng.normal(size=(2, 32, 32, 1)), jnp.float32)
    label = jnp.asarray(rng.integers(0, 2, (2, 32, 32)), jnp.int32)

    apply = jax.jit(lambda params, x: model.apply({"params": params}, x))

    module = to_nnx(model, image)                      # Linen -> NNX module
    logits = forward(module, image)                    # (2, 32, 32, 2)
    assert np.array_equal(logits, apply(linen_params(module), image)), "forwards differ"

    optimizer = nnx.Optimizer(module, optax.adamw(1e-3), wrt=nnx.Param)
    loss = train_step(module, optimizer, image, label)
    trained = linen_params(module)                     # NNX -> Linen params
    assert np.array_equal(forward(module, image), apply(trained, image))

    copy = from_linen(model, image, trained)           # Linen params -> a new NNX module
    assert np.array_equal(forward(copy, image), forward(module, image))
    print(f"U-Net as NNX: logits {tuple(logits.shape)}, loss {float(loss):.4f} before one "
          f"adamw step; weights moved both ways, outputs identical")


if __name__ == "__main__":
    main()
