"""The reference's learning policy: biases 2x lr without decay; upscore kernels learn when
they exist (learnable upsampling), and only one switch decides that."""

import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from configs import default
from fcnjax import optim
from fcnjax.models import layers
from fcnjax.run.errors import ConfigError


class TinyFCN(nn.Module):
    """A score layer and a learnable bilinear upscore: the two kinds of parameter policy."""

    @nn.compact
    def __call__(self, x):
        x = nn.Conv(3, (1, 1), name="score_fr")(x)
        return layers.Upscore(4, 2, learnable=True, name="upscore2")(x)


def optim_config(**overrides) -> ml_collections.ConfigDict:
    config = default.get_config().optim
    config.update({"learning_rate": 0.1, "momentum": 0.0, "weight_decay": 0.01,
                   **overrides})
    return config


def init():
    model = TinyFCN()
    params = model.init(jax.random.key(0), jnp.ones((1, 4, 4, 2)))["params"]
    return model, params


def ones_like(params):
    return jax.tree.map(jnp.ones_like, params)


def test_param_groups_follow_names():
    _, params = init()
    labels = optim.param_labels(params)
    assert labels == {"score_fr": {"kernel": "weight", "bias": "bias"},
                      "upscore2": {"kernel": "weight"}}  # learnable upsampling: it learns
    assert optim.param_labels(params, "score")["upscore2"]["kernel"] == "frozen"


def test_bias_gets_twice_the_learning_rate_and_no_weight_decay():
    _, params = init()
    tx = optim.make_optimizer(optim_config(), steps=10)
    updates, _ = tx.update(ones_like(params), tx.init(params), params)
    kernel = params["score_fr"]["kernel"]
    # weight: -lr * (grad + decay * w); bias: -2 lr * grad, whatever its value
    np.testing.assert_allclose(updates["score_fr"]["kernel"], -0.1 * (1 + 0.01 * kernel),
                               rtol=1e-6)
    np.testing.assert_allclose(updates["score_fr"]["bias"], -0.2, rtol=1e-6)
    biased = jax.tree.map(lambda p: p, params)
    biased["score_fr"]["bias"] = jnp.full_like(params["score_fr"]["bias"], 5.0)
    updates, _ = tx.update(ones_like(params), tx.init(biased), biased)
    np.testing.assert_allclose(updates["score_fr"]["bias"], -0.2, rtol=1e-6)


@pytest.mark.parametrize("name", ["sgd", "adamw", "adam", "lion", "rmsprop"])
def test_frozen_upscore_kernel_is_unchanged_by_training(name):
    model, params = init()
    tx = optim.make_optimizer(optim_config(momentum=0.9, trainable="score", name=name),
                              steps=10)
    state = tx.init(params)

    def loss(p):
        return jnp.sum(model.apply({"params": p}, jnp.ones((1, 4, 4, 2))) ** 2)

    new = params
    for _ in range(3):
        updates, state = tx.update(jax.grad(loss)(new), state, new)
        new = optax.apply_updates(new, updates)
    np.testing.assert_array_equal(new["upscore2"]["kernel"], params["upscore2"]["kernel"])
    assert not np.allclose(new["score_fr"]["kernel"], params["score_fr"]["kernel"])


def test_learnable_upsampling_learns_with_its_one_switch(capsys):
    """model.learnable_upsampling alone: no second switch (optim.train_upscore, deprecated)."""
    _, params = init()
    tx = optim.make_optimizer(optim_config(), steps=10)
    updates, _ = tx.update(ones_like(params), tx.init(params), params)
    assert np.abs(np.asarray(updates["upscore2"]["kernel"])).min() > 0
    optim.check(optim_config(), steps=10)
    assert capsys.readouterr().err == ""
    optim.check(optim_config(train_upscore=True), steps=10)
    assert capsys.readouterr().err == (
        "fcnjax: config.optim.train_upscore is deprecated and will be removed in the next "
        "release; config.model.learnable_upsampling alone decides: learnable upscore kernels "
        "learn, fixed ones have no parameters\n")


@pytest.mark.parametrize("field, value, says", [
    ("learning_rate", -1.0, "learning_rate = -1.0: it must be a positive number"),
    ("learning_rate", 0.0, "learning_rate = 0.0"),
    ("momentum", 1.5, "momentum = 1.5"),
    ("weight_decay", -1e-4, "weight_decay = -0.0001"),
    ("schedule", "linear", "unknown learning-rate schedule 'linear'"),
    ("accumulate", 0, "accumulate must be >= 1"),
])
def test_optimizer_mistakes_are_config_errors(field, value, says):
    with pytest.raises(ConfigError, match=re.escape(says)):
        optim.check(optim_config(**{field: value}), steps=10)


def test_accumulate_averages_k_gradients_into_one_update():
    _, params = init()
    tx = optim.make_optimizer(optim_config(accumulate=2, weight_decay=0.0), steps=10)
    state = tx.init(params)
    grads = [ones_like(params), jax.tree.map(lambda g: 3 * g, ones_like(params))]
    first, state = tx.update(grads[0], state, params)
    second, state = tx.update(grads[1], state, params)
    assert np.all(np.asarray(first["score_fr"]["bias"]) == 0)
    np.testing.assert_allclose(second["score_fr"]["bias"], -0.2 * 2.0, rtol=1e-6)


@pytest.mark.parametrize("schedule", optim.SCHEDULES)
def test_schedules_start_at_the_learning_rate(schedule):
    rate = optim.learning_rate_schedule(optim_config(schedule=schedule), steps=100)
    np.testing.assert_allclose(float(rate(0)), 0.1, rtol=1e-6)
    if schedule != "constant":
        assert float(rate(100)) < 1e-6


