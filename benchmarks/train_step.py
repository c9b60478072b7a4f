"""Images per second of a full training step, optionally against PyTorch.

    python -m benchmarks.train_step                   # fcn8s 8x500x500, unet 8x572x572, fp32 + bf16
    python -m benchmarks.train_step --torch           # + PyTorch eager / torch.compile
    python -m benchmarks.train_step --torch --compile-models fcn8s   # compile FCN-8s only
    python -m benchmarks.train_step --quick           # tiny CPU smoke run
    python -m benchmarks.train_step --devices 8       # data parallel over 8 devices

One step is fcnjax's own ``fcnjax.train.train_step`` with the optimizer of
``fcnjax.optim.make_optimizer``: forward (dropout on), mean per-pixel softmax
cross-entropy over random labels (void-masked, plus the step's confusion matrix),
backward, SGD with momentum 0.9, weight decay 5e-4, biases at 2x the rate without decay;
the train state is donated to the jitted step. PyTorch runs the same recipe (two parameter
groups, the void label ignored, the confusion matrix by scatter-add) as a PyTorch user
would tune it: channels_last, TF32 for fp32 on CUDA, ``SGD(fused=True)`` (``torch_sgd``
says "foreach" where the device has no fused kernel), in two columns: eager, and
``torch.compile`` (model and loss, ``dynamic=False``, ``--compile-mode``; ``optimizer.step``
compiled too, see ``time_torch_step``). Parameters stay float32; ``bfloat16`` is the
model's compute dtype (autocast on the PyTorch side). Compile time is measured apart
(PyTorch: the first two steps); img/s = batch / median step time.

``--devices N`` runs the step data parallel (``fcnjax.run.parallel``) over the first N devices:
``--batch`` is the global batch, split N ways, parameters replicated (``--shard-params``:
large ones split along the data axis). On CPU the N devices are forced host devices
(``jax_num_cpu_devices``): they share the same cores, so CPU rows show the scaling shape
(compile time, communication overhead) only, not a speed-up.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import time
from typing import Any

if __package__ in (None, ""):  # run as a file: make the repository root importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import jax
import jax.numpy as jnp
from flax.training import train_state

from benchmarks import common
from fcnjax import losses, models, optim, train
from fcnjax.run import compile_cache, parallel

WORKLOADS = {"fcn8s": 500, "unet": 572}
"""Model -> input side of the timed step (the paper's FCN canvas, U-Net's 572 tile)."""

OPTIM = {"learning_rate": 1e-4, "momentum": 0.9, "weight_decay": 5e-4, "bias_lr_mult": 2.0,
         "bias_decay_mult": 0.0, "trainable": "",
         "schedule": "constant", "warmup_steps": 0, "accumulate": 1}
"""``config.optim`` of the timed step (fcnjax.optim.make_optimizer's fields)."""

IGNORE_LABEL = losses.IGNORE_LABEL
"""The void label both steps leave out of the loss and the confusion matrix."""

COLUMNS = (
    common.Column("model", "model"),
    common.Column("devices", "devices"),
    common.Column("dtype", "dtype"),
    common.Column("batch", "batch"),
    common.Column("size", "HxW"),
    common.Column("gflop_per_image", "GFLOP/img", "{:.1f}"),
    common.Column("compile_s", "compile s", "{:.2f}"),
    common.Column("ms", "ms/step", "{:.2f}"),
    common.Column("img_s", "img/s", "{:.1f}"),
    common.Column("img_s_per_device", "img/s/dev", "{:.1f}"),
    common.Column("tflop_s", "TFLOP/s", "{:.2f}"),
    common.Column("torch_sgd", "t.SGD"),
    common.Column("torch_eager_ms", "torch ms", "{:.2f}"),
    common.Column("torch_eager_img_s", "torch img/s", "{:.1f}"),
    common.Column("jax_over_eager", "jax/torch", "{:.2f}"),
    common.Column("torch_compile_s", "t.compile s", "{:.1f}"),
    common.Column("torch_compile_ms", "t.compile ms", "{:.2f}"),
    common.Column("torch_compile_img_s", "t.compile img/s", "{:.1f}"),
    common.Column("jax_over_compile", "jax/t.compile", "{:.2f}"),
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default=",".join(WORKLOADS))
    p.add_argument("--batch", type=int, default=None, help="images per step (default 8)")
    p.add_argument("--size", default=None,
                   help="FCN input side, or HxW such as 352x480 (default 500)")
    p.add_argument("--unet-size", type=int, default=None, help="U-Net input side (default 572)")
    p.add_argument("--repeats", type=int, default=None, help="timed steps (default 20)")
    p.add_argument("--warmup", type=int, default=None, help="untimed steps (default 3)")
    p.add_argument("--devices", type=int, default=1,
                   help="data parallel over this many devices; --batch is the global batch")
    p.add_argument("--shard-params", action="store_true",
                   help="with --devices: split large params along the data axis (FSDP-style)")
    p.add_argument("--compile-models", default=None,
                   help="with --torch: the models also timed under torch.compile "
                        "(default: all of --models; --no-compile: none)")
    p.add_argument("--compile-cache", default="",
                   help="JAX's persistent compilation cache in this folder (as the CLIs' "
                        "config.compile_cache): run twice to time a cold and a warm compile")
    p.add_argument("--quick", action="store_true",
                   help="CPU smoke run: batch 1 at 64x64 (U-Net 188), 2 steps")
    common.add_shared_args(p)
    args = p.parse_args(argv)
    quick = args.quick
    args.models = [m for m in args.models.split(",") if m]
    args.compile_models = (args.models if args.compile_models is None
                           else [m for m in args.compile_models.split(",") if m])
    args.dtypes = common.parse_dtypes(args.dtypes)
    args.batch = args.batch or (args.devices if quick else max(8, args.devices))
    if args.devices < 1 or args.batch % args.devices:
        raise SystemExit(f"--batch {args.batch} must be a multiple of --devices {args.devices}")
    fcn = args.size or str(64 if quick else WORKLOADS["fcn8s"])
    try:
        fcn = tuple(int(n) for n in fcn.lower().split("x"))
    except ValueError:
        raise SystemExit(f"--size {args.size!r}: give a side (500) or HxW (352x480)") from None
    unet = common.unet_valid_size(args.unet_size or (1 if quick else 572))
    args.sides = {"fcn8s": fcn * 2 if len(fcn) == 1 else fcn[:2], "unet": (unet, unet)}
    args.repeats = args.repeats or (2 if quick else 20)
    args.warmup = args.warmup if args.warmup is not None else (0 if quick else 3)
    for m in args.models + args.compile_models:
        if m not in WORKLOADS:
            raise SystemExit(f"--models: {m!r} is not one of {sorted(WORKLOADS)}")
    return args


def make_batch(name: str, model, args: argparse.Namespace, key: jax.Array):
    """Random images and random labels of the logits' shape (U-Net's output is smaller)."""
    shape = (args.batch, *args.sides[name], common.IMAGE_CHANNELS.get(name, 3))
    images = jax.random.normal(key, shape, jnp.float32)
    variables = jax.eval_shape(model.init, key, images)
    logits = jax.eval_shape(lambda v, x: model.apply(v, x), variables, images)
    labels = jax.random.randint(jax.random.fold_in(key, 1), logits.shape[:3], 0,
                                logits.shape[-1], jnp.int32)
    return images, labels, variables["params"], logits.shape[-1]


def time_jax_step(name: str, dtype: str, args: argparse.Namespace, key: jax.Array
                  ) -> dict[str, Any]:
    model = models.build({"name": name, "dtype": dtype})
    images, labels, shapes, classes = make_batch(name, model, args, key)
    params = common.random_params(shapes, args.seed)
    state = train_state.TrainState.create(
        apply_fn=model.apply, params=params, tx=optim.make_optimizer(OPTIM, args.repeats))
    batch = {"image": images, "label": labels}
    mesh = parallel.make_mesh(args.devices)
    sharding = parallel.state_sharding(state, mesh, shard_params=args.shard_params)
    state = parallel.shard_state(state, sharding)
    batch = parallel.global_batch(jax.device_get(batch), mesh)
    key = parallel.shard_state(key, parallel.replicated(mesh))
    start = time.perf_counter()
    lowered = parallel.jit_train_step(train.train_step, mesh, sharding).lower(state, batch, key)
    compiled = lowered.compile()
    compile_s = time.perf_counter() - start
    step = common.Compiled(compiled, common.cpu_flops(train.train_step, state, batch, key))
    cost = common.cost(step)  # FLOPs of the whole step; bytes of one device's program
    holder = {"state": state}

    def call():
        holder["state"], measured = step(holder["state"], batch, key)
        return measured["loss"]

    times = common.time_jax(call, args.warmup, args.repeats)
    loss = float(call())
    ms = common.median_ms(times)
    batch, height, width, devices = *images.shape[:3], args.devices
    flops = cost["flops"]
    row = {"model": name, "dtype": dtype, "devices": devices, "batch": batch,
           "size": f"{height}x{width}", "height": height, "width": width, "classes": classes,
           "label_height": labels.shape[1], "label_width": labels.shape[2],
           "gflop_per_image": flops / batch / 1e9, "gbytes": cost["bytes"] * devices / 1e9,
           "compile_s": compile_s, "compile_cache": args.compile_cache, "ms": ms,
           "ms_min": 1e3 * min(times),
           "img_s": 1e3 * batch / ms, "img_s_per_device": 1e3 * batch / ms / devices,
           "tflop_s": flops / (ms / 1e3) / 1e12, "loss": loss, "repeats": args.repeats,
           "shard_params": args.shard_params}
    common.log(f"  jax   {name} {dtype} b{batch}: compile {compile_s:.2f} s, {ms:.2f} ms/step, "
               f"{row['img_s']:.1f} img/s, loss {loss:.3f}")
    return row


class CompileFailed(Exception):
    """torch.compile failed with the optimizer step compiled and without: the first error."""


def torch_settings(device: str) -> str:
    """What the PyTorch side runs with, for the header line."""
    precision = "TF32 for fp32 (matmul precision 'high', cuDNN TF32)" if device == "cuda" \
        else "fp32 as is (CPU)"
    return (f"PyTorch: channels_last, bf16 autocast, {precision}, SGD fused where the device "
            "has the kernel; torch.compile column: model + loss compiled (dynamic=False), "
            "optimizer.step compiled")


def fused_sgd_supported(device: str) -> bool:
    """Whether ``torch.optim.SGD(fused=True)`` has a kernel on ``device`` (torch's own list)."""
    try:
        from torch.utils._foreach_utils import _get_fused_kernels_supported_devices
        return device in _get_fused_kernels_supported_devices()
    except ImportError:  # an older torch: fused SGD is CUDA only there
        return device == "cuda"


def torch_param_groups(model) -> list[dict[str, Any]]:
    """fcnjax.optim's two groups: weights at the base rate with decay, biases at
    ``bias_lr_mult`` x the rate without decay (the bilinear upscores are buffers: frozen)."""
    named = list(model.named_parameters())
    return [{"params": [p for n, p in named if not n.endswith("bias")],
             "weight_decay": OPTIM["weight_decay"]},
            {"params": [p for n, p in named if n.endswith("bias")],
             "lr": OPTIM["learning_rate"] * OPTIM["bias_lr_mult"],
             "weight_decay": OPTIM["weight_decay"] * OPTIM["bias_decay_mult"]}]


def torch_confusion(labels, predictions, classes: int):
    """fcnjax.metrics.confusion_matrix in PyTorch: int64 (C, C) counts, void pixels left out;
    a scatter-add into a fixed-size vector (no data-dependent shape, so it compiles)."""
    import torch
    valid = (labels != IGNORE_LABEL) & (labels >= 0) & (labels < classes)
    index = torch.where(valid, labels * classes + predictions, 0).reshape(-1)
    counts = torch.zeros(classes * classes, dtype=torch.int64, device=labels.device)
    return counts.index_add_(0, index, valid.reshape(-1).long()).reshape(classes, classes)


def time_torch_step(name: str, row: dict[str, Any], args: argparse.Namespace) -> None:
    """Add PyTorch eager and torch.compile train-step columns to ``row``, in place.

    One step: forward under bf16 autocast (dropout on), mean void-masked pixel
    cross-entropy in float32 and the confusion matrix (as the JAX step), backward, SGD,
    ``zero_grad(set_to_none=True)``. Eager: ``SGD(fused=True)`` where the device has the
    kernel, else foreach (``torch_sgd``). Compiled: the forward-and-loss function through
    ``torch.compile(dynamic=False, mode=--compile-mode)`` (the backward is AOTAutograd's
    compiled graph) and ``optimizer.step`` through ``torch.compile`` as PyTorch's
    "compiling the optimizer" recipe does (foreach SGD, which inductor fuses); should that
    fail, the compiled column keeps the compiled model with the eager fused step and says
    so (``torch_compile_sgd``, ``torch_compile_sgd_error``). ``torch_compile_s`` is the
    time of the first two steps (the optimizer's graph is traced again once the momentum
    buffers exist); ``torch_eager_first_s`` the eager first step (cuDNN autotuning).
    """
    import torch
    import torch.nn.functional as F

    from benchmarks import torch_models

    device = common.torch_device()
    common.torch_setup(device)
    channels = common.IMAGE_CHANNELS.get(name, 3)
    kwargs = {"in_channels": channels} if name == "unet" else {}
    bf16 = row["dtype"] == "bfloat16"
    batch, height, width, classes = row["batch"], row["height"], row["width"], row["classes"]
    label_shape = (batch, row["label_height"], row["label_width"])
    x = torch.randn(batch, channels, height, width, device=device)
    x = x.contiguous(memory_format=torch.channels_last)
    labels = torch.randint(0, classes, label_shape, device=device)
    fused = fused_sgd_supported(device)

    def run(compile_model: bool, compile_sgd: bool) -> tuple[float, list[float], float]:
        model = torch_models.build(name, **kwargs)
        torch_models.randomize_(model, args.seed)
        model = model.to(device).train().to(memory_format=torch.channels_last)
        sgd_fused = fused and not compile_sgd
        optimizer = torch.optim.SGD(torch_param_groups(model), lr=OPTIM["learning_rate"],
                                    momentum=OPTIM["momentum"], fused=sgd_fused or None,
                                    foreach=None if sgd_fused else True)

        def forward_loss(images, targets):
            with torch.autocast(device, torch.bfloat16, enabled=bf16):
                logits = model(images)
            logits = logits.float()
            loss = F.cross_entropy(logits, targets, ignore_index=IGNORE_LABEL)
            return loss, torch_confusion(targets, logits.argmax(1), classes)

        if compile_model:
            torch._dynamo.reset()  # a fresh model: nothing cached, no recompile limit hit
            forward_loss = torch.compile(forward_loss, dynamic=False, mode=args.compile_mode)
        update = torch.compile(optimizer.step) if compile_sgd else optimizer.step
        holder = {}

        def step():
            loss, confusion = forward_loss(x, labels)
            loss.backward()
            update()
            optimizer.zero_grad(set_to_none=True)
            holder.update(loss=loss.detach(), confusion=confusion)

        try:
            with torch.no_grad(), torch.autocast(device, torch.bfloat16, enabled=bf16):
                out = model(x[:1]).shape
            if (out[1], *out[2:]) != (classes, *label_shape[1:]):
                raise ValueError(f"torch {name} gives {tuple(out)} logits for a {height}x{width} "
                                 f"input; the JAX step's are {classes} x {label_shape[1:]}")
            first, times = common.time_torch(step, device, args.warmup, args.repeats,
                                             first_calls=2 if compile_model else 1)
            loss = float(holder["loss"])
            if int(holder["confusion"].sum()) != labels.numel():
                raise ValueError("torch confusion matrix does not count every pixel")
            return first, times, loss
        finally:
            del model, optimizer, forward_loss, update, holder
            if compile_model or compile_sgd:
                torch._dynamo.reset()  # the compiled graphs hold the parameters
            common.torch_free(device)

    first, times, loss = run(False, False)
    row["torch_sgd"] = "fused" if fused else "foreach"
    row["torch_eager_first_s"] = first
    row["torch_eager_ms"] = common.median_ms(times)
    row["torch_eager_ms_min"] = 1e3 * min(times)
    row["torch_eager_img_s"] = 1e3 * batch / row["torch_eager_ms"]
    row["torch_eager_loss"] = loss
    row["jax_over_eager"] = common.ratio(row["ms"], row["torch_eager_ms"])
    msg = (f"eager ({row['torch_sgd']} SGD) {row['torch_eager_ms']:.2f} ms/step "
           f"(first {first:.1f} s), loss {loss:.3f}")
    if not args.no_compile and name in args.compile_models:
        row["torch_compile_mode"] = args.compile_mode or "default"
        try:
            try:
                first, times, loss = run(True, True)
                row["torch_compile_sgd"] = "compiled foreach"
            except Exception as e:  # noqa: BLE001 - retry: compiled model, eager update
                error = f"{type(e).__name__}: {e}"[:300]
                try:
                    first, times, loss = run(True, False)
                except Exception:  # noqa: BLE001 - not the optimizer: report the first error
                    raise CompileFailed(error) from e
                row["torch_compile_sgd"] = row["torch_sgd"]
                row["torch_compile_sgd_error"] = error
            row["torch_compile_s"] = first
            row["torch_compile_ms"] = common.median_ms(times)
            row["torch_compile_ms_min"] = 1e3 * min(times)
            row["torch_compile_img_s"] = 1e3 * batch / row["torch_compile_ms"]
            row["torch_compile_loss"] = loss
            row["jax_over_compile"] = common.ratio(row["ms"], row["torch_compile_ms"])
            msg += (f"; compiled ({row['torch_compile_sgd']} SGD) "
                    f"{row['torch_compile_ms']:.2f} ms/step (first 2 steps {first:.1f} s), "
                    f"loss {loss:.3f}")
            if "torch_compile_sgd_error" in row:
                msg += f" [optimizer.step compile failed: {row['torch_compile_sgd_error']}]"
        except Exception as e:  # noqa: BLE001 - report why and keep the row
            row["torch_compile_error"] = (str(e) if isinstance(e, CompileFailed)
                                          else f"{type(e).__name__}: {e}")[:300]
            msg += f"; torch.compile failed: {row['torch_compile_error']}"
    row["torch"] = torch.__version__
    row["torch_device"] = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    row["torch_tf32"] = device == "cuda"
    common.log(f"  torch {name} {row['dtype']} b{batch}: {msg}")


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    args = parse_args(argv)
    report = sys.stderr if args.json else sys.stdout
    if args.devices > 1 and "xla_force_host_platform_device_count" not in os.environ.get(
            "XLA_FLAGS", ""):
        # CPU has one device unless told; GPUs and TPUs ignore this.
        jax.config.update("jax_num_cpu_devices", args.devices)
    if args.torch:
        # JAX must not grab most of the GPU when PyTorch shares the process.
        os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    if args.compile_cache:
        compile_cache.enable(args.compile_cache)
    header = common.device_header()
    print(f"# train step | device {header['device']} ({header['platform']}) | jax "
          f"{header['jax']} flax {header['flax']} | data parallel on {args.devices} of "
          f"{jax.device_count()} devices | SGD momentum {OPTIM['momentum']}, mean pixel "
          f"xent | {args.repeats} steps after {args.warmup} warm-up", file=report)
    if args.torch:
        import torch
        print(f"# torch {torch.__version__} | {torch_settings(common.torch_device())}"
              + (" | no torch.compile" if args.no_compile else
                 f" | torch.compile mode {args.compile_mode or 'default'} for "
                 f"{','.join(m for m in args.models if m in args.compile_models) or 'no model'}"),
              file=report)
    key = jax.random.key(args.seed)
    rows = []
    for name in args.models:
        for dtype in args.dtypes:
            row = time_jax_step(name, dtype, args, jax.random.fold_in(key, len(rows)))
            if args.torch:
                time_torch_step(name, row, args)
            row.update(device=header["device"], jax=header["jax"])
            rows.append(row)
            common.emit(rows, False, args.out)  # rows so far: a time limit keeps them
    print(common.format_table(rows, COLUMNS), file=report)
    common.emit(rows, args.json, args.out)
    return rows


if __name__ == "__main__":
    main()
