"""Shared pieces of the benchmarks: random weights, timers, XLA cost analysis, printing.

Only jax, flax, numpy and (lazily) torch are imported, so the scripts run on a bare GPU
image. Timers always measure compile (or the first call) apart from steady-state runs and
report the median of ``repeats`` timed calls after ``warmup`` untimed ones.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from typing import Any, Callable, Iterable, Mapping, Sequence

import jax
import jax.numpy as jnp

from fcnjax.models.describe import PAPER_TABLE1
from fcnjax.run import xla
from fcnjax.models import layers

PAPER_K40C_MS = {name: row["k40c_ms"] for name, row in PAPER_TABLE1.items()}
"""FCN paper, Table 1: forward time of a 500x500 image on a Tesla K40c (FCN-VGG16 = 32s)."""

IMAGE_CHANNELS = {"unet": 1}
"""Input channels per model: U-Net's paper data (ISBI EM) is grey; FCNs read BGR."""

BIAS_STD = 0.01
"""Standard deviation of the random biases, in both frameworks."""

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def add_shared_args(parser: argparse.ArgumentParser) -> None:
    """The flags both benchmarks take: dtypes, output, the PyTorch side, seed."""
    parser.add_argument("--dtypes", default="float32,bfloat16", help="model compute dtypes")
    parser.add_argument("--json", action="store_true", help="rows as JSON lines on stdout")
    parser.add_argument("--out", default=None, help="also write the rows as JSON lines here")
    parser.add_argument("--torch", action="store_true", help="time the PyTorch versions too")
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile")
    parser.add_argument("--compile-mode", default=None,
                        help="torch.compile mode, e.g. max-autotune (default: torch's default)")
    parser.add_argument("--seed", type=int, default=0)


def parse_dtypes(text: str) -> list[str]:
    """``--dtypes`` as a list, each checked against :data:`DTYPES`."""
    dtypes = [d for d in text.split(",") if d]
    for d in dtypes:
        if d not in DTYPES:
            raise SystemExit(f"--dtypes: {d!r} is not one of {sorted(DTYPES)}")
    return dtypes


def unet_valid_size(at_least: int, geometry: Any = None) -> int:
    """Smallest input side >= ``at_least`` that a VALID U-Net takes (572 stays 572 for the
    paper's, the default ``geometry``; another: its ``UNetGeometry``).

    Every 2x2 pool must see an even map; the U-Net's own geometry says which sides fit.
    """
    from fcnjax.models.unet import unet_geometry

    geometry, side = geometry or unet_geometry(), at_least
    while True:
        try:
            geometry.output_size(side)
            return side
        except ValueError:
            side += 1


# --------------------------------------------------------------------------- JAX side

def random_params(shapes: Any, seed: int) -> Any:
    """Random float32 parameters (``layers.randomize``), the distribution of
    ``torch_models.randomize_``: nothing stays at the reference's zero score layers."""
    return layers.randomize(shapes, seed, BIAS_STD)


def cost(compiled: Any) -> dict[str, float]:
    """``flops`` and ``bytes accessed`` of a compiled XLA executable (dict or list of dicts)."""
    analysis = _first(compiled.cost_analysis())
    return {"flops": float(analysis.get("flops", 0.0)),
            "bytes": float(analysis.get("bytes accessed", 0.0))}


class Compiled:
    """A compiled executable whose ``cost_analysis`` counts ``flops`` given apart.

    XLA's GPU cost analysis leaves out the convolutions it hands to cuDNN as custom calls
    (FCN-8s "cost" 0.9 GFLOP there, H200 2026-11-26), and on the GPU the lowered program's
    analysis has no FLOPs at all; :func:`cpu_flops` counts them on the program lowered for
    the CPU (359.1 GFLOP for FCN-8s 1x500x500, as the CPU's compiled analysis). Bytes still
    come from the compiled program.
    """

    def __init__(self, compiled: Any, flops: float):
        self.compiled, self.flops = compiled, flops

    def __call__(self, *args):
        return self.compiled(*args)

    def cost_analysis(self) -> dict[str, float]:
        return {**_first(self.compiled.cost_analysis()), "flops": self.flops}

    def as_text(self) -> str:
        return self.compiled.as_text()


def cpu_flops(fn: Callable, *args) -> float:
    """FLOPs of ``fn(*args)`` by XLA's cost analysis of the program lowered for the CPU
    (abstract arguments of the same global shapes: nothing runs, nothing is copied)."""
    cpu = jax.sharding.SingleDeviceSharding(jax.devices("cpu")[0])
    specs = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=cpu)
                         if hasattr(a, "shape") and hasattr(a, "dtype") else a, args)
    return float(_first(jax.jit(fn).lower(*specs).cost_analysis()).get("flops", 0.0))


