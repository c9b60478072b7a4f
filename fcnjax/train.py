"""Train and evaluate a segmentation model from a config file.

    python -m fcnjax.train --config configs/sample.py --workdir /tmp/fcnjax_sample

The workdir receives ``checkpoints/<step>`` (orbax; a rerun resumes from the newest at the
same step, data order and random numbers), ``best/<step>`` (the best evaluation by mean IU),
``metrics.jsonl`` (one JSON object per log or eval: step, mode "train" or "eval", loss,
pixel_acc, mean_acc, mean_iu, fw_iu, mean_dice, per-class IoU and Dice), ``tensorboard/``
event files, ``learning_curve.png`` and ``predictions_<step>.png`` (image | label |
prediction for a few eval images); see :mod:`fcnjax.run.reporting`. The progress bar shows the
step, loss, images per second and the time left.

What a step computes from a batch (the model's inputs; valid U-Nets scored against the
label's centre, with ``config.input.mirror_pad`` supplying the overlap-tile context that
``configs/unet_isbi.py`` sets; several heads' losses summed; median-frequency class
weights) is :mod:`fcnjax.objective`.

Training is data parallel over the devices of ``config.mesh`` (:mod:`fcnjax.run.parallel`; one
device is a mesh of one): ``config.train.batch_size`` is the global batch, split over the
devices; with several processes each reads its share and process 0 alone writes and prints.
"""

from __future__ import annotations

import contextlib
import functools
import time
from typing import TYPE_CHECKING, Any, Iterable, Mapping

import jax
import jax.numpy as jnp
import numpy as np
from flax.training import train_state
from jax.sharding import Mesh
from tqdm import tqdm

from fcnjax import inference, loss_terms, losses, models, optim
from fcnjax.data import device_elastic
from fcnjax.models.norm import model_variables
from fcnjax.objective import (evaluate, loss_options, make_eval_fn, model_inputs,
                              score_batch, summarize, with_class_weights)
from fcnjax.run import checkpoint, compile_cache, errors, interrupts, parallel, reporting
from fcnjax.run.safeguards import check_config, check_finite, prepare_workdir
from fcnjax.run.state import (check_weights, create_train_state, input_shape, state_sharding,
                              weights_for_eval)
from fcnjax.run.workdir import RunLock, check_resume, describe_changes, save_config
from fcnjax.weights import sources

if TYPE_CHECKING:
    import ml_collections

Batch = Mapping[str, jax.Array]


def train_step(state: train_state.TrainState, batch: Batch, key: jax.Array, *,
               reduction: str = "mean", ignore_label: int = losses.IGNORE_LABEL,
               class_weights: tuple[float, ...] = (), keep_prob: float = 1.0,
               extra_inputs: tuple[str, ...] = (),
               terms: loss_terms.LossTerms = loss_terms.LossTerms()
               ) -> tuple[train_state.TrainState, dict[str, jax.Array]]:
    """One optimizer step on ``batch`` ({"image": (B, H, W, C), "label": (B, H, W)}; the
    batch keys ``extra_inputs`` go to the model too, see ``model_inputs``).

    A batch carrying augmentation draws (``warp_*``, ``config.input.augment_on = "device"``)
    is first warped by them (:mod:`fcnjax.data.device_elastic`). Dropout draws from
    ``fold_in(key, state.step)``, loss sampling from a key folded from
    that one. The loss is the sum of ``terms`` (:mod:`fcnjax.loss_terms`; default: the
    cross-entropy alone). A model with BatchNorm normalises by the (global) batch's
    statistics and its running ``state.batch_stats`` move towards them. Returns the new
    state and the step's measurements (see ``score_batch``), computed from the logits
    before the update.
    """
    batch = device_elastic.apply_warps(batch)  # augment_on="device": U-Net's warp, here
    dropout_key = jax.random.fold_in(key, state.step)
    sample_key = jax.random.fold_in(dropout_key, 1)

    stats = getattr(state, "batch_stats", None)  # None: no BatchNorm (or flax's TrainState)

    def loss_fn(params):
        logits, updated = state.apply_fn(
            model_variables(params, stats), model_inputs(batch, extra_inputs),
            train=True, rngs={"dropout": dropout_key}, mutable=["batch_stats"])
        loss, measured = score_batch(logits, batch, reduction=reduction,
                                     ignore_label=ignore_label, class_weights=class_weights,
                                     keep_prob=keep_prob, key=sample_key, terms=terms)
        return loss, (measured, updated.get("batch_stats"))

    (_, (measurements, batch_stats)), grads = jax.value_and_grad(
        loss_fn, has_aux=True)(state.params)
    state = state.apply_gradients(grads=grads)
    if batch_stats is not None:
        state = state.replace(batch_stats=batch_stats)
    return state, measurements


