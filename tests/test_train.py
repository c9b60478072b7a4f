"""One train step, and train_and_evaluate on the shipped sample: checkpoint, resume, metrics."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import sample
from fcnjax import checkpoint, evaluate, models, train
from fcnjax.data import pipeline


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
    state = train.create_train_state(config, model, jax.random.key(0, impl="rbg"),
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
    cropped = train.center_crop(labels, (4, 4))
    np.testing.assert_array_equal(cropped, labels[:, 2:6, 2:6])
    with pytest.raises(ValueError, match="cannot crop"):
        train.center_crop(labels, (9, 4))


def read_metrics(workdir):
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


def crash_after(steps, monkeypatch):
    """Make the training batches run out with an error after ``steps`` batches."""
    original = pipeline.train_batches

    def batches(*args, **kwargs):
        iterator = original(*args, **kwargs)
        for _ in range(steps):
            yield next(iterator)
        raise RuntimeError("simulated crash")

    monkeypatch.setattr(pipeline, "train_batches", batches)


def test_train_and_evaluate_on_sample_checkpoints_resumes_and_writes_metrics(tmp_path,
                                                                            monkeypatch):
    config = tiny_config(steps=3)
    straight, resumed = str(tmp_path / "straight"), str(tmp_path / "resumed")
    final = train.train_and_evaluate(config, straight)

    with monkeypatch.context() as patch:
        crash_after(2, patch)
        with pytest.raises(RuntimeError, match="simulated crash"):
            train.train_and_evaluate(config, resumed)
    assert checkpoint.latest_step(resumed) == 2
    again = train.train_and_evaluate(config, resumed)  # the rerun picks up at step 3

    assert sorted(os.listdir(os.path.join(resumed, "checkpoints"))) == ["1", "2", "3"]
    records = read_metrics(resumed)
    assert [r["step"] for r in records if r["mode"] == "train"] == [1, 2, 3]
    assert [r["step"] for r in records if r["mode"] == "eval"] == [2, 3]
    assert {r["split"] for r in records if r["mode"] == "eval"} == {"val"}
    for r in records:
        assert 0 <= r["pixel_accuracy"] <= 1 and np.isfinite(r["pixel_loss"])
    assert set(final) == {"pixel_loss", "pixel_accuracy", "mean_accuracy", "mean_iu",
                          "frequency_weighted_iu"}
    assert os.path.isfile(os.path.join(resumed, "predictions_000003.png"))
    # nothing lost: a crash and a rerun train exactly as one uninterrupted run
    jax.tree.map(np.testing.assert_array_equal, checkpoint.restore_params(straight),
                 checkpoint.restore_params(resumed))
    assert again == final
    scored = evaluate.evaluate_checkpoint(config, resumed)
    assert scored["step"] == 3
    assert {k: scored[k] for k in final} == pytest.approx(final)


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
    state = train.create_train_state(config, fine, key, shape)
    np.testing.assert_array_equal(state.params["score_fr"]["kernel"], old["score_fr"]["kernel"])
    np.testing.assert_array_equal(state.params["trunk"]["conv1"]["kernel"],
                                  old["trunk"]["conv1"]["kernel"])
    assert not np.any(state.params["score_pool3"]["kernel"])
    config.init.pytorch_fcn = "/nonexistent.pth"
    with pytest.raises(ValueError, match="set at most one"):
        train.create_train_state(config, fine, key, shape)


def test_restore_templates_read_no_weight_file():
    """Resuming or evaluating restores a checkpoint: config.init's file is never opened."""
    config = tiny_config()
    config.init.pytorch_fcn = "/nonexistent/weights.pth"
    model = models.build(config.model)
    key = jax.random.key(0, impl="rbg")
    with pytest.raises(FileNotFoundError):
        train.create_train_state(config, model, key, (1, 32, 32, 1))
    state = train.create_train_state(config, model, key, (1, 32, 32, 1), pretrained=False)
    assert int(state.step) == 0
