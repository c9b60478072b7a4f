"""Train-step memory under each ``model.remat`` policy, from XLA's compiled memory analysis.

    python benchmarks/memory.py                       # FCN-8s 8x500x500, U-Net 8x572x572
    python benchmarks/memory.py --json --out memory.jsonl

For each model and policy the script compiles the project's own train step
(``fcnjax.train.train_step`` with the config's loss options, through
``parallel.jit_train_step`` on a one-device mesh, the state donated as in training) and
reads ``compiled.memory_analysis()``:

- ``argument``: the inputs, i.e. the train state (params, optimizer state) and the batch;
- ``output``: the new state and the step's measurements;
- ``alias``: the outputs written over donated inputs (the new state over the old);
- ``temp``: XLA's scratch buffers, where the activations kept for the backward pass live:
  the part that rematerialisation shrinks.

``total = argument + output - alias + temp`` (a donated state is counted once) is the
figure reported and the one compared with a budget. It is the program's own buffers, not
a device's whole footprint (no framework overhead, no allocator fragmentation), and it is
the compiler's plan for the backend it runs on: the GPU compiler fuses and schedules
differently, so GPU figures differ from the CPU's.

XLA:CPU (jax 0.10.2) undoes rematerialisation: its compiled step has the same
convolutions and the same temp bytes under every policy (the recomputation is merged back
into the forward pass). So each row also gives ``residuals``: the bytes JAX's autodiff
keeps from the forward pass for the backward pass of the step's loss (the vjp's
residuals, params and batch included), computed from shapes alone before any compiler
runs. That is what ``remat`` shrinks; a backend that keeps the recomputation saves about
the difference (XLA:GPU is expected to keep it, as it keeps optimisation barriers; not yet
measured on a GPU).

Each row also gives the largest batch whose total fits each ``--budgets`` entry (GB = 10^9
bytes), found by compiling only: the total is close to affine in the batch, so the search
starts from the line through batch 1 and ``--batch`` and bisects from there. And the step
time on this machine (``--time_batch`` at ``--time_fcn_size`` / ``--time_unet_size``,
smaller than the table's sizes so that a CPU can run it; median of ``--repeats``).
Models: ``fcn8s`` (configs/fcn8s.py) and ``unet`` (configs/unet_isbi.py, the paper's
valid 572 -> 388 net with its border-weighted loss).
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import time
from typing import Any, Callable

if __package__ in (None, ""):  # `python benchmarks/memory.py` from the repository root
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import common
from configs import fcn8s as fcn8s_config
from configs import unet_isbi as unet_config
from fcnjax import models, objective, train
from fcnjax.models import remat
from fcnjax.models.norm import model_variables
from fcnjax.run import parallel
from fcnjax.run import state as run_state

CONFIGS = {"fcn8s": fcn8s_config, "unet": unet_config}
"""The config file each model's step is built from."""

GB = 1e9

COLUMNS = [common.Column("model", "model"), common.Column("remat", "remat"),
           common.Column("size", "batch x size"),
           common.Column("argument_gb", "args GB", "{:.2f}"),
           common.Column("temp_gb", "temp GB", "{:.2f}"),
           common.Column("total_gb", "total GB", "{:.2f}"),
           common.Column("residuals_gb", "residuals GB", "{:.2f}"),
           common.Column("step_ms", "step ms", "{:.0f}"),
           common.Column("time_size", "timed at"),
           common.Column("max_batch", "largest batch (budget GB: batch)")]


def model_config(name: str, policy: str, unet_features: int = 0, unet_levels: int = 0) -> Any:
    """The config of ``name`` with ``model.remat = policy`` (and U-Net's first-level
    channels and levels overridden when given, for smoke runs)."""
    config = CONFIGS[name].get_config()
    config.model.remat = remat.check(policy)
    if name == "unet":
        config.model.features = unet_features or config.model.features
        config.model.levels = unet_levels or config.model.levels
    return config


def unet_side(config: Any, at_least: int) -> int:
    """The smallest side from ``at_least`` up that the config's valid U-Net takes."""
    return common.unet_valid_size(at_least, models.build(config.model).geometry())


def abstract_state(config: Any) -> Any:
    """The train state of ``config``'s model as shapes (nothing is initialised)."""
    model = models.build(config.model)
    key = jax.random.key(config.seed, impl=config.prng_impl)
    return jax.eval_shape(lambda k: run_state.create_train_state(
        config, model, k, run_state.input_shape(config), pretrained=False), key)


