"""Every model of fcnjax.models.MODELS as a Flax NNX module (flax.nnx.bridge.ToNNX, through
examples/nnx_bridge.py): the same outputs as Linen's apply, bit for bit, and weights that
round-trip exactly; dropout keyed by NNX streams; the example itself runs."""

import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from examples import nnx_bridge
from fcnjax import models
from fcnjax.models.layers import randomize

SIZE = 16  # pixels a side: the VGG trunks' 100-pixel input pad keeps even this small input fast


def small(name):
    """(model, example input) of ``name`` at a small size: U-Net 2 levels of 4 channels;
    FCNs as built (full-width trunks), 3 classes (the multi-task geo head keeps its 3)."""
    if name == "unet":
        model = models.build({"name": name, "features": 4, "levels": 2, "padding": "same"})
    else:
        model = models.build({"name": name, "num_classes": 3})
    rng = np.random.default_rng(0)

    def image(channels):
        return jnp.asarray(rng.normal(size=(1, SIZE, SIZE, channels)) * 50, jnp.float32)

    if name == "nyud_late_fusion":
        return model, {"color": image(3), "hha": image(3)}
    return model, image({"unet": 1, "nyud_early_fusion": 4}.get(name, 3))


def linen_forward(model, params, x, **kwargs):
    return jax.jit(lambda p, x: model.apply({"params": p}, x, **kwargs))(params, x)


@nnx.jit
def nnx_forward(module, x):
    return module(x)


def assert_same_tree(actual, expected):
    assert jax.tree.structure(actual) == jax.tree.structure(expected)
    jax.tree.map(np.testing.assert_array_equal, actual, expected)


@pytest.mark.parametrize("name", sorted(set(models.MODELS) - {"fcn_vgg16"}))  # alias: fcn32s
def test_bridged_model_outputs_and_weights_equal_linen_exactly(name):
    model, x = small(name)
    params = randomize(jax.eval_shape(model.init, jax.random.key(0), x)["params"], seed=1)
    module = nnx_bridge.from_linen(model, x, params)
    assert_same_tree(nnx_bridge.linen_params(module), params)  # Linen -> NNX -> Linen
    assert_same_tree(nnx_forward(module, x), linen_forward(model, params, x))


@pytest.mark.parametrize("name", ["unet", "fcn_alexnet"])
def test_dropout_draws_from_the_nnx_dropout_stream_as_linen_from_its_key(name):
    """train=True: the call's ``rngs=nnx.Rngs(dropout=7)`` gives the key fold_in(key(7), 0)
    that Linen's apply takes as ``rngs={"dropout": ...}``; the module's own stream moves on
    at every call, so two training forwards differ."""
    model, x = small(name)
    params = randomize(jax.eval_shape(model.init, jax.random.key(0), x)["params"], seed=1)
    module = nnx_bridge.from_linen(model, x, params)
    dropped = nnx.jit(lambda m, x, rngs: m(x, train=True, rngs=rngs))(module, x,
                                                                     nnx.Rngs(dropout=7))
    key = jax.random.fold_in(jax.random.key(7), 0)
    expected = linen_forward(model, params, x, train=True, rngs={"dropout": key})
    np.testing.assert_array_equal(dropped, expected)
    assert not np.allclose(dropped, linen_forward(model, params, x))
    assert not np.array_equal(module(x, train=True), module(x, train=True))


@pytest.fixture
def rbg_keys():
    """XLA's rbg generator as the default PRNG for a test that draws fresh weights: on CPU,
    threefry makes the init's compile take several times longer."""
    before = jax.config.jax_default_prng_impl
    jax.config.update("jax_default_prng_impl", "rbg")
    yield
    jax.config.update("jax_default_prng_impl", before)


def test_the_example_trains_one_nnx_optimizer_step_and_converts_both_ways(capsys, rbg_keys):
    nnx_bridge.main()
    assert "weights moved both ways, outputs identical" in capsys.readouterr().out


def test_the_readme_nnx_block_runs_and_its_two_forwards_agree(rbg_keys):
    readme = (pathlib.Path(__file__).parents[2] / "README.md").read_text()
    section = readme.split("\n## NNX\n", 1)[1]
    block = section.split("```python\n", 1)[1].split("```", 1)[0]
    names = {}
    exec(compile(block, "README.md (## NNX)", "exec"), names)  # noqa: S102 (our own README)
    np.testing.assert_array_equal(names["logits"], names["same"])
    assert names["logits"].shape == (2, 32, 32, 2)
