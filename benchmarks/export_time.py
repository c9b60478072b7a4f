"""Size and speed of ``python -m fcnjax.export`` artifacts against the jitted model.

    python -m benchmarks.export_time                          # FCN-8s 500x500, sample U-Net
    python -m benchmarks.export_time --configs configs/sample.py --size 64 --repeats 3

For each config: random weights (as every benchmark, nothing left at zero), the artifact
``fcnjax.export`` writes (symbolic batch, height and width, weights inside, lowered for the
CPU and CUDA), serialised and deserialised again; then on one uint8 image of ``--size``
(default: 500x500 for FCNs, the sample's 128x128 for U-Nets) the first call of each is
timed apart and the median of ``--repeats`` calls after ``--warmup`` is reported for the
deserialised artifact (``jax.jit(exported.call)``) and for the same prediction jitted
directly (preprocessing, network, logits: the artifact's program before export).
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import tempfile
import time
from typing import Any

if __package__ in (None, ""):  # run as a file: make the repository root importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import jax
import numpy as np
from jax import export as jax_export

from benchmarks import common
from fcnjax import export, models
from fcnjax.run import state
from fcnjax.weights.zoo import load_config

ROOT = pathlib.Path(__file__).resolve().parents[1]
CONFIGS = (str(ROOT / "configs" / "fcn8s.py"), str(ROOT / "configs" / "sample.py"))
DEFAULT_SIZES = {"unet": 128}
"""Image side per model name when ``--size`` is not given; 500 (Table 1's) otherwise."""

COLUMNS = (
    common.Column("model", "model"),
    common.Column("size", "HxW"),
    common.Column("artifact_mb", "artifact MB", "{:.1f}"),
    common.Column("export_s", "export s", "{:.1f}"),
    common.Column("artifact_first_s", "artifact 1st s", "{:.2f}"),
    common.Column("jit_first_s", "jit 1st s", "{:.2f}"),
    common.Column("artifact_ms", "artifact ms", "{:.1f}"),
    common.Column("jit_ms", "jit ms", "{:.1f}"),
    common.Column("ratio", "artifact / jit", "{:.3f}"),
)


def first_and_median(fn: Any, pixels: np.ndarray, warmup: int, repeats: int
                     ) -> tuple[float, float]:
    """(seconds of the first call, compile included; median ms of the timed calls)."""
    start = time.perf_counter()
    jax.block_until_ready(fn(pixels))
    first = time.perf_counter() - start
    return first, common.median_ms(common.time_jax(lambda: fn(pixels), warmup, repeats))


def measure(path: str, size: int | None, warmup: int, repeats: int, seed: int) -> dict:
    """One row: the artifact of the config at ``path`` and the jitted model, timed."""
    config = load_config(path)
    model = models.build(config.model)
    shape = state.input_shape(config)
    params = common.random_params(jax.eval_shape(model.init, jax.random.key(0),
                                                 np.zeros(shape, np.float32))["params"], seed)
    side = size or DEFAULT_SIZES.get(config.model.name, 500)
    start = time.perf_counter()
    exported = export.export_prediction(config, model.apply, {"params": params})
    with tempfile.TemporaryDirectory() as folder:
        nbytes = export.write(exported, f"{folder}/model.jax")
        with open(f"{folder}/model.jax", "rb") as f:
            loaded = jax_export.deserialize(f.read())
    export_s = time.perf_counter() - start
    pixels = np.random.default_rng(seed).integers(0, 256, (1, side, side, shape[-1]), np.uint8)
    artifact_first, artifact_ms = first_and_median(jax.jit(loaded.call), pixels, warmup,
                                                   repeats)
    jit_first, jit_ms = first_and_median(jax.jit(export.prediction(config, model.apply, {"params": params})),
                                         pixels, warmup, repeats)
    return {"model": config.model.name, "size": f"{side}x{side}", "artifact_mb": nbytes / 1e6,
            "export_s": export_s, "artifact_first_s": artifact_first, "jit_first_s": jit_first,
            "artifact_ms": artifact_ms, "jit_ms": jit_ms, "ratio": artifact_ms / jit_ms,
            "warmup": warmup, "repeats": repeats, **common.device_header()}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--configs", default=",".join(CONFIGS), help="config files, commas")
    parser.add_argument("--size", type=int, default=None,
                        help="image side (default: 500, U-Nets 128)")
    parser.add_argument("--repeats", type=int, default=10, help="timed calls (median)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed calls first")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="rows as JSON lines on stdout")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> list[dict]:
    args = parse_args(argv)
    rows = []
    for path in (p for p in args.configs.split(",") if p):
        common.log(f"export_time: {path}")
        rows.append(measure(path, args.size, args.warmup, args.repeats, args.seed))
    if args.json:
        common.emit(rows, True, None)
    else:
        print(common.format_table(rows, COLUMNS))
    return rows


if __name__ == "__main__":
    main()