def log_train(reporter: reporting.Reporter | None, step: int,
              totals: Mapping[str, jax.Array], steps: int, seconds: float,
              batch_size: int) -> dict[str, Any]:
    """Write the summed measurements of the last ``steps`` train steps (unless ``reporter``
    is None: not process 0); return the record."""
    host = jax.device_get(totals)
    record = {"step": step, "mode": "train", **summarize(host),
              "objective": float(host["loss"]) / steps, "window_steps": steps,
              "steps_per_second": steps / seconds,
              "images_per_second": steps * batch_size / seconds}
    if reporter is not None:
        reporter.write(record)
    return record


def log_eval(config: ml_collections.ConfigDict, reporter: reporting.Reporter | None,
             step: int, eval_fn: Any, state: train_state.TrainState,
             batches: Iterable[Batch], names: list[str] | None = None) -> dict[str, Any]:
    """Evaluate the eval split; print and write the scores and draw a few predictions
    (unless ``reporter`` is None: every process evaluates, process 0 reports). names: the
    classes' names by id (default: ``config.eval.classes``' class set)."""
    summary, drawn = evaluate(eval_fn, state, batches, config.eval.num_draw)
    if reporter is None:
        return summary
    record = {"step": step, "mode": "eval", "split": config.input.eval_split,
              **{k: v for k, v in summary.items() if k != "confusion"}}
    reporter.write(record)
    tqdm.write(reporting.format_scores(record))
    if drawn:
        grid = reporting.write_predictions(reporter.workdir, step, drawn,
                                           config.model.num_classes, config.input.bgr,
                                           names or config.eval.classes)
        reporter.image("predictions", grid, step)
    reporter.learning_curve()
    return summary


def save_best(best: Any, step: int, state: Any, summary: Mapping[str, Any]) -> None:
    """Save ``state`` in the best-manager when its mean IU beats the best kept so far."""
    score = summary["mean_iu"]
    if best is None or not np.isfinite(score):
        return
    kept = checkpoint.best_score(best)
    if kept is None or score > kept:
        checkpoint.save(best, step, state, {"mean_iu": score})


BAR_FORMAT = "{desc} {n_fmt}/{total_fmt} |{bar}| {elapsed} elapsed, ETA {remaining}{postfix}"


