"""Host throughput of U-Net's augmentation and border weights on a 572x572 ISBI-like tile.

    python -m benchmarks.augment_time                       # synthetic tile, one CPU thread
    python -m benchmarks.augment_time --label /data/isbi2012/train/label/0.png

Times ``fcnjax.data.elastic.augment`` (3x3 elastic grid, std 10 px, rotation, shift,
mirrors, grey values) on an image + label + weight example, for cubic (order 3) and bilinear
(order 1) resampling, and ``fcnjax.data.weight_map.border_weights`` on one label; prints the
median seconds and examples per second for one thread. The input pipeline runs
``config.input.read_threads`` such threads per worker. The last row is the same
augmentation on JAX's default device (``config.input.augment_on = "device"``, bilinear):
:mod:`fcnjax.data.device_elastic` on a batch of ``--batch`` examples.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time

if __package__ in (None, ""):  # run as a file: make the repository root importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import numpy as np

from fcnjax.data import weight_map
from fcnjax.data import elastic


def synthetic_label(size: int, rng: np.random.Generator) -> np.ndarray:
    """Cells (1) separated by thin membranes (0): a Voronoi-like tiling of random seeds."""
    seeds = rng.uniform(0, size, (150, 2))
    yy, xx = np.mgrid[:size, :size]
    d = np.hypot(yy[..., None] - seeds[:, 0], xx[..., None] - seeds[:, 1])
    two = np.sort(d, -1)[..., :2]
    return (two[..., 1] - two[..., 0] > 2.0).astype(np.int32)


def median_seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=572)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--batch", type=int, default=8, help="examples per device call")
    parser.add_argument("--label", default="", help="a label PNG (255 cell, 0 membrane)")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    if args.label:
        from PIL import Image
        label = (np.asarray(Image.open(args.label)) > 127).astype(np.int32)
    else:
        label = synthetic_label(args.size, rng)
    size = label.shape
    rows = []
    start = time.perf_counter()
    weight = weight_map.border_weights(label)
    first = time.perf_counter() - start
    seconds = median_seconds(lambda: weight_map.border_weights(label), max(args.repeats // 4, 3))
    rows.append({"op": "border_weights", "shape": list(size), "seconds": seconds,
                 "per_second": 1 / seconds, "cells": weight_map.cells(label)[1],
                 "first_call_seconds": first})
    example = {"image": rng.normal(size=(*size, 1)).astype(np.float32), "label": label,
               "weight": weight}
    for order in (3, 1):
        seconds = median_seconds(lambda: elastic.augment(
            example, rng, max_shift=10.0, contrast=0.1, brightness=0.1, order=order),
            args.repeats)
        rows.append({"op": f"elastic.augment order={order}", "shape": list(size),
                     "seconds": seconds, "per_second": 1 / seconds})
    rows.append(device_row(example, args.batch, args.repeats))
    for row in rows:
        print(json.dumps(row))


def device_row(example: dict, batch: int, repeats: int) -> dict:
    """The same augmentation (bilinear) by ``fcnjax.data.device_elastic`` on JAX's default
    device: a batch of ``batch`` examples with their draws, jitted as the train step does."""
    import jax

    from fcnjax.data import device_elastic

    rng = np.random.default_rng(1)
    draws = [elastic.draw(rng, max_shift=10.0, contrast=0.1, brightness=0.1)
             for _ in range(batch)]
    stacked = {k: np.stack([example[k]] * batch) for k in example}
    stacked.update({k: np.stack([d[k] for d in draws]).astype(
        np.float32 if draws[0][k].dtype.kind == "f" else draws[0][k].dtype) for k in draws[0]})
    stacked = jax.device_put(stacked)
    warp = jax.jit(device_elastic.apply_warps)
    jax.block_until_ready(warp(stacked))
    seconds = median_seconds(lambda: jax.block_until_ready(warp(stacked)), repeats)
    return {"op": f"device_elastic.apply_warps order=1 batch={batch}",
            "device": str(jax.devices()[0].device_kind), "shape": list(example["label"].shape),
            "seconds": seconds, "per_second": batch / seconds}


if __name__ == "__main__":
    main()
