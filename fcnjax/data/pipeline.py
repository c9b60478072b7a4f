"""The input pipeline: a data source, then grain map / shuffle(seed) / repeat / batch.

Sources (``config.input.source``): "folder", an image folder read as it is
(:mod:`fcnjax.data.image_folder`), or "tfds", a prepared tensorflow-datasets dataset read
through ``tfds.data_source`` (array_record, no TensorFlow): fcnjax's builders
(:mod:`fcnjax.data.builders`) or a catalog one such as ``oxford_iiit_pet``.

Training batches are fixed-size random crops (``config.input.crop_size``; smaller images are
padded, label void) drawn from a seeded shuffle, reshuffled every epoch. Batch ``s`` is a pure
function of the seed and ``s``, so a restarted run continues with exactly the batches it
would have seen (``start_step``). Evaluation batches are whole images in file order,
each at its own size (a batch of mixed sizes is split by size), or padded to a fixed canvas
(``config.input.eval_size``, label void) so that every batch has one shape. With
``config.input.mirror_pad`` = p every image is first extended by p mirrored pixels on each
side (label void): U-Net's overlap-tile context for valid convs.

Training augmentation, each a config option and off by default: ``scale_range`` (random
resize), ``jitter`` (photometric), the crop, then ``flip``, or U-Net's elastic deformation,
rotation, shift, mirrors and grey values (``elastic_std``, ``max_rotation``, ``max_shift``,
``contrast``, ``brightness``: :mod:`fcnjax.data.elastic`). ``train_ids`` / ``eval_ids``
keep only the examples they name (:mod:`fcnjax.data.ids`). With several processes
(multi-host) each trains on its own shard of the shuffled examples (``jax.process_index()``
of ``jax.process_count()``); ``workers`` > 0 decodes and augments in that many processes.
Eval batches of different-sized images are split by size, or with ``pad_batches`` padded
to their largest (label void).

Every batch is ``{"image": float32 (B, H, W, C), "label": int32 (B, H, W)}``, label 255 void.
Prepared tfds datasets with more features can give more (:func:`extra_keys`):
``depth_key`` appends the depth map to the image as one more channel, log(depth) -
``depth_mean`` (NYUDv2 early fusion: (H, W, 4) BGR-D images); each of ``extra_inputs`` is
a batch key of its own, normalised with its ``extra_means`` entry and ``scale`` (NYUDv2's
``hha``, the late-fusion net's second input); each of ``extra_labels`` is another int32
label map (SIFT Flow's ``geo_label``), cropped, padded and flipped with the label.
With ``border_weights`` training batches also carry ``"weight"``: float32 (B, H, W), U-Net's
loss weight map (:mod:`fcnjax.data.weight_map`) of each label before mirroring, so mirrored and
padded pixels weigh 0; ``class_balance`` = "median_frequency" sets its w_c from the class
counts of the (selected) training split.
"""

from __future__ import annotations

import dataclasses
import functools
import glob
import os
from typing import Any, Iterator, Mapping, Sequence

import grain
import jax
import numpy as np
from absl import flags

from fcnjax.data import classes as class_table
from fcnjax.data import elastic, ids, transforms, weight_map
from fcnjax.data.classes import VOID, median_frequency_weights
from fcnjax.data.image_folder import ImageFolder
from fcnjax.run.errors import ConfigError, DataError

Batch = dict[str, np.ndarray]
SOURCES = ("folder", "tfds")
CLASS_BALANCES = ("", "median_frequency")
AUGMENT_ON = ("host", "device")
WEIGHT_CACHE_BYTES = 1 << 30
"""Border weight maps kept per process (:class:`BorderWeighted`); beyond, computed anew."""


