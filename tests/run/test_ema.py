"""The moving average of the weights (``optim.ema_decay``, ``TrainState.ema_params``): its
arithmetic against numpy, gradient accumulation, checkpoints and an exact resume, the
``eval.weights`` choice (training's evaluation and best/, evaluate), and nothing changed when
it is off."""

import json
import os
import re
import subprocess
import sys

if __name__ == "__main__":  # run as a file: make the repository root importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__)))))

import flax.serialization
import jax
import numpy as np
import pytest
from flax.training import train_state

from fcnjax import evaluate, models, train
from fcnjax.run import checkpoint, parallel
from fcnjax.run import state as run_state
from fcnjax.run.errors import ConfigError
from tests.test_train import tiny_batch, tiny_config

KEY = jax.random.key(0, impl="rbg")
SHAPE = (2, 32, 32, 1)


def ema_config(decay=0.9, **optim):
    """The tiny U-Net config with a moving average (and a rate that moves the weights)."""
    config = tiny_config(steps=3, levels=1)
    config.optim.update(dict(ema_decay=decay, learning_rate=1e-3, **optim))
    return config


STEP = jax.jit(train.train_step)  # one compile per state structure for the whole module


def run_steps(state, steps, first=0):
    """``steps`` jitted train steps on batches ``first``, ``first + 1``, ...; the params
    after each."""
    after = []
    for i in range(first, first + steps):
        state, _ = STEP(state, tiny_batch(seed=i), jax.random.key(1, impl="rbg"))
        after.append(jax.tree.map(np.asarray, state.params))
    return state, after


def numpy_ema(initial, params_after_each, decay, updated):
    """The reference: ema_0 = the initial params, ema_t = d ema_{t-1} + (1 - d) p_t when
    step t updated the weights, else ema_{t-1}."""
    ema = jax.tree.map(np.asarray, initial)
    for params, moved in zip(params_after_each, updated):
        if moved:
            ema = jax.tree.map(lambda e, p: np.float32(decay) * e + np.float32(1 - decay) * p,
                               ema, params)
    return ema


def assert_trees_close(actual, expected):
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-8),
                 jax.tree.map(np.asarray, actual), expected)


def test_ema_params_follow_the_numpy_recurrence_over_three_steps():
    config = ema_config(decay=0.9)
    state = run_state.create_train_state(config, models.build(config.model), KEY, SHAPE)
    initial = jax.tree.map(np.asarray, state.params)
    assert_trees_close(state.ema_params, initial)  # starts at the initial weights: no bias
    state, after = run_steps(state, 3)
    assert_trees_close(state.ema_params, numpy_ema(initial, after, 0.9, [True] * 3))
    assert not np.allclose(jax.tree.leaves(state.ema_params)[0], jax.tree.leaves(after[-1])[0])


def test_with_accumulation_the_average_moves_only_when_the_weights_do():
    config = ema_config(decay=0.5, accumulate=2)
    state = run_state.create_train_state(config, models.build(config.model), KEY, SHAPE)
    initial = jax.tree.map(np.asarray, state.params)
    state, after = run_steps(state, 4)
    assert_trees_close(state.ema_params, numpy_ema(initial, after, 0.5,
                                                   [False, True, False, True]))


def test_with_ema_off_the_state_steps_and_saves_as_flax_own_train_state(tmp_path):
    """ema_decay = 0: no ema_params leaf, the same loss and params as flax's TrainState,
    and checkpoints of both kinds restore into each other (today's runs keep resuming)."""
    config = tiny_config(steps=3, levels=1)
    assert config.optim.ema_decay == 0.0 and config.eval.weights == "auto"
    model = models.build(config.model)
    ours = run_state.create_train_state(config, model, KEY, SHAPE)
    plain = train_state.TrainState.create(apply_fn=ours.apply_fn, params=ours.params,
                                          tx=ours.tx)
    assert ours.ema_params is None
    assert len(jax.tree.leaves(ours)) == len(jax.tree.leaves(plain))
    batch, key = tiny_batch(), jax.random.key(1, impl="rbg")
    (ours, ours_measured), (plain, plain_measured) = STEP(ours, batch, key), STEP(plain, batch,
                                                                                  key)
    assert float(ours_measured["loss"]) == float(plain_measured["loss"])
    jax.tree.map(np.testing.assert_array_equal, ours.params, plain.params)
    for name, saved in (("ours", ours), ("plain", plain)):
        with checkpoint.make_manager(str(tmp_path / name)) as manager:
            checkpoint.save(manager, 1, saved)
            checkpoint.wait(manager)
        assert checkpoint.saved_fields(str(tmp_path / name)) == {"step", "params", "opt_state"}
    back = checkpoint.restore_path(str(tmp_path / "plain"), ours)  # a checkpoint of before
    assert back.ema_params is None and int(back.step) == 1
    jax.tree.map(np.testing.assert_array_equal, back.params, plain.params)
    checkpoint.restore_path(str(tmp_path / "ours"), plain)


