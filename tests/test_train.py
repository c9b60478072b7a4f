"""One train step; train_and_evaluate on the shipped sample: checkpoint, resume, best, logs,
evaluate and predict from its checkpoints; bad input (NaN loss, unwritable workdir, another
model's checkpoint, a misspelt config key) stopped with a clear error."""

import json
import os
import pathlib
import re
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from configs import sample
from fcnjax import evaluate, metrics, models, objective, predict, train
from fcnjax.data import pipeline
from fcnjax.run import checkpoint, safeguards
from fcnjax.run.safeguards import NonFiniteLoss, UnwritableWorkdir
from fcnjax.run.state import create_train_state
from fcnjax.run.workdir import ConfigChanged, WorkdirInUse
from tests.parallel_worker import crashing

ROOT = pathlib.Path(__file__).parent.parent


def tiny_config(steps=2, **model):
    """The sample config shrunk: a 2-level, 4-channel U-Net on 32x32 crops, a few steps."""
    config = sample.get_config()
    config.model.update({"features": 4, "levels": 2, **model})
    config.train.update(dict(steps=steps, batch_size=2, log_every=1, eval_every=2,
                             checkpoint_every=1))
    config.input.crop_size = (32, 32)
    return config


def tiny_batch(size=32, batch=2, seed=0):
    rng = np.random.default_rng(seed)
    label = rng.integers(0, 2, (batch, size, size)).astype(np.int32)
    label[:, :3] = 255
    return {"image": rng.normal(size=(batch, size, size, 1)).astype(np.float32),
            "label": label}


@pytest.mark.parametrize("padding,size", [("same", 32), ("valid", 24)])
def test_one_train_step_on_tiny_data_is_finite_and_changes_params(padding, size):
    config = tiny_config(padding=padding, levels=1)
    model = models.build(config.model)
    state = create_train_state(config, model, jax.random.key(0, impl="rbg"),
                               (2, size, size, 1))
    before = jax.tree.map(np.asarray, state.params)
    new, measured = jax.jit(train.train_step)(state, tiny_batch(size),
                                         jax.random.key(1, impl="rbg"))
    assert np.isfinite(float(measured["loss"]))
    assert int(new.step) == 1
    changed = jax.tree.map(lambda a, b: not np.allclose(a, b), before,
                           jax.tree.map(np.asarray, new.params))
    assert all(jax.tree.leaves(changed))
    # the confusion matrix counts exactly the labelled pixels the logits cover
    assert int(measured["confusion"].sum()) == int(measured["pixels"])


def test_center_crop_aligns_labels_to_smaller_logits():
    labels = jnp.arange(2 * 8 * 8).reshape(2, 8, 8)
    cropped = objective.center_crop(labels, (4, 4))
    np.testing.assert_array_equal(cropped, labels[:, 2:6, 2:6])
    with pytest.raises(ValueError, match="cannot crop"):
        objective.center_crop(labels, (9, 4))


