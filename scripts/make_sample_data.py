"""Cut the small ISBI 2012 sample that ships with fcnjax from the full training set.

    python scripts/make_sample_data.py PATH/TO/isbi2012

PATH/TO/isbi2012 holds ``train/image/N.png`` and ``train/label/N.png`` (N = 0..29, 512x512,
8-bit grayscale; labels exactly {0, 255}) as zhixuhao/unet distributes them. The sample takes
the centre ``--size`` x ``--size`` window of a few images, unchanged otherwise (no resampling,
so labels keep their exact {0, 255} values), and writes
``fcnjax/data/sample/isbi2012/{train,val}/{image,label}/N.png``.
"""

from __future__ import annotations

import argparse
import pathlib

import numpy as np
from PIL import Image

REPO = pathlib.Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "fcnjax" / "data" / "sample" / "isbi2012"
SPLITS = {"train": (0, 4, 8, 12, 16, 20), "val": (24, 28)}


def center_crop(array: np.ndarray, size: int) -> np.ndarray:
    """The centre ``size`` x ``size`` window of a (H, W) array."""
    h, w = array.shape
    if h < size or w < size:
        raise ValueError(f"cannot cut {size}x{size} from a {h}x{w} image")
    top, left = (h - size) // 2, (w - size) // 2
    return array[top:top + size, left:left + size]


def read_pair(source: pathlib.Path, index: int) -> tuple[np.ndarray, np.ndarray]:
    """Image and label ``index`` of the full training set, as uint8 (H, W) arrays."""
    paths = [source / "train" / kind / f"{index}.png" for kind in ("image", "label")]
    for path in paths:
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: is {source} the isbi2012 folder?")
    image, label = (np.asarray(Image.open(p).convert("L")) for p in paths)
    if image.shape != label.shape:
        raise ValueError(f"{paths[0]} is {image.shape} but {paths[1]} is {label.shape}")
    values = set(np.unique(label).tolist())
    if not values <= {0, 255}:
        raise ValueError(f"{paths[1]} has values {sorted(values)}, expected only 0 and 255")
    return image, label


def write_sample(source: pathlib.Path, out: pathlib.Path, size: int,
                 splits: dict[str, tuple[int, ...]]) -> list[pathlib.Path]:
    """Write the centre crops of ``splits`` under ``out``; return the files written."""
    written = []
    for split, indices in splits.items():
        for index in indices:
            for kind, array in zip(("image", "label"), read_pair(source, index)):
                path = out / split / kind / f"{index}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(center_crop(array, size)).save(path, optimize=True)
                written.append(path)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("source", type=pathlib.Path, help="folder with train/{image,label}/N.png")
    parser.add_argument("--out", type=pathlib.Path, default=DEFAULT_OUT)
    parser.add_argument("--size", type=int, default=128, help="side of the centre crop")
    args = parser.parse_args()
    written = write_sample(args.source, args.out, args.size, SPLITS)
    total = sum(p.stat().st_size for p in written)
    print(f"wrote {len(written)} files, {total / 1024:.0f} KiB, under {args.out}")


if __name__ == "__main__":
    main()
