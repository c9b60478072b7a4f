"""Forward time of the paper's networks (the FCN paper's Table 1), optionally against PyTorch.

    python -m benchmarks.forward_time                    # all models, fp32 + bf16, batch 1 and 16
    python -m benchmarks.forward_time --torch            # + PyTorch eager / torch.compile columns
    python -m benchmarks.forward_time --describe         # Table 1's static columns, no timing
    python -m benchmarks.forward_time --quick --json     # tiny CPU smoke run, JSON lines

Each row: one model, dtype and batch at 500x500 (U-Net 572x572), random weights (every
parameter N(0, 2/fan_in), biases small, nothing left at zero) and a random input. Compile
time is measured apart; the time is the median of ``--repeats`` calls after warm-up, each
waited on with ``block_until_ready`` (CUDA events for PyTorch). GFLOP and bytes come from
XLA's cost analysis of the compiled forward. Times are per call (per batch); ``img/s`` is
batch / time, and the speed-up over the paper's K40c is per image at 500x500.
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
from fcnjax import describe, models

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


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default=None,
                   help="comma-separated names of fcnjax.models.MODELS (default: Table 1's "
                   "timed models; with --describe also fcn8s_atonce)")
    p.add_argument("--batch", default=None, help="comma-separated batch sizes (default 1,16)")
    p.add_argument("--size", type=int, default=None, help="FCN input side (default 500)")
    p.add_argument("--unet-size", type=int, default=None,
                   help="U-Net input side (default 572; rounded up to a size it takes)")
    p.add_argument("--repeats", type=int, default=None, help="timed calls (default 50)")
    p.add_argument("--warmup", type=int, default=None, help="untimed calls (default 5)")
    p.add_argument("--quick", action="store_true",
                   help="CPU smoke run: 64x64 (U-Net 188), batch 1 and 2, 2 repeats, no warm-up")
    p.add_argument("--describe", action="store_true",
                   help="print fcnjax.describe.describe() per model and exit")
    common.add_shared_args(p)
    args = p.parse_args(argv)
    quick = args.quick
    default_models = describe.TABLE1_MODELS if args.describe else MODELS
    args.models = [m for m in (args.models or ",".join(default_models)).split(",") if m]
    args.dtypes = common.parse_dtypes(args.dtypes)
    args.batch = [int(b) for b in (args.batch or ("1,2" if quick else "1,16")).split(",")]
    args.size = args.size or (64 if quick else 500)
    args.unet_size = common.unet_valid_size(args.unet_size or (1 if quick else 572))
    args.repeats = args.repeats or (2 if quick else 50)
    args.warmup = args.warmup if args.warmup is not None else (0 if quick else 5)
    for m in args.models:
        if m not in models.MODELS:
            raise SystemExit(f"--models: {m!r} is not one of {sorted(models.MODELS)}")
    return args


def input_shape(name: str, batch: int, args: argparse.Namespace) -> tuple[int, int, int, int]:
    side = args.unet_size if name == "unet" else args.size
    return batch, side, side, common.IMAGE_CHANNELS.get(name, 3)


def build(name: str, dtype: str):
    return models.build({"name": name, "dtype": dtype})


def time_jax_model(name: str, args: argparse.Namespace, key: jax.Array) -> list[dict[str, Any]]:
    """Rows for one model: every dtype and batch, compiled apart and timed."""
    rows, params = [], None
    for dtype in args.dtypes:
        model = build(name, dtype)
        apply = lambda p, x, model=model: model.apply({"params": p}, x)  # noqa: E731
        for batch in args.batch:
            shape = input_shape(name, batch, args)
            image = jax.random.normal(jax.random.fold_in(key, batch), shape, jnp.float32)
            if params is None:
                shapes = jax.eval_shape(model.init, key, image)["params"]
                params = common.random_params(shapes, args.seed)
                n_params = sum(p.size for p in jax.tree_util.tree_leaves(params))
            compiled, compile_s = common.compile_timed(apply, params, image)
            cost = common.cost(compiled)
            times = common.time_jax(lambda: compiled(params, image), args.warmup, args.repeats)
            ms = common.median_ms(times)
            row = {
                "model": name, "dtype": dtype, "batch": batch, "size": f"{shape[1]}x{shape[2]}",
                "height": shape[1], "width": shape[2], "params": n_params,
                "params_m": n_params / 1e6, "gflop_per_image": cost["flops"] / batch / 1e9,
                "gbytes": cost["bytes"] / 1e9, "compile_s": compile_s, "ms": ms,
                "ms_min": 1e3 * min(times), "img_s": 1e3 * batch / ms,
                "tflop_s": cost["flops"] / (ms / 1e3) / 1e12,
                "k40c_ms": common.PAPER_K40C_MS.get(name),
                "speedup_vs_k40c": None, "repeats": args.repeats,
            }
            if row["k40c_ms"] is not None and shape[1:3] == (500, 500):
                row["speedup_vs_k40c"] = row["k40c_ms"] / (ms / batch)
            rows.append(row)
            common.log(f"  jax   {name} {dtype} b{batch}: compile {compile_s:.2f} s, "
                       f"{ms:.3f} ms, {row['gflop_per_image']:.1f} GFLOP/img")
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


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    args = parse_args(argv)
    report = sys.stderr if args.json else sys.stdout
    if args.describe:
        rows = [describe.describe(name) for name in args.models]
        if not args.json:
            print(describe.HEADER, file=report)
            for row in rows:
                print(describe.format_row(row), file=report)
        common.emit(rows, args.json, args.out)
        return rows
    if args.torch:
        # JAX must not grab most of the GPU when PyTorch shares the process.
        os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    header = common.device_header()
    print(f"# forward time | device {header['device']} ({header['platform']}) | "
          f"jax {header['jax']} flax {header['flax']} | {args.repeats} repeats after "
          f"{args.warmup} warm-up | random weights and inputs", file=report)
    key = jax.random.key(args.seed)
    rows = []
    for name in args.models:
        model_rows = time_jax_model(name, args, jax.random.fold_in(key, len(rows)))
        if args.torch:
            time_torch_model(name, model_rows, args)
        for row in model_rows:
            row.update(device=header["device"], jax=header["jax"])
        rows += model_rows
    print(common.format_table(rows, COLUMNS), file=report)
    common.emit(rows, args.json, args.out)
    return rows


if __name__ == "__main__":
    main()
