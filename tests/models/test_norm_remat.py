"""model.norm and model.remat: "none" changes nothing, remat changes no number, BatchNorm's
statistics train, evaluate with running averages and restore exactly. Tiny nets only."""

import functools
import hashlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import sample
from fcnjax import models, objective, train
from fcnjax.models.norm import Norm, group_count
from fcnjax.models.trunk import Backbone, ConvLayer, PointwiseLayer, PoolLayer
from fcnjax.run import checkpoint
from fcnjax.run.errors import ConfigError
from fcnjax.run.state import create_train_state
from fcnjax.weights import sources

PARAM_TREES_BEFORE = {
    # sha256 of "path:shape;..." of model.init's variables, computed with the code before
    # model.norm and model.remat existed (FCNs on 36x36x3, U-Net on 188x188x1)
    "fcn16s": "11507e6ef46cff53", "fcn32s": "a1138918c6d49413", "fcn8s": "85dabd42b5a660e7",
    "fcn8s_atonce": "85dabd42b5a660e7", "fcn_alexnet": "0bc8a401661316da",
    "fcn_googlenet": "f8687437306eb4d7", "fcn_vgg16": "a1138918c6d49413",
    "nyud_early_fusion": "a749144bf0d82375", "nyud_late_fusion": "b17be0023facaf9a",
    "siftflow_fcn16s": "23b4c1fd2dd6ef64", "unet": "c515892c97b2661d",
}


def tree_digest(variables) -> str:
    leaves = jax.tree_util.tree_flatten_with_path(variables)[0]
    text = ";".join(f"{jax.tree_util.keystr(path)}:{leaf.shape}" for path, leaf in leaves)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def sample_input(name):
    if name == "unet":
        return jax.ShapeDtypeStruct((1, 188, 188, 1), jnp.float32)
    image = jax.ShapeDtypeStruct((1, 36, 36, 3), jnp.float32)
    return {"color": image, "hha": image} if name == "nyud_late_fusion" else image


@pytest.mark.parametrize("name", sorted(models.MODELS))
def test_norm_none_keeps_every_model_param_tree_as_before(name):
    assert set(PARAM_TREES_BEFORE) == set(models.MODELS)
    for extra in ({}, {"norm": "none", "norm_groups": 32, "remat": "none"},
                  {"remat": "stages"}, {"remat": "full"}):
        model = models.build({"name": name, **extra})
        variables = jax.eval_shape(model.init, jax.random.key(0), sample_input(name))
        assert set(variables) == {"params"}, extra  # no batch_stats collection
        assert tree_digest(variables) == PARAM_TREES_BEFORE[name], extra


@pytest.mark.parametrize("norm, collections", [("batch", {"params", "batch_stats"}),
                                               ("group", {"params"})])
def test_norm_adds_one_layer_after_each_trunk_conv(norm, collections):
    model = models.build({"name": "fcn_alexnet", "norm": norm})
    variables = jax.eval_shape(model.init, jax.random.key(0), sample_input("fcn_alexnet"))
    assert set(variables) == collections
    suffix = {"batch": "_bn", "group": "_gn"}[norm]
    added = sorted(k for k in variables["params"]["trunk"] if k.endswith(suffix))
    assert added == [f"{c}{suffix}" for c in ("conv1", "conv2", "conv3", "conv4", "conv5",
                                              "fc6", "fc7")]


def test_group_count_is_the_largest_divisor_not_above_the_field():
    assert [group_count(c, 32) for c in (64, 96, 48, 16, 4096, 7)] == [32, 32, 24, 16, 32, 7]
    assert group_count(64, 1) == 1


@pytest.mark.parametrize("field, fix", [({"norm": "layer"}, "model.norm = 'layer'"),
                                        ({"remat": "some"}, "model.remat = 'some'"),
                                        ({"norm": "group", "norm_groups": 0}, "norm_groups")])
def test_a_wrong_norm_or_remat_is_refused_in_one_line(field, fix):
    model = models.build({"name": "unet", "features": 4, "levels": 1, "padding": "same",
                          **field})
    with pytest.raises(ValueError, match=fix) as error:
        model.init(jax.random.key(0), jnp.zeros((1, 8, 8, 1)))
    assert "\n" not in str(error.value)


def tiny_fcn(**kwargs):
    """Three conv blocks (the first of two convs), fc6, dropout; fuses pool2."""
    table = (ConvLayer("conv1_1", 4, 3, pad=20), ConvLayer("conv1_2", 4, 3, pad=1),
             PoolLayer("pool1", 2, 2), ConvLayer("conv2_1", 4, 3, pad=1),
             PoolLayer("pool2", 2, 2), ConvLayer("conv3_1", 4, 3, pad=1),
             PoolLayer("pool3", 2, 2), ConvLayer("fc6", 8, 3, fully_connected=True),
             PointwiseLayer("drop7", "dropout"))
    return models.FCN(Backbone("tiny", table, output="drop7"), num_classes=3,
                      skips=("pool2",), **kwargs)