def train_loop(config: ml_collections.ConfigDict, state: train_state.TrainState,
               managers: tuple[Any, Any], dropout_key: jax.Array,
               reporter: reporting.Reporter | None, mesh: Mesh, sharding: Any,
               stop: Any = None) -> dict[str, Any]:
    """Steps ``state.step + 1 .. config.train.steps``: log, evaluate, checkpoint on schedule.

    managers: (periodic checkpoints, best by mean IU or None). Losses are checked for NaN
    at every log, eval and checkpoint step (NonFiniteLoss), before anything is saved.
    state lives on ``mesh`` as ``sharding`` says; each step's global batch is made of every
    process's share. reporter: None except on process 0, which alone writes and prints.

    SIGINT or SIGTERM (:mod:`fcnjax.run.interrupts`) while the first step compiles ends the
    process at once (nothing trained, nothing to save); after it, the loop finishes the step
    (and an evaluation under way; one not yet begun is skipped), checks its loss, saves a
    checkpoint of it and raises interrupts.Interrupted. At the last step it just finishes.
    stop: an interrupts.StopRequests the caller entered to cover its start-up too (its
    compilations), or None for one of the loop's own.
    """
    from fcnjax.data import pipeline  # grain: needed to train, not to import train_step
    from fcnjax.run import interrupts

    cfg, start = config.train, int(state.step)
    manager, best = managers
    step_fn = parallel.jit_train_step(
        functools.partial(train_step, extra_inputs=tuple(config.input.extra_inputs),
                          **loss_options(config)), mesh, sharding)
    eval_fn = make_eval_fn(config, mesh, sharding)
    names = pipeline.class_names(config)  # a prepared dataset's own names
    add = jax.jit(lambda a, b: jax.tree.map(jnp.add, a, b))
    eval_data = pipeline.eval_dataset(config.input, config.input.eval_split,
                                      config.eval.batch_size)
    batches = pipeline.train_batches(config.input, parallel.check_batch(cfg.batch_size, mesh),
                                     config.seed, start)
    if start >= cfg.steps:  # nothing left to train: report the restored model, write nothing
        summary, _ = evaluate(eval_fn, weights_for_eval(config, state, "the run"), eval_data)
        if reporter is not None:
            tqdm.write(reporting.format_scores({"step": start,
                                                "split": config.input.eval_split, **summary}))
        return summary

    summary, totals, unchecked, window = {}, None, [], 0
    tick = time.perf_counter()
    stop = interrupts.StopRequests() if stop is None else stop
    stop.start = start  # for the message of a signal while compiling
    with stop, tqdm(
            total=cfg.steps, initial=start, desc="train step", bar_format=BAR_FORMAT,
            dynamic_ncols=True, disable=reporter is None) as bar:
        for step in range(start + 1, cfg.steps + 1):
            batch = parallel.global_batch(next(batches), mesh)
            state, measured = step_fn(state, batch, dropout_key)
            stop.started()  # compiled: a signal now stops after a step, which is saved
            totals = measured if totals is None else add(totals, measured)
            unchecked.append(measured["loss"])
            window += 1
            bar.update()
            last = step == cfg.steps
            logging, evaluating, saving = (step % every == 0 or last for every in
                                           (cfg.log_every, cfg.eval_every, cfg.checkpoint_every))
            stopping = not last and stop.should_stop(sync=logging or evaluating or saving)
            if logging or evaluating or saving or stopping:
                check_finite(unchecked, step - len(unchecked) + 1, state, manager)
                unchecked = []
            if logging:
                record = log_train(reporter, step, totals, window, time.perf_counter() - tick,
                                   cfg.batch_size)
                bar.set_postfix_str(f"loss {record['loss']:.4g}, "
                                    f"{record['images_per_second']:.1f} img/s")
                totals, window, tick = None, 0, time.perf_counter()
            if evaluating and not stopping:
                began = time.perf_counter()
                summary = log_eval(config, reporter, step, eval_fn,
                                   weights_for_eval(config, state, "the run"), eval_data, names)
                save_best(best, step, state, summary)
                tick += time.perf_counter() - began  # images/s: train steps only
                stopping = not last and stop.should_stop()  # a signal during the evaluation
            if saving or stopping:
                checkpoint.save(manager, step, state)
            if stopping:
                checkpoint.wait(manager)
                raise stop.interrupted(step, manager.directory)
    return summary


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str, *,
                       exit_while_compiling: bool = False) -> dict[str, Any]:
    """Train ``config.model`` for ``config.train.steps`` steps, resuming from ``workdir``.

    Logs train measurements every ``log_every`` steps, evaluates the eval split every
    ``eval_every`` steps and at the end (keeping the best state by mean IU in
    ``<workdir>/best`` if ``keep_best``), checkpoints every ``checkpoint_every`` steps and at
    the end. Returns the final evaluation's summary. Raises UnwritableWorkdir,
    checkpoint.CheckpointMismatch (the workdir holds another model's checkpoints) and
    NonFiniteLoss (the loss became NaN; the last good checkpoint stays) before losing anything,
    and ValueError when ``config.train.batch_size`` (the global batch) is not a multiple of
    the devices of the mesh (``config.mesh``). A config that cannot work (ConfigError), or
    data that cannot train it (:mod:`fcnjax.data.checks`), is refused before the workdir
    is made. The workdir holds one run at a time (``run.lock``, :class:`RunLock`) and its
    ``config.json``; a resume with another config is refused (``check_and_save_config``).

    The evaluations (and so ``best``) use the weights ``config.eval.weights`` names: the
    trained ones or their moving average (``optim.ema_decay``).

    Data parallel over ``config.mesh`` (:mod:`fcnjax.run.parallel`); every process of a
    multi-process run calls this, on a workdir all of them see. All of them step, evaluate
    and save checkpoints (orbax writes each from all together); process 0 alone writes
    metrics, TensorBoard events and images and prints.

    SIGINT and SIGTERM stop the run after the step under way, with a checkpoint of it
    (interrupts.Interrupted; :mod:`fcnjax.run.interrupts`). ``exit_while_compiling`` (the command
    line's choice): a signal before the first step has finished ends the process at once,
    as nothing was trained yet; otherwise (notebooks, tests) the stop comes after that step.
    """
    from fcnjax.data import checks  # grain and tfds: needed to train, not to import this

    # a config, data or weight file that cannot work fails here, before any folder is made
    check_config(config)
    inference.check_eval(config)
    optim.check(config.optim, config.train.steps)
    check_weights(config)
    loss_options(config)
    main_process = parallel.is_main_process()
    for note in loss_terms.notes(config) if main_process else ():
        tqdm.write(note)  # what a loss term ignores, said before anything compiles
    sources.chosen_source(config.init)
    parallel.check_batch(config.train.batch_size, parallel.mesh_from_config(config.mesh))
    line = checks.check_data(config)
    if line and main_process:
        tqdm.write(line)
    params = None
    if checkpoint.latest_step(workdir) is None:  # a fresh run: read config.init's weights now
        params = sources.initial_params(config.init, models.build(config.model),
                                        run_keys(config)[0], input_shape(config))
    prepare_workdir(workdir)
    with interrupts.StopRequests(exit_while_compiling=exit_while_compiling) as stop, RunLock(
            workdir, enabled=main_process, note=tqdm.write) as lock:  # one run per workdir
        stop.at_exit(lock.release)  # a signal while compiling may end the process at once
        if main_process:
            check_and_save_config(config, workdir)
        return run_in_workdir(with_class_weights(config), workdir, stop, params)


