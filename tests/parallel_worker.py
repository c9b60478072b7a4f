"""Subprocess side of tests/test_parallel.py: runs where JAX sees several (forced) CPU devices.

    python tests/parallel_worker.py equivalence OUT.npz      # 8 devices vs 1 device
    python tests/parallel_worker.py checkpoints WORKDIR      # restore 1-device, write 8-device
    python tests/parallel_worker.py distributed WORKDIR PORT PROCESS_ID STOP
    python tests/parallel_worker.py train WORKDIR            # train_and_evaluate, 4 devices

The device count comes from ``XLA_FLAGS=--xla_force_host_platform_device_count=N``, set by
the test before this interpreter starts (JAX reads it once, at backend start). The helpers
above the command line are shared with the test, so both sides build the same tiny model,
state and batches.
"""

from __future__ import annotations

import functools
import json
import os
import sys

if __name__ == "__main__":  # run as a file: make the repository root importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax
import numpy as np

from configs import sample
from fcnjax import evaluate, models, objective, train
from fcnjax.data import pipeline
from fcnjax.run import checkpoint, parallel
from fcnjax.run.state import create_train_state

GLOBAL_BATCH = 8
SIZE = 32
IGNORE = 255


def tiny_state(norm: str = "none"):
    """A 1-level, 4-channel "same" U-Net train state on 32x32 grey crops (rbg keys)."""
    config = sample.get_config()
    config.model.update(features=4, levels=1, padding="same", norm=norm)
    config.train.steps = 10
    model = models.build(config.model)
    return create_train_state(config, model, jax.random.key(0, impl="rbg"),
                              (GLOBAL_BATCH, SIZE, SIZE, 1), pretrained=False)


def step_key():
    return jax.random.key(1, impl="rbg")


def batch_of_step(step: int, size: int = GLOBAL_BATCH) -> dict[str, np.ndarray]:
    """The global batch of train step ``step``: random images, 2 classes, a void band."""
    rng = np.random.default_rng(step)
    label = rng.integers(0, 2, (size, SIZE, SIZE)).astype(np.int32)
    label[:, :3] = IGNORE
    return {"image": rng.normal(size=(size, SIZE, SIZE, 1)).astype(np.float32),
            "label": label}


def flat(tree) -> dict[str, np.ndarray]:
    """``{"a/b/kernel": array}`` of a pytree, for np.savez."""
    leaves = jax.tree_util.tree_leaves_with_path(tree)
    return {jax.tree_util.keystr(path, simple=True, separator="/"): np.asarray(leaf)
            for path, leaf in leaves}


TRAIN_STEP = functools.partial(train.train_step, reduction="mean", ignore_label=IGNORE)
EVAL_STEP = functools.partial(objective.eval_step, ignore_label=IGNORE)


def run_equivalence(out: str) -> None:
    """One train step and one eval batch on meshes of 1, 8 and 8 devices (params sharded)."""
    start = jax.tree.map(np.asarray, tiny_state())
    batch, eval_batch = batch_of_step(1), batch_of_step(100, size=6)
    results = {}
    for name, devices, shard in [("one", 1, False), ("eight", 8, False),
                                 ("eight_sharded", 8, True)]:
        mesh = parallel.make_mesh(devices)
        sharding = parallel.state_sharding(start, mesh, shard_params=shard, min_shard_size=0)
        state = parallel.shard_state(start, sharding)
        step_fn = parallel.jit_train_step(TRAIN_STEP, mesh, sharding)
        state, measured = step_fn(state, parallel.global_batch(batch, mesh), step_key())
        eval_fn = parallel.jit_eval_step(EVAL_STEP, mesh, sharding)
        padded = parallel.pad_batch(eval_batch, devices, IGNORE)
        scored, predictions = eval_fn(state, parallel.global_batch(padded, mesh,
                                                                   per_process=False))
        results.update({f"{name}/params/{k}": v for k, v in flat(state.params).items()})
        results.update({f"{name}/train/{k}": v for k, v in flat(measured).items()})
        results.update({f"{name}/eval/{k}": v for k, v in flat(scored).items()})
        results[f"{name}/predictions"] = np.asarray(predictions)[:len(eval_batch["label"])]
        results[f"{name}/sharded"] = np.array(
            [not leaf.sharding.is_fully_replicated for leaf in jax.tree.leaves(state.params)])
    np.savez(out, **results)
    for bad in (lambda: parallel.check_batch(6, parallel.make_mesh(8)),
                lambda: parallel.global_batch(eval_batch, parallel.make_mesh(8))):
        try:
            bad()
        except ValueError:
            continue
        raise AssertionError("a batch of 6 was accepted by 8 devices")