def _first(analysis: Any) -> Mapping[str, Any]:
    if isinstance(analysis, (list, tuple)):
        analysis = analysis[0] if analysis else {}
    return analysis or {}


def compile_timed(fn: Callable, *args, donate: Sequence[int] = ()) -> tuple[Compiled, float]:
    """jit, lower and compile ``fn`` for ``args``; returns (compiled, seconds)."""
    start = time.perf_counter()
    compiled = xla.jit(fn, donate_argnums=tuple(donate)).lower(*args).compile()
    seconds = time.perf_counter() - start
    return Compiled(compiled, cpu_flops(fn, *args)), seconds


def time_jax(call: Callable[[], Any], warmup: int, repeats: int) -> list[float]:
    """Seconds per call of ``call`` (waited on with block_until_ready), after warm-up."""
    for _ in range(warmup):
        jax.block_until_ready(call())
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(call())
        times.append(time.perf_counter() - start)
    return times


def device_header() -> dict[str, Any]:
    import flax
    device = jax.devices()[0]
    return {"device": device.device_kind, "platform": device.platform,
            "jax": jax.__version__, "flax": flax.__version__}


# --------------------------------------------------------------------------- PyTorch side

def torch_setup(device: str) -> None:
    """TF32 for fp32 convs and matmuls on GPU, as the anchors' PyTorch numbers use
    (``set_float32_matmul_precision("high")`` is cuBLAS's TF32, and what inductor reads
    for its own matmuls), and cuDNN's autotuner. The CPU keeps full fp32."""
    import torch
    if device == "cuda":
        torch.set_float32_matmul_precision("high")
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.benchmark = True


def torch_device() -> str:
    import torch
    return "cuda" if torch.cuda.is_available() else "cpu"


def time_torch(call: Callable[[], Any], device: str, warmup: int, repeats: int,
               first_calls: int = 1) -> tuple[float, list[float]]:
    """(seconds of the first ``first_calls`` calls, seconds per call after warm-up) for a
    PyTorch callable (``first_calls`` > 1 where the first calls compile more than once).

    On GPU each call is bracketed by CUDA events and synchronised; on CPU, perf_counter.
    """
    import torch

    def sync():
        if device == "cuda":
            torch.cuda.synchronize()

    sync()
    start = time.perf_counter()
    for _ in range(first_calls):
        call()
    sync()
    first = time.perf_counter() - start
    for _ in range(warmup):
        call()
    sync()
    times = []
    for _ in range(repeats):
        if device == "cuda":
            begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            begin.record()
            call()
            end.record()
            end.synchronize()
            times.append(begin.elapsed_time(end) / 1e3)
        else:
            start = time.perf_counter()
            call()
            times.append(time.perf_counter() - start)
    return first, times


def torch_free(device: str) -> None:
    import gc
    gc.collect()
    if device == "cuda":
        import torch
        torch.cuda.empty_cache()


# --------------------------------------------------------------------------- reporting

def median_ms(times: Iterable[float]) -> float:
    return 1e3 * statistics.median(times)


def ratio(ours: float | None, theirs: float | None) -> float | None:
    """ours / theirs, rounded; below 1 means fcnjax is faster."""
    if ours is None or theirs is None or theirs <= 0:
        return None
    return round(ours / theirs, 3)


@dataclasses.dataclass
class Column:
    key: str
    title: str
    fmt: str = "{}"


def format_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[Column]) -> str:
    """A plain aligned text table; missing values print as '-'."""
    columns = [c for c in columns if any(r.get(c.key) is not None for r in rows)]
    cells = [[c.title for c in columns]]
    for row in rows:
        cells.append(["-" if row.get(c.key) is None else c.fmt.format(row[c.key])
                      for c in columns])
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    lines = ["  ".join(v.rjust(w) for v, w in zip(line, widths)) for line in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def emit(rows: Sequence[Mapping[str, Any]], as_json: bool, out: str | None) -> None:
    """JSON lines to stdout (``--json``) and/or to ``out``."""
    lines = [json.dumps(dict(row), sort_keys=False) for row in rows]
    if as_json:
        for line in lines:
            print(line)
    if out:
        with open(out, "w") as f:
            f.write("\n".join(lines) + "\n")


def log(*args) -> None:
    """Progress lines: stderr, so stdout stays pure JSON under ``--json``."""
    print(*args, file=sys.stderr, flush=True)