class TfdsSource:
    """``{"image": uint8 (H, W, C), "label": (H, W)}`` examples of a prepared tfds split.

    ``image_key`` / ``label_key`` name the features to read ("image" / "label" for fcnjax's
    builders; "segmentation_mask" for oxford_iiit_pet); ``extra_keys`` more features, kept
    under their own names (label maps, keys ending in ``_label``, lose their channel axis).
    """

    def __init__(self, builder: Any, split: str, image_key: str = "image",
                 label_key: str = "label", extra_keys: Sequence[str] = ()):
        name = builder.info.full_name
        if split not in builder.info.splits:
            raise ConfigError(f"{name} has no split {split!r}; it has {list(builder.info.splits)}")
        features = builder.info.features
        for key in (image_key, label_key, *extra_keys):
            if key not in features:
                raise ConfigError(f"{name} has no feature {key!r} (set config.input.tfds_"
                                  "image_key / tfds_label_key / depth_key / extra_inputs / "
                                  f"extra_labels); it has {list(features)}")
        self.source = builder.as_data_source(split=split)
        if len(self.source) == 0:
            raise DataError(f"split {split!r} of {name} in {builder.data_dir} is empty; "
                            "prepare the dataset again from a complete copy")
        self.name, self.split = name, split
        self.image_key, self.label_key = image_key, label_key
        self.extra_keys = tuple(extra_keys)
        self.builder = builder

    @functools.cached_property
    def names(self) -> list[str] | None:
        """The ``name`` feature of every example (fcnjax's builders: file stems), or None
        when the dataset has none. Read once, without decoding images."""
        features = self.builder.info.features
        if "name" not in features:
            return None
        import tensorflow_datasets as tfds

        skip = {k: tfds.decode.SkipDecoding() for k in features if k != "name"}
        source = self.builder.as_data_source(split=self.split, decoders=skip)
        return [as_text(self.read(source, i)["name"]) for i in range(len(source))]

    @property
    def labels(self) -> DatasetLabels | None:
        """What the label feature stores, from the dataset's metadata (fcnjax's builders
        write it); None for datasets without (catalog ones such as oxford_iiit_pet)."""
        metadata = self.builder.info.metadata or {}
        if self.label_key != "label" or "classes" not in metadata:
            return None
        classes = tuple(metadata["classes"])
        stored = tuple(metadata.get("stored_values") or range(len(classes)))
        return DatasetLabels(self.name, classes, int(metadata.get("void", VOID)),
                             tuple(int(v) for v in stored))

    @classmethod
    def prepared(cls, name: str, split: str, data_dir: str | None = None,
                 **keys: Any) -> TfdsSource:
        """The source of dataset ``name`` (prepared in ``data_dir``), or how to prepare it."""
        import tensorflow_datasets as tfds  # only the "tfds" source needs it

        from fcnjax.data import builders  # noqa: F401  (registers fcnjax's builders)

        try:
            builder = tfds.builder(name, data_dir=data_dir or None)
        except ValueError as error:  # a folder dataset's config never prepared here
            if "BuilderConfig" not in str(error) or "not found" not in str(error):
                raise
            config = name.partition("/")[2]
            raise FileNotFoundError(
                f"tfds dataset {name!r} is not prepared in {data_dir or 'the tfds data_dir'} "
                f"(no config {config!r}); prepare it with python -m fcnjax.data.prepare "
                f"{name} --manual_dir <your folder> --tfds_data_dir {data_dir or '<tfds data_dir>'}"
                ) from None
        if not builder.is_prepared():
            raise FileNotFoundError(
                f"tfds dataset {name!r} is not prepared in {builder.data_dir}; prepare it with "
                f"python -m fcnjax.data.prepare {name} --manual_dir <the dataset as "
                f"distributed> --tfds_data_dir {data_dir or '<tfds data_dir>'}")
        return cls(builder, split, **keys)

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        example = self.read(self.source, index)
        maps = {"image": example[self.image_key], "label": example[self.label_key],
                **{k: example[k] for k in self.extra_keys}}
        return {k: x[..., 0] if transforms.is_label(k) and x.ndim == 3 else x
                for k, x in maps.items()}

    def read(self, examples: Any, index: int) -> Any:
        """``examples[index]`` of a data source of this split (decoded or not); a cut or
        damaged shard file (array_record, riegeli, PIL errors) as :meth:`damaged`."""
        try:
            return examples[index]
        except (RuntimeError, OSError) as error:
            raise self.damaged(index, error) from None

    def damaged(self, index: int, error: BaseException) -> DataError:
        """The one-line error of an example whose shard file cannot be read: the dataset,
        the split, the file and the fix (prepare it again)."""
        folder = str(self.builder.data_dir)
        files = sorted(glob.glob(os.path.join(folder, f"*-{self.split}.*")))
        shown = ", ".join(os.path.basename(f) for f in files[:3]) or "its shard files"
        cause = " ".join(str(error).split()) or type(error).__name__
        return DataError(
            f"example {index} of split {self.split!r} of the prepared dataset {self.name} "
            f"cannot be read ({cause}): {shown} in {folder} is damaged or cut short (an "
            f"interrupted copy, a failing disk); prepare {self.builder.name} again with "
            "python -m fcnjax.data.prepare")

    def __repr__(self) -> str:
        return f"TfdsSource({self.name}, {self.split}: {len(self)} examples)"


