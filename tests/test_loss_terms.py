"""config.loss.terms: the default is today's loss bit for bit; terms add up with their
weights; every term has finite gradients on all-void and one-class batches; mistakes are
refused in one line before the workdir; a few train steps with xent + dice and AdamW run."""

import functools
import os
import pathlib
import re
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from configs import sample
from fcnjax import loss_terms, losses, models, objective, region_losses, train
from fcnjax.loss_terms import LossTerms
from fcnjax.run.errors import ConfigError
from fcnjax.run.state import create_train_state

ROOT = pathlib.Path(__file__).parent.parent
ALL_TERMS = tuple((name, 1.0) for name in loss_terms.TERMS)


def batch(seed=0, classes=3, shape=(2, 6, 7)):
    rng = np.random.default_rng(seed)
    logits = jnp.asarray(rng.normal(size=(*shape, classes)) * 2, jnp.float32)
    labels = rng.integers(0, classes, shape).astype(np.int32)
    labels[rng.random(shape) < 0.3] = 255
    weights = jnp.asarray(rng.uniform(0.5, 2.0, shape), jnp.float32)
    return logits, jnp.asarray(labels), weights


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_default_terms_are_todays_loss_bit_for_bit(reduction):
    logits, labels, weights = batch()
    options = dict(reduction=reduction, weights=weights, class_weights=jnp.array([1., 2., 3.]))

    def today(z):
        return losses.segmentation_loss(z, labels, **options)

    def now(z):
        return loss_terms.total_loss(z, labels, LossTerms(), **options)

    (a, aux_a), ga = jax.value_and_grad(today, has_aux=True)(logits)
    (b, aux_b), gb = jax.value_and_grad(now, has_aux=True)(logits)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    np.testing.assert_array_equal(np.asarray(aux_a), np.asarray(aux_b))
    np.testing.assert_array_equal(np.asarray(ga), np.asarray(gb))
    config = sample.get_config()
    assert objective.loss_options(config)["terms"] == LossTerms()
    assert loss_terms.notes(config) == []


def test_terms_add_up_with_their_weights():
    logits, labels, weights = batch(1)
    spec = LossTerms(terms=(("xent", 0.5), ("focal", 2.0), ("dice", 3.0), ("lovasz", 0.25)))
    got, (total, count) = loss_terms.total_loss(logits, labels, spec, reduction="mean",
                                                weights=weights)
    xent, _ = losses.segmentation_loss(logits, labels, weights=weights)
    focal, mask = losses.pixel_focal(logits, labels, weights=weights)
    dice = region_losses.soft_dice(logits, labels, weights=weights)
    lovasz = region_losses.lovasz_softmax(logits, labels)
    expected = 0.5 * xent + 2.0 * focal.sum() / mask.sum() + 3.0 * dice + 0.25 * lovasz
    np.testing.assert_allclose(float(got), float(expected), rtol=1e-6)
    # the measurements stay the cross-entropy's, whatever the terms
    np.testing.assert_allclose(float(total / count), float(xent), rtol=1e-6)


@pytest.mark.parametrize("reduction", ["sum", "mean"])
@pytest.mark.parametrize("labels_of", ["all void", "one class"])
def test_every_term_has_finite_gradients_on_all_void_and_one_class_batches(reduction,
                                                                           labels_of):
    logits, labels, weights = batch(2)
    logits = logits.at[0, 0, 0].set(jnp.array([60.0, -60.0, 0.0]))  # p_t rounds to 1
    labels = jnp.full_like(labels, 255) if labels_of == "all void" else jnp.where(
        labels == 255, 255, 0)
    for per_image in (False, True):
        for gamma in (0.0, 0.5, 2.0):
            spec = LossTerms(terms=ALL_TERMS, focal_gamma=gamma, dice_smooth=0.0,
                             dice_per_image=per_image, lovasz_per_image=per_image)
            fn = functools.partial(loss_terms.total_loss, labels=labels, spec=spec,
                                   reduction=reduction, weights=weights,
                                   class_weights=jnp.array([1.0, 0.0, 2.0]))
            (value, _), grad = jax.value_and_grad(fn, has_aux=True)(logits)
            assert np.isfinite(float(value)) and np.isfinite(np.asarray(grad)).all()
            if labels_of == "all void":
                assert float(value) == 0.0 and not np.asarray(grad).any()


