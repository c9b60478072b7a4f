"""Forward time of the paper's networks (the FCN paper's Table 1), optionally against PyTorch.

    python -m benchmarks.forward_time                    # GPU: Table 1's run; CPU: a CPU-sized one
    python -m benchmarks.forward_time --full             # Table 1's run on any backend
    python -m benchmarks.forward_time --torch            # + PyTorch eager / torch.compile columns
    python -m benchmarks.forward_time --describe         # Table 1's static columns, no timing
    python -m benchmarks.forward_time --quick --json     # tiny CPU smoke run, JSON lines

Table 1's run (the default on a GPU or TPU, ``--full`` elsewhere): every model in fp32 and
bf16 at batch 1 and 16, 500x500 (U-Net 572x572), 50 timed calls after 5 warm-up. On a CPU
that is thousands of forward passes of a 360 GFLOP network, hours, so there the default is a
CPU-sized run: fp32, batch 1, still 500x500 (so the K40c columns mean something), 3 timed
calls after 1 warm-up; it says so in one line before it starts, logs each row as it starts
and ends with an estimate of ``--full``'s time on that machine. Flags given explicitly
(``--dtypes``, ``--batch``, ``--size``, ``--unet-size``, ``--repeats``, ``--warmup``) win over
either set of defaults.

Each row: one model, dtype and batch, random weights (every parameter N(0, 2/fan_in), biases
small, nothing left at zero) and a random input. Compile time is measured apart; the time
is the median of ``--repeats`` calls after warm-up, each waited on with
``block_until_ready`` (CUDA events for PyTorch). GFLOP and bytes come from XLA's cost
analysis of the compiled forward. Times are per call (per batch); ``img/s`` is batch / time.
The paper's K40c time and the speed-up over it (per image) are columns of the rows at
500x500 only, the size Table 1 timed: a ``--quick`` 64x64 row or a U-Net row has none.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
from typing import Any

if __package__ in (None, ""):  # run as a file: make the repository root importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import jax
import jax.numpy as jnp

from benchmarks import common
from fcnjax import models
from fcnjax.models import describe

MODELS = ("fcn_alexnet", "fcn32s", "fcn16s", "fcn8s", "fcn_googlenet", "unet")

COLUMNS = (
    common.Column("model", "model"),
    common.Column("dtype", "dtype"),
    common.Column("batch", "batch"),
    common.Column("size", "HxW"),
    common.Column("params_m", "params M", "{:.2f}"),
    common.Column("gflop_per_image", "GFLOP/img", "{:.1f}"),
    common.Column("compile_s", "compile s", "{:.2f}"),
    common.Column("ms", "ms", "{:.3f}"),
    common.Column("img_s", "img/s", "{:.1f}"),
    common.Column("tflop_s", "TFLOP/s", "{:.2f}"),
    common.Column("k40c_ms", "K40c ms", "{:.0f}"),
    common.Column("speedup_vs_k40c", "x K40c", "{:.1f}"),
    common.Column("torch_eager_ms", "torch ms", "{:.3f}"),
    common.Column("jax_over_eager", "jax/torch", "{:.2f}"),
    common.Column("torch_compile_s", "t.compile s", "{:.1f}"),
    common.Column("torch_compile_ms", "t.compile ms", "{:.3f}"),
    common.Column("jax_over_compile", "jax/t.compile", "{:.2f}"),
)


PAPER_SIDE = 500
"""Table 1's input side; its K40c times are for this size only."""

RUNS = {
    "paper": {"dtypes": "float32,bfloat16", "batch": "1,16", "size": PAPER_SIDE,
              "unet_size": 572, "repeats": 50, "warmup": 5},
    "cpu": {"dtypes": "float32", "batch": "1", "size": PAPER_SIDE, "unet_size": 572,
            "repeats": 3, "warmup": 1},
    "quick": {"dtypes": "float32,bfloat16", "batch": "1,2", "size": 64, "unet_size": 1,
              "repeats": 2, "warmup": 0},
}
"""Defaults of the flags that size a run: Table 1's run (GPU, TPU, ``--full``), the
CPU-sized one (a CPU backend without ``--full``) and ``--quick``. A flag given wins."""


