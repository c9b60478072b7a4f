"""The input pipeline: a data source, then grain map / shuffle(seed) / repeat / batch.

Training batches are fixed-size random crops (``config.input.crop_size``; smaller images are
padded, label void) drawn from a seeded shuffle, reshuffled every epoch. Batch ``s`` is a pure
function of the seed and ``s``, so a restarted run continues with exactly the batches it
would have seen (``start_step``). Evaluation batches are whole images in file order,
optionally padded to a fixed canvas (``config.input.eval_size``, label void) so that every
batch has one shape. With ``config.input.mirror_pad`` = p every image is first extended by p
mirrored pixels on each side (label void): U-Net's overlap-tile context for valid convs.

Every batch is ``{"image": float32 (B, H, W, C), "label": int32 (B, H, W)}``, label 255 void.
"""

from __future__ import annotations

import functools
from typing import Any, Iterator, Mapping, Sequence

import grain
import numpy as np

from fcnjax.data import transforms
from fcnjax.data.image_folder import ImageFolder

Batch = dict[str, np.ndarray]
SOURCES = ("folder",)


def make_source(config: Mapping[str, Any], split: str) -> ImageFolder:
    """The data source of ``split`` described by ``config`` (``config.input``)."""
    if config["source"] not in SOURCES:
        raise ValueError(f"unknown input source {config['source']!r}; choose one of {SOURCES}")
    if not config["data_dir"]:
        raise ValueError("config.input.data_dir is empty: set it to the dataset folder "
                         "(holding <split>/image and <split>/label), e.g. "
                         "--config.input.data_dir=/data/isbi2012")
    return ImageFolder(config["data_dir"], split, image_dir=config["image_dir"],
                       label_dir=config["label_dir"], image_mode=config["image_mode"])


def preprocess(example: transforms.Example, config: Mapping[str, Any]) -> transforms.Example:
    """Label values to class ids, the image to normalised float32, then ``mirror_pad``."""
    example = transforms.map_labels(example, transforms.label_table(config["label_values"]))
    example = transforms.normalize(example, config["mean"], config["scale"], config["bgr"])
    return transforms.mirror_pad(example, config["mirror_pad"])


def augment(example: transforms.Example, rng: np.random.Generator,
            config: Mapping[str, Any]) -> transforms.Example:
    """Random crop to ``crop_size`` and, if ``flip``, a random left-right mirror."""
    example = transforms.random_crop(example, config["crop_size"], rng)
    return transforms.random_flip(example, rng) if config["flip"] else example


def stack(examples: Sequence[transforms.Example]) -> Batch:
    """Stack examples into a batch, with a clear error when their shapes differ."""
    shapes = {e["label"].shape for e in examples}
    if len(shapes) > 1:
        raise ValueError(f"cannot batch images of sizes {sorted(shapes)}: set "
                         "config.input.eval_size to a canvas they fit, or eval batch_size 1")
    return {k: np.stack([e[k] for e in examples]) for k in examples[0]}


def train_dataset(config: Mapping[str, Any], batch_size: int, seed: int) -> grain.MapDataset:
    """Infinite dataset whose item ``s`` is the batch of training step ``s``."""
    source = make_source(config, config["train_split"])
    return (grain.MapDataset.source(source)
            .shuffle(seed=seed)
            .repeat()
            .map(functools.partial(preprocess, config=config))
            .random_map(functools.partial(augment, config=config), seed=seed)
            .batch(batch_size, drop_remainder=True, batch_fn=stack))


def train_batches(config: Mapping[str, Any], batch_size: int, seed: int,
                  start_step: int = 0) -> Iterator[Batch]:
    """Training batches from step ``start_step`` on, read ahead by background threads."""
    dataset = train_dataset(config, batch_size, seed)[start_step:]
    options = grain.ReadOptions(num_threads=config["read_threads"],
                                prefetch_buffer_size=2 * config["read_threads"])
    return iter(dataset.to_iter_dataset(options))


def eval_dataset(config: Mapping[str, Any], split: str, batch_size: int) -> grain.MapDataset:
    """Whole images of ``split`` in file order, padded to ``eval_size`` if it is set."""
    dataset = grain.MapDataset.source(make_source(config, split))
    dataset = dataset.map(functools.partial(preprocess, config=config))
    if config["eval_size"]:
        dataset = dataset.map(functools.partial(transforms.pad_to, size=config["eval_size"]))
    return dataset.batch(batch_size, batch_fn=stack)