def run_batchnorm(out: str) -> None:
    """One train step of a BatchNorm U-Net on 1 device, on 8 (the batch split, one example
    each) and on one device's example alone: the running statistics and params of each."""
    start = jax.tree.map(np.asarray, tiny_state("batch"))
    batch = batch_of_step(1)
    results = {}
    for name, devices, rows in [("one", 1, GLOBAL_BATCH), ("eight", 8, GLOBAL_BATCH),
                                ("share", 1, 1)]:
        mesh = parallel.make_mesh(devices)
        sharding = parallel.state_sharding(start, mesh)
        step_fn = parallel.jit_train_step(TRAIN_STEP, mesh, sharding)
        share = {k: v[:rows] for k, v in batch.items()}
        state, _ = step_fn(parallel.shard_state(start, sharding),
                           parallel.global_batch(share, mesh), step_key())
        results.update({f"{name}/stats/{k}": v for k, v in flat(state.batch_stats).items()})
        results.update({f"{name}/params/{k}": v for k, v in flat(state.params).items()})
    np.savez(out, **results)


def run_checkpoints(workdir: str) -> None:
    """Restore ``<workdir>/one`` (written on 1 device) onto 8 devices, params sharded; check
    it holds ``one.npz``; write twice the params as step 2 of ``<workdir>/eight``."""
    template = tiny_state()
    mesh = parallel.make_mesh(8)
    sharding = parallel.state_sharding(template, mesh, shard_params=True, min_shard_size=0)
    target = parallel.shard_state(template, sharding)
    with checkpoint.make_manager(os.path.join(workdir, "one")) as manager:
        state = checkpoint.restore_latest(manager, target)
    expected = np.load(os.path.join(workdir, "one.npz"))
    for key, value in flat(state.params).items():
        np.testing.assert_array_equal(value, expected[key])
    kernels = [x for x in jax.tree.leaves(state.params) if x.ndim == 4]
    assert all(len(x.sharding.device_set) == 8 for x in kernels)
    assert any(not x.sharding.is_fully_replicated for x in kernels), "nothing sharded"
    doubled = state.replace(step=state.step + 1,
                            params=jax.tree.map(lambda x: 2 * x, state.params))
    with checkpoint.make_manager(os.path.join(workdir, "eight")) as manager:
        checkpoint.save(manager, 2, doubled)
        checkpoint.wait(manager)