def state_dict(state):
    return jax.tree.map(np.asarray, flax.serialization.to_state_dict(state))


def test_a_run_saved_and_resumed_ends_with_the_same_ema_params_bit_for_bit(tmp_path):
    """3 steps straight equal 2 steps, a checkpoint, a restore into a fresh template (as
    ``train.run_in_workdir`` resumes) and 1 more step: every array, ema_params too."""
    config = ema_config(decay=0.9)
    model = models.build(config.model)
    start = run_state.create_train_state(config, model, KEY, SHAPE)
    straight, _ = run_steps(start, 3)
    half, _ = run_steps(start, 2)
    with checkpoint.make_manager(str(tmp_path)) as manager:
        checkpoint.save(manager, 2, half)
        checkpoint.wait(manager)
    assert checkpoint.saved_fields(str(tmp_path)) == {"step", "params", "opt_state",
                                                      "ema_params"}
    with checkpoint.make_manager(str(tmp_path)) as manager:
        back = checkpoint.restore_latest(manager, start)  # start: a template, as any
    assert int(back.step) == 2 and back.ema_decay == 0.9
    resumed, _ = run_steps(back, 1, first=2)
    one, other = state_dict(straight), state_dict(resumed)
    jax.tree.map(np.testing.assert_array_equal, one, other)
    assert not any(jax.tree.leaves(jax.tree.map(np.array_equal, one["ema_params"],
                                                one["params"])))


def test_training_evaluates_and_keeps_best_by_the_average_and_evaluate_agrees(tmp_path):
    config = ema_config(decay=0.5)
    config.train.update(steps=2, eval_every=2)
    train.train_and_evaluate(config, str(tmp_path))
    with open(tmp_path / "metrics.jsonl") as f:
        logged = [json.loads(line) for line in f if '"eval"' in line]
    best = os.path.join(str(tmp_path), "best")
    ema = evaluate.evaluate_checkpoint(config, best)  # "auto" with ema_decay > 0: the average
    config.eval.weights = "raw"
    raw = evaluate.evaluate_checkpoint(config, best)
    assert ema["step"] == raw["step"] == logged[-1]["step"] == 2
    assert logged[-1]["loss"] == pytest.approx(ema["loss"], rel=1e-6)
    assert ema["loss"] != raw["loss"]


def test_eval_weights_swap_params_for_the_average_only_when_asked():
    config = ema_config()
    state = run_state.create_train_state(config, models.build(config.model), KEY, SHAPE)
    state = state.replace(ema_params=jax.tree.map(lambda x: x + 1.0, state.params))
    seen = run_state.weights_for_eval(config, state, "x")  # "auto" and ema_decay > 0: ema
    assert seen.params is state.ema_params and seen.ema_params is state.ema_params
    config.eval.weights = "raw"
    assert run_state.weights_for_eval(config, state, "x") is state
    config.eval.weights = "mean"
    with pytest.raises(ConfigError, match=re.escape("config.eval.weights = 'mean': choose")):
        run_state.eval_weights(config)