def parse_args(argv: list[str] | None, backend: str | None = None) -> argparse.Namespace:
    """The flags, with every sizing flag not given filled in from :data:`RUNS`.

    ``backend`` (default ``jax.default_backend()``) picks the defaults when neither
    ``--quick`` nor ``--full`` is given: ``"cpu"`` gets the CPU-sized run and, when that
    filled in any flag, ``args.notice``, the line that says so; anything else Table 1's run.
    """
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default=None,
                   help="comma-separated names of fcnjax.models.MODELS (default: Table 1's "
                   "timed models; with --describe also fcn8s_atonce)")
    p.add_argument("--batch", default=None,
                   help="comma-separated batch sizes (default 1,16; CPU-sized run 1)")
    p.add_argument("--size", type=int, default=None, help="FCN input side (default 500)")
    p.add_argument("--unet-size", type=int, default=None,
                   help="U-Net input side (default 572; rounded up to a size it takes)")
    p.add_argument("--repeats", type=int, default=None,
                   help="timed calls (default 50; CPU-sized run 3)")
    p.add_argument("--warmup", type=int, default=None,
                   help="untimed calls (default 5; CPU-sized run 1)")
    p.add_argument("--quick", action="store_true",
                   help="CPU smoke run: 64x64 (U-Net 188), batch 1 and 2, 2 repeats, no warm-up")
    p.add_argument("--full", action="store_true",
                   help="Table 1's run even on a CPU (the default elsewhere): fp32 and bf16, "
                   "batch 1 and 16, 500x500 (U-Net 572), 50 repeats after 5 warm-up")
    p.add_argument("--describe", action="store_true",
                   help="print fcnjax.models.describe.describe() per model and exit")
    common.add_shared_args(p)
    p.set_defaults(dtypes=None)  # None: not given, so the run's default applies
    args = p.parse_args(argv)
    if args.quick and args.full:
        p.error("--quick and --full are two different runs: pass one of them")
    if args.torch:
        # Before JAX starts a backend: it must not grab most of the GPU when PyTorch
        # shares the process.
        os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    args.backend = None if args.describe else (backend or jax.default_backend())
    if args.quick:
        args.run = "quick"
    elif args.full or args.backend != "cpu":
        args.run = "paper"
    else:
        args.run = "cpu"
    filled = [k for k in RUNS[args.run] if getattr(args, k) is None]
    for k in filled:
        setattr(args, k, RUNS[args.run][k])
    if args.run == "cpu" and not filled:
        args.run = "given"  # every sizing flag given: the CPU defaults played no part
    default_models = describe.TABLE1_MODELS if args.describe else MODELS
    args.models = [m for m in (args.models or ",".join(default_models)).split(",") if m]
    args.dtypes = common.parse_dtypes(args.dtypes)
    args.batch = [int(b) for b in str(args.batch).split(",") if b]
    args.unet_size = common.unet_valid_size(args.unet_size)
    if args.repeats < 1 or args.warmup < 0 or not args.batch or min(args.batch) < 1:
        p.error("--repeats and --batch need at least 1, --warmup at least 0")
    for m in args.models:
        if m not in models.MODELS:
            raise SystemExit(f"--models: {m!r} is not one of {sorted(models.MODELS)}")
    args.notice = cpu_notice(args) if args.run == "cpu" else None
    return args


def run_text(dtypes: list[str], batch: list[int], size: int, unet_size: int,
             warmup: int, repeats: int) -> str:
    """A run's sizes in words: 'float32, batch 1, 500x500 (U-Net 572x572), 1 warm-up + ...'."""
    def words(items):
        items = [str(i) for i in items]
        return " and ".join([", ".join(items[:-1]), items[-1]] if len(items) > 1 else items)
    return (f"{words(dtypes)}, batch {words(batch)}, {size}x{size} (U-Net {unet_size}x"
            f"{unet_size}), {warmup} warm-up + {repeats} timed calls per row")


def paper_run() -> dict[str, Any]:
    """Table 1's run, parsed: what ``--full`` times."""
    run = RUNS["paper"]
    return {"dtypes": common.parse_dtypes(run["dtypes"]),
            "batch": [int(b) for b in run["batch"].split(",")], "size": run["size"],
            "unet_size": common.unet_valid_size(run["unet_size"]),
            "warmup": run["warmup"], "repeats": run["repeats"]}


def images_per_model(dtypes: list[str], batch: list[int], warmup: int, repeats: int,
                     **_) -> int:
    """Images one model forwards in a run: every dtype and batch, warm-up included."""
    return len(dtypes) * sum((warmup + repeats) * b for b in batch)