def batch_specs(config: Any, batch: int, size: tuple[int, int]) -> dict[str, Any]:
    """Shapes of a train batch: image, label and (U-Net's border weights) weight."""
    channels = run_state.input_shape(config)[-1]
    specs = {"image": jax.ShapeDtypeStruct((batch, *size, channels), jnp.float32),
             "label": jax.ShapeDtypeStruct((batch, *size), jnp.int32)}
    if config.input.get("border_weights"):
        specs["weight"] = jax.ShapeDtypeStruct((batch, *size), jnp.float32)
    return specs


def compiled_step(config: Any, state: Any, batch: dict[str, Any]) -> Any:
    """``train.train_step`` compiled as training compiles it (one-device mesh)."""
    options = step_options(config)
    mesh = parallel.make_mesh(1)
    sharding = parallel.state_sharding(state, mesh)
    step = parallel.jit_train_step(functools.partial(train.train_step, **options), mesh,
                                   sharding)
    return step.lower(state, batch, jax.random.key(0, impl=config.prng_impl)).compile()


def step_options(config: Any) -> dict[str, Any]:
    """``train_step``'s loss options of ``config`` (median-frequency weights: all 1 here,
    the same program without reading the labels)."""
    options = objective.loss_options(config)
    if isinstance(config.loss.class_weights, str):
        options["class_weights"] = (1.0,) * config.model.num_classes
    return options


def residual_bytes(config: Any, state: Any, batch: dict[str, Any]) -> int:
    """Bytes of the residuals ``jax.vjp`` keeps of the train step's loss (shapes only)."""
    options = step_options(config)
    key = jax.random.key(0, impl=config.prng_impl)

    def backward(params, batch):
        def loss(p):
            logits, _ = state.apply_fn(
                model_variables(p, state.batch_stats), objective.model_inputs(batch),
                train=True, rngs={"dropout": key}, mutable=["batch_stats"])
            return objective.score_batch(logits, batch, **options)[0]
        return jax.vjp(loss, params)[1]

    shapes = jax.eval_shape(backward, state.params, batch)
    return sum(int(np.prod(x.shape)) * x.dtype.itemsize for x in jax.tree.leaves(shapes))


def footprint(compiled: Any) -> dict[str, int]:
    """Bytes of the compiled step: argument, output, alias, temp and total (see the doc)."""
    m = compiled.memory_analysis()
    parts = {"argument": m.argument_size_in_bytes, "output": m.output_size_in_bytes,
             "alias": m.alias_size_in_bytes, "temp": m.temp_size_in_bytes}
    parts["total"] = parts["argument"] + parts["output"] - parts["alias"] + parts["temp"]
    return parts


def largest_batch(total_of: Callable[[int], int], budget: float, known: dict[int, int]) -> int:
    """Largest batch b with ``total_of(b) <= budget`` (0 if not even 1), compiling as few
    batches as it can: from the line through the two smallest known batches, then
    bisection. ``known`` caches {batch: total} and gains every batch compiled."""
    def fits(b: int) -> bool:
        if b not in known:
            known[b] = total_of(b)
        return known[b] <= budget

    if not fits(1):
        return 0
    (b1, m1), (b2, m2) = sorted(known.items())[:2] if len(known) > 1 else ((1, known[1]),) * 2
    slope = (m2 - m1) / (b2 - b1) if b2 != b1 else m1
    guess = max(1, int((budget - m1) / max(slope, 1)) + b1)
    lo, hi, step = (guess, None, 1) if fits(guess) else (None, guess, 1)
    while hi is None:  # the guess fits: walk up, doubling the step, to one that does not
        if fits(lo + step):
            lo, step = lo + step, step * 2
        else:
            hi = lo + step
    while lo is None:  # it does not: walk down the same way to one that fits
        below = max(1, hi - step)
        if fits(below):
            lo = below
        else:
            hi, step = below, step * 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return lo


def step_ms(config: Any, batch: int, size: tuple[int, int], repeats: int, seed: int) -> float:
    """Median milliseconds of the compiled step on random data, after one warm-up call."""
    state = run_state.create_train_state(
        config, models.build(config.model), jax.random.key(seed, impl=config.prng_impl),
        run_state.input_shape(config), pretrained=False)
    rng = np.random.default_rng(seed)
    specs = batch_specs(config, batch, size)
    data = {k: (rng.integers(0, config.model.num_classes, s.shape) if s.dtype == jnp.int32
                else rng.normal(size=s.shape)).astype(s.dtype) for k, s in specs.items()}
    if "weight" in data:
        data["weight"] = np.abs(data["weight"]) + 1
    step = compiled_step(config, state, specs)
    key = jax.random.key(0, impl=config.prng_impl)
    holder = {"state": state}

    def call():
        holder["state"], measured = step(holder["state"], data, key)
        return measured["loss"]

    return common.median_ms(common.time_jax(call, 1, repeats))