def read_metrics(workdir):
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One 3-step run straight through, and one that crashes after 2 steps and is rerun."""
    config = tiny_config(steps=3)
    root = tmp_path_factory.mktemp("trained")
    straight, resumed = str(root / "straight"), str(root / "resumed")
    final = train.train_and_evaluate(config, straight)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pipeline, "train_batches", crashing(pipeline.train_batches, 2))
        with pytest.raises(RuntimeError, match="simulated crash"):
            train.train_and_evaluate(config, resumed)
    crashed_at = checkpoint.latest_step(resumed)
    again = train.train_and_evaluate(config, resumed)  # the rerun picks up at step 3
    return dict(config=config, straight=straight, resumed=resumed, final=final, again=again,
                crashed_at=crashed_at)


def test_an_interrupted_and_resumed_run_ends_as_an_uninterrupted_one(trained):
    assert trained["crashed_at"] == 2
    assert sorted(os.listdir(os.path.join(trained["resumed"], "checkpoints"))) == ["1", "2",
                                                                                   "3"]
    # nothing lost: a crash and a rerun train exactly as one uninterrupted run
    jax.tree.map(np.testing.assert_array_equal, checkpoint.restore_params(trained["straight"]),
                 checkpoint.restore_params(trained["resumed"]))
    assert trained["again"] == trained["final"]


def test_training_writes_metrics_events_curves_and_grids(trained):
    workdir, final = trained["resumed"], trained["final"]
    records = read_metrics(workdir)
    assert [r["step"] for r in records if r["mode"] == "train"] == [1, 2, 3]
    assert [r["step"] for r in records if r["mode"] == "eval"] == [2, 3]
    assert {r["split"] for r in records if r["mode"] == "eval"} == {"val"}
    for r in records:
        assert {"step", "loss", "pixel_acc", "mean_acc", "mean_iu", "fw_iu"} <= set(r)
        assert 0 <= r["pixel_acc"] <= 1 and np.isfinite(r["loss"])
    for r in records:
        if r["mode"] == "eval":
            assert len(r["class_iu"]) == len(r["class_dice"]) == 2
        else:
            assert r["images_per_second"] > 0
    assert set(final) == {"loss", "pixel_acc", "mean_acc", "mean_iu", "fw_iu", "mean_dice",
                          "class_iu", "class_dice", "confusion"}
    for name in ("predictions_000003.png", "learning_curve.png"):
        with Image.open(os.path.join(workdir, name)) as picture:
            assert picture.mode == "RGB" and min(picture.size) > 200
    events = os.listdir(os.path.join(workdir, "tensorboard"))
    assert any(name.startswith("events.out.tfevents") for name in events)


def test_the_best_evaluation_by_mean_iu_is_kept(trained):
    records = read_metrics(trained["straight"])
    evals = [r for r in records if r["mode"] == "eval"]
    best = max(evals, key=lambda r: r["mean_iu"])
    assert os.listdir(os.path.join(trained["straight"], "best")) == [str(best["step"])]
    scored = evaluate.evaluate_checkpoint(trained["config"],
                                          os.path.join(trained["straight"], "best"))
    assert scored["step"] == best["step"]
    assert scored["mean_iu"] == pytest.approx(best["mean_iu"])


def test_evaluate_and_predict_restore_the_trained_checkpoint(trained, tmp_path, capsys):
    config, final = trained["config"], trained["final"]
    scored = evaluate.evaluate_checkpoint(config, trained["resumed"])
    assert scored["step"] == 3
    assert {k: scored[k] for k in metrics.METRICS} == pytest.approx(
        {k: final[k] for k in metrics.METRICS})
    assert scored["class_iu"] == pytest.approx(final["class_iu"])
    val = os.path.join(config.input.data_dir, "val", "image")
    written = predict.predict(config, trained["resumed"], [val], str(tmp_path))
    assert sorted(os.path.basename(p) for p in written) == [
        "24.png", "24_overlay.png", "28.png", "28_overlay.png"]
    with Image.open(tmp_path / "24.png") as mask:
        assert mask.mode == "P" and mask.size == (128, 128)
        assert set(np.unique(np.asarray(mask))) <= {0, 1}


def test_a_checkpoint_of_another_model_is_refused_by_name(trained, tmp_path):
    other = tiny_config(steps=4, features=8)
    with pytest.raises(ConfigChanged, match=r"model.features 4 -> 8"):
        train.train_and_evaluate(other, trained["resumed"])  # the saved config.json differs
    other.train.allow_config_change = True  # then the checkpoint itself does not fit
    with pytest.raises(checkpoint.CheckpointMismatch, match=r"wrong shapes \(\d+\): params/"):
        train.train_and_evaluate(other, trained["resumed"])
    with pytest.raises(checkpoint.CheckpointMismatch, match="another model"):
        evaluate.evaluate_checkpoint(other, trained["resumed"])
    assert checkpoint.latest_step(trained["resumed"]) == 3  # nothing touched


def test_a_nan_loss_stops_training_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    original = pipeline.train_batches

    def poisoned(*args, **kwargs):
        for step, batch in enumerate(original(*args, **kwargs), start=1):
            if step == 3:
                batch = {**batch, "image": np.full_like(batch["image"], np.nan)}
            yield batch

    monkeypatch.setattr(pipeline, "train_batches", poisoned)
    config = tiny_config(steps=4)
    config.train.eval_every = 10
    with pytest.raises(NonFiniteLoss, match="at step 3: .*last good checkpoint, step 2"):
        train.train_and_evaluate(config, str(tmp_path))
    assert checkpoint.latest_step(str(tmp_path)) == 2
    params = checkpoint.restore_params(str(tmp_path))
    assert all(np.all(np.isfinite(p)) for p in jax.tree.leaves(params))


def test_an_unwritable_workdir_is_refused_before_training(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with pytest.raises(UnwritableWorkdir, match="cannot be written to"):
        train.train_and_evaluate(tiny_config(), str(blocker / "workdir"))


def test_loss_options_are_checked():
    config = tiny_config()
    config.loss.class_weights = (1.0, 2.0, 3.0)
    with pytest.raises(ValueError, match="3 values for 2 classes"):
        objective.loss_options(config)
    config.loss.class_weights = ()
    config.loss.keep_prob = 0.0
    with pytest.raises(ValueError, match="keep_prob"):
        objective.loss_options(config)
    config.loss.keep_prob = 1.0
    config.loss.ignore_label = 0  # never reached the pipeline's padding: no longer a setting
    with pytest.raises(train.errors.ConfigError, match="void is always 255"):
        objective.loss_options(config)


def test_a_misspelt_config_key_is_a_clear_command_line_error(tmp_path):
    run = subprocess.run(
        [sys.executable, "-m", "fcnjax.train", "--config", "configs/sample.py",
         "--workdir", str(tmp_path), "--config.train.stpes=3"],
        capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert run.returncode != 0
    assert "stpes" in run.stderr
    assert not os.listdir(tmp_path)


def test_a_stage_starts_from_the_previous_stages_checkpoint(tmp_path):
    """FCN-16s-style growth (GoogLeNet trunk, small): trunk and score_fr copied, skip zero."""
    coarse = models.build({"name": "fcn_googlenet", "num_classes": 3})
    key, shape = jax.random.key(0, impl="rbg"), (1, 8, 8, 3)
    old = coarse.init(key, jnp.zeros(shape))["params"]
    old = jax.tree.map(lambda x: x + 1.0, old)  # non-zero score_fr, distinct from any init
    with checkpoint.make_manager(str(tmp_path)) as manager:
        checkpoint.save(manager, 7, {"params": old, "step": 7})
        checkpoint.wait(manager)
    config = tiny_config()
    config.init.checkpoint = str(tmp_path)
    fine = models.build({"name": "fcn_googlenet", "num_classes": 3, "skips": ("pool3",)})
    state = create_train_state(config, fine, key, shape)
    np.testing.assert_array_equal(state.params["score_fr"]["kernel"], old["score_fr"]["kernel"])
    np.testing.assert_array_equal(state.params["trunk"]["conv1"]["kernel"],
                                  old["trunk"]["conv1"]["kernel"])
    assert not np.any(state.params["score_pool3"]["kernel"])
    config.init.pytorch_fcn = "/nonexistent.pth"
    with pytest.raises(ValueError, match="set at most one"):
        create_train_state(config, fine, key, shape)


def test_restore_templates_read_no_weight_file():
    """Resuming or evaluating restores a checkpoint: config.init's file is never opened."""
    config = tiny_config()
    config.init.pytorch_fcn = "/nonexistent/weights.pth"
    model = models.build(config.model)
    key = jax.random.key(0, impl="rbg")
    with pytest.raises(FileNotFoundError):
        create_train_state(config, model, key, (1, 32, 32, 1))
    state = create_train_state(config, model, key, (1, 32, 32, 1), pretrained=False)
    assert int(state.step) == 0