def cpu_notice(args: argparse.Namespace) -> str:
    """The line a CPU-sized run starts with: what it times, and what --full and --quick do."""
    mine = {k: getattr(args, k) for k in ("dtypes", "batch", "size", "unet_size", "warmup",
                                          "repeats")}
    full = paper_run()
    times = images_per_model(**full) / images_per_model(**mine)
    sides = args.size == full["size"] and ("unet" not in args.models
                                           or args.unet_size == full["unet_size"])
    estimate = "; this run ends with an estimate of its time here" if sides else ""
    return (f"CPU backend: timing a CPU-sized run ({run_text(**mine)}); pass --full for the "
            f"paper's Table 1 run ({run_text(**full)}: about {float(f'{times:.2g}'):g}x as "
            f"many forward passes{estimate}), or --quick for a 64x64 smoke run")


def full_run_seconds(rows: list[dict[str, Any]]) -> float | None:
    """About how long ``--full`` would take here, from rows at Table 1's sizes.

    Per model: its per-image time (the fp32 row at the smallest batch) times the images
    ``--full`` forwards, plus one compile per dtype and batch. bf16 is counted at fp32's
    speed. None when a model has no row at Table 1's size.
    """
    full = paper_run()
    passes, compiles = images_per_model(**full), len(full["dtypes"]) * len(full["batch"])
    total = 0.0
    for name in dict.fromkeys(r["model"] for r in rows):
        side = full["unet_size"] if name == "unet" else full["size"]
        mine = [r for r in rows if r["model"] == name and (r["height"], r["width"]) ==
                (side, side)]
        if not mine:
            return None
        row = min(mine, key=lambda r: (r["dtype"] != "float32", r["batch"]))
        total += passes * row["ms"] / 1e3 / row["batch"] + compiles * row["compile_s"]
    return total


