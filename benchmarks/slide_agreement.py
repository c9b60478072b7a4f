"""How far sliding-window predictions differ from whole-image ones on real, labelled images.

    python -m benchmarks.slide_agreement --config configs/sample.py \
        --checkpoint /tmp/fcnjax_sample --data_dir ../shared/data/isbi2012 --split train \
        --ids 1-3,5-7 --window 128 --stride 85,64,128 --blend constant,gaussian

For every image of a folder split (fcnjax's folder layout) the trained model predicts the
class ids twice, as ``predict`` does (:func:`fcnjax.inference.make_labels`): on the whole
image (``eval.mode = "whole"``) and with ``--window`` windows at each ``--stride`` and
``--blend``. Each row gives the share of pixels whose class agrees with the whole-image
prediction and the mean IU and pixel accuracy of both against the labels, over all images.
"""

from __future__ import annotations

import argparse
import itertools
import pathlib
import sys
from typing import Any

if __package__ in (None, ""):  # run as a file: make the repository root importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import numpy as np


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", required=True, help="the training config file (a .py)")
    p.add_argument("--checkpoint", required=True, help="workdir, checkpoints/, best/ or a step")
    p.add_argument("--data_dir", required=True, help="folder dataset with labels")
    p.add_argument("--split", default="val")
    p.add_argument("--ids", default="", help="image names/ranges to keep, e.g. 1-3,5")
    p.add_argument("--window", type=int, required=True, help="square window side")
    p.add_argument("--stride", default="", help="strides to try, e.g. 85,64 (default 2/3)")
    p.add_argument("--blend", default="constant,gaussian")
    args = p.parse_args(argv)

    from fcnjax import inference, metrics
    from fcnjax.data import image_folder, transforms
    from fcnjax.data.ids import parse_ids
    from fcnjax.run import state
    from fcnjax.weights.zoo import load_config

    config = load_config(args.config)
    restored = state.restore_state(config, args.checkpoint)
    pairs = image_folder.find_pairs(args.data_dir, args.split)
    if args.ids:
        keep = {str(i) for i in parse_ids(args.ids)}
        pairs = [pair for pair in pairs if pair[0] in keep]
    table = transforms.label_table(tuple(config.input.label_values))
    cfg, classes = config.input, config.model.num_classes
    images, labels = [], []
    for _, image_path, label_path in pairs:
        pixels = image_folder.read_image(image_path, cfg.image_mode)
        images.append(transforms.normalize({"image": pixels}, cfg.mean, cfg.scale,
                                           cfg.bgr)["image"])
        stored = image_folder.read_label(label_path)
        labels.append(table[stored] if table is not None else stored)

    def predict_all(**fields: Any) -> list[np.ndarray]:
        chosen = config.copy_and_resolve_references()
        chosen.eval.update(fields)
        labels_fn = inference.make_labels(chosen, restored)
        return [labels_fn(image) for image in images]

    def scores(predictions: list[np.ndarray]) -> dict[str, float]:
        total = sum(np.asarray(metrics.confusion_matrix(t, p, classes))
                    for t, p in zip(labels, predictions))
        return metrics.scores(total)

    whole = predict_all(mode="whole")
    base = scores(whole)
    pixels = sum(w.size for w in whole)
    print(f"{len(images)} images of {args.data_dir} ({args.split}), "
          f"{pixels / 1e6:.2f} M pixels; whole image: mean IU {100 * base['mean_iu']:.2f}, "
          f"pixel acc. {100 * base['pixel_acc']:.2f}")
    print("| window | stride | blend | agreement with whole % | mean IU | pixel acc. |")
    print("|---|---|---|---|---|---|")
    strides = [int(s) for s in args.stride.split(",") if s] or [max(1, 2 * args.window // 3)]
    for stride, blend in itertools.product(strides, args.blend.split(",")):
        slid = predict_all(mode="slide", window=(args.window, args.window),
                           stride=(stride, stride), blend=blend)
        agree = sum(int(np.sum(a == b)) for a, b in zip(slid, whole)) / pixels
        row = scores(slid)
        print(f"| {args.window} | {stride} | {blend} | {100 * agree:.2f} | "
              f"{100 * row['mean_iu']:.2f} | {100 * row['pixel_acc']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
