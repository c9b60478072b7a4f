"""Train and evaluate a segmentation model from a config file.

    python -m fcnjax.train --config configs/sample.py --workdir /tmp/fcnjax_sample

The workdir receives ``checkpoints/<step>`` (orbax; a rerun resumes from the newest),
``metrics.jsonl`` (one JSON object per log or eval: step, mode "train" or "eval", the eval
split, loss and the paper's four metrics) and ``predictions_<step>.png`` (image | label | prediction for a few eval images).

Models whose output is smaller than their input (U-Net with ``padding="valid"``) are scored
against the centre of the label: labels (and weight maps) are centre-cropped to the logits'
size, the crop derived from the shapes, ``(H_label - H_logits) // 2``. On its own that trains
and scores only the interior of each crop; set ``config.input.mirror_pad`` to the context the
net loses on each side (92 for the paper's U-Net) and the pipeline mirrors that much image
around every example, with void labels, so the centre crop covers real pixels to the border
(the paper's overlap-tile strategy; configs/unet_isbi.py does this).
"""

from __future__ import annotations

import functools
import json
import os
import time
from typing import TYPE_CHECKING, Any, Iterable, Mapping

import jax
import jax.numpy as jnp
import numpy as np
from flax.training import train_state
from PIL import Image
from tqdm import tqdm

from fcnjax import checkpoint, losses, metrics, models, optim, surgery, visualize
from fcnjax.models import layers

if TYPE_CHECKING:
    import ml_collections

Batch = Mapping[str, jax.Array]
CHANNELS = {"L": 1, "RGB": 3}


