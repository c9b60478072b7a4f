"""Copy CamVid (SegNet layout) into fcnjax's folder layout, optionally re-encoding images.

    python scripts/camvid_folder.py SRC DEST                  # PNG images, unchanged pixels
    python scripts/camvid_folder.py SRC DEST --webp 95        # lossy WebP (small, for transfer)
    python scripts/camvid_folder.py SRC DEST --downscale 3    # 120x160: CPU-sized training

SRC holds ``train/ trainannot/ val/ valannot/ test/ testannot/`` (the distributed PNG images,
or this workplace's lossless-WebP copy of them); DEST receives
``<split>/image/<name>.<png|webp>`` and ``<split>/label/<name>.png`` (labels copied byte for
byte: class ids 0-10, 11 = void). ``--downscale N`` divides both sides by N: images
box-filtered (each output pixel the mean of N x N), labels by the pixel at each block's
centre (a class id is never averaged); for CPU-sized runs (RESULTS.md says which). ``--webp Q`` is lossy: it exists to fit the dataset into a
64 MiB transfer to a lent GPU (RESULTS.md says which runs read such a copy).
"""

from __future__ import annotations

import argparse
import os
import shutil

from PIL import Image
from tqdm import tqdm

SPLITS = ("train", "val", "test")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("src")
    p.add_argument("dest")
    p.add_argument("--webp", type=int, default=0, help="lossy WebP quality (0: write PNG)")
    p.add_argument("--downscale", type=int, default=1,
                   help="divide height and width by this whole number (1: as stored)")
    args = p.parse_args(argv)
    for split in SPLITS:
        images, labels = os.path.join(args.src, split), os.path.join(args.src, split + "annot")
        names = sorted(os.path.splitext(f)[0] for f in os.listdir(images))
        for sub in ("image", "label"):
            os.makedirs(os.path.join(args.dest, split, sub), exist_ok=True)
        for name in tqdm(names, desc=split, unit="img"):
            source, = (os.path.join(images, f) for f in os.listdir(images)
                       if os.path.splitext(f)[0] == name)
            image = shrink(Image.open(source).convert("RGB"), args.downscale, Image.BOX)
            if args.webp:
                image.save(os.path.join(args.dest, split, "image", name + ".webp"),
                           quality=args.webp)
            else:
                image.save(os.path.join(args.dest, split, "image", name + ".png"))
            label = os.path.join(labels, name + ".png")
            target = os.path.join(args.dest, split, "label", name + ".png")
            if args.downscale == 1:
                shutil.copyfile(label, target)
            else:
                with Image.open(label) as mask:
                    shrink(mask, args.downscale, Image.NEAREST).save(target)


def shrink(image: Image.Image, factor: int, resample: int) -> Image.Image:
    """``image`` with both sides divided by ``factor`` (itself for 1); NEAREST takes each
    block's centre pixel, BOX its mean."""
    if factor == 1:
        return image
    size = (image.width // factor, image.height // factor)
    return image.resize(size, resample, reducing_gap=None)


if __name__ == "__main__":
    main()