def test_ema_eval_weights_without_an_average_are_one_line_errors(tmp_path):
    config = tiny_config(steps=3, levels=1)
    config.eval.weights = "ema"
    with pytest.raises(ConfigError, match=r"eval.weights = 'ema' needs .*ema_decay = 0.0: set"):
        run_state.check_weights(config)
    state = run_state.create_train_state(config, models.build(config.model), KEY, SHAPE)
    with checkpoint.make_manager(str(tmp_path)) as manager:
        checkpoint.save(manager, 5, state)
        checkpoint.wait(manager)
    where = os.path.join(checkpoint.checkpoint_dir(str(tmp_path)), "5")
    with pytest.raises(ConfigError) as caught:
        run_state.restore_for_eval(config, str(tmp_path))
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"checkpoint {where} holds no ema_params")
    assert "--config.eval.weights=raw" in message
    config.eval.weights = "raw"  # raw weights of that checkpoint restore, config ema or not
    config.optim.ema_decay = 0.99
    assert run_state.restore_for_eval(config, str(tmp_path)).ema_params is None


@pytest.mark.parametrize("decay", [1.0, -0.1])
def test_ema_decay_outside_zero_to_one_is_a_config_error(decay):
    config = ema_config()
    config.optim.ema_decay = decay
    with pytest.raises(ConfigError, match=r"optim.ema_decay = .*: it must be in \[0, 1\)"):
        train.optim.check(config.optim, 3)


def test_a_resume_may_change_eval_weights_but_not_ema_decay(tmp_path):
    from fcnjax.run import workdir

    workdir.save_config(tmp_path, ema_config(decay=0.9))
    config = ema_config(decay=0.9)
    config.eval.weights = "raw"
    assert workdir.check_resume(tmp_path, config) == [
        workdir.Change("eval.weights", "auto", "raw")]
    config.optim.ema_decay = 0.99
    with pytest.raises(workdir.ConfigChanged, match="optim.ema_decay 0.9 -> 0.99"):
        workdir.check_resume(tmp_path, config)


def sharded_steps(out):
    """Subprocess side (2 forced CPU devices): 2 calls under ``accumulate = 2`` (one
    update) on 1 device and on 2 with params sharded; saves every ema leaf of both, and
    whether each 2-device ema leaf is placed as its param and split."""
    config = ema_config(decay=0.5, accumulate=2)
    start = jax.tree.map(np.asarray, run_state.create_train_state(  # host copies: the
        config, models.build(config.model), KEY, SHAPE))             # steps donate theirs
    results = {}
    for name, devices in (("one", 1), ("two", 2)):
        mesh = parallel.make_mesh(devices)
        sharding = parallel.state_sharding(start, mesh, shard_params=devices > 1,
                                           min_shard_size=0)
        state = parallel.shard_state(start, sharding)
        step = parallel.jit_train_step(train.train_step, mesh, sharding)
        for i in range(2):
            batch = parallel.global_batch(tiny_batch(seed=i), mesh)
            state, _ = step(state, batch, jax.random.key(1, impl="rbg"))
        for i, (ema, param) in enumerate(zip(jax.tree.leaves(state.ema_params),
                                             jax.tree.leaves(state.params))):
            results[f"{name}/ema/{i}"] = np.asarray(ema)
            results[f"{name}/same_place/{i}"] = ema.sharding == param.sharding
            results[f"{name}/split/{i}"] = not ema.sharding.is_fully_replicated
    np.savez(out, **results)


def test_on_two_devices_with_sharded_params_ema_params_are_split_alike_and_agree(tmp_path):
    from tests.run.test_parallel import ROOT, finish, worker_env

    out = tmp_path / "ema.npz"
    finish([subprocess.Popen([sys.executable, __file__, "sharded", str(out)], cwd=ROOT,
                             env=worker_env(2), stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)])
    results = np.load(out)
    leaves = sorted(k.rsplit("/", 1)[1] for k in results.files if k.startswith("one/ema/"))
    assert all(results[f"two/same_place/{i}"] for i in leaves)
    assert any(results[f"two/split/{i}"] for i in leaves)
    for i in leaves:
        np.testing.assert_allclose(results[f"two/ema/{i}"], results[f"one/ema/{i}"],
                                   rtol=1e-5, atol=1e-6)


if __name__ == "__main__":  # the subprocess of the two-device test
    sharded_steps(sys.argv[2])
