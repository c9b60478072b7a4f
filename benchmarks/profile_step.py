"""Where a train step spends its time: a jax.profiler trace summed by kernel, and A/B variants.

    python benchmarks/profile_step.py                          # fcn8s bf16 8x500x500
    python benchmarks/profile_step.py --variants base,conv_pad_inside --top 30
    python benchmarks/profile_step.py --quick                  # CPU smoke run

For each variant the step (``fcnjax.train.train_step``, the optimizer of
``benchmarks.train_step``) is compiled and timed (median of ``--repeats``), then a few steps
of the first variant are traced with ``jax.profiler`` and the device's kernels are summed
by name: the top ``--top`` lines say where the milliseconds go. Variants swap one piece of
the library for a candidate replacement, for this process only:

- ``base``: the library as it is.
- ``conv_pad_inside``: the first convolution's 100-pixel padding left inside the
  convolution, as before optimisation 5 of BENCHMARKS.md's log (its weight gradient was a
  52 ms cuDNN call on the H200).
- ``conv_window_padding``: every padded convolution pads inside its window again, as
  before optimisation 8 (``layers.PaddedApartConv`` pads its input apart; on the CPU its
  weight gradient was 1.4-1.8x faster). With ``conv_pad_inside`` too, the first layers are
  exactly as before optimisation 5.
- ``pool_reduce_window``: every max pool as XLA's reduce-window, whose gradient is a
  select-and-scatter (the library uses a reshape + max where windows tile the map).
- ``confusion_onehot``: the step's confusion matrix as a one-hot matrix product (bf16
  operands, float32 sums: exact below 2^24 pixels per call) instead of a scatter-add of
  every pixel into C*C counters.
- ``no_confusion``: the confusion matrix replaced by zeros (diagnostic: what the metric
  costs inside the step).

Join variants with ``+`` to apply several at once (``conv_pad_inside+pool_reduce_window``
is the step as it was before both GPU fixes).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import glob
import gzip
import json
import os
import pathlib
import sys
import tempfile
from typing import Any, Iterator

if __package__ in (None, ""):  # run as a file: make the repository root importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import jax
import jax.numpy as jnp
from flax.training import train_state

from benchmarks import common
from benchmarks.train_step import OPTIM, make_batch
import flax.linen as nn

from fcnjax import metrics, models, optim, train
from fcnjax.models import coord_map
from fcnjax.models import layers


def reduce_window_max_pool(x: jax.Array, kernel: int, stride: int, pad: int = 0) -> jax.Array:
    """``layers.max_pool`` always through ``nn.max_pool`` (reduce-window), ceil-mode pads."""
    pads = [(pad, (coord_map.pool_size(n, kernel, stride, pad) - 1) * stride + kernel - n - pad)
            for n in x.shape[1:3]]
    return nn.max_pool(x, (kernel, kernel), (stride, stride), padding=pads)


def padding_inside(kernel: int, pad: int) -> tuple[int, int]:
    return 0, pad


def window_padded_conv(*args, pad_apart: int = 0, padding: Any = None, **kwargs) -> nn.Conv:
    """``layers.PaddedApartConv``'s stand-in: the padding back in the convolution's window."""
    del padding
    return nn.Conv(*args, padding=((pad_apart, pad_apart), (pad_apart, pad_apart)), **kwargs)


def onehot_confusion(labels, predictions, num_classes, ignore=metrics.IGNORE_LABEL,
                     where=None):
    """``metrics.confusion_matrix`` (without ``where``) as one (C, P) x (P, C) product."""
    valid = (labels != ignore) & (labels >= 0) & (labels < num_classes)
    truth = jax.nn.one_hot(jnp.where(valid, labels, -1).reshape(-1), num_classes,
                           dtype=jnp.bfloat16)
    predicted = jax.nn.one_hot(predictions.reshape(-1), num_classes, dtype=jnp.bfloat16)
    counts = jnp.einsum("pi,pj->ij", truth, predicted, preferred_element_type=jnp.float32)
    return jnp.round(counts).astype(jnp.int32)


def zero_confusion(labels, predictions, num_classes, *args, **kwargs):
    return jnp.zeros((num_classes, num_classes), jnp.int32)


VARIANTS = {"base": {}, "conv_pad_inside": {(layers, "split_padding"): padding_inside},
            "conv_window_padding": {(layers, "PaddedApartConv"): window_padded_conv},
            "pool_reduce_window": {(layers, "max_pool"): reduce_window_max_pool},
            "confusion_onehot": {(metrics, "confusion_matrix"): onehot_confusion},
            "no_confusion": {(metrics, "confusion_matrix"): zero_confusion}}


@contextlib.contextmanager
def variant(name: str) -> Iterator[None]:
    """Patch the variant's replacements in for the duration of the block."""
    patches = {k: v for part in name.split("+") for k, v in VARIANTS[part].items()}
    saved = {key: getattr(*key) for key in patches}
    try:
        for (module, attr), fn in patches.items():
            setattr(module, attr, fn)
        yield
    finally:
        for (module, attr), fn in saved.items():
            setattr(module, attr, fn)