def run_distributed(workdir: str, port: int, process_id: int, stop: int) -> None:
    """One of two processes: resume from ``workdir`` (if a checkpoint is there), train to
    step ``stop`` on the 2 x 2 device mesh with params sharded, checkpoint; process 0 writes
    the final params to ``<workdir>/params_<stop>.npz``."""
    from jax.experimental import multihost_utils

    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    assert parallel.initialize(coordinator_address=f"localhost:{port}", num_processes=2,
                               process_id=process_id)
    assert jax.process_count() == 2 and jax.device_count() == 4
    mesh = parallel.make_mesh()
    template = tiny_state()
    sharding = parallel.state_sharding(template, mesh, shard_params=True, min_shard_size=0)
    manager = checkpoint.make_manager(workdir)
    state = checkpoint.restore_latest(manager, parallel.shard_state(template, sharding))
    step_fn = parallel.jit_train_step(TRAIN_STEP, mesh, sharding)
    per_process = parallel.check_batch(GLOBAL_BATCH, mesh)
    rows = slice(process_id * per_process, (process_id + 1) * per_process)
    for step in range(int(state.step) + 1, stop + 1):
        local = {k: v[rows] for k, v in batch_of_step(step).items()}
        state, measured = step_fn(state, parallel.global_batch(local, mesh), step_key())
        assert np.isfinite(float(measured["loss"]))  # replicated: readable on every process
    checkpoint.save(manager, stop, state)
    checkpoint.wait(manager)
    manager.close()
    params = multihost_utils.process_allgather(state.params, tiled=True)
    if parallel.is_main_process():
        np.savez(os.path.join(workdir, f"params_{stop}.npz"), **flat(params))


def train_config():
    """The shipped sample shrunk: a 2-level, 4-channel U-Net, 32x32 crops, global batch 4
    (one example per device on 4), 3 steps, a checkpoint each step, eval at 2 and 3 (eval
    batches of 1: padded on several devices)."""
    config = sample.get_config()
    config.model.update(features=4, levels=2)
    config.train.update(steps=3, batch_size=4, log_every=1, eval_every=2, checkpoint_every=1)
    config.input.crop_size = (32, 32)
    return config


def crashing(batches_fn, steps: int):
    """``batches_fn`` (``pipeline.train_batches``) whose batches run out with an error after
    ``steps`` of them: a simulated crash."""
    def batches(*args, **kwargs):
        iterator = batches_fn(*args, **kwargs)
        for _ in range(steps):
            yield next(iterator)
        raise RuntimeError("simulated crash")

    return batches


def run_train(workdir: str) -> None:
    """``train_and_evaluate`` on every device: straight to step 3 in ``<workdir>/straight``;
    in ``<workdir>/resumed`` crashed after step 2 and rerun; the straight run's checkpoint
    scored by ``evaluate``; a batch that does not split refused. Summaries go to
    ``<workdir>/summaries.json``."""
    config = train_config()
    summaries = {"devices": jax.device_count(),
                 "straight": train.train_and_evaluate(config, os.path.join(workdir, "straight"))}
    original = pipeline.train_batches
    pipeline.train_batches = crashing(original, 2)
    try:
        train.train_and_evaluate(config, os.path.join(workdir, "resumed"))
    except RuntimeError as e:
        assert "simulated crash" in str(e), e
    finally:
        pipeline.train_batches = original
    summaries["crashed_at"] = checkpoint.latest_step(os.path.join(workdir, "resumed"))
    summaries["resumed"] = train.train_and_evaluate(config, os.path.join(workdir, "resumed"))
    summaries["scored"] = evaluate.evaluate_checkpoint(config, os.path.join(workdir, "straight"))
    config.train.batch_size = jax.device_count() + 1
    try:
        train.train_and_evaluate(config, os.path.join(workdir, "bad_batch"))
    except ValueError as e:
        summaries["bad_batch"] = str(e)
    with open(os.path.join(workdir, "summaries.json"), "w") as f:
        json.dump(summaries, f)


if __name__ == "__main__":
    mode, *args = sys.argv[1:]
    if mode == "equivalence":
        run_equivalence(*args)
    elif mode == "batchnorm":
        run_batchnorm(*args)
    elif mode == "checkpoints":
        run_checkpoints(*args)
    elif mode == "distributed":
        run_distributed(args[0], int(args[1]), int(args[2]), int(args[3]))
    elif mode == "train":  # three runs of one program: compile it once
        jax.config.update("jax_compilation_cache_dir", os.path.join(args[0], "xla_cache"))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
        run_train(*args)
    else:
        raise SystemExit(f"unknown mode {mode!r}")