def center_crop(x: jax.Array, size: tuple[int, int]) -> jax.Array:
    """The centre ``size`` window of a (B, H, W, ...) array; offsets (H - h) // 2, (W - w) // 2."""
    (h, w), (height, width) = size, x.shape[1:3]
    return layers.crop(x, ((height - h) // 2, (width - w) // 2), size)


def create_train_state(config: ml_collections.ConfigDict, model: Any, key: jax.Array,
                       image_shape: tuple[int, ...], *, pretrained: bool = True
                       ) -> train_state.TrainState:
    """Initialise ``model`` on zeros of ``image_shape`` (B, H, W, C) with the config's optimizer.

    Weights come from :func:`initial_params` when ``config.init`` names a source and
    ``pretrained`` is set; pass ``pretrained=False`` for a template that a checkpoint
    restore will overwrite anyway (no weight file is read then).
    """
    params = initial_params(config.init, model, key, image_shape) if pretrained else None
    if params is None:
        init = jax.jit(functools.partial(model.init, train=False))
        params = init(key, jnp.zeros(image_shape, jnp.float32))["params"]
    tx = optim.make_optimizer(config.optim, config.train.steps)
    return train_state.TrainState.create(apply_fn=model.apply, params=params, tx=tx)


def initial_params(init: ml_collections.ConfigDict, model: Any, key: jax.Array,
                   image_shape: tuple[int, ...]) -> Any | None:
    """Params from ``config.init``'s source, or None to draw them at random.

    ``checkpoint``: an earlier stage's workdir (FCN-16s from FCN-32s; new score layers zero);
    ``torchvision_vgg16`` / ``pytorch_fcn``: PyTorch weight files (:mod:`fcnjax.surgery`).
    """
    sources = {k: v for k, v in init.items() if v}
    if len(sources) > 1:
        raise ValueError(f"config.init names {sorted(sources)}: set at most one")
    if not sources:
        return None
    (source, path), = sources.items()
    image = jax.ShapeDtypeStruct(image_shape, jnp.float32)
    if source == "pytorch_fcn":
        params = surgery.from_pytorch_fcn(path, model)
    else:
        old = (checkpoint.restore_params(path) if source == "checkpoint"
               else {"trunk": surgery.from_torchvision_vgg16(path)})
        params, report = surgery.stage_init(model, old, key, image)
        tqdm.write(f"init from {source} {path}: {len(report.copied)} arrays copied, "
                   f"new: {', '.join(report.new) or 'none'}")
    return jax.tree_util.tree_map(jnp.asarray, params)


def score_batch(logits: jax.Array, batch: Batch, *, reduction: str,
                ignore_label: int) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Loss of ``logits`` against the batch's labels (centre-cropped to the logits) and the
    step's measurements: loss, loss_sum, pixels, confusion (C, C)."""
    size = logits.shape[1:3]
    labels = center_crop(batch["label"], size)
    weights = center_crop(batch["weight"], size) if "weight" in batch else None
    loss, (total, count) = losses.segmentation_loss(
        logits, labels, reduction=reduction, ignore_label=ignore_label, weights=weights)
    confusion = metrics.confusion_matrix(labels, jnp.argmax(logits, -1), logits.shape[-1],
                                         ignore_label)
    return loss, {"loss": loss, "loss_sum": total, "pixels": count, "confusion": confusion}


def train_step(state: train_state.TrainState, batch: Batch, key: jax.Array, *,
               reduction: str = "mean", ignore_label: int = losses.IGNORE_LABEL
               ) -> tuple[train_state.TrainState, dict[str, jax.Array]]:
    """One SGD step on ``batch`` ({"image": (B, H, W, C), "label": (B, H, W)}).

    Dropout draws from ``fold_in(key, state.step)``. Returns the new state and the step's
    measurements (see ``score_batch``), computed from the logits before the update.
    """
    dropout_key = jax.random.fold_in(key, state.step)

    def loss_fn(params):
        logits = state.apply_fn({"params": params}, batch["image"], train=True,
                                rngs={"dropout": dropout_key})
        return score_batch(logits, batch, reduction=reduction, ignore_label=ignore_label)

    (_, measurements), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    return state.apply_gradients(grads=grads), measurements


def eval_step(state: train_state.TrainState, batch: Batch, *,
              ignore_label: int = losses.IGNORE_LABEL) -> tuple[dict[str, jax.Array], jax.Array]:
    """Measurements of one eval batch (loss_sum, pixels, confusion) and its int32 predictions."""
    logits = state.apply_fn({"params": state.params}, batch["image"], train=False)
    _, measurements = score_batch(logits, batch, reduction="sum", ignore_label=ignore_label)
    del measurements["loss"]
    return measurements, jnp.argmax(logits, -1).astype(jnp.int32)


def summarize(totals: Mapping[str, np.ndarray]) -> dict[str, float]:
    """Host summary of summed measurements: mean per-pixel loss and the four paper metrics."""
    pixels = float(totals["pixels"])
    summary = {"pixel_loss": float(totals["loss_sum"]) / pixels if pixels else float("nan")}
    return {**summary, **metrics.scores(totals["confusion"])}


def evaluate(eval_fn: Any, state: train_state.TrainState, batches: Iterable[Batch],
             num_draw: int = 0) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Sum ``eval_fn`` over a whole split; return its summary and the first ``num_draw``
    examples (image, label, prediction, all cropped to the prediction's size)."""
    totals, drawn = None, {"image": [], "label": [], "prediction": []}
    for batch in batches:
        measured, predictions = eval_fn(state, batch)
        totals = measured if totals is None else jax.tree.map(jnp.add, totals, measured)
        take = num_draw - len(drawn["label"])
        if take > 0:
            size = predictions.shape[1:3]
            drawn["image"].extend(center_crop(batch["image"], size)[:take])
            drawn["label"].extend(center_crop(batch["label"], size)[:take])
            drawn["prediction"].extend(np.asarray(predictions[:take]))
    if totals is None:
        raise ValueError("the evaluation split is empty")
    return summarize(jax.device_get(totals)), {k: np.stack(v) for k, v in drawn.items() if v}


def write_metrics(workdir: str, record: Mapping[str, Any]) -> None:
    """Append ``record`` as one JSON line to ``<workdir>/metrics.jsonl`` (NaN written as null)."""
    clean = {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in record.items()}
    with open(os.path.join(workdir, "metrics.jsonl"), "a") as f:
        f.write(json.dumps(clean) + "\n")


def write_predictions(workdir: str, step: int, drawn: Mapping[str, np.ndarray],
                      num_classes: int, bgr: bool) -> str:
    """Save image | label | prediction rows as ``<workdir>/predictions_<step>.png``."""
    path = os.path.join(workdir, f"predictions_{step:06d}.png")
    grid = visualize.comparison_grid(drawn["image"], drawn["label"], drawn["prediction"],
                                     num_classes, bgr=bgr)
    Image.fromarray(grid).save(path)
    return path


def format_scores(record: Mapping[str, Any]) -> str:
    """One line: "step 40 val: pixel_loss 0.41, pixel_accuracy 81.2, ..." (metrics in %)."""
    parts = [f"{k} {100 * v:.1f}" if k in metrics.METRICS else f"{k} {v:.4g}"
             for k, v in record.items() if k not in ("step", "mode", "split")]
    return f"step {record['step']} {record['split']}: " + ", ".join(parts)


def log_train(workdir: str, step: int, totals: Mapping[str, jax.Array], steps: int,
              seconds: float) -> dict[str, Any]:
    """Write the summed measurements of the last ``steps`` train steps; return the record."""
    host = jax.device_get(totals)
    record = {"step": step, "mode": "train", "loss": float(host["loss"]) / steps,
              **summarize(host), "steps_per_second": steps / seconds}
    write_metrics(workdir, record)
    return record


def log_eval(config: ml_collections.ConfigDict, workdir: str, step: int, eval_fn: Any,
             state: train_state.TrainState, batches: Iterable[Batch]) -> dict[str, float]:
    """Evaluate the eval split, print and write the scores, draw a few predictions."""
    summary, drawn = evaluate(eval_fn, state, batches, config.eval.num_draw)
    record = {"step": step, "mode": "eval", "split": config.input.eval_split, **summary}
    write_metrics(workdir, record)
    tqdm.write(format_scores(record))
    if drawn:
        write_predictions(workdir, step, drawn, config.model.num_classes, config.input.bgr)
    return summary


def train_loop(config: ml_collections.ConfigDict, workdir: str, state: train_state.TrainState,
               manager: Any, dropout_key: jax.Array) -> dict[str, float]:
    """Steps ``state.step + 1 .. config.train.steps``: log, evaluate, checkpoint on schedule."""
    from fcnjax.data import pipeline  # grain: needed to train, not to import train_step

    cfg, start = config.train, int(state.step)
    step_fn = jax.jit(functools.partial(train_step, reduction=config.loss.reduction,
                                        ignore_label=config.loss.ignore_label),
                      donate_argnums=(0,))
    eval_fn = jax.jit(functools.partial(eval_step, ignore_label=config.loss.ignore_label))
    add = jax.jit(lambda a, b: jax.tree.map(jnp.add, a, b))
    eval_data = pipeline.eval_dataset(config.input, config.input.eval_split,
                                      config.eval.batch_size)
    batches = pipeline.train_batches(config.input, cfg.batch_size, config.seed, start)
    if start >= cfg.steps:  # nothing left to train: report the restored model, write nothing
        summary, _ = evaluate(eval_fn, state, eval_data)
        tqdm.write(format_scores({"step": start, "split": config.input.eval_split, **summary}))
        return summary

    summary, totals, window, tick = {}, None, 0, time.perf_counter()
    with tqdm(total=cfg.steps, initial=start, desc="train", unit="step",
              dynamic_ncols=True) as bar:
        for step in range(start + 1, cfg.steps + 1):
            state, measured = step_fn(state, next(batches), dropout_key)
            totals = measured if totals is None else add(totals, measured)
            window += 1
            bar.update()
            last = step == cfg.steps
            if step % cfg.log_every == 0 or last:
                record = log_train(workdir, step, totals, window, time.perf_counter() - tick)
                bar.set_postfix(loss=f"{record['loss']:.4g}",
                                mean_iu=f"{100 * record['mean_iu']:.1f}")
                totals, window, tick = None, 0, time.perf_counter()
            if step % cfg.eval_every == 0 or last:
                began = time.perf_counter()
                summary = log_eval(config, workdir, step, eval_fn, state, eval_data)
                tick += time.perf_counter() - began  # steps_per_second: train steps only
            if step % cfg.checkpoint_every == 0 or last:
                checkpoint.save(manager, step, state)
    return summary


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict[str, float]:
    """Train ``config.model`` for ``config.train.steps`` steps, resuming from ``workdir``.

    Logs train measurements every ``log_every`` steps, evaluates the eval split every
    ``eval_every`` steps and at the end, checkpoints every ``checkpoint_every`` steps and at
    the end. Returns the final evaluation's summary.
    """
    os.makedirs(workdir, exist_ok=True)
    init_key, dropout_key = jax.random.split(
        jax.random.key(config.seed, impl=config.prng_impl))
    model = models.build(config.model)
    image_shape = (config.train.batch_size, *config.input.crop_size,
                   CHANNELS[config.input.image_mode])
    resuming = checkpoint.latest_step(workdir) is not None
    state = create_train_state(config, model, init_key, image_shape, pretrained=not resuming)
    manager = checkpoint.make_manager(workdir, max_to_keep=config.train.max_to_keep)
    try:
        state = checkpoint.restore_latest(manager, state)
        if state.step:
            tqdm.write(f"resuming from the checkpoint of step {int(state.step)} in {workdir}")
        return train_loop(config, workdir, state, manager, dropout_key)
    finally:  # on a crash too: let started saves reach the disk
        checkpoint.wait(manager)
        manager.close()


def main(argv: list[str] | None = None) -> None:
    """Command line: ``--config`` (a config file, fields overridable) and ``--workdir``."""
    from absl import app, flags, logging
    from ml_collections import config_flags

    config = config_flags.DEFINE_config_file("config", None, "training config file",
                                             lock_config=True)
    workdir = flags.DEFINE_string("workdir", None, "folder for checkpoints, metrics, images")
    flags.mark_flags_as_required(["config", "workdir"])

    def run(args: list[str]) -> None:
        if len(args) > 1:
            raise app.UsageError(f"unexpected arguments: {args[1:]}")
        if not flags.FLAGS["verbosity"].present:  # orbax logs every save at INFO
            logging.set_verbosity(logging.WARNING)
        train_and_evaluate(config.value, workdir.value)

    app.run(run, argv=argv)


if __name__ == "__main__":
    main()