@dataclasses.dataclass(frozen=True)
class DatasetLabels:
    """The label semantics a prepared dataset carries: its label feature holds class ids
    0 .. len(classes) - 1 and ``void``; ``stored_values`` are the classes' values in the files
    it was prepared from (the raw encoding a config's ``label_values`` may repeat)."""

    dataset: str
    classes: tuple[str, ...]
    void: int
    stored_values: tuple[int, ...]

    def describe(self) -> str:
        """"class ids 0 (membrane), 1 (cell), void 255"."""
        ids = ", ".join(f"{i} ({name})" for i, name in enumerate(self.classes[:12]))
        more = f", ... {len(self.classes) - 1}" if len(self.classes) > 12 else ""
        return f"class ids {ids}{more}, void {self.void}"


def dataset_labels(source: Any) -> DatasetLabels | None:
    """The label semantics ``source`` (or the source of an ids subset) carries, or None."""
    inner = source.source if isinstance(source, ids.Subset) else source
    return inner.labels if isinstance(inner, TfdsSource) else None


def class_names(config: Any, source: Any = None) -> list[str]:
    """Class names by id: a prepared dataset's own (its metadata: ``source``, default the
    eval split of ``config.input``, when it is prepared), else those of
    ``config.eval.classes``' class set."""
    if source is None and config.input.source == "tfds":
        try:
            source = make_source(config.input, config.input.eval_split)
        except (FileNotFoundError, ConfigError):  # predict needs no dataset
            source = None
    labels = dataset_labels(source) if source is not None else None
    return class_table.class_names(labels.classes if labels is not None else config.eval.classes,
                               config.model.num_classes)


def label_values(config: Mapping[str, Any], source: Any) -> tuple[int, ...]:
    """The label mapping to apply to ``source``'s labels: ``config["label_values"]`` for a
    raw folder; none for a dataset that carries its classes (its labels are class ids).

    ConfigError when the config's mapping contradicts the dataset's: it may be empty, the
    identity, or the raw encoding the dataset was prepared from (which then is not applied
    twice); anything else would turn classes into void or into other classes.
    """
    values = tuple(config["label_values"])
    labels = dataset_labels(source)
    if labels is None or not values:
        return values if labels is None else ()
    if values in (tuple(range(len(labels.classes))), labels.stored_values):
        return ()
    raise ConfigError(
        f"config.input.label_values = {values} contradicts the prepared dataset "
        f"{labels.dataset}, which stores {labels.describe()} (prepared from files storing "
        f"{list(labels.stored_values)}): remove it, --config.input.label_values='()'; a "
        "prepared dataset carries its own labels")


def check_num_classes(source: Any, num_classes: int) -> None:
    """ConfigError when a dataset that carries its classes has another number of them."""
    labels = dataset_labels(source)
    if labels is not None and len(labels.classes) != num_classes:
        raise ConfigError(
            f"config.model.num_classes = {num_classes} but the prepared dataset "
            f"{labels.dataset} has {len(labels.classes)} classes "
            f"({', '.join(labels.classes[:12])}{', ...' if len(labels.classes) > 12 else ''})"
            f": set --config.model.num_classes={len(labels.classes)}")


def with_labels(config: Mapping[str, Any], source: Any) -> dict[str, Any]:
    """``config`` as a dict whose ``label_values`` is what ``source`` needs (see
    :func:`label_values`)."""
    return {**config, "label_values": label_values(config, source)}


def as_text(value: Any) -> str:
    """A tfds Text feature as str (data sources give bytes)."""
    return value.decode() if isinstance(value, bytes) else str(value)


def make_source(config: Mapping[str, Any], split: str,
                ids_key: str | None = None) -> ImageFolder | TfdsSource | ids.Subset:
    """The data source of ``split`` described by ``config`` (``config.input``).

    ``ids_key`` ("train_ids" / "eval_ids"): keep only the examples that config field names.
    """
    source = open_source(config, split)
    if ids_key:
        source = ids.select(source, config[ids_key], f"config.input.{ids_key}")
    return source