def build_step(args: argparse.Namespace, key: jax.Array):
    """Compiled train step, its state and batch, and the compile time (inside a variant)."""
    model = models.build({"name": args.model, "dtype": args.dtype})
    images, labels, shapes, _ = make_batch(args.model, model, args, key)
    state = train_state.TrainState.create(
        apply_fn=model.apply, params=common.random_params(shapes, args.seed),
        tx=optim.make_optimizer(OPTIM, 1000))
    batch = {"image": images, "label": labels}
    step, compile_s = common.compile_timed(train.train_step, state, batch, key, donate=(0,))
    return step, state, batch, compile_s


def kernel_table(trace_dir: str, steps: int) -> list[tuple[str, int, float]]:
    """(name, calls per step, ms per step) of the device's kernels in a perfetto trace,
    most expensive first. Without device lanes (CPU) the XLA ops on host threads count."""
    path, = glob.glob(os.path.join(trace_dir, "**", "*perfetto_trace.json.gz"), recursive=True)
    with gzip.open(path, "rt") as f:
        events = json.load(f)
    events = events["traceEvents"] if isinstance(events, dict) else events
    lanes = {e["pid"]: e["args"].get("name", "") for e in events
             if e.get("ph") == "M" and e.get("name") == "process_name"}
    device = {pid for pid, name in lanes.items() if "/device:" in name}
    total, calls = collections.Counter(), collections.Counter()
    for e in events:
        if e.get("ph") != "X" or "dur" not in e:
            continue
        op = e.get("args", {}).get("hlo_op")
        if device and e.get("pid") not in device or not device and op is None:
            continue
        name = f"{op}: {e['name']}" if op and op != e["name"] else e["name"]
        total[name] += e["dur"]
        calls[name] += 1
    return [(name, round(calls[name] / steps), us / 1e3 / steps)
            for name, us in total.most_common()]


def profile(step, state, batch, key, steps: int) -> tuple[Any, list[tuple[str, int, float]]]:
    with tempfile.TemporaryDirectory() as trace_dir:
        with jax.profiler.trace(trace_dir, create_perfetto_trace=True):
            for _ in range(steps):
                state, measured = step(state, batch, key)
            jax.block_until_ready(measured)
        return state, kernel_table(trace_dir, steps)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="fcn8s", choices=("fcn8s", "unet"))
    p.add_argument("--dtype", default="bfloat16", choices=tuple(common.DTYPES))
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--size", type=int, default=500, help="FCN input side")
    p.add_argument("--unet-size", type=int, default=572)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--trace-steps", type=int, default=3)
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--variants", default="base,conv_pad_inside,pool_reduce_window,"
                   "conv_pad_inside+pool_reduce_window")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="write the timings and kernel table (JSON)")
    p.add_argument("--hlo", default=None, help="write the first variant's optimized HLO here")
    p.add_argument("--quick", action="store_true", help="CPU smoke run: 1x64x64, 2 repeats")
    args = p.parse_args(argv)
    if args.quick:
        args.batch, args.size, args.unet_size, args.repeats, args.trace_steps = 1, 64, 188, 2, 1
    args.variants = [v for v in args.variants.split(",") if v]
    for v in args.variants:
        for part in v.split("+"):
            if part not in VARIANTS:
                raise SystemExit(f"--variants: {part!r} is not one of {sorted(VARIANTS)}")
    unet = common.unet_valid_size(args.unet_size)
    args.sides = {"fcn8s": (args.size, args.size), "unet": (unet, unet)}
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    key = jax.random.key(args.seed)
    header = common.device_header()
    common.log(f"# profile {args.model} {args.dtype} b{args.batch} | {header['device']} | "
               f"jax {jax.__version__}")
    result: dict[str, Any] = {**header, "model": args.model, "dtype": args.dtype,
                              "batch": args.batch, "variants": {}}
    for i, name in enumerate(args.variants):
        with variant(name):
            step, state, batch, compile_s = build_step(args, key)
            holder = {"state": state}

            def call():
                holder["state"], measured = step(holder["state"], batch, key)
                return measured["loss"]

            ms = common.median_ms(common.time_jax(call, 2, args.repeats))
            result["variants"][name] = {"ms": ms, "compile_s": compile_s,
                                        "img_s": 1e3 * args.batch / ms}
            common.log(f"  {name:14s} compile {compile_s:6.2f} s  {ms:8.2f} ms/step  "
                       f"{1e3 * args.batch / ms:7.1f} img/s")
            if i == 0 and args.hlo:
                with open(args.hlo, "w") as f:
                    f.write(step.as_text())
            if i == 0:
                holder["state"], table = profile(step, holder["state"], batch, key,
                                                 args.trace_steps)
                result["kernels"] = table
            del step, holder, state
    table = result.get("kernels", [])
    traced = sum(ms for _, _, ms in table)
    print(f"kernels of '{args.variants[0]}', per step (sum {traced:.2f} ms):")
    for name, calls, ms in table[:args.top]:
        print(f"  {ms:8.3f} ms  {100 * ms / max(traced, 1e-9):5.1f}%  x{calls:<4d} {name[:110]}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)
    return result


if __name__ == "__main__":
    main()
