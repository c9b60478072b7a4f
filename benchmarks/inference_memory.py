"""Predicting one large image: whole-image against sliding windows, time and peak memory.

    python -m benchmarks.inference_memory                # FCN-8s and the valid U-Net (BENCHMARKS.md)
    python -m benchmarks.inference_memory --quick        # a tiny smoke run, seconds
    python -m benchmarks.inference_memory --rows fcn8s:slide:10000 --window 1000 --stride 800

Each row predicts the class ids of one random (side x side) image the way ``predict`` does
(:func:`fcnjax.inference.make_labels`, random weights) in a process of its own, so its peak
RSS (``ru_maxrss``) is that prediction's alone, imports and weights included; the parent
prints a table. Modes:

- ``whole``: the image in one pass (FCN-8s), or a valid U-Net tile by tile with tiles of its
  ``crop_size`` (572), the paper's overlap-tile;
- ``slide``: ``--window`` windows every ``--stride`` pixels (FCN-8s; a valid U-Net: tiles of
  ``--window``), one row of windows' scores held at a time;
- ``torch``: PyTorch eager's whole-image forward and argmax (a valid U-Net: the image with
  its mirrored 92-pixel context, raised to a size the net takes), threads = cores.

Before a whole-image FCN row runs, XLA's compiled memory analysis of its forward (arguments,
outputs and temporaries) is compared with ``--budget_gb``: a row that would need more is
reported as such and not run, so a table that reaches past what the machine holds never
starts the kernel's OOM killer. A torch row runs under an address-space limit of the same
budget and reports "out of memory" when an allocation fails. ``time s`` includes compiling;
``compile s`` and ``compiles`` count XLA's compiles of the network during the prediction.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import re
import resource
import subprocess
import sys
import tempfile
import time
import types
from typing import Any

if __package__ in (None, ""):  # run as a file: make the repository root importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

MODELS = ("fcn8s", "unet")
MODES = ("whole", "slide", "torch")
DEFAULT_ROWS = (
    "fcn8s:whole:500,fcn8s:torch:500,fcn8s:whole:1000,fcn8s:torch:1000,"
    "fcn8s:whole:2000,fcn8s:torch:2000,fcn8s:slide:2000,fcn8s:whole:3000,fcn8s:torch:3000,"
    "fcn8s:whole:4000,fcn8s:torch:4000,fcn8s:slide:5000,fcn8s:slide:10000,"
    "unet:whole:500,unet:torch:500,unet:whole:1000,unet:torch:1000,"
    "unet:whole:2000,unet:torch:2000,unet:slide:2000")
QUICK_ROWS = "fcn8s:whole:40,fcn8s:slide:70,unet:whole:60,unet:slide:60,fcn8s:torch:40"
UNET_CONTEXT = 92
"""Input pixels a valid U-Net (4 levels) loses on each side: its mirrored context."""


def parse_rows(text: str) -> list[tuple[str, str, int]]:
    """"model:mode:side,..." as (model, mode, side) triples; SystemExit for a bad one."""
    rows = []
    for item in filter(None, text.split(",")):
        parts = item.split(":")
        if (len(parts) != 3 or parts[0] not in MODELS or parts[1] not in MODES
                or not parts[2].isdigit()):
            raise SystemExit(f"--rows: {item!r} is not model:mode:side with a model of "
                             f"{MODELS}, a mode of {MODES} and a side in pixels")
        rows.append((parts[0], parts[1], int(parts[2])))
    return rows


# ------------------------------------------------------------------- one row, in a child

def config_of(model: str, mode: str, window: int, stride: int, quick: bool) -> Any:
    """The config predict would read: configs/fcn8s.py or configs/unet_isbi.py (valid)."""
    from configs import fcn8s, unet_isbi

    config = (fcn8s if model == "fcn8s" else unet_isbi).get_config()
    if quick and model == "unet":  # a 2-level, 4-channel valid U-Net: tiles of 44 -> 4
        config.model.update({"features": 4, "levels": 2})
        config.input.crop_size = (44, 44)
    config.eval.update({"mode": "whole" if mode == "torch" else mode, "batch_size": 1,
                        "window": (window, window),
                        # a valid U-Net's tiles abut: its stride is the plan's step, ()
                        "stride": () if model == "unet" else (stride, stride)})
    return config


def random_image(side: int, channels: int) -> Any:
    import numpy as np

    rng = np.random.default_rng(0)
    return rng.standard_normal((side, side, channels), dtype=np.float32)


def measure_jax(model_name: str, mode: str, side: int, window: int, stride: int,
                budget_gb: float, quick: bool) -> dict[str, Any]:
    import jax
    import jax.numpy as jnp

    from benchmarks import common
    from fcnjax import inference, models
    from fcnjax.run import xla

    config = config_of(model_name, mode, window, stride, quick)
    if quick and model_name == "fcn8s":
        config.model.name = "fcn32s"  # the same code paths, less to compile
    model = models.build(config.model)
    channels = 1 if model_name == "unet" else 3
    init_shape = (1, *config.input.crop_size, channels)
    shapes = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros(init_shape))["params"]
    params = common.random_params(shapes, 0)
    row: dict[str, Any] = {}
    if mode == "whole" and model_name == "fcn8s":
        forward = xla.jit(lambda p, x: model.apply({"params": p}, x, train=False))
        image_spec = jax.ShapeDtypeStruct((1, side, side, channels), jnp.float32)
        memory = forward.lower(shapes, image_spec).compile().memory_analysis()
        need = (memory.temp_size_in_bytes + memory.argument_size_in_bytes
                + memory.output_size_in_bytes) / 2 ** 30
        row["xla_gb"] = need
        if need > budget_gb:
            return {**row, "status": f"XLA needs {need:.1f} GB > {budget_gb:g} GB budget"}
    compiles = network_compiles()
    image = random_image(side, channels)
    labels_fn = inference.make_labels(config, types.SimpleNamespace(apply_fn=model.apply,
                                                                    params=params))
    start = time.perf_counter()
    labels = labels_fn(image)
    seconds = time.perf_counter() - start
    assert labels.shape == (side, side), labels.shape
    return {**row, "status": "ok", "seconds": seconds, "compile_s": sum(compiles),
            "compiles": len(compiles)}


def network_compiles() -> list[float]:
    """Seconds of each XLA compile of the network from now on (the list grows): jax's
    compile log of the jitted forward (``inference.make_apply``'s lambda), leaving out the
    small programs jax compiles for its own helpers."""
    import logging

    import jax

    seconds: list[float] = []
    pattern = re.compile(r"Finished XLA compilation of jit\(<lambda>\) in ([0-9.]+) sec")

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            found = pattern.search(record.getMessage())
            if found:
                seconds.append(float(found.group(1)))

    jax.config.update("jax_log_compiles", True)
    logger = logging.getLogger("jax")
    logger.addHandler(Collect())
    logger.propagate = False  # the log lines stay out of the child's stderr
    return seconds


def measure_torch(model_name: str, side: int, budget_gb: float, quick: bool
                  ) -> dict[str, Any]:
    import torch

    from benchmarks import common, torch_models

    limit = int(budget_gb * 2 ** 30)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    torch.set_num_threads(os.cpu_count() or 1)
    if model_name == "unet":  # the paper's net, also in a quick run
        net = torch_models.unet()
        side_in, channels = common.unet_valid_size(side + 2 * UNET_CONTEXT), 1
    else:
        net = torch_models.fcn32s() if quick else torch_models.fcn8s()
        side_in, channels = side, 3
    torch_models.randomize_(net.eval())
    x = torch.from_numpy(random_image(side_in, channels)).permute(2, 0, 1)[None]
    start = time.perf_counter()
    try:
        with torch.no_grad():
            net(x).argmax(1)
    except (RuntimeError, MemoryError) as error:
        return {"status": f"out of memory ({str(error).splitlines()[0][:60]})"}
    return {"status": "ok", "seconds": time.perf_counter() - start, "side_in": side_in}


def child(spec: dict[str, Any]) -> None:
    if spec["mode"] == "torch":
        row = measure_torch(spec["model"], spec["side"], spec["budget_gb"], spec["quick"])
    else:
        row = measure_jax(spec["model"], spec["mode"], spec["side"], spec["window"],
                          spec["stride"], spec["budget_gb"], spec["quick"])
    print(json.dumps(row), flush=True)


# ------------------------------------------------------------------------- the parent

def run_row(spec: dict[str, Any]) -> dict[str, Any]:
    """One row in a child process: its JSON line plus its peak RSS (GB)."""
    command = [sys.executable, "-m", "benchmarks.inference_memory", "--child", json.dumps(spec)]
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        process = subprocess.Popen(command, stdout=out, stderr=err,
                                   cwd=pathlib.Path(__file__).resolve().parents[1])
        _, status, usage = os.wait4(process.pid, 0)  # the child's own rusage
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        lines = [line for line in out.read().splitlines() if line.startswith("{")]
        last = err.read().strip().splitlines()[-1:]
    row = json.loads(lines[-1]) if lines else {
        "status": f"failed (exit {process.returncode}): {' '.join(last)[:120]}"}
    row.update(spec)
    row["peak_rss_gb"] = usage.ru_maxrss / 2 ** 20  # KiB on Linux
    return row


def fmt(row: dict[str, Any]) -> str:
    def num(key, form):
        return form.format(row[key]) if key in row else "-"

    window = f"{row['window']}/{row['stride']}" if row["mode"] == "slide" else "-"
    return (f"| {row['model']} | {row['side']}x{row['side']} | {row['mode']} | {window} | "
            f"{num('seconds', '{:.1f}')} | {num('compile_s', '{:.1f}')} | "
            f"{num('compiles', '{}')} | {row['peak_rss_gb']:.2f} | {num('xla_gb', '{:.1f}')} | "
            f"{row['status']} |")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", default=None, help="model:mode:side,... (default: the table's)")
    p.add_argument("--window", type=int, default=1000, help="sliding window side (pixels)")
    p.add_argument("--stride", type=int, default=800, help="sliding stride (pixels)")
    p.add_argument("--unet_window", type=int, default=1148,
                   help="a valid U-Net's slide tiles (a size it takes: 1148 -> 964)")
    p.add_argument("--budget_gb", type=float, default=16.0,
                   help="memory a row may use (XLA's estimate; torch's address-space limit)")
    p.add_argument("--quick", action="store_true", help="tiny sizes and models: a smoke run")
    p.add_argument("--json", default=None, help="also append the rows as JSON lines here")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        return child(json.loads(args.child))
    rows = parse_rows(args.rows or (QUICK_ROWS if args.quick else DEFAULT_ROWS))
    if args.quick:
        args.window, args.stride, args.unet_window = 32, 24, 60
    print("| model | image | mode | window/stride | time s | compile s | compiles | "
          "peak RSS GB | XLA GB | status |")
    print("|---|---|---|---|---|---|---|---|---|---|", flush=True)
    for model, mode, side in rows:
        window = args.unet_window if model == "unet" else args.window
        stride = window if model == "unet" else args.stride
        row = run_row({"model": model, "mode": mode, "side": side, "window": window,
                       "stride": stride, "budget_gb": args.budget_gb, "quick": args.quick})
        print(fmt(row), flush=True)
        if args.json:
            with open(args.json, "a") as out:
                out.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