def open_source(config: Mapping[str, Any], split: str) -> ImageFolder | TfdsSource:
    """Every example of ``split`` (see ``make_source``)."""
    if config["source"] not in SOURCES:
        raise ConfigError(f"unknown input source {config['source']!r}; choose one of {SOURCES}")
    if config["source"] == "tfds":
        if not config["tfds_name"]:
            raise ConfigError("config.input.tfds_name is empty: name the prepared dataset, "
                              "e.g. --config.input.tfds_name=camvid")
        return TfdsSource.prepared(config["tfds_name"], split, config["tfds_data_dir"],
                                   image_key=config["tfds_image_key"],
                                   label_key=config["tfds_label_key"],
                                   extra_keys=extra_keys(config))
    if extra_keys(config):
        raise ConfigError(f"config.input names features {extra_keys(config)} (depth_key, "
                          "extra_inputs, extra_labels): only the \"tfds\" source has them")
    if not config["data_dir"]:
        raise ConfigError("config.input.data_dir is empty: set it to the dataset folder "
                          "(images/ + masks/ [+ splits/<split>.txt], or <split>/image + "
                          "<split>/label), e.g. --config.input.data_dir=/data/isbi2012")
    return ImageFolder(config["data_dir"], split, image_dir=config["image_dir"],
                       label_dir=config["label_dir"], image_mode=config["image_mode"])


def extra_keys(config: Mapping[str, Any]) -> tuple[str, ...]:
    """Features read besides image and label: ``depth_key``, ``extra_inputs``,
    ``extra_labels`` (label maps must end in ``_label``)."""
    labels = tuple(config["extra_labels"])
    for key in labels:
        if not transforms.is_label(key):
            raise ConfigError(f"config.input.extra_labels: {key!r} must end in '_label'")
    inputs = tuple(config["extra_inputs"])
    if len(config["extra_means"]) != len(inputs):
        raise ConfigError(f"config.input.extra_means has {len(config['extra_means'])} means "
                          f"for the {len(inputs)} extra_inputs {inputs}")
    for key in inputs + ((config["depth_key"],) if config["depth_key"] else ()):
        if transforms.is_label(key) or key in ("image", "label", "weight"):
            raise ConfigError(f"config.input: {key!r} cannot be an extra input")
    return ((config["depth_key"],) if config["depth_key"] else ()) + inputs + labels


def add_depth(example: transforms.Example, key: str, mean: float) -> transforms.Example:
    """``example`` whose image has ``log(example[key]) - mean`` as its last channel (the FCN
    reference's NYUDv2 depth; 0 depth, unmeasured, reads as 1)."""
    example = dict(example)
    depth = np.log(np.maximum(example.pop(key), 1).astype(np.float32)) - np.float32(mean)
    depth = depth if depth.ndim == 3 else depth[..., None]
    return {**example, "image": np.concatenate([example["image"], depth], axis=-1)}


def num_label_classes(config: Mapping[str, Any], source: Any = None) -> int:
    """Classes a label can hold: those of a dataset that carries its classes, else
    ``len(label_values)``, or every id below void (255) when the labels already hold class
    ids."""
    labels = dataset_labels(source)
    if labels is not None:
        return len(labels.classes)
    return len(config["label_values"]) or VOID


def class_weights(config: Mapping[str, Any], source: Any) -> np.ndarray | None:
    """w_c of the border weight map (float32, one per class), or None without
    ``border_weights``: median frequency of ``source``'s labels, or 1 (``class_balance``)."""
    if config["class_balance"] not in CLASS_BALANCES:
        raise ConfigError(f"unknown config.input.class_balance {config['class_balance']!r}; "
                          f"choose one of {CLASS_BALANCES}")
    if not config["border_weights"]:
        if config["class_balance"]:
            raise ConfigError("config.input.class_balance sets the w_c of the border weight "
                              "map: it needs border_weights = True (config.loss.class_weights "
                              "weights the classes without one)")
        return None
    if config["border_sigma"] <= 0 or config["border_w0"] < 0:
        raise ConfigError("config.input.border_sigma must be > 0 and border_w0 >= 0, got "
                          f"{config['border_sigma']} and {config['border_w0']}")
    num_classes = num_label_classes(config, source)
    if not config["class_balance"]:
        return np.ones(num_classes, np.float32)
    return median_frequency_weights(label_counts(config, source, num_classes))