def duration_text(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def input_shape(name: str, batch: int, args: argparse.Namespace) -> tuple[int, int, int, int]:
    side = args.unet_size if name == "unet" else args.size
    return batch, side, side, common.IMAGE_CHANNELS.get(name, 3)


def build(name: str, dtype: str):
    return models.build({"name": name, "dtype": dtype})


def make_row(name: str, dtype: str, shape: tuple[int, ...], n_params: int,
             cost: dict[str, float], compile_s: float, times: list[float],
             repeats: int) -> dict[str, Any]:
    """One timed row. ``k40c_ms`` and ``speedup_vs_k40c`` are keys of the rows at Table 1's
    500x500 only (None where the paper has no K40c time for the model): at other sizes the
    paper's figure would sit beside a time it does not compare with."""
    batch = shape[0]
    ms = common.median_ms(times)
    row = {
        "model": name, "dtype": dtype, "batch": batch, "size": f"{shape[1]}x{shape[2]}",
        "height": shape[1], "width": shape[2], "params": n_params,
        "params_m": n_params / 1e6, "gflop_per_image": cost["flops"] / batch / 1e9,
        "gbytes": cost["bytes"] / 1e9, "compile_s": compile_s, "ms": ms,
        "ms_min": 1e3 * min(times), "img_s": 1e3 * batch / ms,
        "tflop_s": cost["flops"] / (ms / 1e3) / 1e12,
    }
    if tuple(shape[1:3]) == (PAPER_SIDE, PAPER_SIDE):
        k40c_ms = common.PAPER_K40C_MS.get(name)
        row["k40c_ms"] = k40c_ms
        row["speedup_vs_k40c"] = None if k40c_ms is None else k40c_ms / (ms / batch)
    row["repeats"] = repeats
    return row


def time_jax_model(name: str, args: argparse.Namespace, key: jax.Array,
                   first: int = 0) -> list[dict[str, Any]]:
    """Rows for one model: every dtype and batch, compiled apart and timed.

    On a CPU each row is announced on stderr as it starts (``first``: rows before this
    model's, for the count); GPU rows take seconds and are only logged when done.
    """
    rows, params = [], None
    total = len(args.models) * len(args.dtypes) * len(args.batch)
    for dtype in args.dtypes:
        model = build(name, dtype)
        apply = lambda p, x, model=model: model.apply({"params": p}, x)  # noqa: E731
        for batch in args.batch:
            shape = input_shape(name, batch, args)
            if getattr(args, "backend", None) == "cpu":
                common.log(f"[{first + len(rows) + 1}/{total}] {name} {dtype} batch {batch} "
                           f"{shape[1]}x{shape[2]}: compiling, then {args.warmup} warm-up + "
                           f"{args.repeats} timed calls")
            image = jax.random.normal(jax.random.fold_in(key, batch), shape, jnp.float32)
            if params is None:
                shapes = jax.eval_shape(model.init, key, image)["params"]
                params = common.random_params(shapes, args.seed)
                n_params = sum(p.size for p in jax.tree_util.tree_leaves(params))
            compiled, compile_s = common.compile_timed(apply, params, image)
            cost = common.cost(compiled)
            times = common.time_jax(lambda: compiled(params, image), args.warmup, args.repeats)
            row = make_row(name, dtype, shape, n_params, cost, compile_s, times, args.repeats)
            rows.append(row)
            common.log(f"  jax   {name} {dtype} b{batch}: compile {compile_s:.2f} s, "
                       f"{row['ms']:.3f} ms, {row['gflop_per_image']:.1f} GFLOP/img")
            del compiled
    return rows


def time_torch_model(name: str, rows: list[dict[str, Any]], args: argparse.Namespace) -> None:
    """Add PyTorch eager (and torch.compile) columns to ``rows`` of one model, in place."""
    import torch

    from benchmarks import torch_models

    device = common.torch_device()
    common.torch_setup(device)
    kwargs = {"in_channels": common.IMAGE_CHANNELS.get(name, 3)} if name == "unet" else {}
    model = torch_models.build(name, **kwargs)
    torch_models.randomize_(model, args.seed)
    model = model.to(device).eval().to(memory_format=torch.channels_last)
    compiled = None
    if not args.no_compile:
        compiled = torch.compile(model, dynamic=False, mode=args.compile_mode)
    for row in rows:
        batch, side = row["batch"], row["height"]
        channels = common.IMAGE_CHANNELS.get(name, 3)
        x = torch.randn(batch, channels, side, side, device=device)
        x = x.contiguous(memory_format=torch.channels_last)
        bf16 = row["dtype"] == "bfloat16"

        def forward(net):
            with torch.inference_mode(), torch.autocast(device, torch.bfloat16, enabled=bf16):
                return net(x)

        _, times = common.time_torch(lambda: forward(model), device, args.warmup, args.repeats)
        row["torch_eager_ms"] = common.median_ms(times)
        row["jax_over_eager"] = common.ratio(row["ms"], row["torch_eager_ms"])
        msg = f"eager {row['torch_eager_ms']:.3f} ms"
        if compiled is not None:
            try:
                first, times = common.time_torch(lambda: forward(compiled), device,
                                                 args.warmup, args.repeats)
                row["torch_compile_s"] = first
                row["torch_compile_ms"] = common.median_ms(times)
                row["jax_over_compile"] = common.ratio(row["ms"], row["torch_compile_ms"])
                msg += f", compiled {row['torch_compile_ms']:.3f} ms (first call {first:.1f} s)"
            except Exception as e:  # noqa: BLE001 - report why and keep the other rows
                row["torch_compile_error"] = f"{type(e).__name__}: {e}"[:300]
                msg += f", torch.compile failed: {row['torch_compile_error']}"
        common.log(f"  torch {name} {row['dtype']} b{batch}: {msg}")
        del x
    row_device = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    for row in rows:
        row["torch"] = torch.__version__
        row["torch_device"] = row_device
    del model, compiled
    common.torch_free(device)


def main(argv: list[str] | None = None, backend: str | None = None) -> list[dict[str, Any]]:
    args = parse_args(argv, backend)
    report = sys.stderr if args.json else sys.stdout
    if args.describe:
        rows = [describe.describe(name) for name in args.models]
        if not args.json:
            print(describe.HEADER, file=report)
            for row in rows:
                print(describe.format_row(row), file=report)
        common.emit(rows, args.json, args.out)
        return rows
    if args.notice:
        common.log(args.notice)
    header = common.device_header()
    run = " | CPU-sized run, not Table 1's (--full)" if args.run == "cpu" else ""
    print(f"# forward time | device {header['device']} ({header['platform']}) | "
          f"jax {header['jax']} flax {header['flax']} | {args.repeats} repeats after "
          f"{args.warmup} warm-up | random weights and inputs{run}", file=report, flush=True)
    key = jax.random.key(args.seed)
    rows = []
    for name in args.models:
        model_rows = time_jax_model(name, args, jax.random.fold_in(key, len(rows)), len(rows))
        if args.torch:
            time_torch_model(name, model_rows, args)
        for row in model_rows:
            row.update(device=header["device"], jax=header["jax"])
        rows += model_rows
    print(common.format_table(rows, COLUMNS), file=report)
    if args.run == "cpu":
        seconds = full_run_seconds(rows)
        if seconds is not None:
            print(f"# --full ({run_text(**paper_run())}) would take about "
                  f"{duration_text(seconds)} here: these rows' per-image and compile times "
                  "scaled up, bf16 counted at fp32's speed (CPUs without bf16 units are "
                  "slower)", file=report)
    common.emit(rows, args.json, args.out)
    return rows


if __name__ == "__main__":
    main()