def check_and_save_config(config: ml_collections.ConfigDict, workdir: str) -> None:
    """Refuse to resume ``workdir``'s run with a config that differs from the one it saved
    in more than steps and cadences (:func:`fcnjax.run.workdir.check_resume`; the config's
    ``train.allow_config_change`` permits it), then save this one as its ``config.json``."""
    if checkpoint.latest_step(workdir) is not None:  # no checkpoint: it starts afresh
        changes = check_resume(workdir, config, config.train.allow_config_change)
        if changes:
            tqdm.write(f"resuming with config changes: {describe_changes(changes)}")
    save_config(workdir, config)


def run_keys(config: ml_collections.ConfigDict) -> tuple[jax.Array, jax.Array]:
    """(init key, dropout key) of ``config.seed``."""
    init_key, dropout_key = jax.random.split(
        jax.random.key(config.seed, impl=config.prng_impl))
    return init_key, dropout_key


def run_in_workdir(config: ml_collections.ConfigDict, workdir: str,
                   stop: interrupts.StopRequests | None = None, params: Any = None
                   ) -> dict[str, Any]:
    """``train_and_evaluate`` in a checked, locked workdir: build or restore the state,
    then the train loop; started checkpoint saves reach the disk, on a crash too.
    params: ``config.init``'s weights, read before the workdir (None: none, or resuming)."""
    mesh = parallel.mesh_from_config(config.mesh)
    init_key, dropout_key = run_keys(config)
    model = models.build(config.model)
    # one example: the params' shapes and values do not depend on the batch size
    image_shape = input_shape(config)
    resuming = checkpoint.latest_step(workdir) is not None
    state = create_train_state(config, model, init_key, image_shape,
                               pretrained=not resuming and params is None, params=params)
    sharding = state_sharding(config, state, mesh)
    state = parallel.shard_state(state, sharding)
    manager = checkpoint.make_manager(workdir, max_to_keep=config.train.max_to_keep)
    best = checkpoint.make_best_manager(workdir) if config.train.keep_best else None
    main_process = parallel.is_main_process()
    try:
        state = checkpoint.restore_latest(manager, state)  # onto the template's shardings
        if resuming and not int(state.step):  # every checkpoint was damaged: start afresh
            state = parallel.shard_state(
                create_train_state(config, model, init_key, image_shape), sharding)
        if main_process:
            dropped = reporting.truncate_metrics(workdir, int(state.step))
            if state.step:
                tqdm.write(f"resuming from the checkpoint of step {int(state.step)} in "
                           f"{workdir}" + (f" ({dropped} later records dropped from "
                                           "metrics.jsonl)" if dropped else ""))
        with reporting.Reporter(workdir) if main_process else contextlib.nullcontext() as out:
            return train_loop(config, state, (manager, best), dropout_key, out, mesh, sharding,
                              stop)
    finally:  # on a crash too: let started saves reach the disk
        for m in (manager, best):
            if m is not None:
                checkpoint.wait(m)
                m.close()


def main(argv: list[str] | None = None) -> None:
    """Command line: ``--config`` (a config file, fields overridable) and ``--workdir``.

    A user's mistake (a missing config file, a misspelt ``--config.x.y``, a config or data
    that cannot work, an unwritable workdir, another model's checkpoint, a NaN loss) ends the
    run with a one-line error and exit status 1 (:mod:`fcnjax.run.errors`; ``--debug`` shows the
    traceback).
    """
    from absl import flags, logging
    from ml_collections import config_flags

    config = config_flags.DEFINE_config_file("config", None, "training config file",
                                             lock_config=True)
    workdir = flags.DEFINE_string("workdir", None, "folder for checkpoints, metrics, images")
    flags.mark_flags_as_required(["config", "workdir"])

    def run(args: list[str]) -> None:
        if len(args) > 1:
            raise errors.ConfigError(f"unexpected arguments: {args[1:]}")
        # multi-host: join the other processes before any JAX computation (no-op otherwise)
        parallel.initialize(auto=config.value.mesh.cluster_detect)
        compile_cache.enable(config.value.get("compile_cache", compile_cache.AUTO))
        if not flags.FLAGS["verbosity"].present:  # orbax logs every save at INFO
            logging.set_verbosity(logging.WARNING)
        train_and_evaluate(config.value, workdir.value, exit_while_compiling=True)

    errors.run_app("fcnjax.train", run, argv, config)


if __name__ == "__main__":
    main()