def tiny_unet(**kwargs):
    return models.UNet(num_classes=3, features=4, levels=1, padding="same", **kwargs)


def loss_and_grads(model, variables, image, labels):
    """(loss, grads) of ``model`` in train mode and the remat count of its program."""
    def loss(params):
        logits, _ = model.apply({**variables, "params": params}, image, train=True,
                                rngs={"dropout": jax.random.key(1, impl="rbg")},
                                mutable=["batch_stats"])
        picked = jnp.take_along_axis(jax.nn.log_softmax(logits), labels[..., None], -1)
        return -jnp.mean(picked)

    grad_fn = jax.jit(jax.value_and_grad(loss))
    remats = str(jax.make_jaxpr(grad_fn)(variables["params"])).count("remat")
    return grad_fn(variables["params"]), remats


@pytest.mark.parametrize("make", [tiny_unet, tiny_fcn], ids=["unet", "fcn"])
@pytest.mark.parametrize("norm", ["none", "batch"])
def test_remat_leaves_the_loss_and_gradients_unchanged(make, norm):
    rng = np.random.default_rng(0)
    image = jnp.asarray(rng.normal(size=(2, 12, 12, 1)), jnp.float32)
    labels = jnp.asarray(rng.integers(0, 3, (2, 12, 12)), jnp.int32)
    model = make(norm=norm, norm_groups=2)
    variables = jax.jit(model.init)(jax.random.key(0, impl="rbg"), image)  # every policy's
    (reference, grads), remats = loss_and_grads(model, variables, image, labels)
    assert remats == 0
    for policy in ("stages", "full"):
        (value, other), remats = loss_and_grads(model.clone(remat=policy), variables, image,
                                                labels)
        assert remats > 0, policy  # the backward pass really recomputes
        np.testing.assert_allclose(value, reference, rtol=1e-6)
        jax.tree.map(functools.partial(np.testing.assert_allclose, rtol=1e-5, atol=1e-7),
                     other, grads)


def norm_config(norm="batch"):
    config = sample.get_config()
    config.model.update(features=4, levels=1, norm=norm, norm_groups=2)
    config.train.steps = 10
    return config


def norm_state(config):
    return create_train_state(config, models.build(config.model), jax.random.key(0, impl="rbg"),
                              (1, 16, 16, 1), pretrained=False)


def batch_of(step, size=4):
    rng = np.random.default_rng(step)
    return {"image": jnp.asarray(3 + 2 * rng.normal(size=(size, 16, 16, 1)), jnp.float32),
            "label": jnp.asarray(rng.integers(0, 2, (size, 16, 16)), jnp.int32)}


STEP = jax.jit(functools.partial(train.train_step, reduction="mean", ignore_label=255))
EVAL = jax.jit(functools.partial(objective.eval_step, ignore_label=255))


def test_batch_norm_statistics_train_and_evaluation_uses_them():
    state = norm_state(norm_config())
    first = state.batch_stats["down1_conv1_bn"]
    np.testing.assert_array_equal(first["mean"], 0)
    np.testing.assert_array_equal(first["var"], 1)
    state, _ = STEP(state, batch_of(1), jax.random.key(1, impl="rbg"))
    moved = state.batch_stats["down1_conv1_bn"]["mean"]
    assert np.abs(np.asarray(moved)).max() > 0
    # running averages: an image scores the same alone as beside others
    pair, alone = batch_of(2, size=2), {k: v[:1] for k, v in batch_of(2, size=2).items()}
    _, together = EVAL(state, pair)
    _, by_itself = EVAL(state, alone)
    np.testing.assert_array_equal(together[:1], by_itself)


def test_batch_stats_restore_bit_exactly_and_the_run_continues_identically(tmp_path):
    config, key = norm_config(), jax.random.key(1, impl="rbg")
    state = norm_state(config)
    for step in (1, 2):
        state, _ = STEP(state, batch_of(step), key)
    manager = checkpoint.make_manager(str(tmp_path))
    checkpoint.save(manager, 2, state)
    checkpoint.wait(manager)
    manager.close()
    restored = checkpoint.restore_path(str(tmp_path), norm_state(config))
    same = functools.partial(np.testing.assert_array_equal, strict=True)
    jax.tree.map(same, restored.batch_stats, state.batch_stats)
    on, _ = STEP(state, batch_of(3), key)
    resumed, _ = STEP(restored, batch_of(3), key)
    jax.tree.map(same, resumed.batch_stats, on.batch_stats)
    jax.tree.map(same, resumed.params, on.params)


@pytest.mark.parametrize("norm", ["batch", "group"])
def test_weight_sources_refuse_a_model_with_norm_in_one_line(norm):
    config = norm_config(norm)
    config.init.checkpoint = "/no/such/workdir"
    with pytest.raises(ConfigError, match=f"norm={norm!r}") as error:
        sources.initial_params(config.init, models.build(config.model), jax.random.key(0),
                               (1, 16, 16, 1))
    assert "\n" not in str(error.value)


def test_norm_classes_validate_their_fields():
    with pytest.raises(ValueError, match="choose one of"):
        Norm("instance")
