"""Input pipeline throughput: CamVid train batches with augmentation, at 1, 2 and all cores.

    python -m fcnjax.data.prepare camvid --manual_dir /data/CamVid --tfds_data_dir /data/tfds
    python -m benchmarks.input_pipeline --tfds_data_dir /data/tfds              # 1, 2, all cores
    python -m benchmarks.input_pipeline --tfds_data_dir /data/tfds --cores 1,4,16 --json

Each setting pins this process (and so its grain workers) to that many cores: one core reads
with one thread in this process, n > 1 cores run n grain worker processes. Batches are
``--batch_size`` random crops of ``--crop`` after random scale (0.5-2), photometric jitter
and flip, normalised as the FCN reference does (BGR, mean subtracted): the full training
path of ``fcnjax.data.pipeline``. The first batch (worker start-up, first reads) is timed
apart; images/s is over the next ``--batches`` batches. A GPU train step at 500x500 takes
~300+ images/s on one H100, which is the rate to beat.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import time

if __package__ in (None, ""):  # run as a file: make the repository root importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from configs import default
from fcnjax.data import pipeline

AUGMENT = {"scale_range": (0.5, 2.0), "jitter": (0.2, 0.2, 0.2), "flip": True}


def camvid_config(tfds_data_dir: str, crop: tuple[int, int], **overrides):
    """``config.input`` reading prepared CamVid from ``tfds_data_dir`` with the augmentation on."""
    config = default.get_config().input
    config.update({"source": "tfds", "tfds_name": "camvid", "tfds_data_dir": tfds_data_dir,
                   "crop_size": crop, **AUGMENT, **overrides})
    return config


def measure(config, batch_size: int, batches: int, seed: int = 0) -> dict:
    """Seconds to the first batch and images/s over the next ``batches``."""
    start = time.perf_counter()
    iterator = pipeline.train_batches(config, batch_size, seed, shard=(0, 1))
    next(iterator)
    first = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    seconds = time.perf_counter() - start
    return {"first_batch_s": round(first, 2), "images_per_s": round(batches * batch_size / seconds, 1)}


def cores_list(text: str) -> list[int]:
    available = len(os.sched_getaffinity(0))
    cores = [available if c == "all" else int(c) for c in text.split(",") if c]
    return sorted({min(c, available) for c in cores})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tfds_data_dir", required=True,
                        help="the tfds folder holding prepared camvid")
    parser.add_argument("--cores", default="1,2,all", help="comma list; 'all' = every core")
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--batches", type=int, default=20, help="timed batches per setting")
    parser.add_argument("--crop", default="360x480", help="HxW training crop")
    parser.add_argument("--json", action="store_true", help="rows as JSON lines")
    args = parser.parse_args(argv)
    crop = tuple(int(v) for v in args.crop.split("x"))
    everything = sorted(os.sched_getaffinity(0))
    for cores in cores_list(args.cores):
        os.sched_setaffinity(0, everything[:cores])
        workers = 0 if cores == 1 else cores
        config = camvid_config(args.tfds_data_dir, crop, workers=workers,
                               read_threads=1 if cores == 1 else 2)
        row = {"cores": cores, "workers": workers, "batch": args.batch_size,
               "crop": args.crop, **measure(config, args.batch_size, args.batches)}
        print(json.dumps(row) if args.json else
              f"{cores:>3} core(s), {workers} worker(s): {row['images_per_s']:8.1f} images/s "
              f"(first batch {row['first_batch_s']} s)", flush=True)
    os.sched_setaffinity(0, everything)
    return 0


if __name__ == "__main__":
    sys.exit(main())
