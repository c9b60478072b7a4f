"""The CPU speed table: forward and train step of FCN-8s and U-Net beside PyTorch eager.

    python -m benchmarks.cpu_table                   # FCN 256x256, U-Net 252x252, batch 1 and 4
    python -m benchmarks.cpu_table --out table.md    # also write the markdown table
    python -m benchmarks.cpu_table --quick           # smoke run: 64x64 / 188x188, batch 1

One process runs ``benchmarks.forward_time`` and ``benchmarks.train_step`` (``--torch
--no-compile``: both frameworks, same process, same inputs' shapes) for every model, dtype
and batch, then prints one markdown table: milliseconds, TFLOP/s (XLA's FLOP count of the
compiled program, the same count for PyTorch's time) and that rate as a share of the
machine's fp32 peak, estimated as cores x clock x vector FMA lanes x 2 (multiply and add)
x 2 FMA units (``fp32_peak``; the clock is the one /proc/cpuinfo reports, so a core that
turbos above it can exceed "100%"). The header line names the CPU, cores, date, commit and
library versions.
"""

from __future__ import annotations

import argparse
import datetime
import os
import pathlib
import platform
import subprocess
import sys
from typing import Any

if __package__ in (None, ""):  # run as a file: make the repository root importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import jax

from benchmarks import common, forward_time, train_step

ROOT = pathlib.Path(__file__).resolve().parents[1]


def cpu_info() -> dict[str, Any]:
    """CPU model, usable cores, reported clock (MHz) and fp32 lanes of its widest vectors."""
    text = pathlib.Path("/proc/cpuinfo").read_text() if os.path.exists("/proc/cpuinfo") else ""
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    flags = set(fields.get("flags", "").split())
    lanes = 16 if "avx512f" in flags else 8 if "avx2" in flags else 4
    return {"model": fields.get("model name", platform.processor() or "unknown"),
            "cores": len(os.sched_getaffinity(0)), "mhz": float(fields.get("cpu MHz", 0) or 0),
            "lanes": lanes, "amx_bf16": "amx_bf16" in flags}


def fp32_peak(info: dict[str, Any]) -> float:
    """FLOP/s: cores x clock x lanes x 2 (FMA) x 2 (FMA units per core)."""
    return info["cores"] * info["mhz"] * 1e6 * info["lanes"] * 2 * 2


def commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True,
                              capture_output=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def measure(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Rows of both benchmarks, each tagged with its ``kind`` (forward or train step)."""
    shared = ["--dtypes", args.dtypes, "--torch", "--no-compile", "--repeats",
              str(args.repeats), "--warmup", str(args.warmup)]
    rows = [{**row, "kind": "forward"} for row in forward_time.main(
        ["--models", args.models, "--size", str(args.size), "--unet-size", str(args.unet_size),
         "--batch", args.batch, *shared])]
    for batch in args.batch.split(","):
        rows += [{**row, "kind": "train step"} for row in train_step.main(
            ["--models", args.models, "--size", str(args.size), "--unet-size",
             str(args.unet_size), "--batch", batch, *shared])]
    return rows


def table(rows: list[dict[str, Any]], peak: float) -> str:
    """Markdown: one line per (model, kind, dtype, batch), fcnjax beside PyTorch eager."""
    lines = ["| workload | dtype | batch | fcnjax ms | TFLOP/s | % fp32 peak | PyTorch ms "
             "| TFLOP/s | fcnjax / PyTorch |", "|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        flop = row["gflop_per_image"] * row["batch"] * 1e9
        torch_ms = row.get("torch_eager_ms")
        torch_rate = flop / (torch_ms / 1e3) / 1e12 if torch_ms else None
        cells = [f"{row['model']} {row['kind']} {row['size']}", row["dtype"], row["batch"],
                 f"{row['ms']:.0f}", f"{row['tflop_s']:.3f}",
                 f"{100 * row['tflop_s'] * 1e12 / peak:.0f}%",
                 f"{torch_ms:.0f}" if torch_ms else "-",
                 f"{torch_rate:.3f}" if torch_rate else "-",
                 f"**{row['jax_over_eager']:.2f}**" if torch_ms else "-"]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)


def header(info: dict[str, Any], peak: float) -> str:
    import flax
    import torch
    return (f"{info['model']}, {info['cores']} cores at {info['mhz']:.0f} MHz (reported), "
            f"{info['lanes']}-lane fp32 FMA{', AMX-BF16' if info['amx_bf16'] else ''}; "
            f"fp32 peak estimate {peak / 1e12:.3f} TFLOP/s; "
            f"{datetime.date.today().isoformat()}, commit {commit()}; jax {jax.__version__}, "
            f"flax {flax.__version__}, torch {torch.__version__} "
            f"({torch.get_num_threads()} threads)")


def main(argv: list[str] | None = None) -> str:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="fcn8s,unet")
    p.add_argument("--size", type=int, default=256, help="FCN input side")
    p.add_argument("--unet-size", type=int, default=252, help="U-Net input side")
    p.add_argument("--batch", default="1,4", help="comma-separated batch sizes")
    p.add_argument("--dtypes", default="float32,bfloat16")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--out", default=None, help="also write the header and table here")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: 64x64, U-Net 188, batch 1, fp32, 1 repeat, no warm-up")
    args = p.parse_args(argv)
    if args.quick:
        args.size, args.unet_size, args.batch, args.dtypes = 64, 188, "1", "float32"
        args.repeats, args.warmup = 1, 0
    info = cpu_info()
    peak = fp32_peak(info)
    text = header(info, peak) + "\n\n" + table(measure(args), peak) + "\n"
    print(text)
    if args.out:
        pathlib.Path(args.out).write_text(text)
    common.log(f"# written to {args.out}" if args.out else "")
    return text


if __name__ == "__main__":
    main()