def label_counts(config: Mapping[str, Any], source: Any, num_classes: int) -> np.ndarray:
    """Pixels of each class 0 .. num_classes - 1 in the labels of ``source`` (read once,
    label values mapped to class ids); ValueError when there are none."""
    table = transforms.label_table(config["label_values"])
    counts = sum(weight_map.class_counts(
        transforms.map_labels(source[i], table)["label"], num_classes)
        for i in range(len(source)))
    if not np.sum(counts):
        raise DataError(f"the training labels of {source!r} hold no class pixels: "
                        "median_frequency class balance needs some")
    return counts


def median_frequency(config: Mapping[str, Any], num_classes: int) -> np.ndarray:
    """Median-frequency weights (float32, one per class) of the training split's labels
    (``train_split``, ``train_ids``): the loss's ``class_weights = "median_frequency"``."""
    source = make_source(config, config["train_split"], "train_ids")
    return median_frequency_weights(label_counts(with_labels(config, source), source,
                                                 num_classes))


def add_border_weights(example: transforms.Example, weights: np.ndarray,
                       config: Mapping[str, Any]) -> transforms.Example:
    """``example`` with ``"weight"``: the weight map of its label (class ids) with w_c
    ``weights``; cells are class 1."""
    return {**example, "weight": weight_map.border_weights(
        example["label"], num_classes=len(weights), class_weights=weights,
        w0=config["border_w0"], sigma=config["border_sigma"])}


class BorderWeighted:
    """``source`` whose examples carry ``"weight"``, U-Net's border weight map of their label
    (class ids, w_c ``weights``; :func:`add_border_weights`), computed once per image: the
    distance transforms cost more than the rest of an example's augmentation. Kept up to
    ``WEIGHT_CACHE_BYTES`` per process (each grain worker holds its own); images beyond
    that are computed on every read."""

    def __init__(self, source: Any, weights: np.ndarray, config: Mapping[str, Any]):
        self.source, self.weights, self.config = source, weights, config
        self.table = transforms.label_table(config["label_values"])
        self.cache: dict[int, np.ndarray] = {}
        self.cached_bytes = 0

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int) -> transforms.Example:
        example = self.source[index]
        weight = self.cache.get(index)
        if weight is None:
            label = transforms.map_labels(example, self.table)
            weight = add_border_weights(label, self.weights, self.config)["weight"]
            if self.cached_bytes + weight.nbytes <= WEIGHT_CACHE_BYTES:
                self.cache[index] = weight
                self.cached_bytes += weight.nbytes
        return {**example, "weight": weight}

    def __repr__(self) -> str:
        return repr(self.source)


def preprocess(example: transforms.Example, config: Mapping[str, Any],
               weights: np.ndarray | None = None) -> transforms.Example:
    """Label values to class ids, the image (and extra inputs, depth appended) to normalised
    float32, the border weight map (with w_c ``weights``; None: no map), then ``mirror_pad``
    (where the map is 0)."""
    example = transforms.map_labels(example, transforms.label_table(config["label_values"]))
    example = transforms.normalize(example, config["mean"], config["scale"], config["bgr"])
    if config["depth_key"]:
        example = add_depth(example, config["depth_key"], config["depth_mean"])
    for key, mean in zip(config["extra_inputs"], config["extra_means"]):
        example = transforms.normalize(example, mean, config["scale"], False, key=key)
    example = {k: x.astype(np.int32) if transforms.is_label(k) else x
               for k, x in example.items()}
    if weights is not None:
        example = add_border_weights(example, weights, config)
    return transforms.mirror_pad(example, config["mirror_pad"])


def uses_elastic(config: Mapping[str, Any]) -> bool:
    """Whether training crops go through U-Net's augmentation (:mod:`fcnjax.data.elastic`)."""
    return any(config[k] for k in ("elastic_std", "max_rotation", "max_shift", "contrast",
                                   "brightness"))


