"""Ten train steps of today's configs (shrunk), their losses and final parameters: run it in
two trees and compare, to show a change leaves training bit for bit as it was.

    taskset -c 0 python scripts/ten_steps.py /tmp/before.npz   # in the tree before the change
    taskset -c 0 python scripts/ten_steps.py /tmp/after.npz    # in the tree after it
    python scripts/ten_steps.py --compare /tmp/before.npz /tmp/after.npz

Run both on the same number of cores (one, with ``taskset``): XLA:CPU splits its work
between threads, and another split sums in another order (on 2 cores, 55 of the 98 arrays
came out different from a 1-core run of the same tree).

Three configs, each with its features kept and its size shrunk to run in seconds on a CPU:
configs/sample.py (U-Net, mean loss, cosine SGD), configs/unet_isbi.py (border weight map
as the loss weight) and configs/fcn_alexnet.py (class weights, summed loss, loss sampling
with keep_prob 0.5, gradient accumulation over 2 calls). Each runs fcnjax's own train step
(``fcnjax.train.train_step`` with the config's loss options) on seeded random batches.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys

if __package__ in (None, ""):  # run as a file: make the repository root importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax
import numpy as np


def run(config, channels: int, size: int, classes: int = 2, weighted: bool = False
        ) -> dict[str, np.ndarray]:
    """Losses of 10 steps of batch 2 and the parameters after them, by name."""
    from fcnjax import models, objective, train
    from fcnjax.run.state import create_train_state

    model = models.build(config.model)
    state = create_train_state(config, model, jax.random.key(0, impl="rbg"),
                               (2, size, size, channels))
    step = jax.jit(functools.partial(train.train_step, **objective.loss_options(config)))
    rng, key, out = np.random.default_rng(0), jax.random.key(1, impl="rbg"), {}
    for i in range(10):
        label = rng.integers(0, classes, (2, size, size)).astype(np.int32)
        label[:, :2] = 255  # two void rows
        batch = {"image": rng.normal(size=(2, size, size, channels)).astype(np.float32),
                 "label": label}
        if weighted:
            batch["weight"] = rng.uniform(0.5, 3, (2, size, size)).astype(np.float32)
        state, measured = step(state, batch, key)
        out[f"loss{i}"] = np.asarray(measured["loss"])
    for path, leaf in jax.tree_util.tree_leaves_with_path(state.params):
        out[jax.tree_util.keystr(path)] = np.asarray(leaf)
    return out


def record(path: str) -> None:
    from configs import fcn_alexnet, sample, unet_isbi

    arrays = {}
    config = sample.get_config()
    config.model.update(features=4, levels=2)
    config.train.steps = 10
    arrays.update({f"sample/{k}": v for k, v in run(config, 1, 32).items()})
    config = unet_isbi.get_config()
    config.model.update(features=4, levels=2, padding="same")
    config.train.steps, config.input.crop_size = 10, (32, 32)
    arrays.update({f"unet_isbi/{k}": v for k, v in run(config, 1, 32, weighted=True).items()})
    config = fcn_alexnet.get_config()
    config.train.steps, config.model.num_classes = 10, 3
    config.loss.class_weights, config.loss.reduction = (0.5, 1.0, 2.0), "sum"
    config.optim.learning_rate, config.loss.keep_prob, config.optim.accumulate = 1e-6, 0.5, 2
    config.input.crop_size = (32, 32)
    arrays.update({f"fcn_alexnet/{k}": v for k, v in run(config, 3, 32, classes=3).items()})
    np.savez(path, **arrays)
    print(f"wrote {path}: {len(arrays)} arrays")


def compare(before: str, after: str) -> int:
    a, b = np.load(before), np.load(after)
    if set(a.files) != set(b.files):
        print(f"different names: {sorted(set(a.files) ^ set(b.files))[:5]}")
        return 1
    differ = [k for k in a.files if not np.array_equal(a[k], b[k])]
    print(f"{len(a.files)} arrays, {len(differ)} differ" + (f": {differ[:5]}" if differ else ""))
    return int(bool(differ))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("paths", nargs="+", help="OUT.npz, or with --compare BEFORE AFTER")
    p.add_argument("--compare", action="store_true")
    args = p.parse_args(argv)
    if args.compare:
        return compare(*args.paths)
    record(args.paths[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
