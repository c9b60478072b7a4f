"""Segment image files of any size with a trained checkpoint: colour masks and overlays.

    python -m fcnjax.predict --config configs/sample.py --checkpoint /tmp/fcnjax_sample \
        --output /tmp/fcnjax_predictions fcnjax/data/sample/isbi2012/val/image

Arguments are image files or folders of them (png, jpg, bmp, tif, webp). For each image
``<name>`` it writes, in ``--output``:

- ``<name>.png``: the predicted class ids as a palette PNG (pixel value = class id, shown
  in the dataset's colours, ``config.eval.classes``; VOC's colour map by default);
- ``<name>_overlay.png``: the image with the colour mask blended over it.

Images are read and normalised as the config's input pipeline does (``image_mode``,
``bgr``, ``mean``, ``scale``). FCNs and "same"-padding U-Nets predict a whole image at its
own size in one forward pass (one compile per size); a "valid"-padding U-Net predicts tile
by tile with mirrored context (:func:`fcnjax.inference.predict_tiled`, tiles of
``config.input.crop_size``, ``config.eval.batch_size`` tiles per forward pass).
``--config.eval.mode=slide`` predicts any model window by window instead (one compile for
every image size, the network's memory bounded by ``config.eval.window``;
:mod:`fcnjax.sliding`). ``--tta``
averages the class probabilities over the 8 rotations and mirrors of each image (the U-Net
paper's test-time augmentation, :func:`fcnjax.inference.dihedral_average`): 8 times the work.
``config.eval.scales`` and ``config.eval.flip`` average over resized and mirrored copies
the same way (:func:`fcnjax.inference.augment`).
``config.eval.weights`` picks the trained weights or their moving average
(``optim.ema_decay``).
"""

from __future__ import annotations

import os
from typing import Iterable

import ml_collections
import numpy as np
from PIL import Image

from fcnjax.data import transforms
from fcnjax.data.classes import class_colors
from fcnjax.data.image_folder import IMAGE_EXTENSIONS, natural_key, read_image
from fcnjax.inference import Labels, check_eval, make_labels
from fcnjax.run import checkpoint, compile_cache, errors, state, visualize


def image_paths(inputs: Iterable[str]) -> list[str]:
    """Image files named by ``inputs`` (files, or folders whose images are taken in name
    order); FileNotFoundError for a missing path or when no image is found."""
    paths = []
    for item in inputs:
        if os.path.isdir(item):
            names = sorted((n for n in os.listdir(item)
                            if n.lower().endswith(IMAGE_EXTENSIONS)), key=natural_key)
            paths.extend(os.path.join(item, n) for n in names)
        elif os.path.isfile(item):
            paths.append(item)
        else:
            raise FileNotFoundError(f"no such image file or folder: {item}")
    if not paths:
        raise FileNotFoundError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in {list(inputs)}")
    return paths


def not_an_image(path: str, error: BaseException) -> errors.DataError:
    """The one-line error of a file that is not an image."""
    return errors.DataError(f"cannot read {path} as an image ({error}); give image files "
                            f"({', '.join(IMAGE_EXTENSIONS)}) or folders of them")


def check_images(paths: Iterable[str]) -> None:
    """DataError for the first file that is not an image (its header is read, not its
    pixels): found before a checkpoint is restored or anything is written."""
    for path in paths:
        try:
            with Image.open(path):
                pass
        except (OSError, ValueError) as error:
            raise not_an_image(path, error) from None


def load_image(path: str, config: ml_collections.ConfigDict) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 (H, W, 3) RGB for display, float32 (H, W, C) network input) of ``path``."""
    try:
        pixels = read_image(path, config.image_mode)
    except (OSError, ValueError) as error:
        raise not_an_image(path, error) from None
    image = transforms.normalize({"image": pixels}, config.mean, config.scale, config.bgr)
    display = np.repeat(pixels, 3, axis=-1) if pixels.shape[-1] == 1 else pixels[..., :3]
    return np.ascontiguousarray(display), image["image"]


def palette_png(prediction: np.ndarray, colors: np.ndarray) -> Image.Image:
    """A mode "P" PNG image: pixel values are class ids, its palette the class colours."""
    image = Image.fromarray(prediction.astype(np.uint8), mode="P")
    image.putpalette(np.asarray(colors, np.uint8).ravel().tolist())
    return image


def predict_files(config: ml_collections.ConfigDict, labels: Labels, paths: list[str],
                  output: str) -> list[str]:
    """Write ``<name>.png`` and ``<name>_overlay.png`` for every image, its class ids from
    ``labels`` (:func:`fcnjax.inference.make_labels`); return their paths."""
    os.makedirs(output, exist_ok=True)
    num_classes = config.model.num_classes
    if num_classes > 256:
        raise errors.ConfigError(f"palette PNGs hold at most 256 classes, not {num_classes}")
    from fcnjax.data import pipeline

    names = pipeline.class_names(config)  # a prepared dataset's own names, else the table's
    colors = class_colors(names, num_classes)
    written = []
    for path in paths:
        display, image = load_image(path, config.input)
        prediction = labels(image)
        stem = os.path.join(output, os.path.splitext(os.path.basename(path))[0])
        palette_png(prediction, colors).save(stem + ".png")
        mask = visualize.colorize(prediction, num_classes, colors)
        Image.fromarray(visualize.overlay_with_legend(display, mask, names, colors)).save(
            stem + "_overlay.png")
        written += [stem + ".png", stem + "_overlay.png"]
    return written


def predict(config: ml_collections.ConfigDict, checkpoint_path: str, inputs: list[str],
            output: str, tta: bool = False) -> list[str]:
    """Restore the checkpoint, predict every image of ``inputs``, write PNGs to ``output``
    (``tta``: with 8-way test-time averaging)."""
    check_eval(config)
    paths = image_paths(inputs)
    check_images(paths)
    restored = state.restore_for_eval(config, checkpoint_path)  # eval.weights
    return predict_files(config, make_labels(config, restored, tta), paths, output)


def main(argv: list[str] | None = None) -> None:
    """Command line: ``--config``, ``--checkpoint``, ``--output``, ``--tta``, then images
    or folders."""
    from absl import flags, logging
    from ml_collections import config_flags

    config = config_flags.DEFINE_config_file("config", None, "the training config file",
                                             lock_config=True)
    path = flags.DEFINE_string("checkpoint", None, "workdir, its checkpoints/ or best/ "
                               "folder, or one <step> folder")
    output = flags.DEFINE_string("output", None, "folder for the PNGs "
                                 "(default: <workdir>/predict)")
    tta = flags.DEFINE_bool("tta", False, "average the class probabilities over the 8 "
                            "rotations and mirrors of each image (8 times slower)")
    flags.mark_flags_as_required(["config", "checkpoint"])

    def run(args: list[str]) -> None:
        if len(args) < 2:
            raise errors.ConfigError("name image files or folders to segment")
        check_eval(config.value)  # before the checkpoint: a wrong setting is one line
        check_images(image_paths(args[1:]))  # before the checkpoint: a wrong file is one line
        compile_cache.enable(config.value.get("compile_cache", compile_cache.AUTO))
        if not flags.FLAGS["verbosity"].present:
            logging.set_verbosity(logging.WARNING)
        out = output.value or os.path.join(
            os.path.dirname(checkpoint.locate(path.value)[0]), "predict")
        written = predict(config.value, path.value, args[1:], out, tta.value)
        print(f"wrote {len(written) // 2} masks and overlays to {out}")

    errors.run_app("fcnjax.predict", run, argv, config)


if __name__ == "__main__":
    main()