@pytest.mark.parametrize("field, value, says", [
    ("terms", (("xent", 1.0), ("dise", 1.0)), "names 'dise': choose from xent, focal, dice, "
                                              "lovasz"),
    ("terms", (), "config.loss.terms is empty"),
    ("terms", (("xent", 1.0), ("xent", 2.0)), "names a term twice"),
    ("terms", (("dice", -1.0),), "gives 'dice' the weight -1.0"),
    ("terms", ("dice",), "give (name, weight) pairs"),
    ("focal_gamma", -1.0, "focal_gamma = -1.0"),
    ("focal_alpha", 0.25, "balances two classes"),
    ("dice_smooth", -0.5, "dice_smooth = -0.5"),
])
def test_loss_term_mistakes_are_refused_in_one_line(field, value, says):
    config = sample.get_config()
    config.model.num_classes = 3
    config.loss[field] = value
    with pytest.raises(ConfigError, match=re.escape(says)) as error:
        objective.loss_options(config)
    assert "\n" not in str(error.value)


def test_focal_alpha_is_accepted_with_two_classes():
    config = sample.get_config()
    config.loss.update(terms=(("focal", 1.0),), focal_alpha=0.25)
    assert objective.loss_options(config)["terms"].focal_alpha == 0.25


def test_what_a_term_ignores_is_said_in_one_line_each():
    config = sample.get_config()  # reduction "mean", no weight map
    config.loss.terms = ALL_TERMS
    assert loss_terms.notes(config) == []
    config.loss.reduction = "sum"
    config.input.border_weights = True
    lines = loss_terms.notes(config)
    assert [line.split("'")[1] for line in lines] == ["dice", "lovasz"]
    assert all("\n" not in line for line in lines)
    assert "border weight map" in lines[1] and "reduction = 'sum'" in lines[1]
    assert "border weight map" not in lines[0]


def test_a_wrong_loss_term_or_optimizer_is_refused_before_the_workdir(tmp_path):
    config = sample.get_config()
    config.loss.terms = (("lovasz", 1.0), ("jaccard", 1.0))
    with pytest.raises(ConfigError, match="'jaccard'"):
        train.train_and_evaluate(config, str(tmp_path / "a"))
    config = sample.get_config()
    config.optim.name = "adamx"
    with pytest.raises(ConfigError, match="config.optim.name = 'adamx'"):
        train.train_and_evaluate(config, str(tmp_path / "b"))
    assert not list(tmp_path.iterdir())


def test_a_few_train_steps_with_xent_dice_and_adamw_run():
    config = sample.get_config()
    config.model.update(features=4, levels=1, padding="same")
    config.train.update(steps=3, batch_size=2)
    config.input.crop_size = (16, 16)
    config.loss.terms = (("xent", 1.0), ("dice", 1.0))
    config.optim.update(name="adamw", learning_rate=1e-2, weight_decay=1e-4)
    state = create_train_state(config, models.build(config.model),
                               jax.random.key(0, impl="rbg"), (2, 16, 16, 1))
    before = jax.tree.map(np.asarray, state.params)
    step = jax.jit(functools.partial(train.train_step, **objective.loss_options(config)))
    rng = np.random.default_rng(0)
    label = rng.integers(0, 2, (2, 16, 16)).astype(np.int32)
    label[:, :2] = 255
    data = {"image": rng.normal(size=(2, 16, 16, 1)).astype(np.float32), "label": label}
    key = jax.random.key(1, impl="rbg")
    for _ in range(3):
        state, measured = step(state, data, key)
        assert np.isfinite(float(measured["loss"]))
        # the objective is xent + dice, above the cross-entropy it reports
        assert float(measured["loss"]) > float(measured["loss_sum"] / measured["pixels"])
    assert int(state.step) == 3
    assert isinstance(state.opt_state, optax.MultiTransformState)
    changed = jax.tree.map(lambda a, b: not np.allclose(a, b), before,
                           jax.tree.map(np.asarray, state.params))
    assert all(jax.tree.leaves(changed))


def test_terms_given_on_the_command_line_are_parsed_and_checked(tmp_path):
    run = subprocess.run(
        [sys.executable, "-m", "fcnjax.train", "--config", "configs/sample.py",
         "--workdir", str(tmp_path), "--config.loss.terms=(('xent', 1.0), ('dise', 0.5))"],
        capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert run.returncode == 1
    assert run.stderr.strip().splitlines()[-1] == (
        "fcnjax.train: error: config.loss.terms names 'dise': choose from xent, focal, dice, "
        "lovasz")
    assert not os.listdir(tmp_path)