def measure(name: str, policy: str, args: argparse.Namespace) -> dict[str, Any]:
    """One row: the footprint at ``--batch``, the largest batch per budget, the step time."""
    config = model_config(name, policy, args.unet_features, args.unet_levels)
    side = unet_side(config, args.unet_size) if name == "unet" else args.fcn_size
    size = (side, side)
    state = abstract_state(config)
    cache: dict[int, dict[str, int]] = {}

    def parts(batch: int) -> dict[str, int]:
        if batch not in cache:
            started = time.perf_counter()
            cache[batch] = footprint(compiled_step(config, state,
                                                   batch_specs(config, batch, size)))
            common.log(f"{name} remat={policy} batch {batch}: "
                       f"{cache[batch]['total'] / GB:.2f} GB "
                       f"({time.perf_counter() - started:.0f} s to compile)")
        return cache[batch]

    at = parts(args.batch)
    totals = {b: parts(b)["total"] for b in sorted({1, args.batch})} if args.budgets else {}
    fits = {f"{budget:g}": largest_batch(lambda b: parts(b)["total"], budget * GB, totals)
            for budget in args.budgets}
    row = {"model": name, "remat": policy, "batch": args.batch,
           "size": f"{args.batch}x{size[0]}x{size[1]}",
           **{f"{k}_gb": v / GB for k, v in at.items()},
           "residuals_gb": residual_bytes(config, state, batch_specs(config, args.batch,
                                                                     size)) / GB,
           "max_batch": ", ".join(f"{k}: {v}" for k, v in fits.items()),
           "max_batch_by_budget_gb": fits, "compiled_batches": sorted(cache)}
    if args.repeats:
        side = unet_side(config, args.time_unet_size) if name == "unet" else args.time_fcn_size
        time_size = (side, side)
        row["step_ms"] = step_ms(config, args.time_batch, time_size, args.repeats, args.seed)
        row["time_size"] = f"{args.time_batch}x{time_size[0]}x{time_size[1]}"
    return row


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="fcn8s,unet", help="comma-separated: fcn8s, unet")
    p.add_argument("--policies", default=",".join(remat.POLICIES))
    p.add_argument("--batch", type=int, default=8, help="batch of the memory table")
    p.add_argument("--fcn_size", type=int, default=500)
    p.add_argument("--unet_size", type=int, default=572,
                   help="U-Net input side (raised to the next one the valid net takes)")
    p.add_argument("--budgets", default="16,80", help="GB (10^9 bytes), comma-separated")
    p.add_argument("--time_batch", type=int, default=1)
    p.add_argument("--time_fcn_size", type=int, default=256)
    p.add_argument("--time_unet_size", type=int, default=188)
    p.add_argument("--repeats", type=int, default=3, help="timed steps; 0: no timing")
    p.add_argument("--unet_features", type=int, default=0,
                   help="U-Net first-level channels (0: the config's 64); for smoke runs")
    p.add_argument("--unet_levels", type=int, default=0,
                   help="U-Net levels (0: the config's 4); for smoke runs")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print JSON lines, not the table")
    p.add_argument("--out", default=None, help="also write JSON lines here")
    args = p.parse_args(argv)
    args.models = [m for m in args.models.split(",") if m]
    args.policies = [remat.check(q) for q in args.policies.split(",") if q]
    args.budgets = [float(b) for b in args.budgets.split(",") if b]
    for m in args.models:
        if m not in CONFIGS:
            raise SystemExit(f"--models: {m!r} is not one of {sorted(CONFIGS)}")
    return args


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    args = parse_args(argv)
    rows = [measure(name, policy, args) for name in args.models for policy in args.policies]
    header = common.device_header()
    rows = [{**header, **row} for row in rows]
    if not args.json:
        print(f"{header['device']} ({header['platform']}), jax {header['jax']}: train-step "
              "memory from XLA's memory analysis (argument + output - alias + temp)")
        print(common.format_table(rows, COLUMNS))
    common.emit(rows, args.json, args.out)
    return rows


if __name__ == "__main__":
    main()