def augment(example: transforms.Example, rng: np.random.Generator,
            config: Mapping[str, Any], weights: np.ndarray | None = None
            ) -> transforms.Example:
    """A training example from a stored one: random scale and photometric jitter (each if
    set), ``preprocess`` (border weights with w_c ``weights``), random crop to
    ``crop_size``, then U-Net's elastic augmentation if set (mirroring both axes if
    ``flip``), else (if ``flip``) a random left-right mirror."""
    example = transforms.random_scale(example, config["scale_range"], rng)
    example = transforms.photometric_jitter(example, config["jitter"], rng)
    example = preprocess(example, config, weights)
    example = transforms.random_crop(example, config["crop_size"], rng)
    if uses_elastic(config):
        draw = elastic.draw(
            rng, elastic_std=config["elastic_std"], grid=config["elastic_grid"],
            max_rotation=config["max_rotation"], max_shift=config["max_shift"],
            flip=config["flip"], contrast=config["contrast"], brightness=config["brightness"])
        if config["augment_on"] == "device":  # the train step applies them (device_elastic)
            return {**example, **{k: v.astype(np.float32) if v.dtype.kind == "f" else v
                                  for k, v in draw.items()}}
        return void_weight(elastic.apply(example, draw, config["resample_order"]))
    return transforms.random_flip(example, rng) if config["flip"] else example


def void_weight(example: transforms.Example) -> transforms.Example:
    """Weight 0 on void labels: the weight is resampled smoothly, the label by nearest
    neighbour, so a warp can spread weight onto void pixels next to real ones."""
    if "weight" not in example:
        return example
    return {**example, "weight": np.where(example["label"] == VOID, np.float32(0),
                                          example["weight"])}


def check_elastic(config: Mapping[str, Any]) -> None:
    """ValueError for elastic settings ``elastic.augment`` would misread."""
    if min(config[k] for k in ("elastic_std", "max_rotation", "max_shift", "contrast",
                               "brightness")) < 0:
        raise ConfigError("config.input.elastic_std, max_rotation, max_shift, contrast and "
                          "brightness must be >= 0")
    if config["elastic_grid"] < 2 and config["elastic_std"]:
        raise ConfigError(f"config.input.elastic_grid must be >= 2, got {config['elastic_grid']}")
    if config["resample_order"] not in (1, 3):
        raise ConfigError("config.input.resample_order must be 1 (bilinear) or 3 (cubic), got "
                          f"{config['resample_order']}")
    if config["augment_on"] not in AUGMENT_ON:
        raise ConfigError(f"unknown config.input.augment_on {config['augment_on']!r}; choose "
                          f"one of {AUGMENT_ON}")
    if config["augment_on"] == "device":
        if not uses_elastic(config):
            raise ConfigError("config.input.augment_on = 'device' moves U-Net's elastic "
                              "augmentation (elastic_std, max_rotation, ...) into the train "
                              "step, and none is set; scale_range, jitter and flip run on the "
                              "host: set augment_on='host'")
        if config["resample_order"] != 1:
            raise ConfigError("config.input.augment_on = 'device' resamples bilinearly: set "
                              "config.input.resample_order=1 (cubic splines run on the host)")


def stack(examples: Sequence[transforms.Example], pad: bool = False) -> Batch:
    """Stack examples into a batch; with ``pad``, pad them to a common size (label void)."""
    if pad:
        examples = transforms.pad_batch(examples)
    shapes = {e["label"].shape for e in examples}
    if len(shapes) > 1:
        raise ValueError(f"cannot batch images of sizes {sorted(shapes)}: set "
                         "config.input.eval_size to a canvas they fit, pad_batches to pad "
                         "each batch to its largest image, or eval batch_size 1")
    return {k: np.stack([e[k] for e in examples]) for k in examples[0]}


def process_shard(shard: tuple[int, int] | None) -> tuple[int, int]:
    """``(index, count)`` of this process's shard; None: ``jax.process_index()`` of ``count()``."""
    if shard is None:
        return jax.process_index(), jax.process_count()
    if not 0 <= shard[0] < shard[1]:
        raise ValueError(f"shard index must be in 0..count-1, got {shard}")
    return shard