def test_score_batch_passes_class_weights_and_loss_sampling_to_the_loss():
    batch = tiny_batch(8)
    logits = jnp.asarray(np.random.default_rng(1).normal(size=(2, 8, 8, 2)), jnp.float32)
    options = dict(reduction="sum", ignore_label=255)
    plain, _ = objective.score_batch(logits, batch, **options)
    only_class_1, _ = objective.score_batch(logits, batch, class_weights=(0.0, 1.0), **options)
    labels, lse = batch["label"], jax.nn.logsumexp(logits, -1)
    expected = jnp.sum(jnp.where(labels == 1, lse - logits[..., 1], 0.0))
    np.testing.assert_allclose(only_class_1, expected, rtol=1e-5)
    sampled = [objective.score_batch(logits, batch, keep_prob=0.5, key=jax.random.key(s),
                                     **options)[0] for s in range(2)]
    assert 0 < float(sampled[0]) < float(plain) and float(sampled[0]) != float(sampled[1])


def test_a_second_run_on_a_workdir_in_use_is_refused_naming_the_holder(tmp_path):
    from fcnjax.run.workdir import RunLock

    with RunLock(str(tmp_path)):  # another run holds the workdir
        with pytest.raises(WorkdirInUse, match=f"pid {os.getpid()} on host"):
            train.train_and_evaluate(tiny_config(), str(tmp_path))
    assert not os.path.exists(tmp_path / "checkpoints")


@pytest.mark.parametrize("field, value, words", [
    ("train.eval_every", 0, "config.train.eval_every = 0"),
    ("train.checkpoint_every", -3, ">= 1"),
    ("eval.batch_size", 0, "config.eval.batch_size"),
    ("input.crop_size", (64,), "(height, width)"),
    ("input.eval_size", (0, 128), "config.input.eval_size"),
    ("input.label_values", (0, 128, 255), "names 3 classes"),
    ("model.dtype", "float8", "config.model.dtype"),
])
def test_config_values_that_cannot_work_are_refused_in_one_line(field, value, words):
    config = sample.get_config()
    section, key = field.split(".")
    config[section][key] = value
    with pytest.raises(train.errors.ConfigError, match=re.escape(words)):
        safeguards.check_config(config)


def test_a_valid_unet_crop_its_pools_cannot_take_names_the_sizes_that_fit():
    from configs import unet_isbi

    config = unet_isbi.get_config()
    safeguards.check_config(config)  # 572 and the 700 canvas fit
    config.input.crop_size = (570, 570)
    with pytest.raises(train.errors.ConfigError, match="nearest valid sizes: 556 and 572"):
        safeguards.check_config(config)