def test_unknown_schedule_raises():
    with pytest.raises(ValueError, match="schedule"):
        optim.learning_rate_schedule(optim_config(schedule="step"), steps=10)


@pytest.mark.parametrize("schedule", optim.SCHEDULES)
def test_warmup_rises_linearly_then_follows_the_schedule(schedule):
    rate = optim.learning_rate_schedule(optim_config(schedule=schedule, warmup_steps=10),
                                        steps=110)
    np.testing.assert_allclose([float(rate(t)) for t in (0, 5, 10)], [0.0, 0.05, 0.1],
                               rtol=1e-6)
    if schedule == "poly":  # (1 - 50/100)^0.9 of the rate, 50 updates after the warmup
        np.testing.assert_allclose(float(rate(60)), 0.1 * 0.5 ** 0.9, rtol=1e-5)
    with pytest.raises(ValueError, match="warmup_steps"):
        optim.learning_rate_schedule(optim_config(warmup_steps=-1), steps=10)


def test_trainable_score_freezes_everything_but_the_score_layer():
    """FCN-32s-fixed: only score_fr learns; upscore stays fixed, other layers frozen."""
    params = {"trunk": {"conv1_1": {"kernel": jnp.ones((3,)), "bias": jnp.ones((3,))}},
              "score_fr": {"kernel": jnp.ones((2,)), "bias": jnp.ones((2,))},
              "upscore": {"kernel": jnp.ones((4,))}}
    assert optim.param_labels(params, trainable="score") == {
        "trunk": {"conv1_1": {"kernel": "frozen", "bias": "frozen"}},
        "score_fr": {"kernel": "weight", "bias": "bias"},
        "upscore": {"kernel": "frozen"}}
    tx = optim.make_optimizer(optim_config(trainable="score_fr, nothing"), steps=10)
    updates, _ = tx.update(ones_like(params), tx.init(params), params)
    assert not np.any(np.asarray(updates["trunk"]["conv1_1"]["kernel"]))
    assert np.all(np.asarray(updates["score_fr"]["kernel"]) != 0)


def test_optimizer_names_are_optax_optimizers_taking_a_learning_rate():
    names = optim.optimizer_names()
    assert {"sgd", "adamw", "adam", "lion", "rmsprop"} <= set(names)
    assert not any(name.startswith("scale") for name in names)


def test_every_named_optimizer_makes_a_finite_update_under_a_schedule():
    _, params = init()
    for name in optim.optimizer_names():
        tx = optim.make_optimizer(optim_config(name=name, schedule="cosine"), steps=10)
        updates, _ = tx.update(ones_like(params), tx.init(params), params)
        assert all(np.isfinite(u).all() for u in jax.tree.leaves(updates)), name


def test_a_wrong_optimizer_name_is_refused_in_one_line_listing_the_choices():
    with pytest.raises(ConfigError) as error:
        optim.check(optim_config(name="adamx"), steps=10)
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith("config.optim.name = 'adamx': choose 'sgd'")
    assert all(name in message for name in ("adamw", "lion", "rmsprop"))


def test_adamw_keeps_the_reference_groups_bias_multiplier_and_no_bias_decay():
    """Adam's first update is lr * g / (|g| + eps): -lr for the weights, plus AdamW's
    decoupled decay lr * wd * w; -2 lr for the biases, whatever their value."""
    _, params = init()
    tx = optim.make_optimizer(optim_config(name="adamw"), steps=10)
    params["score_fr"]["bias"] = jnp.full_like(params["score_fr"]["bias"], 5.0)
    updates, _ = tx.update(ones_like(params), tx.init(params), params)
    kernel = params["score_fr"]["kernel"]
    np.testing.assert_allclose(updates["score_fr"]["kernel"], -0.1 * (1 + 0.01 * kernel),
                               rtol=1e-5)
    np.testing.assert_allclose(updates["score_fr"]["bias"], -0.2, rtol=1e-5)


def test_adamw_follows_the_schedule_and_accumulation():
    _, params = init()
    # warmup: the rate of the first update is 0
    tx = optim.make_optimizer(optim_config(name="adamw", warmup_steps=5), steps=10)
    updates, _ = tx.update(ones_like(params), tx.init(params), params)
    assert not any(np.asarray(u).any() for u in jax.tree.leaves(updates))
    # accumulate 2: nothing, then one update from the mean gradient (2: Adam's step is lr)
    tx = optim.make_optimizer(optim_config(name="adamw", accumulate=2, weight_decay=0.0),
                              steps=10)
    state = tx.init(params)
    first, state = tx.update(ones_like(params), state, params)
    second, state = tx.update(jax.tree.map(lambda g: 3 * g, ones_like(params)), state, params)
    assert not np.asarray(first["score_fr"]["bias"]).any()
    np.testing.assert_allclose(second["score_fr"]["bias"], -0.2, rtol=1e-5)


def test_a_config_without_a_name_gets_the_reference_sgd():
    """Configs written before optim.name (a saved config.json) keep training with SGD."""
    _, params = init()
    grads = jax.tree.map(lambda p: jnp.full_like(p, 0.3), params)
    named = optim_config(momentum=0.9).to_dict()
    unnamed = {k: v for k, v in named.items() if k != "name"}
    outputs = []
    for config in (named, unnamed):
        tx = optim.make_optimizer(config, steps=10)
        state = tx.init(params)
        for _ in range(2):
            updates, state = tx.update(grads, state, params)
        outputs.append(updates)
    jax.tree.map(np.testing.assert_array_equal, *outputs)