def train_dataset(config: Mapping[str, Any], batch_size: int, seed: int,
                  shard: tuple[int, int] | None = None) -> grain.MapDataset:
    """Infinite dataset whose item ``s`` is the batch of training step ``s``.

    ``batch_size`` is this process's; ``shard`` = (index, count) picks every count-th example
    from index on (default: this process's, see ``process_shard``).
    """
    index, count = process_shard(shard)
    check_elastic(config)
    examples = make_source(config, config["train_split"], "train_ids")
    config = with_labels(config, examples)
    weights = class_weights(config, examples)
    if weights is not None and not config["scale_range"]:  # a weight map per stored label
        examples, weights = BorderWeighted(examples, weights, config), None
    source = grain.MapDataset.source(examples)
    if count > 1:
        source = source[index::count]
        if len(source) == 0:
            raise DataError(f"shard {index} of {count} has no examples: fewer training "
                            "examples than processes")
    return (source
            .shuffle(seed=seed)
            .repeat()
            .random_map(functools.partial(augment, config=config, weights=weights),
                        seed=seed)
            .batch(batch_size, drop_remainder=True, batch_fn=stack))


def train_batches(config: Mapping[str, Any], batch_size: int, seed: int,
                  start_step: int = 0, shard: tuple[int, int] | None = None) -> Iterator[Batch]:
    """Training batches from step ``start_step`` on, read ahead by background threads and,
    with ``config.workers`` > 0, decoded and augmented by that many worker processes."""
    dataset = train_dataset(config, batch_size, seed, shard)[start_step:]
    return iter(read_ahead(dataset, config))


def read_ahead(dataset: grain.MapDataset, config: Mapping[str, Any]) -> grain.IterDataset:
    """``dataset`` read by ``read_threads`` threads (per worker), with ``workers`` processes."""
    options = grain.ReadOptions(num_threads=config["read_threads"],
                                prefetch_buffer_size=2 * config["read_threads"])
    dataset = dataset.to_iter_dataset(options)
    if config["workers"] > 0:
        if not flags.FLAGS.is_parsed():  # grain's workers read absl flags; scripts without
            flags.FLAGS.mark_as_parsed()  # absl.app (tests, notebooks) have left them unparsed
        dataset = dataset.mp_prefetch(grain.MultiprocessingOptions(
            num_workers=config["workers"]))
    return dataset


class EvalBatches:
    """Re-iterable eval batches of whole images: ``batch_size`` examples at a time, in file
    order, split into one batch per image size when they differ (each batch one shape: no
    padding, every image scored at its own size; jit compiles once per size). With
    ``pad`` (``config.input.pad_batches``) they are padded to the largest instead."""

    def __init__(self, examples: grain.MapDataset, batch_size: int, pad: bool = False):
        if batch_size < 1:
            raise ConfigError(f"eval batch_size must be >= 1, got {batch_size}")
        self.examples, self.batch_size, self.pad = examples, batch_size, pad

    def __iter__(self) -> Iterator[Batch]:
        for start in range(0, len(self.examples), self.batch_size):
            group = [self.examples[i] for i in
                     range(start, min(start + self.batch_size, len(self.examples)))]
            yield from by_size(group, self.pad)

    def __len__(self) -> int:
        """Groups of ``batch_size`` examples (a group of mixed sizes gives several batches)."""
        return -(-len(self.examples) // self.batch_size)


def by_size(examples: Sequence[transforms.Example], pad: bool = False) -> list[Batch]:
    """One stacked batch per distinct image size, in order of first appearance (``pad``:
    one batch, padded to the largest)."""
    if pad:
        return [stack(examples, pad=True)]
    groups: dict[tuple, list] = {}
    for example in examples:
        groups.setdefault(example["label"].shape, []).append(example)
    return [stack(group) for group in groups.values()]


def eval_dataset(config: Mapping[str, Any], split: str, batch_size: int,
                 shard: tuple[int, int] = (0, 1)) -> EvalBatches:
    """Whole images of ``split`` in file order, padded to ``eval_size`` if it is set; only
    those ``eval_ids`` names when ``split`` is ``eval_split``. No weight maps. Images of
    different sizes are scored each at its own size (see :class:`EvalBatches`).

    Unsharded by default (every process scores the whole split); ``shard`` = (index, count)
    keeps every count-th image from index on.
    """
    index, count = process_shard(shard)
    ids_key = "eval_ids" if split == config["eval_split"] else None
    source = make_source(config, split, ids_key)
    dataset = grain.MapDataset.source(source)[index::count]
    dataset = dataset.map(functools.partial(preprocess, config=with_labels(config, source)))
    if config["eval_size"]:
        dataset = dataset.map(functools.partial(transforms.pad_to, size=config["eval_size"]))
    return EvalBatches(dataset, batch_size, pad=config["pad_batches"])
